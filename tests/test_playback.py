"""Playback copies through Strongroom: queued at seal, made by the worker from the
verified stored original, stored under the original's lock with a signed
lineage manifest, and never a change to the original (invariant 3).

Real SeaweedFS (the ``seaweed``/``station`` fixtures) and real ffmpeg on the
clips of ``media_clips``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import media_clips
import pytest
from conftest import STRONGROOM, Station, wait_until
from sqlalchemy import select, update

from archive.custody import EVENT_KINDS
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.dsse import DERIVATIVE_PAYLOAD_TYPE, verify_envelope
from archive.lineage import derivative_manifest_key
from archive.models import CustodyEvent
from config.settings import DockSettings
from ingest.playback import PlaybackWorker
from ingest.probe import probe
from ingest.scan import Candidate
from ingest.transcode import ffmpeg_version

#: tests share two cores with other suites: two encoder threads, quick retries and leases
QUEUE_CONFIG = """
[transcode]
threads = 2
nice = 0

[playback]
lease_seconds = 5
poll_seconds = 0.2
retry_initial_seconds = 0.2
retry_max_seconds = 1
"""

#: clip → (file name it is ingested as, expected state, expected action)
EXPECTED = {
    "h264_mp4": ("ABC1234_012345_20260301083015_0001.mp4", "stored", "remux"),
    "h264_mov": ("ABC1234_012345_20260301083016_0001.mov", "stored", "remux"),
    "hevc_mp4": ("ABC1234_012345_20260301083017_0001.mp4", "stored", "transcode"),
    "mjpeg_avi": ("ABC1234_012345_20260301083018_0001.avi", "stored", "transcode"),
    "wav": ("ABC1234_012345_20260301083019_0001.wav", "stored", "audio"),
    "jpeg": ("ABC1234_012345_20260301083020_0001.jpg", "skipped", "none"),
    "truncated_mp4": ("ABC1234_012345_20260301083021_0001.mp4", "failed", None),
    "garbage_mp4": ("ABC1234_012345_20260301083022_0001.mp4", "failed", None),
    "random_mp4": ("ABC1234_012345_20260301083023_0001.mp4", "failed", None),
}
STORED = [name for name, (_, state, _) in EXPECTED.items() if state == "stored"]
FAILED = [name for name, (_, state, _) in EXPECTED.items() if state == "failed"]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> media_clips.Clips:
    return media_clips.make_clips(tmp_path_factory.mktemp("playback-media"))


def new_station(root: Path, seaweed, extra: str = QUEUE_CONFIG) -> Station:
    """A station like the ``station`` fixture's, for fixtures of wider scope."""
    root.mkdir(parents=True, exist_ok=True)
    station = Station(
        root,
        root / "strongroom.toml",
        f"t-{uuid.uuid4().hex[:16]}",
        seaweed,
        root / "dock",
        seaweed.env(),
    )
    station.write_config(extra)
    station.cli("init")
    return station


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def show(station: Station, evidence_id: str) -> dict:
    return json.loads(station.cli("show", evidence_id, "--json").stdout)


