"""Large files are hashed while they settle; the claim reuses that digest only
for the very same file state, and the store still refuses bytes that changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import ingest.pipeline
from archive.hashing import FileIdentity, hash_file
from archive.models import JobState
from ingest.pipeline import Pipeline
from ingest.prehash import PreHasher
from ingest.scan import Candidate

MiB = 1024 * 1024


def _identity(path) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


@pytest.fixture
def prehasher():
    hasher = PreHasher(lambda size: None, min_size=MiB)
    yield hasher
    hasher.close()


def test_digest_is_handed_out_once_for_the_same_file_state(tmp_path, prehasher):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(2 * MiB))
    prehasher.offer(str(path), path.stat().st_size)
    prehasher.drain()
    digest = prehasher.take(_identity(path), None)
    assert digest is not None
    assert digest == hash_file(path)
    assert prehasher.take(_identity(path), None) is None, "a digest is given out only once"


def test_small_files_are_not_prehashed(tmp_path, prehasher):
    path = tmp_path / "small.bin"
    path.write_bytes(os.urandom(MiB - 1))
    prehasher.offer(str(path), path.stat().st_size)
    prehasher.drain()
    assert prehasher.take(_identity(path), None) is None


def test_a_written_file_gets_no_stale_digest(tmp_path, prehasher):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(2 * MiB))
    prehasher.offer(str(path), path.stat().st_size)
    prehasher.drain()
    with path.open("ab") as handle:
        handle.write(b"more")
    assert prehasher.take(_identity(path), None) is None


def test_a_file_held_open_by_its_writer_is_not_hashed_until_closed(tmp_path, prehasher):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(2 * MiB))
    with path.open("ab"):  # the writer still has it (the kernel refuses the lease)
        prehasher.offer(str(path), path.stat().st_size)
        prehasher.drain()
        assert prehasher.take(_identity(path), None) is None
    prehasher.offer(str(path), path.stat().st_size)  # closed now: offered again, hashed
    prehasher.drain()
    assert prehasher.take(_identity(path), None) == hash_file(path)


def test_wrong_part_size_is_not_reused(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(3 * MiB))
    hasher = PreHasher(lambda size: MiB, min_size=MiB)
    try:
        hasher.offer(str(path), path.stat().st_size)
        hasher.drain()
        assert hasher.take(_identity(path), 2 * MiB) is None
    finally:
        hasher.close()


def _claim_and_advance(station, path, prehasher):
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        pipeline.prehasher = prehasher
        dock = archive.settings.docks[0]
        st = path.stat()
        job_id = pipeline.claim(dock, Candidate(str(path), st.st_size, st.st_mtime_ns))
        outcome = pipeline.advance(job_id)
        pipeline.close()
    finally:
        archive.close()
    return outcome


def _prehashed_dock_file(station, size: int) -> tuple[Path, bytes, PreHasher]:
    """A random file in the dock, already hashed by a pre-hasher (close it after)."""
    station.dock.mkdir(exist_ok=True)
    path = station.dock / "clip.MP4"
    data = os.urandom(size)
    path.write_bytes(data)
    archive = station.archive()
    part_size_for = Pipeline(archive).part_size_for
    archive.close()
    hasher = PreHasher(part_size_for, min_size=MiB)
    hasher.offer(str(path), size)
    hasher.drain()
    return path, data, hasher


@pytest.mark.parametrize("size", [2 * MiB, 12 * MiB], ids=["single-put", "multipart"])
def test_claim_uses_the_digest_taken_while_settling(station, monkeypatch, size):
    path, data, hasher = _prehashed_dock_file(station, size)
    try:

        def no_second_pass(*args, **kwargs):
            raise AssertionError("the file was read a second time for its hash")

        monkeypatch.setattr(ingest.pipeline, "hash_file", no_second_pass)
        outcome = _claim_and_advance(station, path, hasher)
    finally:
        hasher.close()
    assert outcome.state == JobState.RELEASED
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    body = station.s3.get_object(Bucket=station.bucket, Key=f"originals/sha256/{outcome.sha256}")
    assert body["Body"].read() == data
    assert not path.exists(), "released from the dock"


@pytest.mark.parametrize("size", [2 * MiB, 12 * MiB], ids=["single-put", "multipart"])
def test_bytes_changed_behind_an_unchanged_identity_are_refused_and_rehashed(station, size):
    """Someone rewrites a byte after the pre-hash and puts the mtime back: the
    digest is handed out (same identity), the store refuses the upload, and the
    pipeline hashes the file again – nothing is stored under the stale hash."""
    path, first, hasher = _prehashed_dock_file(station, size)
    try:
        st = path.stat()
        with path.open("r+b") as handle:
            handle.seek(size - 10)
            handle.write(bytes([first[size - 10] ^ 0xFF]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert _identity(path) == FileIdentity.of(st), "the change is invisible to stat"
        outcome = _claim_and_advance(station, path, hasher)
    finally:
        hasher.close()
    second = bytearray(first)
    second[size - 10] ^= 0xFF
    assert outcome.state == JobState.RELEASED
    assert outcome.sha256 == hashlib.sha256(second).hexdigest()
    stale = station.s3.list_object_versions(
        Bucket=station.bucket, Prefix=f"originals/sha256/{hashlib.sha256(first).hexdigest()}"
    )
    assert stale.get("Versions", []) == [], "nothing may be stored under the stale hash"
    body = station.s3.get_object(Bucket=station.bucket, Key=f"originals/sha256/{outcome.sha256}")
    assert body["Body"].read() == bytes(second)


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, 3 * MiB + 17, 9 * MiB], ids=lambda s: f"{s}B")
def test_whole_and_part_digests_match_hashlib(tmp_path, size):
    """The two digests of one read pass (computed side by side) are exactly
    the file's SHA-256 and each part's, whatever the block/part alignment."""
    path = tmp_path / "data.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    part = MiB + 3  # never aligned with the 4 MiB read blocks
    digest = hash_file(path, part)
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert list(digest.part_digests) == [
        hashlib.sha256(data[i : i + part]).digest() for i in range(0, size, part)
    ]
    assert digest.identity == _identity(path)
    assert hash_file(path).part_digests == ()
