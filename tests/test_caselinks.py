"""Case links put evidence under legal hold in the store itself: while linked,
deleting the original's version is refused even after its dated retention
ended; the hold goes with the last link unless the item's own category keeps it.
Link and unlink are idempotent custody events (CLI as the OS user, API as the token)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from conftest import wait_until
from sqlalchemy import func, select

from archive.cases import CaseLink
from archive.models import CustodyEvent

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

#: every category must be listed when one is overridden; routine lasts ~1 s
SHORT_RETENTION = """
[retention.categories.routine]
days = 0.00001
[retention.categories.important]
days = 0.00001
[retention.categories.evidence]
permanent = true
"""


def hold_of(station, key: str, version_id: str) -> str:
    return station.s3.get_object_legal_hold(Bucket=station.bucket, Key=key, VersionId=version_id)[
        "LegalHold"
    ]["Status"]


def delete_version(station, key: str, version_id: str) -> None:
    station.s3.delete_object(Bucket=station.bucket, Key=key, VersionId=version_id)


def retention_passed(station, key: str, version_id: str) -> bool:
    head = station.s3.head_object(Bucket=station.bucket, Key=key, VersionId=version_id)
    return head["ObjectLockRetainUntilDate"] < datetime.now(UTC)


def events(station, kind: str, evidence_id: str) -> list[CustodyEvent]:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return list(
                session.scalars(
                    select(CustodyEvent)
                    .where(CustodyEvent.kind == kind, CustodyEvent.evidence_id == evidence_id)
                    .order_by(CustodyEvent.seq)
                )
            )
    finally:
        archive.close()


def test_link_makes_the_store_refuse_deleting_the_original_until_unlinked(station, api):
    handle = api(SHORT_RETENTION)
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"footage " * 4096)
    evidence_id, key = item["evidence_id"], item["original_key"]
    version = station.s3.head_object(Bucket=station.bucket, Key=key)["VersionId"]

    linked = handle.request(
        "PUT", f"/v1/cases/A-2026-17/evidence/{evidence_id}", "case-system", json={"reason": "r1"}
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["legal_hold"] is True and linked.json()["changed"] is True
    assert hold_of(station, key, version) == "ON"
    manifest_version = station.s3.head_object(Bucket=station.bucket, Key=item["manifest_key"])[
        "VersionId"
    ]
    assert hold_of(station, item["manifest_key"], manifest_version) == "ON"

    wait_until(lambda: retention_passed(station, key, version), 30, message="retention to end")
    with pytest.raises(ClientError):  # only the hold protects it now
        delete_version(station, key, version)

    unlinked = handle.request(
        "DELETE",
        f"/v1/cases/A-2026-17/evidence/{evidence_id}",
        "case-system",
        params={"reason": "case closed"},
    )
    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json() == {
        **unlinked.json(),
        "linked": False,
        "changed": True,
        "legal_hold": False,
    }
    assert hold_of(station, key, version) == "OFF"
    delete_version(station, key, version)  # retention over, no hold: the store allows it

    [link_event] = events(station, "linked", evidence_id)
    assert link_event.actor == "token:case-system-client"
    assert link_event.details == {
        "case_id": "A-2026-17",
        "reason": "r1",
        "category": "evidence",
        "scope": {"all_units": True},
    }
    [unlink_event] = events(station, "unlinked", evidence_id)
    assert unlink_event.details["reason"] == "case closed"
    holds = [e.details["legal_hold"] for e in events(station, "legal_hold_changed", evidence_id)]
    assert holds == [True, False]


@pytest.mark.stores("mini", "cluster")
def test_hold_stays_until_the_last_of_two_cases_is_unlinked(station):
    item = station.ingest_bytes("ABC1234_012345_20260301090000_0002.MP4", b"two cases " * 3000)
    evidence_id, key = item["evidence_id"], item["original_key"]
    version = station.s3.head_object(Bucket=station.bucket, Key=key)["VersionId"]

    for case in ("CASE-1", "CASE-2"):
        out = json.loads(
            station.cli("link", case, evidence_id, "--reason", f"in {case}", "--json").stdout
        )
        assert out["legal_hold"] is True
    first = json.loads(
        station.cli("unlink", "CASE-1", evidence_id, "--reason", "dropped", "--json").stdout
    )
    assert first["changed"] is True and first["legal_hold"] is True
    assert hold_of(station, key, version) == "ON"
    last = json.loads(
        station.cli("unlink", "CASE-2", evidence_id, "--reason", "closed", "--json").stdout
    )
    assert last["changed"] is True and last["legal_hold"] is False
    assert hold_of(station, key, version) == "OFF"
    actors = {e.actor for e in events(station, "linked", evidence_id)}
    assert len(actors) == 1 and next(iter(actors)).startswith("os:")


def test_unlink_keeps_the_hold_when_the_items_own_category_is_permanent(station):
    station.write_config('[retention]\ndefault_category = "evidence"\n')
    item = station.ingest_bytes("ABC1234_012345_20260301100000_0003.MP4", b"permanent " * 3000)
    evidence_id, key = item["evidence_id"], item["original_key"]
    version = station.s3.head_object(Bucket=station.bucket, Key=key)["VersionId"]
    station.cli("link", "P-1", evidence_id, "--reason", "r")
    out = json.loads(station.cli("unlink", "P-1", evidence_id, "--reason", "r", "--json").stdout)
    assert out["legal_hold"] is True
    assert hold_of(station, key, version) == "ON"


def test_link_and_unlink_are_idempotent(station):
    item = station.ingest_bytes("ABC1234_012345_20260301110000_0004.MP4", b"again " * 3000)
    evidence_id = item["evidence_id"]
    first = json.loads(station.cli("link", "K-9", evidence_id, "--reason", "a", "--json").stdout)
    again = json.loads(station.cli("link", "K-9", evidence_id, "--reason", "b", "--json").stdout)
    assert first["changed"] is True and again["changed"] is False
    assert again["reason"] == "a", "a repeated link keeps the original link record"
    archive = station.archive()
    try:
        with archive.db.session() as session:
            rows = session.scalar(select(func.count()).select_from(CaseLink))
    finally:
        archive.close()
    assert rows == 1
    assert len(events(station, "linked", evidence_id)) == 1

    gone = json.loads(station.cli("unlink", "K-9", evidence_id, "--reason", "x", "--json").stdout)
    twice = json.loads(station.cli("unlink", "K-9", evidence_id, "--reason", "x", "--json").stdout)
    assert gone["changed"] is True and twice["changed"] is False
    assert len(events(station, "unlinked", evidence_id)) == 1
    assert len(events(station, "legal_hold_changed", evidence_id)) == 2


def test_find_case_lists_only_the_cases_items_and_show_lists_links(station):
    a = station.ingest_bytes("ABC1234_012345_20260301120000_0005.MP4", b"a" * 5000)
    b = station.ingest_bytes("ABC1234_012345_20260301120500_0006.MP4", b"b" * 5000)
    station.ingest_bytes("ABC1234_012345_20260301121000_0007.MP4", b"c" * 5000)
    for item in (a, b):
        station.cli("link", "F-1", item["evidence_id"], "--reason", "r")
    found = json.loads(station.cli("find", "--case", "F-1", "--json").stdout)
    assert sorted(i["evidence_id"] for i in found["items"]) == sorted(
        [a["evidence_id"], b["evidence_id"]]
    )
    assert json.loads(station.cli("find", "--case", "nope", "--json").stdout)["count"] == 0
    shown = json.loads(station.cli("show", a["evidence_id"], "--json").stdout)
    assert [c["case_id"] for c in shown["cases"]] == ["F-1"]
    assert shown["effective_category"] == "evidence"


def test_bad_case_ids_unknown_evidence_and_blank_reasons_are_refused(station):
    item = station.ingest_bytes("ABC1234_012345_20260301130000_0008.MP4", b"x" * 5000)
    for case_id in (" padded", "a/b", "x" * 129):
        result = station.cli("link", case_id, item["evidence_id"], "--reason", "r", check=False)
        assert result.returncode == 1 and "refused" in result.stderr
    blank = station.cli("link", "C", item["evidence_id"], "--reason", "  ", check=False)
    assert blank.returncode == 1 and "reason" in blank.stderr
    unknown = station.cli("link", "C", "ev-000000000000000000000000", "--reason", "r", check=False)
    assert unknown.returncode == 1 and "no evidence" in unknown.stderr
    assert events(station, "linked", item["evidence_id"]) == []