def get(station: Station, key: str, version_id: str | None = None) -> tuple[bytes, str]:
    args = {"Bucket": station.bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    response = station.s3.get_object(**args)
    return response["Body"].read(), response["VersionId"]


def ingest(station: Station, *paths: Path) -> list[dict]:
    return json.loads(station.cli("ingest", *map(str, paths), "--json").stdout)["items"]


def events(station: Station, evidence_id: str) -> list[CustodyEvent]:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return list(
                session.scalars(
                    select(CustodyEvent)
                    .where(CustodyEvent.evidence_id == evidence_id)
                    .order_by(CustodyEvent.seq)
                )
            )
    finally:
        archive.close()


def derivative_rows(station: Station) -> list[Derivative]:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return list(session.scalars(select(Derivative).order_by(Derivative.id)))
    finally:
        archive.close()


@dataclass
class Made:
    """One station that ingested every clip and then ran ``playback run`` once."""

    station: Station
    sources: dict[str, Path]
    items: dict[str, dict]  # clip name → ingest --json item
    before: dict[str, tuple[bytes, str]]  # clip name → original bytes and version, before
    run: dict  # playback run --json
    shown: dict[str, dict]  # clip name → show --json after the run
    outputs: dict[str, Path]  # clip name → downloaded playback copy


@pytest.fixture(scope="module")
def made(clips, seaweed, tmp_path_factory) -> Made:
    root = tmp_path_factory.mktemp("playback-station")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in seaweed.env().items():
            patch.setenv(name, value)
        station = new_station(root, seaweed)
        outside = root / "outside"
        outside.mkdir()
        sources = {
            name: media_clips.copy_as(getattr(clips, name), outside / file_name)
            for name, (file_name, _, _) in EXPECTED.items()
        }
        listed = ingest(station, *sources.values())
        by_file = {Path(item["file"]).name: item for item in listed}
        items = {name: by_file[file_name] for name, (file_name, _, _) in EXPECTED.items()}
        assert all(item["state"] == "released" for item in items.values()), listed
        before = {name: get(station, item["original_key"]) for name, item in items.items()}
        queued = {row.evidence_id: row.state for row in derivative_rows(station)}
        assert set(queued.values()) == {"queued"}, "ingest alone must only queue the copies"
        run = json.loads(station.cli("playback", "run", "--json", timeout=600).stdout)
        shown = {name: show(station, item["evidence_id"]) for name, item in items.items()}
        outputs = {}
        for name in STORED:
            (derivative,) = shown[name]["derivatives"]
            data, _ = get(station, derivative["key"], derivative["version_id"])
            path = root / "downloaded" / f"{name}.{'m4a' if name == 'wav' else 'mp4'}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            outputs[name] = path
        yield Made(station, sources, items, before, run, shown, outputs)


# -- the whole set, made once ---------------------------------------------------------


@pytest.mark.parametrize("name", EXPECTED)
def test_each_item_gets_the_action_its_policy_rule_chooses(made: Made, name: str) -> None:
    _, state, action = EXPECTED[name]
    (derivative,) = made.shown[name]["derivatives"]
    assert derivative["state"] == state, derivative
    if action is not None:
        assert derivative["action"] == action
        assert "(rule " in derivative["reason"]


def test_playback_run_reports_every_item_once(made: Made) -> None:
    results = made.run["results"]
    assert sorted(r["evidence_id"] for r in results) == sorted(
        item["evidence_id"] for item in made.items.values()
    )
    assert made.run["counts"] == {"stored": 5, "skipped": 1, "failed": 3}


@pytest.mark.parametrize("name", STORED)
def test_stored_copy_decodes_cleanly_end_to_end(made: Made, name: str) -> None:
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(made.outputs[name]), "-f", "null", "-"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == b"" and done.stderr == b""


@pytest.mark.parametrize("name", STORED)
def test_stored_copy_has_moov_before_mdat(made: Made, name: str) -> None:
    boxes = media_clips.top_level_boxes(made.outputs[name])
    assert boxes.index("moov") < boxes.index("mdat"), boxes


@pytest.mark.parametrize("name", STORED)
def test_stored_copy_keeps_the_duration(made: Made, name: str) -> None:
    source = probe(made.sources[name], 30).duration
    copy = probe(made.outputs[name], 30).duration
    assert source is not None and copy is not None
    assert abs(source - copy) <= 0.1, (source, copy)


@pytest.mark.parametrize("name", STORED)
def test_stored_copy_is_named_by_its_hash_and_matches_the_catalog(made: Made, name: str) -> None:
    (derivative,) = made.shown[name]["derivatives"]
    data = made.outputs[name].read_bytes()
    assert derivative["sha256"] == sha256(data)
    assert derivative["size"] == len(data)
    assert derivative["key"] == f"derivatives/sha256/{sha256(data)}"
    assert derivative["progress"] == 100.0
    assert derivative["ffmpeg_version"] == ffmpeg_version()
    assert derivative["error"] is None


@pytest.mark.parametrize("name", STORED)
def test_lineage_manifest_verifies_and_names_the_input(made: Made, name: str) -> None:
    item = made.items[name]
    (derivative,) = made.shown[name]["derivatives"]
    assert derivative["manifest_key"] == derivative_manifest_key(
        item["evidence_id"], derivative["sha256"]
    )
    envelope, _ = get(made.station, derivative["manifest_key"])
    archive = made.station.archive()
    try:
        verified = verify_envelope(envelope, archive.key.public_keys())
    finally:
        archive.close()
    payload = verified.payload
    assert verified.payload_type == DERIVATIVE_PAYLOAD_TYPE
    assert payload["evidence_id"] == item["evidence_id"]
    assert (
        payload["original"]["sha256"] == item["sha256"] == sha256(made.sources[name].read_bytes())
    )
    assert payload["derivative"]["sha256"] == sha256(made.outputs[name].read_bytes())
    assert payload["derivative"]["size"] == made.outputs[name].stat().st_size
    assert payload["derivative"]["media_type"] == ("audio/mp4" if name == "wav" else "video/mp4")
    assert payload["derivative"]["probe"]["kind"] == ("audio" if name == "wav" else "video")
    assert payload["plan"]["action"] == EXPECTED[name][2] and payload["plan"]["rule"]
    assert payload["tool"]["ffmpeg_version"] == ffmpeg_version()
    args = payload["tool"]["args"]
    assert args[0] == "ffmpeg" and "{input}" in args and "{output}" in args
    assert str(made.station.root) not in json.dumps(payload), "lineage must be host-independent"
    assert payload["keyid"] == verified.keyid


@pytest.mark.parametrize("name", EXPECTED)
def test_original_in_the_store_is_untouched(made: Made, name: str) -> None:
    item = made.items[name]
    data, version = get(made.station, item["original_key"])
    assert (data, version) == made.before[name]
    assert sha256(data) == item["sha256"]
    versions = made.station.s3.list_object_versions(
        Bucket=made.station.bucket, Prefix=item["original_key"]
    )
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [version]
    assert not versions.get("DeleteMarkers")


@pytest.mark.parametrize("name", STORED)
def test_copy_and_lineage_carry_the_originals_lock(made: Made, name: str) -> None:
    s3, bucket = made.station.s3, made.station.bucket
    original = s3.head_object(Bucket=bucket, Key=made.items[name]["original_key"])
    (derivative,) = made.shown[name]["derivatives"]
    for key in (derivative["key"], derivative["manifest_key"]):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == original["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] == original["ObjectLockRetainUntilDate"]


@pytest.mark.parametrize("name", FAILED)
def test_bad_media_fails_with_the_tools_own_reason_once(made: Made, name: str) -> None:
    (derivative,) = made.shown[name]["derivatives"]
    assert derivative["state"] == "failed"
    assert derivative["attempts"] == 1, "a bad file is not retried"
    assert derivative["key"] is None and derivative["sha256"] is None
    expected_words = {
        "truncated_mp4": "moov atom not found",
        "garbage_mp4": "ffmpeg exit",
        "random_mp4": "Invalid data found when processing input",
    }[name]
    assert expected_words in derivative["error"]
    kinds = [e.kind for e in events(made.station, made.items[name]["evidence_id"])]
    assert kinds[-2:] == ["derivative_started", "derivative_failed"]


def test_nothing_is_stored_under_derivatives_for_failed_or_skipped_items(made: Made) -> None:
    listed = made.station.s3.list_objects_v2(Bucket=made.station.bucket, Prefix="derivatives/")
    keys = {entry["Key"] for entry in listed.get("Contents", [])}
    # a set: copies are content-addressed, and the MP4 and MOV clips hold the same streams
    assert keys == {made.shown[name]["derivatives"][0]["key"] for name in STORED}


def test_stored_copy_has_started_and_stored_events(made: Made) -> None:
    found = events(made.station, made.items["hevc_mp4"]["evidence_id"])
    kinds = [e.kind for e in found if e.kind.startswith("derivative_")]
    assert kinds == ["derivative_started", "derivative_stored"]
    stored = found[-1].details
    (derivative,) = made.shown["hevc_mp4"]["derivatives"]
    assert stored["sha256"] == derivative["sha256"]
    assert stored["original_sha256"] == made.items["hevc_mp4"]["sha256"]
    assert stored["manifest_key"] == derivative["manifest_key"]


def test_a_still_gets_one_skipped_event_and_no_copy(made: Made) -> None:
    assert "derivative_skipped" in EVENT_KINDS
    found = events(made.station, made.items["jpeg"]["evidence_id"])
    kinds = [e.kind for e in found if e.kind.startswith("derivative_")]
    assert kinds == ["derivative_skipped"]
    assert found[-1].details["rule"] == "still-image"


def test_status_counts_derivative_states(made: Made) -> None:
    status = json.loads(made.station.cli("status", "--json").stdout)
    section = status["derivatives"]
    assert section["counts"] == {"stored": 5, "skipped": 1, "failed": 3}
    assert section["running"] == []
    assert {f["evidence_id"] for f in section["failed"]} == {
        made.items[name]["evidence_id"] for name in FAILED
    }


def test_work_folder_is_empty_afterwards(made: Made) -> None:
    work = made.station.root / "var" / "work" / "playback"
    assert not work.exists() or list(work.iterdir()) == []


# -- behaviours with their own station ------------------------------------------------


def test_daemon_makes_playback_copies_of_dropped_files(station, clips) -> None:
    station.write_config(QUEUE_CONFIG)
    station.dock.mkdir(exist_ok=True)
    daemon = station.start_daemon()
    try:
        media_clips.copy_as(clips.h264_mp4, station.dock / EXPECTED["h264_mp4"][0])
        media_clips.copy_as(clips.jpeg, station.dock / EXPECTED["jpeg"][0])

        def finished() -> list[Derivative] | None:
            rows = derivative_rows(station)
            done = [r for r in rows if r.state in ("stored", "skipped", "failed")]
            return rows if len(rows) == 2 and len(done) == 2 else None

        rows = wait_until(finished, timeout=180, message="the daemon's playback copies")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert sorted((r.state, r.action) for r in rows) == [("skipped", "none"), ("stored", "remux")]
    (stored,) = [r for r in rows if r.state == "stored"]
    data, _ = get(station, stored.key)
    assert sha256(data) == stored.sha256


def test_retryable_failure_is_retried_then_marked_failed(station, clips) -> None:
    # a time limit far below what the transcode needs: ffmpeg is killed, which may
    # pass on a quieter machine, so it is retried retry_attempts times
    station.write_config(
        QUEUE_CONFIG.replace(
            "nice = 0",
            "nice = 0\nretry_attempts = 1\ntime_limit_floor_seconds = 0.05\n"
            "time_limit_factor = 0.001",
        )
    )
    (item,) = ingest(station, clips.hevc_mp4)
    station.cli("playback", "run")
    (derivative,) = show(station, item["evidence_id"])["derivatives"]
    assert derivative["state"] == "failed"
    assert derivative["attempts"] == 2
    assert "time limit" in derivative["error"]
    failures = [
        e.details for e in events(station, item["evidence_id"]) if e.kind.endswith("failed")
    ]
    assert [f["retry"] for f in failures] == [True, False]
    original, _ = get(station, item["original_key"])
    assert sha256(original) == item["sha256"]


def test_copy_of_a_held_item_is_held_too(station, clips) -> None:
    station.write_config(QUEUE_CONFIG + '\n[retention]\ndefault_category = "evidence"\n')
    (item,) = ingest(station, clips.h264_mp4)
    station.cli("playback", "run")
    (derivative,) = show(station, item["evidence_id"])["derivatives"]
    assert derivative["state"] == "stored"
    for key in (item["original_key"], derivative["key"], derivative["manifest_key"]):
        head = station.s3.head_object(Bucket=station.bucket, Key=key)
        assert head["ObjectLockLegalHoldStatus"] == "ON", key


def test_only_one_worker_claims_a_row(station, clips) -> None:
    station.write_config(QUEUE_CONFIG)
    (item,) = ingest(station, clips.jpeg)
    archives = [station.archive() for _ in range(6)]
    workers = [PlaybackWorker(archive) for archive in archives]
    barrier = threading.Barrier(len(workers))
    claims = []

    def race(worker: PlaybackWorker) -> None:
        barrier.wait()
        claims.append(worker.claim_next())

    threads = [threading.Thread(target=race, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for archive in archives:
        archive.close()
    won = [c for c in claims if c is not None]
    assert len(claims) == 6 and len(won) == 1
    assert won[0].evidence_id == item["evidence_id"] and won[0].attempt == 1


def test_a_copy_left_running_by_a_killed_worker_is_taken_over(station, tmp_path) -> None:
    # slow enough to be caught running on a quiet machine too: 40 s of MJPEG (quick to
    # make, always transcoded) through the slowest preset on one thread – progress is
    # written once a second, so a copy done in a second could never be caught
    station.write_config(
        QUEUE_CONFIG.replace("threads = 2", 'threads = 1\npreset = "veryslow"').replace(
            "lease_seconds = 5", "lease_seconds = 2"
        )
    )
    long_clip = tmp_path / "long.avi"
    media_clips.ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=40"),
        *("-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"),
        str(long_clip),
    )
    (item,) = ingest(station, long_clip)
    log = station.root / "first-worker.log"
    with log.open("wb") as sink:
        first = subprocess.Popen(
            [*STRONGROOM, "playback", "run", "--config", str(station.config)],
            cwd=station.root,
            env={**os.environ, **station.env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def running() -> bool:
        rows = derivative_rows(station)
        # a worker that ended (or a copy that finished) before it was caught
        # running cannot show the takeover: say why instead of timing out blind
        assert first.poll() is None and all(r.state != "stored" for r in rows), (
            [(r.state, r.progress) for r in rows],
            log.read_text(errors="replace")[-3000:],
        )
        return any(r.state == "running" and r.progress for r in rows)

    try:
        wait_until(running, timeout=120, interval=0.05, message="the copy to be running")
        # freeze the worker where it was caught: on a loaded machine the copy could
        # otherwise finish while `status` starts, and there would be nothing to take over
        os.killpg(first.pid, signal.SIGSTOP)
        status = json.loads(station.cli("status", "--json").stdout)["derivatives"]
        (running,) = status["running"]
        assert running["evidence_id"] == item["evidence_id"] and running["action"] == "transcode"
        assert running["percent"] > 0 and "speed" in running
        assert status["counts"] == {"running": 1}
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its ffmpeg, like a power cut
        first.wait()
    (row,) = derivative_rows(station)
    assert row.state == "running" and row.attempts == 1
    leftovers = station.root / "var" / "work" / "playback" / f"d{row.id}"
    assert leftovers.exists()

    station.cli("playback", "run", timeout=600)
    (derivative,) = show(station, item["evidence_id"])["derivatives"]
    assert derivative["state"] == "stored" and derivative["attempts"] == 2
    assert not leftovers.exists()
    kinds = [e.kind for e in events(station, item["evidence_id"]) if e.kind.startswith("deriv")]
    assert kinds == ["derivative_started", "derivative_started", "derivative_stored"]


def test_drain_waits_for_the_copies_of_items_just_sealed(station, clips, tmp_path) -> None:
    from ingest.services import start_services

    station.write_config(QUEUE_CONFIG)
    source = media_clips.copy_as(clips.wav, tmp_path / "voice.wav")
    archive = station.archive()
    services = start_services(archive, scheduler=False)
    try:
        assert services.playback is not None and not services.playback.running
        adhoc = DockSettings(path=tmp_path, name="cli", settle_seconds=0)
        st = source.stat()
        job = services.pipeline.claim(
            adhoc, Candidate(str(source), st.st_size, st.st_mtime_ns), in_place=True
        )
        outcome = services.pipeline.advance(job)
        assert services.sealed == [outcome.evidence_id]
        services.drain()  # the default: copies are left to the daemon / playback run
        assert [r.state for r in derivative_rows(station)] == ["queued"]
        services.drain(timeout=300, playback=True)
        assert [(r.state, r.action) for r in derivative_rows(station)] == [("stored", "audio")]
    finally:
        services.stop()
        archive.close()


def test_an_expired_lease_is_claimable_and_a_live_one_is_not(station, clips) -> None:
    station.write_config(QUEUE_CONFIG)
    ingest(station, clips.jpeg)
    archive = station.archive()
    try:
        worker = PlaybackWorker(archive)
        claim = worker.claim_next()
        assert claim is not None
        assert worker.claim_next() is None, "a live lease is respected"
        with archive.db.session() as session:
            session.execute(
                update(Derivative)
                .where(Derivative.id == claim.id)
                .values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
        again = worker.claim_next()
        assert again is not None and again.id == claim.id and again.attempt == 2
        result = worker.process(claim)
        assert result.state == "lost", "the first claim's fencing token is stale"
        assert worker.process(again).state == "skipped"
    finally:
        archive.close()


def test_a_copy_whose_workers_keep_dying_is_given_up_with_the_reason(station, tmp_path) -> None:
    """A row taken over from dead workers more often than the retry budget plus
    the crash allowance is the item's fault, not bad luck: it fails, saying so."""
    from ingest.playback.claims import CRASH_ALLOWANCE

    station.write_config(QUEUE_CONFIG)
    still = media_clips.make_jpeg(tmp_path / "ABC1234_012345_20260301083020_0001.jpg")
    (item,) = ingest(station, still)
    archive = station.archive()
    try:
        worker = PlaybackWorker(archive)
        limit = 1 + archive.settings.transcode.retry_attempts + CRASH_ALLOWANCE
        with archive.db.session() as session:  # left running by its last dead worker
            session.execute(
                update(Derivative).values(
                    state="running",
                    attempts=limit,
                    next_attempt_at=utcnow() - timedelta(seconds=1),
                )
            )
        assert worker.claim_next() is None
    finally:
        archive.close()
    (row,) = derivative_rows(station)
    assert (row.state, row.attempts) == ("failed", limit + 1)
    assert row.last_error == f"gave up: the worker making this copy stopped {limit} times"
    kinds = [e.kind for e in events(station, item["evidence_id"])]
    assert kinds[-1] == "derivative_failed"
