"""Two-person disposition: a sweep plans only expired, unlinked, unheld items and
deletes nothing; apply refuses with one approver (the same name twice counts
once), works with two, deletes exactly the planned versions (originals and
playback copies, never manifests), skips an item linked after planning, and
leaves a signed certificate under lock that verifies with the station key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import wait_until
from ingest_helpers import SHORT_RETENTION, add_stored_copy, events

from archive.derivatives import Derivative
from archive.disposition import DISPOSITION_PAYLOAD_TYPE, certificate_key
from archive.dsse import verify_envelope
from archive.models import Evidence

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def versions(station) -> set[tuple[str, str]]:
    """Every object version in the bucket, by a raw client (not through Strongroom)."""
    found = set()
    for page in station.s3.get_paginator("list_object_versions").paginate(Bucket=station.bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.add((entry["Key"], entry["VersionId"]))
    return found


def version_of(station, key: str) -> str:
    return station.s3.head_object(Bucket=station.bucket, Key=key)["VersionId"]


def expired(station, key: str) -> bool:
    info = station.s3.head_object(Bucket=station.bucket, Key=key)
    return info["ObjectLockRetainUntilDate"] < datetime.now(UTC)


def state_of(station, evidence_id: str) -> str:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return session.get(Evidence, evidence_id).state
    finally:
        archive.close()


def test_two_person_disposition_deletes_exactly_the_planned_versions(station, tmp_path):
    station.write_config(SHORT_RETENTION + "[transcode]\nenabled = false\n")
    plain = station.ingest_bytes("ABC1234_012345_20261120080000_0001.MP4", b"expired " * 5000)
    linked = station.ingest_bytes("ABC1234_012345_20261120081000_0002.MP4", b"case " * 5000)
    held = station.ingest_bytes("ABC1234_012345_20261120082000_0003.MP4", b"held " * 5000)
    late_link = station.ingest_bytes("ABC1234_012345_20261120083000_0004.MP4", b"later " * 5000)
    copy_key, copy_version = add_stored_copy(
        station, plain["evidence_id"], b"copy " * 999, days=0.00005
    )

    station.cli("link", "CASE-7", linked["evidence_id"], "--reason", "evidence in case 7")
    # a hold set in the store behind the catalog's back: the sweep must see it in HEAD
    held_version = version_of(station, held["original_key"])
    station.s3.put_object_legal_hold(
        Bucket=station.bucket,
        Key=held["original_key"],
        VersionId=held_version,
        LegalHold={"Status": "ON"},
    )
    for item in (plain, linked, held, late_link):
        wait_until(lambda i=item: expired(station, i["original_key"]), 60, message="expiry")
    wait_until(lambda: expired(station, copy_key), 60, message="copy expiry")

    before = versions(station)
    plan = json.loads(station.cli("retention", "plan", "--json").stdout)
    plan_id = plan["plan_id"]
    planned = {i["evidence_id"] for i in plan["plan"]["items"]}
    assert planned == {plain["evidence_id"], late_link["evidence_id"]}
    deferred = {d["evidence_id"]: d["reason"] for d in plan["plan"]["deferred"]}
    assert "legal hold" in deferred[held["evidence_id"]]
    assert linked["evidence_id"] not in deferred  # linked items are never even candidates
    assert versions(station) == before, "a sweep deletes nothing"
    plain_entry = next(i for i in plan["plan"]["items"] if i["evidence_id"] == plain["evidence_id"])
    assert {o["kind"] for o in plain_entry["delete"]} == {"original", "derivative"}
    assert {o["kind"] for o in plain_entry["keep"]} == {"manifest"}
    # the same items are not planned twice while this plan waits
    again = json.loads(station.cli("retention", "plan", "--json").stdout)
    assert again["plan_id"] is None

    # linked after the plan was made: apply must skip it
    station.cli("link", "CASE-8", late_link["evidence_id"], "--reason", "new complaint")

    refused = station.cli("retention", "apply", plan_id, check=False)
    assert refused.returncode == 1 and "needs 2 different approvers" in refused.stderr
    first = json.loads(
        station.cli("retention", "approve", plan_id, "--by", "Officer Li", "--json").stdout
    )
    assert first["new"] is True and first["ready"] is False
    refused = station.cli("retention", "apply", plan_id, check=False)
    assert refused.returncode == 1 and "has 1" in refused.stderr
    twice = json.loads(
        station.cli("retention", "approve", plan_id, "--by", "Officer  Li", "--json").stdout
    )
    assert twice["new"] is False and twice["approvers"] == ["Officer Li"]
    assert station.cli("retention", "apply", plan_id, check=False).returncode == 1
    assert versions(station) == before
    # the second approver names the plan by its JSON file, which must match the catalog
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**plan["plan"], "items": plan["plan"]["items"][:1]}))
    refused = station.cli("retention", "approve", str(tampered), "--by", "Mallory", check=False)
    assert refused.returncode == 1 and "differs" in refused.stderr
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan["plan"]), encoding="utf-8")
    second = json.loads(
        station.cli("retention", "approve", str(plan_file), "--by", "Auditor Wang", "--json").stdout
    )
    assert second["ready"] is True
    waiting = json.loads(station.cli("show", plain["evidence_id"], "--json").stdout)
    assert waiting["disposition"] == {
        "plan_id": plan_id,
        "plan_state": "planned",
        "approvers": ["Officer Li", "Auditor Wang"],
    }

    result = json.loads(station.cli("retention", "apply", plan_id, "--json").stdout)
    assert result["disposed"] == [plain["evidence_id"]]
    assert [s["evidence_id"] for s in result["skipped"]] == [late_link["evidence_id"]]
    assert "linked" in result["skipped"][0]["reason"]

    gone = before - versions(station)
    assert gone == {
        (plain["original_key"], version_of_deleted(plain_entry, "original")),
        (copy_key, copy_version),
    }
    for item in (plain, late_link, linked, held):  # every manifest is kept
        assert version_of(station, item["manifest_key"])
    assert state_of(station, plain["evidence_id"]) == "disposed"
    assert state_of(station, late_link["evidence_id"]) != "disposed"

    shown = json.loads(station.cli("show", plain["evidence_id"], "--json").stdout)
    assert shown["state"] == "disposed"
    assert shown["disposition"]["certificate_key"] == certificate_key(plan_id)
    shown = json.loads(station.cli("show", late_link["evidence_id"], "--json").stdout)
    assert "linked" in shown["disposition"]["skipped"]

    # the certificate: signed, locked, and says what, when, why and who
    archive = station.archive()
    try:
        body = archive.store.get_bytes(certificate_key(plan_id))
        verified = verify_envelope(body, archive.key.public_keys())
    finally:
        archive.close()
    assert verified.payload_type == DISPOSITION_PAYLOAD_TYPE
    cert = verified.payload
    assert cert["plan_id"] == plan_id and cert["plan_sha256"] == plan["content_sha256"]
    assert [a["by"] for a in cert["approved"]] == ["Officer Li", "Auditor Wang"]
    assert cert["why"].startswith("retention period ended")
    [disposed] = cert["disposed"]
    assert disposed["evidence_id"] == plain["evidence_id"]
    assert disposed["sha256"] == plain["sha256"]
    assert {(o["key"], o["version_id"]) for o in disposed["deleted"]} == gone
    assert cert["skipped"][0]["evidence_id"] == late_link["evidence_id"]
    lock = station.s3.head_object(Bucket=station.bucket, Key=certificate_key(plan_id))
    assert lock["ObjectLockMode"] == "COMPLIANCE"
    assert lock["ObjectLockLegalHoldStatus"] == "ON"  # kept like case evidence: for good

    # custody: planned, approved by two, disposed – each in the ledger's event stream
    assert {e.evidence_id for e in events(station, "disposition_planned")} == planned
    approvals = [
        e.details["approver"]
        for e in events(station, "disposition_approved")
        if e.evidence_id == plain["evidence_id"]
    ]
    assert approvals == ["Officer Li", "Auditor Wang"]
    [done] = events(station, "disposed")
    assert done.evidence_id == plain["evidence_id"] and done.details["plan_id"] == plan_id

    # apply again: nothing more is deleted, the same certificate stands
    rerun = json.loads(station.cli("retention", "apply", plan_id, "--json").stdout)
    assert rerun["already_applied"] is True
    assert rerun["certificate_version_id"] == result["certificate_version_id"]
    assert before - versions(station) == gone


def version_of_deleted(entry: dict, kind: str) -> str:
    return next(o["version_id"] for o in entry["delete"] if o["kind"] == kind)


def test_sweep_never_plans_items_still_locked_or_in_a_permanent_category(station, tmp_path):
    station.write_config(
        "[retention.categories.routine]\ndays = 0.00005\n"
        "[retention.categories.important]\ndays = 30\n"
        "[retention.categories.evidence]\npermanent = true\n"
        "[transcode]\nenabled = false\n"
    )
    short = station.ingest_bytes("ABC1234_012345_20261120090000_0005.MP4", b"short " * 3000)
    important = station.ingest_bytes("ABC1234_012345_20261120091000_0006_IMP.MP4", b"imp " * 3000)
    permanent = station.ingest_bytes("ABC1234_012345_20261120092000_0007.MP4", b"perm " * 3000)
    station.cli("retention", "set", permanent["evidence_id"], "evidence", "--reason", "court")
    wait_until(lambda: expired(station, short["original_key"]), 60, message="expiry")
    wait_until(lambda: expired(station, permanent["original_key"]), 60, message="expiry")

    out = tmp_path / "due.json"
    plan = json.loads(station.cli("retention", "plan", "-o", str(out), "--json").stdout)
    assert [i["evidence_id"] for i in plan["plan"]["items"]] == [short["evidence_id"]]
    assert json.loads(out.read_text()) == plan["plan"]
    listed = {d["evidence_id"] for d in plan["plan"]["deferred"]}
    assert important["evidence_id"] not in listed and permanent["evidence_id"] not in listed
    summary = (station.root / "var" / "dispositions" / f"{plan['plan_id']}.txt").read_text()
    assert short["evidence_id"] in summary and "--by NAME" in summary


def test_daily_sweep_job_plans_but_never_deletes(station):
    station.write_config(
        "[retention]\nsweep_hour = 5\n" + SHORT_RETENTION + "[transcode]\nenabled = false\n"
    )
    item = station.ingest_bytes("ABC1234_012345_20261120093000_0008.MP4", b"daily " * 3000)
    wait_until(lambda: expired(station, item["original_key"]), 60, message="expiry")
    before = versions(station)
    from ingest.services import build_scheduler

    archive = station.archive()
    try:
        scheduler = build_scheduler(archive)
        job = scheduler.get_job("retention-sweep")
        assert "hour='5'" in str(job.trigger)
        plan_id = job.func(*job.args)
        assert plan_id and job.func(*job.args) is None  # not planned twice
    finally:
        archive.close()
    assert versions(station) == before
    [event] = events(station, "disposition_planned")
    assert event.evidence_id == item["evidence_id"] and event.actor == "strongroom@dock-01"
    assert event.details["plan_id"] == plan_id
    [listed] = json.loads(station.cli("retention", "plans", "--json").stdout)["plans"]
    assert listed["plan_id"] == plan_id and listed["state"] == "planned"
    assert listed["items"] == 1 and listed["approvers"] == []


def add_copy_row(station, evidence_id: str, state: str) -> None:
    """A playback copy row in ``state``, due only in an hour (no worker runs here)."""
    archive = station.archive()
    try:
        with archive.db.session() as session:
            session.add(
                Derivative(
                    evidence_id=evidence_id,
                    state=state,
                    attempts=1,
                    last_error="store: not answering",
                    next_attempt_at=datetime.now(UTC) + timedelta(hours=1),
                )
            )
    finally:
        archive.close()


def test_a_copy_waiting_to_retry_keeps_its_item_from_disposal(station):
    """A copy in ``retrying`` runs again and may still store a copy of the item (it
    used to be left out of the 'copy being made' states): the sweep defers its item,
    and apply skips an item whose copy went back to retrying after the plan."""
    station.write_config(SHORT_RETENTION + "[transcode]\nenabled = false\n")
    waiting = station.ingest_bytes("ABC1234_012345_20261120100000_0009.MP4", b"retry " * 3000)
    later = station.ingest_bytes("ABC1234_012345_20261120101000_0010.MP4", b"later " * 3000)
    add_copy_row(station, waiting["evidence_id"], "retrying")
    for item in (waiting, later):
        wait_until(lambda i=item: expired(station, i["original_key"]), 60, message="expiry")

    plan = json.loads(station.cli("retention", "plan", "--json").stdout)
    assert [i["evidence_id"] for i in plan["plan"]["items"]] == [later["evidence_id"]]
    deferred = {d["evidence_id"]: d["reason"] for d in plan["plan"]["deferred"]}
    assert deferred == {waiting["evidence_id"]: "a playback copy is still being made"}

    add_copy_row(station, later["evidence_id"], "retrying")
    for name in ("Officer Li", "Auditor Wang"):
        station.cli("retention", "approve", plan["plan_id"], "--by", name)
    before = versions(station)
    result = json.loads(station.cli("retention", "apply", plan["plan_id"], "--json").stdout)
    assert result["disposed"] == []
    assert result["skipped"] == [
        {"evidence_id": later["evidence_id"], "reason": "a playback copy is still being made"}
    ]
    assert before <= versions(station), "nothing was deleted (only the certificate written)"
    assert state_of(station, later["evidence_id"]) == "sealed"
