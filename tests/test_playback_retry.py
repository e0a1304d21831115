"""``strongroom playback retry`` and ``playback queue --missing``: failed copies
get a fresh retry budget without losing why they failed, and items sealed while
transcoding was off get a copy queued. Real SeaweedFS, real ffmpeg, the CLI."""

from __future__ import annotations

import json
import random

import media_clips
import pytest
from ingest_helpers import events
from sqlalchemy import select

from archive.derivatives import Derivative

QUEUE = """
[transcode]
threads = 2
nice = 0
retry_attempts = 0
"""
RANDOM = random.Random(7).randbytes(64 * 1024)


def rows(station) -> dict[str, Derivative]:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            found = session.scalars(select(Derivative).order_by(Derivative.id)).all()
            return {row.evidence_id: row for row in found}
    finally:
        archive.close()


def run_json(station, *args: str, check: bool = True) -> dict:
    return json.loads(station.cli(*args, "--json", check=check).stdout)


def test_retry_requeues_a_failed_copy_and_keeps_why_it_failed(station) -> None:
    station.write_config(QUEUE)
    bad = station.ingest_bytes("ABC1234_012345_20261120080000_0001.mp4", RANDOM)
    other = station.ingest_bytes("ABC1234_012345_20261120080100_0002.mp4", RANDOM[::-1])
    station.cli("playback", "run")
    before = rows(station)[bad["evidence_id"]]
    assert (before.state, before.attempts) == ("failed", 1)
    reason = before.last_error
    assert reason

    done = run_json(station, "playback", "retry", bad["evidence_id"])
    assert [r["evidence_id"] for r in done["requeued"]] == [bad["evidence_id"]]
    row = rows(station)[bad["evidence_id"]]
    assert (row.state, row.attempts, row.last_error) == ("queued", 0, None)
    assert rows(station)[other["evidence_id"]].state == "failed", "only the named item"
    (event,) = events(station, "derivative_requeued")
    assert event.evidence_id == bad["evidence_id"]
    assert event.details["previous_error"] == reason
    assert event.details["previous_attempts"] == 1

    again = run_json(station, "playback", "retry", bad["evidence_id"])
    assert again["requeued"] == [] and again["not_failed"] == [bad["evidence_id"]]

    station.cli("playback", "run")
    row = rows(station)[bad["evidence_id"]]
    assert (row.state, row.attempts) == ("failed", 1), "a fresh budget, used once more"

    everything = run_json(station, "playback", "retry", "--failed")
    assert {r["evidence_id"] for r in everything["requeued"]} == {
        bad["evidence_id"],
        other["evidence_id"],
    }


def test_retry_and_queue_refuse_unclear_requests(station) -> None:
    station.write_config(QUEUE)
    for command, flag in (("retry", "--failed"), ("queue", "--missing")):
        assert station.cli("playback", command, check=False).returncode == 2
        both = station.cli("playback", command, "ev-000000000000000000000000", flag, check=False)
        assert both.returncode == 2
        unknown = station.cli("playback", command, "ev-000000000000000000000000", check=False)
        assert unknown.returncode == 1 and "no such evidence" in unknown.stderr + unknown.stdout


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return media_clips.make_h264_mp4(tmp_path_factory.mktemp("clip") / "a.mp4").read_bytes()


def test_queue_missing_queues_items_sealed_while_transcoding_was_off(station, clip) -> None:
    station.write_config(QUEUE + "enabled = false\n")
    item = station.ingest_bytes("ABC1234_012345_20261120080000_0001.mp4", clip)
    assert rows(station) == {}, "no copy was queued while transcoding was off"

    station.write_config(QUEUE)
    done = run_json(station, "playback", "queue", "--missing")
    assert done["queued"] == [item["evidence_id"]]
    (event,) = events(station, "derivative_queued")
    assert event.evidence_id == item["evidence_id"]
    assert run_json(station, "playback", "queue", "--missing")["queued"] == [], "once only"
    named = run_json(station, "playback", "queue", item["evidence_id"])
    assert named["queued"] == [] and named["has_copy"] == [item["evidence_id"]]

    station.cli("playback", "run")
    assert rows(station)[item["evidence_id"]].state == "stored"
