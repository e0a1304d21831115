"""``strongroom names profiles`` and ``strongroom names test``, run as an operator
would, against a config with two docks of different recorder brands."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import STRONGROOM

from config.names import BUILTIN_PROFILES

CONFIG = """
[station]
name = "dock-01"
timezone = "Asia/Shanghai"

[[docks]]
path = "dock-a"
name = "brand-a"

[[docks]]
path = "dock-b"
name = "brand-b"
name_profile = "y_md_hms"
timezone = "UTC"

[[docks]]
path = "dock-c"
name = "brand-c"
name_pattern = '(?P<officer>\\d{6})-(?P<start>\\d{14})'

[names.profiles.county]
pattern = '(?:^|/)(?P<officer>\\d{6})_(?P<start>\\d{12})\\.\\w+$'
time_format = "%Y%m%d%H%M"
description = "the county's old recorders"
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "strongroom.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def names(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*STRONGROOM, "names", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_profiles_lists_the_library_and_who_uses_what(config):
    result = names(config, "profiles", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    by_name = {p["name"]: p for p in doc["profiles"]}
    assert set(by_name) == {*BUILTIN_PROFILES, "county"}
    assert by_name["gat947"]["docks"] == ["brand-a"]
    assert by_name["y_md_hms"]["docks"] == ["brand-b"]
    assert doc["docks_with_own_pattern"] == ["brand-c"]
    assert by_name["utc_z"]["timezone"] == "UTC"
    assert all(p["sources"] for p in by_name.values())
    table = names(config, "profiles")
    assert table.returncode == 0 and "day_folder" in table.stdout and "county" in table.stdout


def test_a_name_as_each_dock_reads_it_in_station_time(config):
    name = "DSJ_A8_012345_2026_0301_003015.MP4"
    result = names(config, "test", name, "--dock", "brand-b", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["profile"], doc["timezone"]) == ("y_md_hms", "UTC")
    assert (doc["device"], doc["officer"]) == ("DSJ_A8", "012345")
    # written in UTC by the recorder, shown in station time (UTC+8)
    assert doc["start"]["station"] == "2026-03-01T08:30:15+08:00"
    assert doc["start"]["utc"] == "2026-03-01T00:30:15Z"
    # the same name on the GA/T 947 dock is not recognised, and says so with exit 1
    other = names(config, "test", name, "--dock", "brand-a", "--json")
    assert other.returncode == 1
    assert json.loads(other.stdout)["flags"] == ["name_unrecognised"]
    text = names(config, "test", name, "--dock", "brand-b")
    assert "2026-03-01T08:30:15+08:00 station time" in text.stdout


def test_a_profile_or_a_dock_pattern_can_be_tried(config):
    county = json.loads(
        names(config, "test", "012345_202603010830.mp4", "-p", "county", "--json").stdout
    )
    assert county["start"]["station"] == "2026-03-01T08:30:00+08:00"
    own = json.loads(
        names(config, "test", "x/012345-20260301083015.avi", "-d", "brand-c", "--json").stdout
    )
    assert (own["profile"], own["officer"]) == ("custom", "012345")


def test_a_bad_timestamp_exits_1_with_the_reason(config):
    result = names(config, "test", "ABC1234_012345_20261341083015.MP4", "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["flags"] == ["bad_timestamp"] and "month must be in 1..12" in doc["time_problem"]
    text = names(config, "test", "ABC1234_012345_20261341083015.MP4")
    assert "bad_timestamp" in text.stdout and "month" in text.stdout


@pytest.mark.parametrize("args", [("--dock", "nope"), ("--profile", "nope")])
def test_an_unknown_dock_or_profile_is_a_configuration_error(config, args):
    result = names(config, "test", "x.mp4", *args)
    assert result.returncode == 2 and "nope" in result.stderr
