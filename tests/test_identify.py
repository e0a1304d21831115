"""File names → device, officer, unit, time: the naming profiles and the time
rules, on a table of real-world-style names (config/names.py says where each
layout comes from), and the promise that nothing is silently wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from config.names import BUILTIN_PROFILES, DEFAULT_NAME_PATTERN
from config.settings import ConfigError, load_settings
from ingest.identify import identify, identify_with

CST = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
#: "now" for every row: noon on 30 Nov 2026, station time
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=CST)

NEXTBASE = r"(?:^|/)(?P<start>\d{6}_\d{6})_(?P<seq>\d{3})_(?P<flag>[FR][HL])\.MP4$"
BRICKCOM = (
    r"(?:^|/)(?P<date>\d{8})-(?P<time>\d{6})-(?P<end_time>\d{6})_(?P<device>[\d.]+)"
    r"-CH(?P<seq>\d+)\.\w+$"
)
CHINESE_FOLDERS = (
    r"(?:^|/)(?P<unit>[^/]+?大队)/(?P<officer>\d{6})号民警/"
    r"(?P<year>\d{4})年(?P<month>\d{2})月(?P<day>\d{2})日/"
    r"(?P<hour>\d{2})时(?P<minute>\d{2})分(?P<second>\d{2})秒(?:_(?P<flag>\w+))?\.\w+$"
)
WITH_OFFSET = r"(?:^|/)(?P<device>[A-Z0-9]+)_(?P<start>\d{8}T\d{6}[+-]\d{4})\.\w+$"
MILLISECONDS = r"(?:^|/)(?P<device>[\d.]+)_(?P<seq>\d{2})_(?P<start>\d{17})_(?P<flag>[A-Z_]+)\.jpg$"
UNIT_FOLDERS = (
    r"(?P<unit>\d{12})/(?P<officer>\d{6})/(?P<device>[A-Z0-9]{7})-"
    r"(?P<start>\d{14})-(?P<end>\d{14})\.mp4$"
)


@dataclass(frozen=True)
class Row:
    path: str
    dock: dict  # the [[docks]] keys besides path
    device: str | None
    officer: str | None
    unit: str | None
    start: datetime | None
    flags: tuple[str, ...] = ()
    end: datetime | None = None
    seq: str | None = None
    extra: dict = field(default_factory=dict)


def at(text: str, zone=CST) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


P = {"name_profile": "gat947"}
TABLE = [
    # -- gat947, the default ------------------------------------------------------
    Row("ABC1234_012345_20260301083015_0001.MP4", {}, "ABC1234", "012345", None,
        at("2026-03-01 08:30:15"), seq="0001"),
    Row("2026-03-01/ABC1234_012345_20260301083015_0002_IMP.MP4", P, "ABC1234", "012345", None,
        at("2026-03-01 08:30:15"), ("IMP",)),
    Row("城关派出所/张三/ABC1234_012345_20260301083015_20260301084015_0003.MP4", P,
        "ABC1234", "012345", None, at("2026-03-01 08:30:15"),
        end=at("2026-03-01 08:40:15")),
    Row("ABC1234_012345_20261341083015.MP4", P, "ABC1234", "012345", None, None,
        ("bad_timestamp",)),
    Row("ABC1234_012345_19991231235959.MP4", P, "ABC1234", "012345", None, None,
        ("bad_timestamp",)),
    Row("ABC1234_012345_20301231235959.MP4", P, "ABC1234", "012345", None, None,
        ("bad_timestamp",)),
    Row("ABC1234_012345_20260301083015_20260301082015.MP4", P, "ABC1234", "012345", None,
        None, ("bad_timestamp",)),
    Row("执法记录仪视频_20260301.MP4", P, None, None, None, None, ("name_unrecognised",)),
    Row("ABC1234_012345_20260301083015_0001_重要.MP4", P, None, None, None, None,
        ("name_unrecognised",)),  # the GA/T 947 pattern takes ASCII markers only, as before
    Row("ABC1234_012345_20260301003015.MP4", {"timezone": "UTC"}, "ABC1234", "012345", None,
        at("2026-03-01 00:30:15", UTC)),  # a recorder set to UTC
    # -- ymd_hms ----------------------------------------------------------------------
    Row("20260301_083015_012345.MP4", {"name_profile": "ymd_hms"}, None, "012345", None,
        at("2026-03-01 08:30:15")),
    Row("DSJA8_20260301-083015_0003_IMP.mp4", {"name_profile": "ymd_hms"}, "DSJA8", None,
        None, at("2026-03-01 08:30:15"), ("IMP",), seq="0003"),
    Row("20260301_253015.MP4", {"name_profile": "ymd_hms"}, None, None, None, None,
        ("bad_timestamp",)),
    Row("BlackVue/20260301_083015_NF.mp4", {"name_profile": "ymd_hms"}, None, None, None,
        at("2026-03-01 08:30:15"), ("NF",)),
    Row("240915_143027_001_FH.MP4", {"name_profile": "ymd_hms"}, None, None, None,
        at("2024-09-15 14:30:27"), ("FH",), seq="001"),  # Nextbase: a 2-digit year
    Row("民警王五/20260301_083015_012345_重要.MP4", {"name_profile": "ymd_hms"}, None,
        "012345", None, at("2026-03-01 08:30:15"), ("重要",)),
    # -- y_md_hms (split year month day hour minute second) ---------------------------
    Row("DSJ_A8_012345_2026_0301_083015.MP4", {"name_profile": "y_md_hms"}, "DSJ_A8",
        "012345", None, at("2026-03-01 08:30:15")),
    Row("2026_0301_083015_001.MP4", {"name_profile": "y_md_hms"}, None, None, None,
        at("2026-03-01 08:30:15"), seq="001"),
    Row("DCIM/100MEDIA/2026_0230_083015_002.MP4", {"name_profile": "y_md_hms"}, None, None,
        None, None, ("bad_timestamp",)),
    Row("DSJ-K3_2026_1129_235959_010.MOV", {"name_profile": "y_md_hms"}, "DSJ-K3", None,
        None, at("2026-11-29 23:59:59"), seq="010"),
    # -- iso_local (separators) ---------------------------------------------------------
    Row("2026-03-01 08.30.15 DSJ-A8.mp4", {"name_profile": "iso_local"}, "DSJ-A8", None,
        None, at("2026-03-01 08:30:15")),
    Row("2026-03-01/2026-03-01_08-30-15-front.mp4", {"name_profile": "iso_local"}, "front",
        None, None, at("2026-03-01 08:30:15")),
    Row("2026-03-01T08:30:15 012345.mp4", {"name_profile": "iso_local"}, None, "012345",
        None, at("2026-03-01 08:30:15")),
    Row("2026-03-01 08.30.15 DSJ-A8 012345 IMP.mp4", {"name_profile": "iso_local"},
        "DSJ-A8", "012345", None, at("2026-03-01 08:30:15"), ("IMP",)),
    Row("2026-02-29 08.30.15 DSJ-A8.mp4", {"name_profile": "iso_local"}, "DSJ-A8", None,
        None, None, ("bad_timestamp",)),
    # -- day_folder (the date from a folder name) ----------------------------------------
    Row("20260301/083015_0001.MP4", {"name_profile": "day_folder"}, None, None, None,
        at("2026-03-01 08:30:15"), seq="0001"),
    Row("330100000000/012345/2026-03-01/083015.MP4", {"name_profile": "day_folder"}, None,
        "012345", "330100000000", at("2026-03-01 08:30:15")),
    Row("城关派出所/20260301/DSJA8_083015_0002.MP4", {"name_profile": "day_folder"}, "DSJA8",
        None, None, at("2026-03-01 08:30:15"), seq="0002"),
    Row("20260301/246000.MP4", {"name_profile": "day_folder"}, None, None, None, None,
        ("bad_timestamp",)),
    Row("2026-03-01/083015_0001.MP4", {"name_profile": "day_folder", "timezone": "UTC"}, None,
        None, None, at("2026-03-01 08:30:15", UTC), seq="0001"),
    # -- utc_z ----------------------------------------------------------------------------
    Row("X81234567_20260301T003015Z.mp4", {"name_profile": "utc_z"}, "X81234567", None, None,
        at("2026-03-01 00:30:15", UTC)),
    Row("20260301T003015Z_0002.mp4", {"name_profile": "utc_z"}, None, None, None,
        at("2026-03-01 00:30:15", UTC), seq="0002"),
    Row("AXON_X8_20260301T003015Z.mp4", {"name_profile": "utc_z", "timezone": "Asia/Shanghai"},
        "AXON_X8", None, None, at("2026-03-01 00:30:15", UTC)),  # the Z in the name wins
    # -- a dock's own pattern and time rule -------------------------------------------------
    Row("240915_143027_001_FH.MP4",
        {"name_pattern": NEXTBASE, "time_format": "%y%m%d_%H%M%S", "timezone": "Europe/London"},
        None, None, None, at("2024-09-15 14:30:27", LONDON), ("FH",), seq="001"),
    Row("20260301-235500-000500_192.168.1.11-CH2.mp4", {"name_pattern": BRICKCOM},
        "192.168.1.11", None, None, at("2026-03-01 23:55:00"), seq="2",
        end=at("2026-03-02 00:05:00")),  # the end_time runs past midnight
    Row("交警一大队/012345号民警/2026年03月01日/08时30分15秒.MP4",
        {"name_pattern": CHINESE_FOLDERS}, None, "012345", "交警一大队", at("2026-03-01 08:30:15")),
    Row("交警一大队/012345号民警/2026年13月01日/08时30分15秒_IMP.MP4",
        {"name_pattern": CHINESE_FOLDERS}, None, "012345", "交警一大队", None,
        ("bad_timestamp", "IMP")),
    Row("CAM7_20260301T083015+0800.mp4", {"name_pattern": WITH_OFFSET, "timezone": "UTC"},
        "CAM7", None, None, at("2026-03-01 08:30:15")),  # the offset in the name wins
    Row("192.168.0.64_01_20260301083015939_MOTION_DETECTION.jpg",
        {"name_pattern": MILLISECONDS}, "192.168.0.64", None, None,
        at("2026-03-01 08:30:15.939"), ("MOTION_DETECTION",), seq="01"),
    Row("110105000000/012345/DEV0001-20260301083015-20260301084015.mp4",
        {"name_pattern": UNIT_FOLDERS}, "DEV0001", "012345", "110105000000",
        at("2026-03-01 08:30:15"), end=at("2026-03-01 08:40:15")),
]  # fmt: skip


def rule_for(dock: dict):
    settings = load_settings(None, docks=[{"path": "dock", **dock}])
    return settings.name_rule(settings.docks[0])


def test_the_table_covers_every_profile_and_at_least_thirty_names():
    assert len(TABLE) >= 30
    used = {r.dock.get("name_profile", "gat947") for r in TABLE if "name_pattern" not in r.dock}
    assert used == set(BUILTIN_PROFILES)


@pytest.mark.parametrize("row", TABLE, ids=[r.path for r in TABLE])
def test_real_world_names(row: Row):
    info = identify_with(rule_for(row.dock), row.path, now=NOW)
    assert (info.device, info.officer, info.unit) == (row.device, row.officer, row.unit)
    assert info.flags == row.flags
    assert info.recorded_start == row.start
    if row.start is not None:  # same instant and same zone as the recorder wrote it
        assert info.recorded_start.utcoffset() == row.start.utcoffset()
    assert info.recorded_end == row.end
    if row.seq is not None:
        assert info.seq == row.seq
    # a refused time always says why; a good one never carries a reason
    assert (info.time_problem is not None) == ("bad_timestamp" in row.flags)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("ABC1234_012345_20261341083015.MP4", "month must be in 1..12"),
        ("ABC1234_012345_19991231235959.MP4", "before 2000"),
        ("ABC1234_012345_20301231235959.MP4", "in the future"),
        ("ABC1234_012345_20260301083015_20260301082015.MP4", "end 2026-03-01T08:20:15+08:00 is "),
    ],
)
def test_bad_timestamps_say_why(path, reason):
    info = identify_with(rule_for({}), path, now=NOW)
    assert info.flags == ("bad_timestamp",) and info.recorded_start is None
    assert reason in info.time_problem, info.time_problem


def test_future_skew_and_earliest_year_are_configurable():
    name = "ABC1234_012345_20261130150000.MP4"  # 3 h after NOW
    assert identify_with(rule_for({}), name, now=NOW).flags == ("bad_timestamp",)
    for names, flags in (
        ({"future_skew_minutes": 240}, ()),
        ({"future_skew_minutes": 240, "earliest_year": 2027}, ("bad_timestamp",)),
    ):
        settings = load_settings(None, docks=[{"path": "dock"}], names=names)
        info = identify_with(settings.name_rule(settings.docks[0]), name, now=NOW)
        assert info.flags == flags, names
    assert "before 2027" in info.time_problem


def test_a_recorder_zone_set_wrong_shows_as_a_future_time():
    """A recorder on Beijing time read as UTC lands 8 hours in the future."""
    name = "ABC1234_012345_20261130110000.MP4"  # 11:00 on the recorder, an hour before NOW
    assert identify_with(rule_for({}), name, now=NOW).flags == ()
    utc = identify_with(rule_for({"timezone": "UTC"}), name, now=NOW)
    assert utc.flags == ("bad_timestamp",) and "zone" in utc.time_problem


# -- backward compatibility: existing name_pattern configs read exactly as before -----------


def old_identify_start(path: str, pattern: str, tz) -> datetime | None:
    """What the first release did: 14 contiguous digits, %Y%m%d%H%M%S, station zone."""
    import re

    match = re.search(pattern, path)
    text = match and match.groupdict().get("start")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=tz) if text else None
    except ValueError:
        return None


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        (DEFAULT_NAME_PATTERN, "ABC1234_012345_20260301083015_0001.MP4"),
        (DEFAULT_NAME_PATTERN, "sub/ABC1234_012345_20260301083015_20260301090000_IMP.MP4"),
        (UNIT_FOLDERS, "110105000000/012345/DEV0001-20260301083015-20260301084015.mp4"),
        (r"(?P<officer>\d{6})-(?P<start>\d{14})", "x/012345-20260301083015.avi"),
    ],
)
def test_existing_name_pattern_configs_keep_working(pattern, path):
    settings = load_settings(None, docks=[{"path": "dock", "name_pattern": pattern}])
    rule = settings.name_rule(settings.docks[0])
    assert (rule.profile, rule.pattern, rule.timezone) == ("custom", pattern, "Asia/Shanghai")
    new = identify_with(rule, path, now=NOW)
    old = identify(path, pattern, CST)
    assert new == old
    assert new.recorded_start == old_identify_start(path, pattern, CST) is not None


def test_a_dock_without_profile_or_pattern_reads_gat947():
    settings = load_settings(None, docks=[{"path": "dock"}])
    rule = settings.name_rule(settings.docks[0])
    assert rule.profile == "gat947" and rule.pattern == DEFAULT_NAME_PATTERN


def test_every_builtin_profile_reads_its_own_examples_and_cites_a_source():
    for profile in BUILTIN_PROFILES.values():
        assert profile.sources and profile.examples, profile.name
        rule = rule_for({"name_profile": profile.name})
        for example in profile.examples:
            info = identify_with(rule, example, now=NOW)
            assert info.recorded_start is not None, (profile.name, example, info)
            assert "bad_timestamp" not in info.flags and "name_unrecognised" not in info.flags


@pytest.mark.parametrize(
    ("dock", "names", "key"),
    [
        ({"name_profile": "nope"}, {}, "name_profile"),
        ({"name_profile": "gat947", "name_pattern": r"(?P<start>\d{14})"}, {}, "not both"),
        ({"name_pattern": r"(?P<year>\d{4})(?P<month>\d\d)"}, {}, "whole time"),
        ({"name_pattern": r"(?P<start>\d{14})(?P<time>\d{6})"}, {}, "not both"),
        ({"timezone": "Mars/Olympus"}, {}, "unknown time zone"),
        ({"time_format": "%H%M%S"}, {}, "lacks"),
        ({}, {"profiles": {"gat947": {"pattern": r"(?P<start>\d{14})"}}}, "built in"),
    ],
)
def test_bad_naming_config_is_refused_with_the_key(dock, names, key):
    with pytest.raises(ConfigError, match=key):
        load_settings(None, docks=[{"path": "dock", **dock}], names=names)


def test_an_operators_own_profile():
    settings = load_settings(
        None,
        docks=[{"path": "dock", "name_profile": "county"}],
        names={
            "profiles": {
                "county": {
                    "pattern": r"(?:^|/)(?P<officer>\d{6})_(?P<start>\d{12})\.\w+$",
                    "time_format": "%Y%m%d%H%M",
                    "timezone": "Asia/Urumqi",
                    "examples": ["012345_202603010830.mp4"],
                }
            }
        },
    )
    rule = settings.name_rule(settings.docks[0])
    info = identify_with(rule, "012345_202603010830.mp4", now=NOW)
    assert info.officer == "012345"
    assert info.recorded_start == datetime(2026, 3, 1, 8, 30, tzinfo=ZoneInfo("Asia/Urumqi"))
    assert info.recorded_start.astimezone(UTC) == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert "county" in settings.name_profiles()


def test_without_a_now_limit_the_old_call_does_not_judge_the_future():
    """``identify`` as called before profiles existed: no skew given, no future check."""
    far = "ABC1234_012345_20990101000000.MP4"
    assert identify(far, DEFAULT_NAME_PATTERN, CST).flags == ()
    late = identify_with(rule_for({}), far, now=NOW + timedelta(days=1))
    assert late.flags == ("bad_timestamp",)
