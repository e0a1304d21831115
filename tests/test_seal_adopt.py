"""A seal that finds its manifest already stored (a retry after a crash between
the manifest's PUT and the catalog commit, or another station sealing the same
bytes) adopts it – and the catalog row then says what that stored manifest
says, the row a ``catalog rebuild`` makes from it (one mapping, archive.manifest_rows)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from ingest_helpers import catalog_rows

from archive.db import utcnow
from archive.layout import manifest_key
from archive.manifest_rows import evidence_row
from archive.seal import evidence_id_for, evidence_manifest, seal_evidence


def test_adopted_manifest_is_what_the_catalog_row_says(station, tmp_path):
    data = b"sealed once already " * 3000
    sha = hashlib.sha256(data).hexdigest()
    evidence_id = evidence_id_for(sha)
    earlier = utcnow().replace(microsecond=0) - timedelta(days=2)
    archive = station.archive()
    try:
        category = archive.settings.retention.default_category
        retention = archive.retention_for(category)
        stored = seal_evidence(
            archive.store,
            archive.key,
            evidence_manifest(
                evidence_id=evidence_id,
                sha256=sha,
                size=len(data),
                file_name="first.bin",
                media_type="application/octet-stream",
                original_version_id=None,
                original_checksum="",
                source={
                    "station": "dock-99",
                    "dock": "earlier",
                    "path": "first/first.bin",
                    "device": "OLD0001",
                    "officer": "000001",
                    "flags": [],
                },
                probe=None,
                ingested_at=earlier - timedelta(seconds=5),
                sealed_at=earlier,
                category=category,
                retention=retention,
                keyid=archive.key.keyid,
            ),
            retention,
        )
    finally:
        archive.close()

    source = tmp_path / "outside" / "second.bin"
    source.parent.mkdir()
    source.write_bytes(data)
    item = json.loads(station.cli("ingest", str(source), "--json").stdout)["items"][0]
    assert item["evidence_id"] == evidence_id and item["state"] == "released"

    row = catalog_rows(station, "SELECT * FROM evidence WHERE evidence_id = :e", e=evidence_id)[0]
    expected = evidence_row(
        stored.manifest,
        manifest_key=manifest_key(evidence_id),
        manifest_version_id=stored.stored.version_id,
    )
    for column in ("sealed_at", "ingested_at", "retain_until"):
        assert _utc(row[column]) == expected[column], column
    for column in ("station", "dock", "source_path", "device", "officer", "file_name"):
        assert row[column] == expected[column], column
    assert (row["device"], row["station"]) == ("OLD0001", "dock-99")
    versions = station.s3.list_object_versions(
        Bucket=station.bucket, Prefix=manifest_key(evidence_id)
    )
    assert len(versions.get("Versions", [])) == 1, "adopted, not sealed a second time"


def _utc(value):
    """SQLite hands back naive UTC times through a raw query."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
