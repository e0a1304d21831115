"""kill -9 at every pipeline step, then restart: every file ends archived
exactly once, and no dock copy was released before its original was safe.

The daemon kills itself (SIGKILL, no clean-up) right after committing the
named state, through the test-only ``STRONGROOM_TEST_CRASH_AFTER`` hook.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal

import pytest
from botocore.exceptions import ClientError
from conftest import wait_until
from ingest_helpers import all_jobs_done, assert_archived, catalog_rows, jobs

STEPS = ["claiming", "claimed", "hashed", "stored", "sealed", "sighted", "released"]


def _drop(station, rng: random.Random) -> list[bytes]:
    station.dock.mkdir(exist_ok=True)
    payloads = [rng.randbytes(9 * 1024 * 1024), rng.randbytes(70_000), rng.randbytes(5)]
    for i, data in enumerate(payloads):
        (station.dock / f"ABC1234_012345_2026030108301{i}_0001.MP4").write_bytes(data)
    # the same bytes as the second file, under another name: must become a sighting
    (station.dock / "copy-of-second.MP4").write_bytes(payloads[1])
    return payloads


def _assert_nothing_released_unsafely(station) -> None:
    """Every job whose spool copy is gone must have a confirmed, sealed original."""
    for job in jobs(station):
        spool = os.fsdecode(job["spool_path"])
        if job["state"] in ("claiming",) or os.path.exists(spool):
            continue
        source = os.fsdecode(job["source_path"])
        if os.path.exists(source):
            continue  # never claimed
        assert job["sha256"], f"job {job['id']} released with no hash"
        rows = catalog_rows(station, "SELECT * FROM evidence WHERE sha256 = :s", s=job["sha256"])
        assert rows, f"{job['display_name']}: dock copy gone but no evidence row"
        head = station.s3.head_object(
            Bucket=station.bucket, Key=rows[0]["original_key"], ChecksumMode="ENABLED"
        )
        assert head["ContentLength"] == job["size"]
        station.s3.head_object(Bucket=station.bucket, Key=rows[0]["manifest_key"])


#: on the cluster, the two steps around the upload: the rest are the pipeline's own
@pytest.mark.stores("mini", "cluster", cluster_only={"step": ["stored", "sealed"]})
@pytest.mark.parametrize("step", STEPS)
def test_kill_after_each_step_then_restart(station, step):
    payloads = _drop(station, random.Random(step))
    crashing = station.start_daemon(env={"STRONGROOM_TEST_CRASH_AFTER": step}, log_name="crash.log")
    crashing.process.wait(timeout=120)
    assert crashing.process.returncode == -signal.SIGKILL, crashing.output()
    _assert_nothing_released_unsafely(station)

    daemon = station.start_daemon(log_name="restart.log")
    try:
        rows = wait_until(lambda: all_jobs_done(station, 4), timeout=120, message="all jobs done")
    finally:
        assert daemon.stop() == 0, daemon.output()
    states = sorted(r["state"] for r in rows)
    assert states == ["duplicate", "released", "released", "released"], states
    for data in payloads:
        assert_archived(station, data)
    assert len(catalog_rows(station, "SELECT * FROM evidence")) == 3
    # one manifest object version per item: a retry never wrote a second seal
    for row in catalog_rows(station, "SELECT manifest_key FROM evidence"):
        versions = station.s3.list_object_versions(
            Bucket=station.bucket, Prefix=row["manifest_key"]
        )
        assert len(versions.get("Versions", [])) == 1
    assert [p for p in station.dock.rglob("*") if p.is_file()] == []


@pytest.mark.stores("mini", "cluster")
def test_kill_during_multipart_upload(station):
    """A SIGKILL in the middle of a multi-part upload loses nothing.

    Parts of 5 MiB from a 5 MiB threshold make an 80 MiB file a 16-part upload;
    the daemon kills itself once six parts are stored (test hook), and the test
    checks in the store that it died mid-upload – parts there, no object yet."""
    station.dock.mkdir(exist_ok=True)
    data = random.Random(5).randbytes(80 * 1024 * 1024)
    key = f"originals/sha256/{hashlib.sha256(data).hexdigest()}"
    (station.dock / "big.MP4").write_bytes(data)
    small_parts = {
        "STRONGROOM_STORE__MULTIPART_THRESHOLD_MB": "5",
        "STRONGROOM_STORE__PART_SIZE_MB": "5",
    }
    crashing = station.start_daemon(
        env={**small_parts, "STRONGROOM_TEST_CRASH_AFTER_PART": "6"}, log_name="first.log"
    )
    crashing.process.wait(timeout=120)
    assert crashing.process.returncode == -signal.SIGKILL, crashing.output()
    uploads = station.s3.list_multipart_uploads(Bucket=station.bucket, Prefix=key)["Uploads"]
    parts = station.s3.list_parts(Bucket=station.bucket, Key=key, UploadId=uploads[0]["UploadId"])
    assert 6 <= len(parts["Parts"]) < 16, parts["Parts"]
    with pytest.raises(ClientError):
        station.s3.head_object(Bucket=station.bucket, Key=key)  # never completed
    _assert_nothing_released_unsafely(station)

    daemon = station.start_daemon(env=small_parts, log_name="second.log")
    try:
        wait_until(lambda: all_jobs_done(station, 1), timeout=120, message="resumed upload")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert_archived(station, data)
    head = station.s3.head_object(Bucket=station.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head.get("ChecksumSHA256", "").endswith("-16"), head  # stored as 16 parts


def _safe_jobs(station):
    try:
        return jobs(station)
    except Exception:
        return []
