"""Upload internals: bodies go unsigned (UNSIGNED-PAYLOAD, one SHA-256 pass less),
and integrity still holds because the SHA-256 checksum header is signed and the
server refuses bytes that do not match it – single PUT and every multipart part."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from archive.store import AlreadyExists, NotFound, ObjectStore, Retention, StoreError
from config.settings import StoreSettings

MiB = 1024 * 1024
#: create-only and checksum refusals hold on the cluster too (conftest.py)
pytestmark = pytest.mark.stores("mini", "cluster")


@pytest.fixture
def store(store_under_test) -> ObjectStore:
    seaweed = store_under_test
    settings = StoreSettings(
        endpoint_url=seaweed.endpoint_url,
        endpoints=getattr(seaweed, "endpoints", []),
        bucket=f"t-{uuid.uuid4().hex[:16]}",
        access_key_id=seaweed.credentials["access_key_id"],
        secret_access_key=seaweed.credentials["secret_access_key"],
        multipart_threshold_mb=5,
        part_size_mb=5,
    )
    store = ObjectStore(settings)
    store.ensure_bucket(1, "COMPLIANCE")
    yield store
    store.close()


def _capture(store: ObjectStore, operation: str) -> list[dict]:
    seen: list[dict] = []
    store.client.meta.events.register(
        f"before-send.s3.{operation}", lambda request, **_: seen.append(dict(request.headers))
    )
    return seen


def _file(path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_bodies_are_unsigned_but_the_checksum_header_is_signed(store, tmp_path):
    puts = _capture(store, "PutObject")
    parts = _capture(store, "UploadPart")
    small, small_sha = _file(tmp_path / "small", 1000)
    big, big_sha = _file(tmp_path / "big", 11 * MiB)
    retention = Retention.for_days(1)
    store.put_file("small", small, small_sha, 1000, retention)
    store.put_file("big", big, big_sha, 11 * MiB, retention)
    assert puts and len(parts) == 3
    for headers in [*puts, *parts]:
        assert headers["X-Amz-Content-SHA256"] in (b"UNSIGNED-PAYLOAD", "UNSIGNED-PAYLOAD")
        authorization = headers["Authorization"]
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        assert "x-amz-checksum-sha256" in authorization.split("SignedHeaders=")[1]


def test_a_body_that_differs_from_its_checksum_is_refused(store, tmp_path):
    retention = Retention.for_days(1)
    small, _ = _file(tmp_path / "small", 1000)
    with pytest.raises(StoreError):
        store.put_file("small", small, hashlib.sha256(b"other").hexdigest(), 1000, retention)
    with pytest.raises(NotFound):
        store.head("small")

    big, big_sha = _file(tmp_path / "big", 11 * MiB)
    wrong_parts = (hashlib.sha256(b"other").digest(),) * 3
    with pytest.raises(StoreError):
        store.put_file(
            "big", big, big_sha, 11 * MiB, retention, part_digests=wrong_parts, part_size=5 * MiB
        )
    with pytest.raises(NotFound):
        store.head("big")


def test_parts_stream_from_the_file_instead_of_memory(store, tmp_path):
    bodies: list = []
    store.client.meta.events.register(
        "before-parameter-build.s3.UploadPart",
        lambda params, **_: bodies.append(params["Body"]),
    )
    big, big_sha = _file(tmp_path / "big", 11 * MiB)
    stored = store.put_file("big", big, big_sha, 11 * MiB, Retention.for_days(1))
    assert len(bodies) == 3
    assert not any(isinstance(body, bytes | bytearray | memoryview) for body in bodies)
    # what was streamed is what the server checked and holds
    assert store.head("big").checksum_sha256 == stored.checksum_sha256
    assert hashlib.sha256(store.get_bytes("big")).hexdigest() == big_sha


def test_a_file_that_shrank_before_upload_is_an_error_not_a_short_object(store, tmp_path):
    big, big_sha = _file(tmp_path / "big", 11 * MiB)
    os.truncate(big, 7 * MiB)
    with pytest.raises(StoreError) as raised:
        store.put_file("big", big, big_sha, 11 * MiB, Retention.for_days(1))
    assert not raised.value.retryable
    with pytest.raises(NotFound):
        store.head("big")


def test_a_second_write_of_a_key_is_refused_and_the_first_stays(store, tmp_path):
    """Create-only: a key that is taken cannot be written again, by a PUT or a
    multipart upload, and the store keeps exactly the first version."""
    first, first_sha = _file(tmp_path / "first", 1000)
    other, other_sha = _file(tmp_path / "other", 1000)
    big, big_sha = _file(tmp_path / "big", 11 * MiB)
    retention = Retention.for_days(1)
    stored = store.put_file("k", first, first_sha, 1000, retention)
    with pytest.raises(AlreadyExists):
        store.put_file("k", other, other_sha, 1000, retention)
    with pytest.raises(AlreadyExists):
        store.put_file("k", big, big_sha, 11 * MiB, retention)
    versions = store.client.list_object_versions(Bucket=store.bucket, Prefix="k")["Versions"]
    assert [v["VersionId"] for v in versions] == [stored.version_id]
    assert hashlib.sha256(store.get_bytes("k")).hexdigest() == first_sha


def test_the_clients_share_one_loaded_service_model_but_not_their_settings(store):
    """One session per store: the S3 model and endpoint rules are read once for the
    three clients (~0.2 s of CPU each otherwise, at every start – bench/), while
    each keeps its own timeouts, retries and event hooks."""
    clients = (store.client, store.quick, store._probe)
    loaders = {id(client._loader) for client in clients}
    assert len(loaders) == 1
    timeouts = {client.meta.config.read_timeout for client in clients}
    assert timeouts == {store.settings.read_timeout, store.settings.request_timeout}
    attempts = [client.meta.config.retries["total_max_attempts"] for client in clients]
    assert attempts[2] < attempts[0] == attempts[1]  # the probe: one attempt, no retries
    seen = _capture(store, "HeadObject")
    store.put_bytes("hooked", b"x", Retention.for_days(1))
    store.head("hooked")  # by the quick client: the data client's hook must not see it
    assert seen == []
