"""The store being down only delays: nothing is released, and everything is
archived once it is back – whether it was down at start or went down mid-upload.

These tests stop and restart a SeaweedFS of their own (same folder, same
port), so they do not disturb the session's store.
"""

from __future__ import annotations

import os
import random
import time
import uuid

import pytest
from conftest import Station, start_store, wait_until
from ingest_helpers import all_jobs_done, assert_archived, jobs

from archive import localstore
from archive.db import utcnow
from archive.store import StoreError
from ingest.pipeline import STORE_SETTLE_RETRY_SECONDS, Pipeline
from ingest.scan import Candidate


@pytest.fixture
def own_store(tmp_path):
    folder = tmp_path / "own-seaweedfs"
    store = start_store(folder)  # in this xdist worker's own port range
    holder = {"store": store}
    yield holder
    holder["store"].stop()


@pytest.fixture
def outage_station(tmp_path, own_store, monkeypatch) -> Station:
    store = own_store["store"]
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    station = Station(
        tmp_path,
        tmp_path / "strongroom.toml",
        f"o-{uuid.uuid4().hex[:12]}",
        store,
        tmp_path / "dock",
    )
    station.env = store.env()
    station.write_config()
    station.cli("init")
    return station


def _restart(own_store) -> None:
    old = own_store["store"]
    own_store["store"] = localstore.start(old.folder, old.s3_port)


def test_store_down_at_start_delays_and_loses_nothing(outage_station, own_store):
    station = outage_station
    own_store["store"].stop()
    station.dock.mkdir(exist_ok=True)
    data = os.urandom(300_000)
    (station.dock / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(data)
    daemon = station.start_daemon()
    try:
        wait_until(lambda: "object store unreachable" in daemon.output(), timeout=60)
        assert daemon.process.poll() is None, "the daemon must wait, not exit"
        assert (station.dock / "ABC1234_012345_20260301083015_0001.MP4").exists()
        _restart(own_store)
        wait_until(lambda: all_jobs_done(station, 1), timeout=120, message="archived after outage")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert_archived(station, data)


def test_store_down_mid_upload_releases_nothing_then_resumes(outage_station, own_store):
    station = outage_station
    station.dock.mkdir(exist_ok=True)
    rng = random.Random(3)
    payloads = [rng.randbytes(30 * 1024 * 1024)] + [rng.randbytes(100_000) for _ in range(4)]
    daemon = station.start_daemon()
    try:
        wait_until(lambda: "watching" in daemon.output(), timeout=60)
        for i, data in enumerate(payloads):
            (station.dock / f"ABC1234_012345_2026030108301{i}_0001.MP4").write_bytes(data)
        wait_until(
            lambda: any(r["state"] in ("claimed", "hashed") for r in _jobs(station)),
            timeout=60,
            message="work under way",
        )
        own_store["store"].stop()
        wait_until(
            lambda: any(
                (r["last_error"] or "").startswith("store unavailable") for r in _jobs(station)
            ),
            timeout=90,
            message="a step failing on the outage",
        )
        unsafe = [
            r
            for r in _jobs(station)
            if r["state"] in ("released", "duplicate") and r["evidence_id"] is None
        ]
        assert unsafe == []
        for row in _jobs(station):
            if row["state"] not in ("released", "duplicate", "sealed"):
                spool = os.fsdecode(row["spool_path"])
                assert os.path.exists(spool), f"{row['display_name']} lost during the outage"
        assert daemon.process.poll() is None, "the daemon keeps running through the outage"
        _restart(own_store)
        wait_until(lambda: all_jobs_done(station, 5), timeout=180, message="all archived")
    finally:
        assert daemon.stop() == 0, daemon.output()
    for data in payloads:
        assert_archived(station, data)
    assert "retry in" in daemon.output()


def _jobs(station):
    try:
        return jobs(station)
    except Exception:
        return []


@pytest.mark.parametrize("just_back", [True, False], ids=["store-just-back", "store-steady"])
def test_a_store_error_in_an_outages_tail_is_retried_at_once(station, just_back):
    """The store probe wakes the waiting jobs when the store answers again; an upload
    still stuck in a call to the dead store fails just *after* that wake. It must be
    tried again in a second, not after its long backoff – else it sits out minutes
    the store is already back for. Away from an outage the backoff holds."""
    station.dock.mkdir(exist_ok=True)
    path = station.dock / "ABC1234_012345_20260301083015_0001.MP4"
    path.write_bytes(os.urandom(100_000))
    archive = station.archive()
    archive.settings.pipeline.retry_initial_seconds = 120.0
    archive.settings.pipeline.retry_max_seconds = 300.0
    real_put = archive.store.put_file
    failed = []

    def put_cut_off(key, *args, **kwargs):
        if not failed:
            failed.append(key)
            raise StoreError("Connection was closed before we received a valid response")
        return real_put(key, *args, **kwargs)

    archive.store.put_file = put_cut_off
    try:
        pipeline = Pipeline(archive)
        if just_back:
            pipeline.store_back_at = time.monotonic  # the probe saw it back during the PUT
        dock = archive.settings.docks[0]
        st = path.stat()
        job_id = pipeline.claim(dock, Candidate(str(path), st.st_size, st.st_mtime_ns))
        outcome = pipeline.advance(job_id)
        due_in = (pipeline._load(job_id).next_attempt_at - utcnow()).total_seconds()
        pipeline.close()
    finally:
        archive.close()
    assert failed and outcome.error and outcome.error.startswith("store unavailable")
    if just_back:
        assert due_in <= STORE_SETTLE_RETRY_SECONDS, f"due in {due_in:.0f}s, not at once"
    else:
        assert due_in > 100, f"due in {due_in:.0f}s: the backoff was not applied"
