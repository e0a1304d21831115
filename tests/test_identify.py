"""File names → device, officer, time (GA/T 947 style, configurable)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from config.settings import DEFAULT_NAME_PATTERN
from ingest.identify import identify

CST = ZoneInfo("Asia/Shanghai")


def test_default_pattern_reads_gat947_names():
    info = identify("ABC1234_012345_20260301083015_0001.MP4", DEFAULT_NAME_PATTERN, CST)
    assert (info.device, info.officer, info.seq) == ("ABC1234", "012345", "0001")
    assert info.recorded_start == datetime(2026, 3, 1, 8, 30, 15, tzinfo=CST)
    assert info.flags == ()


def test_important_flag_and_subfolders():
    info = identify(
        "2026-03-01/ABC1234_012345_20260301083015_0002_IMP.MP4", DEFAULT_NAME_PATTERN, CST
    )
    assert info.device == "ABC1234" and info.flags == ("IMP",)


def test_unrecognised_and_impossible_times_are_flagged_not_refused():
    assert identify("holiday video.mov", DEFAULT_NAME_PATTERN, CST).flags == ("name_unrecognised",)
    info = identify("ABC1234_012345_20261341083015.MP4", DEFAULT_NAME_PATTERN, CST)
    assert info.device == "ABC1234" and info.recorded_start is None
    assert "bad_timestamp" in info.flags


def test_vendor_pattern_with_unit_code_and_end_time():
    pattern = (
        r"(?P<unit>\d{12})/(?P<officer>\d{6})/(?P<device>[A-Z0-9]{7})-"
        r"(?P<start>\d{14})-(?P<end>\d{14})\.mp4$"
    )
    info = identify("110105000000/012345/DEV0001-20260301083015-20260301084015.mp4", pattern, CST)
    assert info.unit == "110105000000" and info.officer == "012345"
    assert (info.recorded_end - info.recorded_start).total_seconds() == 600
