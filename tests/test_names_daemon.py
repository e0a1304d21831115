"""Two docks with recorders of different brands feed one catalog: the daemon
reads each dock's names with its own profile and zone, keeps the three
witnesses of the recording time side by side (name, media creation_time, file
time), and the report by day counts every item on the right day and says which
witness its time came from."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import wait_until
from ingest_helpers import all_jobs_done, catalog_rows

CST = ZoneInfo("Asia/Shanghai")

SECOND_DOCK = """
[transcode]
enabled = false

[[docks]]
path = "dock-b"
name = "brand-b"
settle_seconds = 0.5
name_profile = "day_folder"
timezone = "UTC"
"""


def clip(path: Path, n: int, creation_time: str | None = None) -> None:
    """A small real MP4; ``n`` makes its bytes unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = ["-metadata", f"creation_time={creation_time}"] if creation_time else []
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", "testsrc=size=96x64:rate=5:duration=1", "-c:v", "mpeg4",
            "-metadata", f"title=clip {n}", *meta, str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip


def manifest_source(station, key: str) -> dict:
    envelope = json.loads(station.s3.get_object(Bucket=station.bucket, Key=key)["Body"].read())
    return json.loads(base64.b64decode(envelope["payload"]))["source"]


def test_two_docks_two_profiles_one_catalog_report_by_day(station, tmp_path):
    station.write_config(SECOND_DOCK)
    dock_a, dock_b = station.dock, station.root / "dock-b"
    staging = tmp_path / "staging"
    # what each file is, and the station day (Asia/Shanghai) it must count on
    files = {
        # dock A: GA/T 947 names on Beijing time (the station's zone)
        dock_a / "ABC1234_012345_20260301083015_0001.MP4": ("2026-03-01", "name", None),
        dock_a / "ABC1234_012345_20260302070000_0002.MP4": ("2026-03-02", "name", None),
        # month 13: refused; the media's own creation time (UTC) takes over
        dock_a / "ABC1234_012345_20261341083015_0003.MP4": (
            "2026-03-02", "media", "2026-03-02T01:00:00Z",
        ),
        # dock B: a folder per day, clock in UTC: 00:30 UTC is 08:30 in Beijing
        dock_b / "20260301" / "003015_0001.MP4": ("2026-03-01", "name", None),
        # 20:00 UTC on 1 March is 04:00 on 2 March in Beijing
        dock_b / "20260301" / "200000_0002.MP4": ("2026-03-02", "name", None),
        # not a day_folder name, no creation_time: the file time counts
        dock_b / "misc" / "clip.MP4": ("2026-03-01", "file_mtime", None),
    }  # fmt: skip
    file_time = datetime(2026, 3, 1, 12, 0, tzinfo=CST).timestamp()
    for n, (path, (_, _, creation)) in enumerate(files.items()):
        staged = staging / str(n) / path.name
        clip(staged, n, creation)
        if path.name == "clip.MP4":
            os.utime(staged, (file_time, file_time))
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)  # whole files appear in the dock, as docks do

    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 6), timeout=180, message="6 jobs done")
    finally:
        assert daemon.stop() == 0, daemon.output()

    rows = {
        Path(r["source_path"]).name: r
        for r in catalog_rows(station, "SELECT * FROM evidence ORDER BY source_path")
    }
    assert len(rows) == 6, sorted(rows)
    assert {r["dock"] for r in rows.values()} == {"dock", "brand-b"}

    # the refused name keeps its device and officer, no time, and the reason
    bad = rows["ABC1234_012345_20261341083015_0003.MP4"]
    assert bad["recorded_start"] is None and "bad_timestamp" in json.loads(bad["flags"])
    assert "month must be in 1..12" in bad["time_problem"]
    assert (bad["device"], bad["officer"]) == ("ABC1234", "012345")
    assert bad["media_created"].startswith("2026-03-02 01:00:00")
    source = manifest_source(station, bad["manifest_key"])
    assert source["time_source"] == "media" and source["name_profile"] == "gat947"
    assert source["media_created"].startswith("2026-03-02T01:00:00")
    assert source["file_mtime"] and "month must be" in source["time_problem"]

    shown = json.loads(station.cli("show", bad["evidence_id"], "--json").stdout)
    assert (shown["time_source"], shown["media_created"]) == ("media", "2026-03-02T01:00:00+00:00")
    assert shown["file_mtime"] and "month" in shown["time_problem"]

    # dock B read its names in UTC
    utc = rows["003015_0001.MP4"]
    assert utc["recorded_start"].startswith("2026-03-01 00:30:15")
    assert manifest_source(station, utc["manifest_key"])["name_timezone"] == "UTC"
    unrecognised = rows["clip.MP4"]
    assert "name_unrecognised" in json.loads(unrecognised["flags"])
    assert unrecognised["time_problem"] is None and unrecognised["media_created"] is None

    report = json.loads(
        station.cli(
            "report", "--from", "2026-03-01", "--to", "2026-03-03", "--by", "day", "--json"
        ).stdout
    )
    by_day = {g["key"]: g for g in report["groups"]}
    assert set(by_day) == {"2026-03-01", "2026-03-02"}
    for day in by_day:
        wanted = [w for w in files.values() if w[0] == day]
        assert by_day[day]["items"] == len(wanted) == 3
        for witness in ("name", "media", "file_mtime", "sealed"):
            assert by_day[day][f"time_from_{witness}"] == sum(1 for w in wanted if w[1] == witness)
    assert report["totals"]["items"] == 6
    not_from_name = {i["file_name"]: i for i in report["time_not_from_name"]}
    assert {k: v["time_source"] for k, v in not_from_name.items()} == {
        "ABC1234_012345_20261341083015_0003.MP4": "media",
        "clip.MP4": "file_mtime",
    }
    assert "month" in not_from_name["ABC1234_012345_20261341083015_0003.MP4"]["time_problem"]
    csv_text = station.cli(
        "report", "--from", "2026-03-01", "--to", "2026-03-03", "--by", "day", "--format", "csv"
    ).stdout
    assert csv_text.splitlines()[0].endswith("time_from_name,time_from_media,"
                                              "time_from_file_mtime,time_from_sealed")  # fmt: skip
    table = station.cli("report", "--from", "2026-03-01", "--to", "2026-03-03").stdout
    assert "recording time from: name 4, media 1, file_mtime 1, sealed 0" in table

    # status names the refused item and why
    status = json.loads(station.cli("status", "--json").stdout)["bad_timestamps"]
    assert status["items"] == 1 and status["recent"][0]["evidence_id"] == bad["evidence_id"]
    assert "month must be in 1..12" in status["recent"][0]["reason"]
    assert status["recent"][0]["time_source"] == "media"
    text = station.cli("status").stderr
    assert "bad_timestamp" in text and "ABC1234_012345_20261341083015_0003.MP4" in text

    # find --since/--until use the same witnesses as the report
    since, until = "2026-03-02T00:00:00+08:00", "2026-03-03T00:00:00+08:00"
    found = json.loads(station.cli("find", "--since", since, "--until", until, "--json").stdout)
    assert sorted(i["file_name"] for i in found["items"]) == sorted(
        p.name for p, w in files.items() if w[0] == "2026-03-02"
    )
