"""The daemon archives a docking station's drop: every file exactly once,
nothing released before it is safe, incomplete files left alone."""

from __future__ import annotations

import os
import random

from conftest import wait_until
from ingest_helpers import (
    all_jobs_done,
    assert_archived,
    catalog_rows,
    jobs,
    write_slowly,
    write_via_part,
)


def test_drop_of_twenty_files_is_archived_exactly_once(station):
    rng = random.Random(947)
    dock = station.dock
    (dock / "sub" / "deeper").mkdir(parents=True)
    expected: dict[str, bytes] = {}

    def name(i: int, folder: str = "") -> str:
        return f"{folder}ABC{i:04d}_01{i:04d}_2026030108{i:02d}15_0001.MP4"

    daemon = station.start_daemon()
    try:
        # 12 ordinary files, two of them above the multipart threshold (8 MB)
        for i in range(12):
            size = 12 * 1024 * 1024 if i < 2 else rng.randint(1, 900_000)
            data = rng.randbytes(size)
            path = dock / name(i, "sub/" if i % 3 == 0 else "")
            path.write_bytes(data)
            expected[str(path)] = data
        # 2 identical recordings under different names
        twin = rng.randbytes(300_000)
        for i in (12, 13):
            path = dock / "sub" / "deeper" / name(i)
            path.write_bytes(twin)
            expected[str(path)] = twin
        # 2 written through name.part and a rename
        for i in (14, 15):
            data = rng.randbytes(200_000)
            path = dock / name(i)
            write_via_part(path, data)
            expected[str(path)] = data
        # 2 written slowly, held open, with pauses longer than settle_seconds (0.5)
        slow = []
        for i in (16, 17):
            chunks = [rng.randbytes(50_000) for _ in range(4)]
            path = dock / name(i)
            slow.append(write_slowly(path, chunks, pause=1.2))
            expected[str(path)] = b"".join(chunks)
        # 2 zero-byte and tiny files
        for i, data in ((18, b""), (19, b"x")):
            path = dock / name(i)
            path.write_bytes(data)
            expected[str(path)] = data

        for thread in slow:
            thread.join()
        rows = wait_until(lambda: all_jobs_done(station, 20), timeout=180, message="20 jobs done")
    finally:
        assert daemon.stop() == 0, daemon.output()

    states = sorted(r["state"] for r in rows)
    assert states.count("released") == 19 and states.count("duplicate") == 1, states
    for data in {bytes(v) for v in expected.values()}:
        assert_archived(station, data)
    # the dock is empty and nothing is left in the spool: every copy was released
    left = [p for p in dock.rglob("*") if p.is_file()]
    assert left == [], left
    # the slow files were taken only once complete: their stored size is the full size
    evidence = catalog_rows(station, "SELECT size FROM evidence")
    assert len(evidence) == 19
    # the twin is one evidence item with a sighting, not two items
    sightings = catalog_rows(station, "SELECT * FROM custody_events WHERE kind = 'sighted'")
    assert len(sightings) == 1
    assert "released" in daemon.output() or "→ released" in daemon.output()


def test_files_dropped_while_down_are_archived_at_start(station):
    data = os.urandom(10_000)
    (station.dock / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(data)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="rescan at start")
    finally:
        daemon.stop()
    assert_archived(station, data)


def test_ignored_names_and_own_folder_are_never_taken(station):
    dock = station.dock
    dock.mkdir(exist_ok=True)
    for ignored in ("clip.MP4.part", "clip.tmp", "clip.crdownload", ".hidden.MP4"):
        (dock / ignored).write_bytes(b"incomplete")
    (dock / "real.MP4").write_bytes(b"complete")
    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="one job")
        # several rescans (rescan_seconds = 2) must not take the ignored files
        wait_until(lambda: "watching" in daemon.output(), timeout=10)
        import time

        time.sleep(5)
    finally:
        daemon.stop()
    assert [r["display_name"] for r in jobs(station)] == ["real.MP4"]
    for ignored in ("clip.MP4.part", "clip.tmp", "clip.crdownload", ".hidden.MP4"):
        assert (dock / ignored).read_bytes() == b"incomplete"


def test_after_archive_move_and_keep(station, tmp_path):
    moved_to = tmp_path / "archived-copies"
    station.write_config(after_archive=f"move:{moved_to}")
    data = os.urandom(5000)
    (station.dock).mkdir(exist_ok=True)
    (station.dock / "sub").mkdir()
    (station.dock / "sub" / "a.MP4").write_bytes(data)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: all_jobs_done(station, 1), timeout=60, message="archived")
    finally:
        daemon.stop()
    assert (moved_to / "sub" / "a.MP4").read_bytes() == data
    assert not (station.dock / "sub" / "a.MP4").exists()

    station.write_config(after_archive="keep:3")
    other = os.urandom(6000)
    (station.dock / "b.MP4").write_bytes(other)
    daemon = station.start_daemon()
    try:
        rows = wait_until(lambda: all_jobs_done(station, 2), timeout=60, message="archived")
    finally:
        daemon.stop()
    kept = station.dock / ".strongroom" / "kept" / str(rows[-1]["id"])
    assert kept.read_bytes() == other


def test_new_files_are_taken_on_file_system_events_not_only_rescans(station):
    """With the full rescan hours away, only inotify events can bring a new file in."""
    text = station.config.read_text().replace("rescan_seconds = 2", "rescan_seconds = 3600")
    station.config.write_text(text)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: "watching" in daemon.output(), timeout=60)
        for i in range(3):  # more than one: the first tick must not use up the events
            data = os.urandom(2000 + i)
            (station.dock / f"ABC1234_012345_2026030108301{i}_0001.MP4").write_bytes(data)
            wait_until(
                lambda n=i + 1: all_jobs_done(station, n), timeout=60, message="event pickup"
            )
    finally:
        daemon.stop()
    assert len(jobs(station)) == 3
