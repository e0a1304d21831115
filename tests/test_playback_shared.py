"""Playback copies shared between stations on one PostgreSQL catalog, the way
fixity work is: rows are taken ``FOR UPDATE SKIP LOCKED``
(``archive/playback_queue.py``).

* three stations' workers draining one queue together make every copy once
  (one ``derivative_started`` – one ffmpeg run – and one stored row per item);
* a row another station is taking at that moment is skipped, not waited for;
* a holder that stops answering keeps its copy until its lease runs out;
  then another station takes it over, and the old holder's late write is
  refused by the fencing token. (A holder killed on another host looks just
  like a frozen one: only its lease tells. One killed on the same host is
  taken over at once: ``test_faults.py``.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter

import media_clips
import pytest
from conftest import STRONGROOM, wait_until
from ingest_helpers import catalog_rows
from sqlalchemy import select
from test_playback import QUEUE_CONFIG, derivative_rows, ingest
from test_stations import second_station

from archive.derivatives import Derivative
from ingest.playback import PlaybackWorker

pytestmark = pytest.mark.catalogs("postgresql")

ITEMS = 6


def _voices(folder, count: int) -> list:
    """``count`` short, distinct recordings (a tone each): each needs an ffmpeg run."""
    folder.mkdir(exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"ABC1234_012345_202603010830{n:02d}_0001.wav"
        media_clips.ffmpeg(
            "-f", "lavfi", "-i", f"sine=frequency={300 + 50 * n}:duration=1", str(path)
        )  # fmt: skip
        paths.append(path)
    return paths


def _kinds(station) -> Counter:
    rows = catalog_rows(
        station, "SELECT evidence_id, kind FROM custody_events WHERE kind LIKE 'derivative%'"
    )
    return Counter((r["evidence_id"], r["kind"]) for r in rows)


def _stations(station, count: int) -> list:
    station.write_config(QUEUE_CONFIG)
    others = [second_station(station, f"dock-{n + 2:02d}") for n in range(count - 1)]
    for other in others:
        key = station.root / "var" / "keys" / "signing.key"
        other.write_config(f'{QUEUE_CONFIG}\n[signing]\nkey_file = "{key}"\n')
    return [station, *others]


def test_three_stations_draining_one_queue_make_each_copy_once(station, tmp_path):
    stations = _stations(station, 3)
    items = ingest(station, *_voices(tmp_path / "voices", ITEMS))
    assert [r.state for r in derivative_rows(station)] == ["queued"] * ITEMS
    archives = [s.archive() for s in stations]
    results: list = []
    try:
        workers = [PlaybackWorker(a) for a in archives]
        barrier = threading.Barrier(len(workers))

        def drain(worker: PlaybackWorker) -> None:
            barrier.wait()
            results.extend(worker.run_until_idle(timeout=300))

        threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(400)
    finally:
        for archive in archives:
            archive.close()
    assert sorted(r.evidence_id for r in results) == sorted(i["evidence_id"] for i in items)
    rows = derivative_rows(station)
    assert [(r.state, r.attempts) for r in rows] == [("stored", 1)] * ITEMS
    kinds = _kinds(station)
    for item in items:
        assert kinds[(item["evidence_id"], "derivative_started")] == 1, kinds
        assert kinds[(item["evidence_id"], "derivative_stored")] == 1, kinds


def test_a_row_being_taken_by_another_station_is_skipped_not_waited_for(station, tmp_path):
    stations = _stations(station, 2)
    ingest(station, *_voices(tmp_path / "voices", 2))
    first_id, second_id = (r.id for r in derivative_rows(station))
    holder, other = (s.archive() for s in stations)
    try:
        with holder.db.session() as session:  # another station, in the middle of its claim
            session.execute(select(Derivative).where(Derivative.id == first_id).with_for_update())
            claimed: list = []
            worker = threading.Thread(
                target=lambda: claimed.append(PlaybackWorker(other).claim_next()), daemon=True
            )
            worker.start()
            worker.join(10)
            assert not worker.is_alive(), "the claim waited for the other station's row lock"
        (claim,) = claimed
        assert claim is not None and claim.id == second_id
    finally:
        holder.close()
        other.close()


def test_a_holder_that_stops_answering_is_taken_over_after_its_lease(station, tmp_path):
    """A holder on another host cannot be seen to die: only its lease tells. A
    frozen process looks alive, so its copy waits for the lease; then another
    station takes it, and the old holder's late write is refused."""
    fast, slow = _stations(station, 2)
    lease = 3
    slow_queue = QUEUE_CONFIG.replace("threads = 2", 'threads = 1\npreset = "veryslow"')
    slow_queue = slow_queue.replace("lease_seconds = 5", f"lease_seconds = {lease}")
    key = station.root / "var" / "keys" / "signing.key"
    slow.write_config(f'{slow_queue}\n[signing]\nkey_file = "{key}"\n')
    clip = media_clips.make_hevc_mp4(tmp_path / "ABC1234_012345_20260301083017_0001.mp4")
    (item,) = ingest(fast, clip)
    log = tmp_path / "holder.log"
    with log.open("wb") as sink:
        holder = subprocess.Popen(
            [*STRONGROOM, "playback", "run", "--config", str(slow.config)],
            cwd=slow.root,
            env={**os.environ, **slow.env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def running() -> bool:
            rows = derivative_rows(fast)
            assert holder.poll() is None and all(r.state != "stored" for r in rows), (
                [(r.state, r.progress) for r in rows],
                log.read_text(errors="replace")[-3000:],
            )
            return any(r.state == "running" and r.progress for r in rows)

        wait_until(running, timeout=120, interval=0.05, message="the copy to be running")
        os.killpg(holder.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        archive = fast.archive()
        try:
            worker = PlaybackWorker(archive)
            if time.monotonic() - frozen_at < lease - 1:
                assert worker.claim_next() is None, "a live lease is respected"
            claim = wait_until(worker.claim_next, timeout=60, message="the lease to run out")
            assert claim.attempt == 2 and claim.evidence_id == item["evidence_id"]
            os.killpg(holder.pid, signal.SIGCONT)  # back: its next write must be refused
            result = worker.process(claim)
        finally:
            archive.close()
        assert result.state == "stored", result
        holder.wait(120)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
    (row,) = derivative_rows(fast)
    assert (row.state, row.attempts) == ("stored", 2)
    assert "lost the lease" in log.read_text(errors="replace")
    kinds = _kinds(fast)
    assert kinds[(item["evidence_id"], "derivative_stored")] == 1, kinds
