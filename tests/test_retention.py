"""Retention only grows: a longer category extends the Object Lock of every
object of an item (original, manifest, playback copy), a permanent one puts
them under legal hold, and a shorter one is refused before the store is asked
– while the store itself also refuses a shorter lock from a raw client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from ingest_helpers import add_stored_copy
from sqlalchemy import select

from archive.models import CustodyEvent, Evidence

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

CATEGORIES = """
[retention.categories.routine]
days = 0.01
[retention.categories.important]
days = 2
[retention.categories.evidence]
permanent = true
[retention.categories.complaint]
label = "Complaint about an officer"
days = 400
lock_mode = "GOVERNANCE"
"""


def head(station, key: str, version_id: str | None = None) -> dict:
    args = {"Bucket": station.bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    return station.s3.head_object(**args)


def catalog(station, evidence_id: str) -> tuple[Evidence, list[CustodyEvent]]:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            evidence = session.get(Evidence, evidence_id)
            events = list(
                session.scalars(
                    select(CustodyEvent)
                    .where(
                        CustodyEvent.evidence_id == evidence_id,
                        CustodyEvent.kind == "retention_changed",
                    )
                    .order_by(CustodyEvent.seq)
                )
            )
            return evidence, events
    finally:
        archive.close()


def test_longer_category_extends_every_lock_and_shorter_never_shortens(station):
    station.write_config(CATEGORIES)
    item = station.ingest_bytes("ABC1234_012345_20261120083015_0001.MP4", b"routine " * 4000)
    evidence_id = item["evidence_id"]
    copy_key, copy_version = add_stored_copy(station, evidence_id, b"playback copy " * 100)
    before = {
        key: head(station, key)["ObjectLockRetainUntilDate"]
        for key in (item["original_key"], item["manifest_key"], copy_key)
    }
    evidence, _ = catalog(station, evidence_id)
    assert evidence.category == "routine"

    out = station.cli(
        "retention", "set", evidence_id, "important", "--reason", "complaint filed", "--json"
    )
    change = json.loads(out.stdout)
    assert change["old_category"] == "routine" and change["new_category"] == "important"
    assert len(change["extended"]) == 3  # original, manifest, playback copy
    expected = evidence.ingested_at + timedelta(days=2)
    for key, old_until in before.items():
        now_until = head(station, key)["ObjectLockRetainUntilDate"]
        assert now_until > old_until + timedelta(days=1), key
        assert abs((now_until - expected).total_seconds()) < 2, key
    evidence, events = catalog(station, evidence_id)
    assert evidence.category == "important"
    assert abs((evidence.retain_until - expected).total_seconds()) < 1
    [event] = events
    assert event.details["old"]["category"] == "routine"
    assert event.details["new"]["category"] == "important"
    assert event.details["reason"] == "complaint filed"
    assert event.actor.startswith("os:")

    # a shorter category: refused, and the lock in the store is exactly as it was
    extended = {key: head(station, key)["ObjectLockRetainUntilDate"] for key in before}
    refused = station.cli("retention", "set", evidence_id, "routine", "--reason", "x", check=False)
    assert refused.returncode == 1
    assert "retention only grows" in refused.stderr
    assert {key: head(station, key)["ObjectLockRetainUntilDate"] for key in before} == extended
    evidence, events = catalog(station, evidence_id)
    assert evidence.category == "important" and len(events) == 1

    # and the store refuses a shorter date even from a raw client with admin keys
    original = head(station, item["original_key"])
    with pytest.raises(ClientError):
        station.s3.put_object_retention(
            Bucket=station.bucket,
            Key=item["original_key"],
            VersionId=original["VersionId"],
            Retention={
                "Mode": "COMPLIANCE",
                "RetainUntilDate": datetime.now(UTC) + timedelta(hours=1),
            },
        )
    after = head(station, item["original_key"], original["VersionId"])
    assert after["ObjectLockRetainUntilDate"] == extended[item["original_key"]]
    assert head(station, copy_key, copy_version)["ObjectLockRetainUntilDate"] == extended[copy_key]


def test_compliance_lock_is_never_weakened_to_governance(station):
    station.write_config(CATEGORIES)
    item = station.ingest_bytes("ABC1234_012345_20261120090000_0002.MP4", b"complaint " * 3000)
    change = json.loads(
        station.cli(
            "retention", "set", item["evidence_id"], "complaint", "--reason", "r", "--json"
        ).stdout
    )
    assert change["lock_mode"] == "COMPLIANCE"
    info = head(station, item["original_key"])
    assert info["ObjectLockMode"] == "COMPLIANCE"
    assert info["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=399)


def test_permanent_category_holds_every_object_and_cannot_be_left(station):
    station.write_config(CATEGORIES)
    item = station.ingest_bytes("ABC1234_012345_20261120100000_0003_IMP.MP4", b"important " * 3000)
    evidence_id = item["evidence_id"]
    evidence, _ = catalog(station, evidence_id)
    assert evidence.category == "important"  # _IMP files start there
    until = head(station, item["original_key"])["ObjectLockRetainUntilDate"]

    station.cli("retention", "set", evidence_id, "evidence", "--reason", "used in court")
    for key in (item["original_key"], item["manifest_key"]):
        info = head(station, key)
        assert info["ObjectLockLegalHoldStatus"] == "ON", key
        assert info["ObjectLockRetainUntilDate"] >= until
    evidence, events = catalog(station, evidence_id)
    assert evidence.category == "evidence" and evidence.legal_hold is True
    assert events[-1].details["permanent"] is True

    for shorter in ("important", "complaint"):
        refused = station.cli(
            "retention", "set", evidence_id, shorter, "--reason", "x", check=False
        )
        assert refused.returncode == 1, shorter
    assert head(station, item["original_key"])["ObjectLockLegalHoldStatus"] == "ON"


def test_unknown_item_or_category_is_refused(station):
    station.write_config(CATEGORIES)
    item = station.ingest_bytes("ABC1234_012345_20261120110000_0004.MP4", b"other " * 3000)
    bad = station.cli("retention", "set", item["evidence_id"], "forever", "-r", "x", check=False)
    assert bad.returncode == 1 and "unknown category" in bad.stderr
    missing = station.cli("retention", "set", "ev-nothere", "important", "-r", "x", check=False)
    assert missing.returncode == 1 and "no evidence" in missing.stderr


def test_api_changes_retention_for_admins_only_and_never_shortens(station, api):
    handle = api(CATEGORIES)
    item = station.ingest_bytes("ABC1234_012345_20261120120000_0005.MP4", b"via api " * 3000)
    path = f"/v1/evidence/{item['evidence_id']}/retention"
    body = {"category": "important", "reason": "requested by the case system"}
    assert handle.request("PUT", path, "case-system", json=body).status_code == 403
    assert handle.request("PUT", path, "auditor", json=body).status_code == 403
    until = head(station, item["original_key"])["ObjectLockRetainUntilDate"]

    done = handle.request("PUT", path, "admin", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["new_category"] == "important"
    assert head(station, item["original_key"])["ObjectLockRetainUntilDate"] > until
    _, events = catalog(station, item["evidence_id"])
    assert events[-1].actor == "token:admin-client"

    shorter = handle.request("PUT", path, "admin", json={"category": "routine", "reason": "x"})
    assert shorter.status_code == 409
    assert shorter.json()["error"]["code"] == "retention_refused"
    missing = handle.request("PUT", "/v1/evidence/ev-nothere/retention", "admin", json=body)
    assert missing.status_code == 404


def test_extending_a_compliance_object_with_governance_keeps_compliance(station):
    """An object shared by two items (one playback copy of two originals) may be
    COMPLIANCE-locked through one item while the other's category asks for
    GOVERNANCE: the store's lock grows and keeps the stronger mode."""
    item = station.ingest_bytes("ABC1234_012345_20261120090000_0003.MP4", b"shared " * 3000)
    before = head(station, item["original_key"])
    assert before["ObjectLockMode"] == "COMPLIANCE"
    later = before["ObjectLockRetainUntilDate"] + timedelta(days=30)
    archive = station.archive()
    try:
        changed = archive.store.extend_retention(
            item["original_key"], before["VersionId"], "GOVERNANCE", later
        )
    finally:
        archive.close()
    assert changed
    after = head(station, item["original_key"], before["VersionId"])
    assert after["ObjectLockMode"] == "COMPLIANCE"
    assert after["ObjectLockRetainUntilDate"] >= later - timedelta(seconds=1)
