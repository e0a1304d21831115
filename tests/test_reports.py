"""Reports: a synthetic month of catalog rows plus a few really ingested files
gives exactly the numbers counted by hand here (counts, hours, bytes, delay
median and nearest-rank p95, deadline share, late items, derivative and fixity
status), grouped by officer and by day in the station's time zone; csv, table
and chart outputs; and ``status`` warns about pipeline items near the deadline."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from archive.derivatives import Derivative
from archive.fixity_models import FixityRecord
from archive.models import Evidence, IngestJob

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

TZ = ZoneInfo("Asia/Shanghai")
MONTH_START = datetime(2026, 11, 1, tzinfo=TZ)
MONTH_END = datetime(2026, 12, 1, tzinfo=TZ)
DEADLINE = 24 * 3600
OFFICERS = ("010001", "010002", "010003")


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


def middle(values: list[float]) -> float:
    ordered, n = sorted(values), len(values)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def synthetic_rows(rng: random.Random) -> list[dict]:
    """90 items in November 2026 (station time) and 3 just outside it."""
    rows = []
    for i in range(93):
        if i < 90:
            start = MONTH_START + timedelta(days=rng.randrange(30), hours=rng.randint(6, 21))
            start += timedelta(seconds=rng.randrange(3600))
        else:  # 23:59 on 31 Oct and 00:30 on 1 Dec, station time: outside the window
            start = [
                datetime(2026, 10, 31, 23, 59, tzinfo=TZ),
                datetime(2026, 12, 1, 0, 30, tzinfo=TZ),
                datetime(2026, 10, 15, 12, 0, tzinfo=TZ),
            ][i - 90]
        seconds = float(rng.randint(30, 1800))
        kind = rng.choices(["probe+end", "end", "probe+mtime", "nothing"], [60, 20, 15, 5])[0]
        probe = {"duration": seconds, "format_name": "mov"} if "probe" in kind else None
        end = start + timedelta(seconds=seconds) if "end" in kind else None
        mtime = (
            start + timedelta(seconds=seconds + rng.randint(0, 600)) if "mtime" in kind else None
        )
        reference = end or mtime
        late = rng.random() < 0.12
        delay = rng.uniform(25, 72) * 3600 if late else rng.expovariate(1 / 10800)
        sealed = (reference or start) + timedelta(seconds=delay)
        rows.append(
            {
                "id": f"ev-{i:024x}",
                "officer": OFFICERS[i % 3],
                "device": f"DEV000{i % 2}",
                "unit": None if i % 7 == 0 else f"33010000000{i % 2}",
                "start": start.astimezone(UTC),
                "end": end,
                "mtime": mtime,
                "probe": probe,
                "size": rng.randint(10_000, 900_000_000),
                "sealed": sealed.astimezone(UTC),
                "seconds": seconds if kind != "nothing" else None,
                "delay": (sealed - reference).total_seconds() if reference else None,
                "in_window": i < 90,
            }
        )
    return rows


def insert_rows(archive, rows: list[dict]) -> None:
    with archive.db.session() as session:
        for n, row in enumerate(rows):
            sha = f"{n:064x}"
            session.add(
                Evidence(
                    evidence_id=row["id"],
                    sha256=sha,
                    size=row["size"],
                    media_type="video/mp4",
                    file_name=f"DEV000{n % 2}_{row['officer']}_{n}.MP4",
                    original_key=f"originals/sha256/{sha}",
                    original_checksum="x",
                    manifest_key=f"manifests/{row['id']}.dsse.json",
                    keyid="0" * 16,
                    station="dock-01",
                    dock="dock",
                    source_path=f"/dock/{n}.MP4",
                    device=row["device"],
                    officer=row["officer"],
                    unit=row["unit"],
                    recorded_start=row["start"],
                    recorded_end=row["end"],
                    file_mtime=row["mtime"],
                    flags=[],
                    probe=row["probe"],
                    category="routine",
                    lock_mode="COMPLIANCE",
                    retain_until=row["sealed"] + timedelta(days=183),
                    ingested_at=row["sealed"],
                    sealed_at=row["sealed"],
                )
            )
        session.flush()
        for n, row in enumerate(rows):
            state = ("stored", "stored", "failed", "skipped")[n % 4]
            session.add(Derivative(evidence_id=row["id"], state=state))
            if n % 10 == 0:
                result = "failed" if n % 30 == 0 else "ok"
                now = datetime.now(UTC)
                session.add(
                    FixityRecord(
                        evidence_id=row["id"], last_checked_at=now, result=result, bytes_read=0
                    )
                )


def make_clip(path, seconds: int = 2) -> None:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size=160x120:rate=10:duration={seconds}",
            "-c:v", "mpeg4", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
def month(station, tmp_path):
    """The synthetic month in the catalog, two real clips ingested; returns the
    facts every expected number is computed from."""
    station.write_config("[transcode]\nenabled = false\n")
    rng = random.Random(20261101)
    rows = synthetic_rows(rng)
    archive = station.archive()
    try:
        insert_rows(archive, rows)
    finally:
        archive.close()
    # two real recordings: one named with its end time (late: a week ago), one
    # without (delay from its file time, half an hour ago)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    with_end = incoming / "ABC1234_010001_20261120083015_20261120083017_0001.MP4"
    no_end = incoming / "ABC1234_010002_20261126090000_0002.MP4"
    make_clip(with_end, 2)
    make_clip(no_end, 3)  # different bytes: not a duplicate
    file_time = time.time() - 1800
    os.utime(no_end, (file_time, file_time))
    items = json.loads(station.cli("ingest", str(incoming), "--json").stdout)["items"]
    assert len(items) == 2
    archive = station.archive()
    try:
        with archive.db.session() as session:
            for item in items:
                evidence = session.get(Evidence, item["evidence_id"])
                reference = evidence.recorded_end or evidence.file_mtime
                assert abs(evidence.probe["duration"] - (2 if evidence.recorded_end else 3)) < 0.2
                rows.append(
                    {
                        "id": evidence.evidence_id,
                        "officer": evidence.officer,
                        "start": evidence.recorded_start,
                        "size": evidence.size,
                        "seconds": evidence.probe["duration"],
                        "delay": (evidence.sealed_at - reference).total_seconds(),
                        "in_window": True,
                        "real": True,
                    }
                )
    finally:
        archive.close()
    real = {r["officer"]: r["delay"] for r in rows if r.get("real")}
    assert real["010001"] > 6 * 24 * 3600, real  # from the end in its name
    assert 1700 < real["010002"] < 3600, real  # from its file time
    return [r for r in rows if r["in_window"]]


def expected(rows: list[dict]) -> dict:
    delays = [r["delay"] for r in rows if r["delay"] is not None]
    within = [d for d in delays if d <= DEADLINE]
    return {
        "items": len(rows),
        "recorded_hours": sum(r["seconds"] or 0 for r in rows) / 3600,
        "bytes": sum(r["size"] for r in rows),
        "delay_median_seconds": middle(delays),
        "delay_p95_seconds": nearest_rank(delays, 95),
        "delay_known": len(delays),
        "within_deadline": len(within),
        "late": len(delays) - len(within),
        "within_deadline_share": len(within) / len(delays),
    }


def assert_matches(actual: dict, wanted: dict) -> None:
    for key, value in wanted.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key


def test_month_report_matches_hand_counts(station, month, tmp_path):
    out = station.cli(
        "report", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "officer",
        "--format", "json", "--chart", str(tmp_path / "month.png"),
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["totals"]["items"] == 92  # 90 synthetic + 2 real, 3 outside the window
    assert_matches(report["totals"], expected(month))
    by_officer = {g["key"]: g for g in report["groups"]}
    assert set(by_officer) == set(OFFICERS)
    for officer in OFFICERS:
        assert_matches(by_officer[officer], expected([r for r in month if r["officer"] == officer]))

    late = {r["id"] for r in month if r["delay"] is not None and r["delay"] > DEADLINE}
    assert {i["evidence_id"] for i in report["late_items"]} == late
    assert report["no_reference_time"] and set(report["no_reference_time"]) == {
        r["id"] for r in month if r["delay"] is None
    }
    window_ids = [r["id"] for r in month if not r.get("real")]
    states = [("stored", "stored", "failed", "skipped")[int(i[3:], 16) % 4] for i in window_ids]
    assert report["derivatives"] == {s: states.count(s) for s in set(states)}
    fixity = [int(i[3:], 16) for i in window_ids if int(i[3:], 16) % 10 == 0]
    failed = sum(1 for n in fixity if n % 30 == 0)
    assert report["fixity"] == {
        "ok": len(fixity) - failed,
        "failed": failed,
        "unchecked": 92 - len(fixity),
    }
    assert (tmp_path / "month.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_days_follow_the_station_time_zone_and_csv_matches_json(station, month):
    report = json.loads(
        station.cli(
            "report", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "day", "--json"
        ).stdout
    )
    days: dict[str, list[dict]] = {}
    for row in month:
        days.setdefault(row["start"].astimezone(TZ).date().isoformat(), []).append(row)
    assert [g["key"] for g in report["groups"]] == sorted(days)
    for group in report["groups"]:
        wanted = days[group["key"]]
        assert group["items"] == len(wanted)
        assert group["bytes"] == sum(r["size"] for r in wanted)

    text = station.cli(
        "report", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "day", "--format", "csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["key"] for r in rows] == [*sorted(days), "(total)"]
    assert int(rows[-1]["items"]) == 92
    assert int(rows[-1]["bytes"]) == sum(r["size"] for r in month)

    table = station.cli("report", "--from", "2026-11-01", "--to", "2026-12-01").stdout
    assert "late items" in table and "total" in table


def test_status_warns_about_pipeline_items_near_the_deadline(station):
    now = datetime.now(UTC)
    archive = station.archive()
    try:
        with archive.db.session() as session:
            for name, state, hours_ago in (
                ("approaching.MP4", "hashed", 23),
                ("overdue.MP4", "stored", 30),
                ("fresh.MP4", "claimed", 1),
                ("done-long-ago.MP4", "released", 30),
            ):
                mtime = now - timedelta(hours=hours_ago)
                session.add(
                    IngestJob(
                        station="dock-01",
                        dock="dock",
                        dock_root="/dock",
                        source_path=f"/dock/{name}",
                        spool_path=f"/dock/{name}",
                        after_archive="delete",
                        display_name=name,
                        state=state,
                        mtime_ns=int(mtime.timestamp() * 1e9),
                        first_seen_at=now,
                    )
                )
        with archive.db.session() as session:
            assert len(list(session.scalars(select(IngestJob)))) == 4
    finally:
        archive.close()
    status = json.loads(station.cli("status", "--json").stdout)
    section = status["archive_deadline"]
    assert section["deadline_hours"] == 24
    assert {i["file"]: i["overdue"] for i in section["items"]} == {
        "approaching.MP4": False,
        "overdue.MP4": True,
    }
    assert section["approaching"] == 1 and section["overdue"] == 1


def test_api_serves_the_report_to_auditors(station, api):
    handle = api()
    archive = station.archive()
    try:
        insert_rows(archive, synthetic_rows(random.Random(7)))
    finally:
        archive.close()
    params = {"from": "2026-11-01", "to": "2026-12-01", "by": "unit"}
    assert handle.get("/v1/reports/summary", "case-system", params=params).status_code == 403
    answer = handle.get("/v1/reports/summary", "auditor", params=params)
    assert answer.status_code == 200, answer.text
    cli = json.loads(
        station.cli(
            "report", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "unit", "--json"
        ).stdout
    )
    assert answer.json()["totals"] == cli["totals"] and answer.json()["groups"] == cli["groups"]
    assert answer.json()["totals"]["items"] == 90
    # one code for every bad query value: a grouping, a report time, a search time
    for path, params in (
        ("/v1/reports/summary", {"by": "colour"}),
        ("/v1/reports/summary", {"from": "yesterday"}),
        ("/v1/reports/summary", {"to": "2026-13-01"}),
        ("/v1/evidence", {"since": "2026-03-01T25:00:00"}),
    ):
        bad = handle.get(path, "auditor", params=params)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request", (
            path,
            params,
            bad.text,
        )
