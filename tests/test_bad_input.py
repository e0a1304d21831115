"""Bad input gets a clear answer and loses nothing; the daemon keeps going.

Each test drops something hostile next to an ordinary file and checks both
what happened to the hostile thing and that the ordinary file was archived.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import wait_until
from ingest_helpers import (
    all_jobs_done,
    as_json,
    assert_archived,
    catalog_rows,
    jobs,
    wait_for_rescans,
    write_slowly,
)

GOOD = b"an ordinary recording " * 100


def _good_file(station) -> None:
    station.dock.mkdir(exist_ok=True)
    (station.dock / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(GOOD)


def _status(station) -> dict:
    return json.loads(station.cli("status", "--json").stdout)


def test_zero_byte_file_is_archived_and_flagged(station):
    station.dock.mkdir(exist_ok=True)
    (station.dock / "ABC1234_012345_20260301083015_0002.MP4").write_bytes(b"")
    _good_file(station)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 2), timeout=60, message="both done")
    finally:
        daemon.stop()
    row = assert_archived(station, b"")
    assert "empty" in as_json(row["flags"])
    assert_archived(station, GOOD)


def test_hostile_names_are_archived_with_their_names(station):
    names = [
        "with spaces and (brackets) [1].MP4",
        "执法记录仪_张三_2026年3月1日.MP4",
        "a" * 246 + ".MP4",  # 250 bytes, near the file-system limit of 255
        "-i evil.MP4",
        "new\nline.MP4",
    ]
    station.dock.mkdir(exist_ok=True)
    contents = {}
    for i, name in enumerate(names):
        data = f"{i} {name}".encode() * 50
        (station.dock / name).write_bytes(data)
        contents[name] = data
    raw_name = b"latin1-\xe9\xff.MP4"  # not UTF-8 at all
    with open(os.path.join(os.fsencode(station.dock), raw_name), "wb") as handle:
        handle.write(b"raw bytes name" * 10)
    daemon = station.start_daemon()
    try:
        rows = wait_until(lambda: all_jobs_done(station, 6), timeout=90, message="6 jobs")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert sorted(r["state"] for r in rows) == ["released"] * 6
    for name, data in contents.items():
        evidence = assert_archived(station, data)
        assert evidence["file_name"] == name
    raw = assert_archived(station, b"raw bytes name" * 10)
    assert raw["file_name"] == "latin1-\\xe9\\xff.MP4"  # shown escaped, never mangled


def test_symlink_out_of_the_dock_is_never_followed(station, tmp_path):
    secret = tmp_path / "outside-secret.txt"
    secret.write_bytes(b"must never be archived")
    station.dock.mkdir(exist_ok=True)
    (station.dock / "link.MP4").symlink_to(secret)
    outside_dir = tmp_path / "outside-dir"
    outside_dir.mkdir()
    (outside_dir / "inner.MP4").write_bytes(b"also outside")
    (station.dock / "linked-folder").symlink_to(outside_dir)
    _good_file(station)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="good file")
        wait_for_rescans(station, 2)  # the links had two more chances to be taken
    finally:
        daemon.stop()
    assert [r["display_name"] for r in jobs(station)] == ["ABC1234_012345_20260301083015_0001.MP4"]
    assert (station.dock / "link.MP4").is_symlink(), "the link itself stays in the dock"
    assert secret.read_bytes() == b"must never be archived"
    assert (outside_dir / "inner.MP4").exists()
    problems = _status(station)["problems"]
    reasons = {p["file"].rsplit("/", 1)[-1]: p["error"] for p in problems}
    assert "symbolic link" in reasons["link.MP4"]
    assert "symbolic link" in reasons["linked-folder"]
    assert "not taken" in daemon.output()


def test_fifo_in_the_dock_does_not_block_the_daemon(station):
    station.dock.mkdir(exist_ok=True)
    os.mkfifo(station.dock / "pipe.MP4")
    _good_file(station)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="good file")
    finally:
        assert daemon.stop() == 0
    assert_archived(station, GOOD)
    problems = _status(station)["problems"]
    assert any("not a regular file" in p["error"] for p in problems), problems


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root + setpriv")
def test_unreadable_file_goes_to_quarantine_with_a_reason(station):
    """Root reads everything, so the daemon runs without CAP_DAC_OVERRIDE here,
    as a service account would: a mode-000 file is then really unreadable."""
    station.dock.mkdir(exist_ok=True)
    locked = station.dock / "ABC1234_012345_20260301083015_0009.MP4"
    locked.write_bytes(b"cannot be read")
    locked.chmod(0)
    _good_file(station)
    daemon = station.start_daemon(
        wrapper=["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    )
    try:
        rows = wait_until(lambda: all_jobs_done(station, 2), timeout=60, message="both handled")
    finally:
        daemon.stop()
    by_name = {r["display_name"]: r for r in rows}
    bad = by_name[locked.name]
    assert bad["state"] == "quarantined"
    assert "Permission denied" in bad["last_error"]
    quarantined = station.dock / ".strongroom" / "quarantine" / str(bad["id"])
    assert quarantined.exists(), "the unreadable file is kept, not lost"
    reason = (quarantined.parent / f"{bad['id']}.reason.txt").read_text()
    assert locked.name in reason and "Permission denied" in reason
    assert "quarantined" in daemon.output()
    assert_archived(station, GOOD)
    events = catalog_rows(station, "SELECT * FROM custody_events WHERE kind = 'quarantined'")
    assert len(events) == 1


def test_file_written_for_thirty_seconds_is_taken_only_when_complete(station):
    """The copy holds the file open for 30 s with pauses twice settle_seconds:
    only the kernel's "someone still has it open" answer keeps it from being
    taken early."""
    station.dock.mkdir(exist_ok=True)
    chunks = [os.urandom(20_000) for _ in range(30)]
    path = station.dock / "ABC1234_012345_20260301083015_0003.MP4"
    daemon = station.start_daemon()
    try:
        writer = write_slowly(path, chunks, pause=1.0, keep_open=True)
        writer.join()
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="archived")
    finally:
        daemon.stop()
    assert len(jobs(station)) == 1, "a growing file must not be claimed twice or early"
    assert_archived(station, b"".join(chunks))


def test_file_reopened_for_each_chunk_waits_for_settle_seconds(station):
    """A writer that closes between chunks is only told apart by time: the
    file must be still for settle_seconds (here 3 s, longer than its pauses)."""
    station.write_config(settle=3)
    station.dock.mkdir(exist_ok=True)
    chunks = [os.urandom(20_000) for _ in range(8)]
    path = station.dock / "ABC1234_012345_20260301083015_0004.MP4"
    daemon = station.start_daemon()
    try:
        write_slowly(path, chunks, pause=1.0, keep_open=False).join()
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="archived")
    finally:
        daemon.stop()
    assert len(jobs(station)) == 1
    assert_archived(station, b"".join(chunks))


def test_file_deleted_before_claim_is_not_an_error(station):
    """A file registered for claiming that the dock removes before the move is
    recorded as vanished; the daemon says so and goes on with the next file.

    The first daemon dies right after registering (before moving anything), so
    the deletion lands exactly between the registration and the claim; the job
    that reaches the claim and ends ``vanished`` proves the claim met it."""
    station.dock.mkdir(exist_ok=True)
    doomed = station.dock / "doomed.MP4"
    doomed.write_bytes(b"gone soon")
    crashing = station.start_daemon(env={"STRONGROOM_TEST_CRASH_AFTER": "claiming"})
    crashing.process.wait(timeout=120)
    assert [(r["display_name"], r["state"]) for r in jobs(station)] == [
        ("doomed.MP4", "claiming")
    ], crashing.output()
    doomed.unlink()
    _good_file(station)
    daemon = station.start_daemon(log_name="restart.log")
    try:
        wait_until(lambda: all_jobs_done(station, 2), timeout=60, message="both jobs ended")
    finally:
        assert daemon.stop() == 0, daemon.output()
    states = {r["display_name"]: r["state"] for r in jobs(station)}
    assert states == {
        "doomed.MP4": "vanished",
        "ABC1234_012345_20260301083015_0001.MP4": "released",
    }, states
    assert "doomed.MP4" in daemon.output()


def test_claim_of_a_vanished_file_records_it_and_returns_none(station):
    from ingest.pipeline import Pipeline
    from ingest.scan import Candidate

    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        dock = archive.settings.docks[0]
        ghost = Candidate(str(station.dock / "ghost.MP4"), 10, 0)
        assert pipeline.claim(dock, ghost) is None
    finally:
        archive.close()
    assert [r["state"] for r in jobs(station)] == ["vanished"]
