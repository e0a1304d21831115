"""Bytes that change between hashing and upload never get stored under the
old hash: the store checks each PUT (and each multipart part) against the
digests taken while hashing, and the pipeline hashes the file again."""

from __future__ import annotations

import hashlib
import os

import pytest

from archive.models import JobState
from ingest.pipeline import Pipeline
from ingest.scan import Candidate


@pytest.mark.parametrize("size", [100_000, 12 * 1024 * 1024], ids=["single-put", "multipart"])
def test_file_changed_after_hashing_is_hashed_again(station, size):
    station.dock.mkdir(exist_ok=True)
    path = station.dock / "clip.MP4"
    first = os.urandom(size)
    path.write_bytes(first)
    second = bytearray(first)
    second[size // 2] ^= 0xFF  # same size, one byte different (in a later part)
    archive = station.archive()
    real_put = archive.store.put_file
    changed = []

    def put_after_a_write(key, path, *args, **kwargs):
        """Something writes to the file between hashing and uploading, once."""
        if not changed:
            with open(path, "r+b") as handle:
                handle.write(second)
            changed.append(key)
        return real_put(key, path, *args, **kwargs)

    archive.store.put_file = put_after_a_write
    try:
        pipeline = Pipeline(archive)
        dock = archive.settings.docks[0]
        st = path.stat()
        job_id = pipeline.claim(dock, Candidate(str(path), st.st_size, st.st_mtime_ns))
        outcome = pipeline.advance(job_id)
        pipeline.close()
    finally:
        archive.close()
    assert changed, "the upload was attempted with the stale hash first"
    assert outcome.state == JobState.RELEASED
    assert outcome.sha256 == hashlib.sha256(second).hexdigest()
    s3 = station.s3
    stale = s3.list_object_versions(
        Bucket=station.bucket, Prefix=f"originals/sha256/{hashlib.sha256(first).hexdigest()}"
    )
    assert stale.get("Versions", []) == [], "nothing may be stored under the stale hash"
    body = s3.get_object(Bucket=station.bucket, Key=f"originals/sha256/{outcome.sha256}")["Body"]
    assert body.read() == bytes(second)
