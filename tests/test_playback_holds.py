"""A playback copy shared by two items: holds and disposition decide per object.

Copies are content-addressed, so two originals whose remuxes come out
byte-identical share one object version. Here the two originals are a real
camera-like MP4 and the same file with a vendor ``free`` box appended (16
bytes naming an officer): different bytes, so two evidence items, but the remux
maps only the audio and video, so both copies are the same bytes. Real
SeaweedFS, real ffmpeg, the CLI as an operator runs it.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import media_clips
import pytest
from conftest import wait_until
from ingest_helpers import SHORT_RETENTION
from sqlalchemy import select

from archive.derivatives import Derivative

QUEUE = """
[transcode]
threads = 2
nice = 0
"""


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    folder = tmp_path_factory.mktemp("twins")
    first = media_clips.make_h264_mp4(folder / "a.mp4").read_bytes()
    trailer = b"officer=012345"
    return first, first + (8 + len(trailer)).to_bytes(4, "big") + b"free" + trailer


def make_shared_copy(station, twins: tuple[bytes, bytes]) -> tuple[dict, dict, str, str]:
    """Ingest both twins and make their copies; returns both items and the shared object."""
    first = station.ingest_bytes("ABC1234_012345_20261120080000_0001.MP4", twins[0])
    second = station.ingest_bytes("ABC1234_012345_20261120080500_0002.MP4", twins[1])
    assert first["evidence_id"] != second["evidence_id"]
    station.cli("playback", "run", "--json")
    archive = station.archive()
    try:
        with archive.db.session() as session:
            rows = list(session.scalars(select(Derivative).order_by(Derivative.id)))
    finally:
        archive.close()
    assert [r.state for r in rows] == ["stored", "stored"]
    assert {r.evidence_id for r in rows} == {first["evidence_id"], second["evidence_id"]}
    assert rows[0].key == rows[1].key and rows[0].version_id == rows[1].version_id, (
        "the two copies are one object version"
    )
    return first, second, rows[0].key, rows[0].version_id


def held(station, key: str, version_id: str | None = None) -> bool:
    args = {"Bucket": station.bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    return station.s3.get_object_legal_hold(**args)["LegalHold"]["Status"] == "ON"


def test_unlinking_one_item_keeps_the_hold_the_other_item_needs(station, twins) -> None:
    station.write_config(QUEUE)
    first, second, key, version = make_shared_copy(station, twins)
    station.cli("link", "CASE-1", first["evidence_id"], "--reason", "complaint 1")
    station.cli("link", "CASE-2", second["evidence_id"], "--reason", "complaint 2")
    assert held(station, key, version)

    station.cli("unlink", "CASE-1", first["evidence_id"], "--reason", "closed")
    assert not held(station, first["original_key"]), "the unlinked item's own objects are free"
    assert held(station, key, version), "the copy the still-linked item shares stays held"
    shown = json.loads(station.cli("show", first["evidence_id"], "--json").stdout)
    assert shown["legal_hold"] is False

    station.cli("unlink", "CASE-2", second["evidence_id"], "--reason", "closed")
    assert not held(station, key, version), "the last user gone, the hold goes"


def test_a_permanent_item_keeps_its_shared_copy_held(station, twins) -> None:
    station.write_config(QUEUE)
    first, second, key, version = make_shared_copy(station, twins)
    station.cli("retention", "set", second["evidence_id"], "evidence", "--reason", "keep")
    assert held(station, key, version)
    station.cli("link", "CASE-1", first["evidence_id"], "--reason", "complaint")
    station.cli("unlink", "CASE-1", first["evidence_id"], "--reason", "closed")
    assert not held(station, first["original_key"])
    assert held(station, key, version), "the permanent item still uses the copy"


def test_disposition_keeps_a_shared_copy_until_its_last_item_goes(station, twins) -> None:
    station.write_config(QUEUE + SHORT_RETENTION)
    first, second, key, version = make_shared_copy(station, twins)

    def expired() -> bool:
        info = station.s3.head_object(Bucket=station.bucket, Key=key, VersionId=version)
        return info["ObjectLockRetainUntilDate"] < datetime.now(UTC)

    wait_until(expired, 60, message="the shared copy's lock to end")
    plan = json.loads(station.cli("retention", "plan", "--json").stdout)
    items = plan["plan"]["items"]
    assert {i["evidence_id"] for i in items} == {first["evidence_id"], second["evidence_id"]}
    for name in ("Officer Li", "Officer Wang"):
        station.cli("retention", "approve", plan["plan_id"], "--by", name)
    applied = json.loads(station.cli("retention", "apply", plan["plan_id"], "--json").stdout)

    assert applied["skipped"] == [] and applied["failed"] == []
    assert sorted(applied["disposed"]) == sorted([first["evidence_id"], second["evidence_id"]])
    certificate = station.s3.get_object(Bucket=station.bucket, Key=applied["certificate_key"])
    result = json.loads(_payload(certificate["Body"].read()))
    by_item = {i["evidence_id"]: i for i in result["disposed"]}
    deleted_by = [e for e, i in by_item.items() if any(o["key"] == key for o in i["deleted"])]
    kept_by = [
        e
        for e, i in by_item.items()
        if any(o["key"] == key and o.get("shared_with") for o in i["kept"])
    ]
    assert len(deleted_by) == 1 and len(kept_by) == 1 and deleted_by != kept_by, (
        "the first item keeps the copy its twin still uses; the second deletes it"
    )
    versions = station.s3.list_object_versions(Bucket=station.bucket, Prefix=key)
    assert [v for v in versions.get("Versions", []) if v["VersionId"] == version] == []


def _payload(envelope: bytes) -> str:
    return base64.b64decode(json.loads(envelope)["payload"]).decode()


def test_a_shared_copy_takes_the_longer_lock_and_keeps_the_stronger_mode(station, twins) -> None:
    """The first item locks the copy COMPLIANCE for a day; its twin is in a longer
    GOVERNANCE category. The copy must end up locked at least as long as the twin's
    original, still COMPLIANCE (a COMPLIANCE lock can never become GOVERNANCE)."""
    categories = """
[retention.categories.routine]
days = 1
[retention.categories.important]
days = 3
lock_mode = "GOVERNANCE"
[retention.categories.evidence]
permanent = true
"""
    station.write_config(QUEUE + categories)
    first = station.ingest_bytes("ABC1234_012345_20261120080000_0001.MP4", twins[0])
    station.write_config(QUEUE + '[retention]\ndefault_category = "important"\n' + categories)
    second = station.ingest_bytes("ABC1234_012345_20261120080500_0002.MP4", twins[1])
    station.cli("playback", "run")
    archive = station.archive()
    try:
        with archive.db.session() as session:
            copies = list(session.scalars(select(Derivative).order_by(Derivative.id)))
    finally:
        archive.close()
    assert [c.evidence_id for c in copies] == [first["evidence_id"], second["evidence_id"]]
    assert [c.state for c in copies] == ["stored", "stored"]
    assert copies[0].version_id == copies[1].version_id

    def lock(key: str, version: str | None = None) -> tuple[str, datetime]:
        args = {"Bucket": station.bucket, "Key": key}
        if version:
            args["VersionId"] = version
        info = station.s3.head_object(**args)
        return info["ObjectLockMode"], info["ObjectLockRetainUntilDate"]

    twin_mode, twin_until = lock(second["original_key"])
    assert twin_mode == "GOVERNANCE"
    mode, until = lock(copies[0].key, copies[0].version_id)
    assert until >= twin_until, "the shared copy is locked as long as the twin's original"
    assert mode == "COMPLIANCE"
