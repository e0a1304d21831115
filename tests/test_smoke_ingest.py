"""`strongroom ingest` archives files in place: originals at their hash keys,
locked, with manifests that verify against the station's public key."""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from archive.dsse import verify_envelope


def test_ingest_archives_locked_original_with_verifiable_manifest(station, tmp_path):
    source = tmp_path / "outside" / "ABC1234_012345_20260301083015_0001.MP4"
    source.parent.mkdir()
    data = b"not really video " * 5000
    source.write_bytes(data)
    result = station.cli("ingest", str(source), "--json")
    item = json.loads(result.stdout)["items"][0]
    sha = hashlib.sha256(data).hexdigest()
    assert item["sha256"] == sha and item["state"] == "released"
    assert item["original_key"] == f"originals/sha256/{sha}"
    assert source.read_bytes() == data, "ingest outside a dock must leave the file untouched"

    s3 = station.s3
    head = s3.head_object(Bucket=station.bucket, Key=item["original_key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert s3.get_object(Bucket=station.bucket, Key=item["original_key"])["Body"].read() == data
    with pytest.raises(ClientError):
        s3.delete_object(
            Bucket=station.bucket, Key=item["original_key"], VersionId=head["VersionId"]
        )

    envelope = s3.get_object(Bucket=station.bucket, Key=item["manifest_key"])["Body"].read()
    archive = station.archive()
    try:
        payload = verify_envelope(envelope, archive.key.public_keys()).payload
    finally:
        archive.close()
    assert payload["original"]["sha256"] == sha
    assert payload["source"]["device"] == "ABC1234"
    assert payload["source"]["officer"] == "012345"
