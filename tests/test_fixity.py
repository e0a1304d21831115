"""Fixity and `strongroom verify`: untouched items pass; every tampering with
the store or the catalog is caught, names the item and the failed check, is
logged at ERROR, counted, and shown by `strongroom status` until resolved.
Sweeps go oldest-checked first within a byte budget, never past the cycle."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import timedelta

import pytest
from nacl.signing import SigningKey
from sqlalchemy import select, update

from archive.db import utcnow
from archive.derivatives import Derivative
from archive.dsse import DERIVATIVE_PAYLOAD_TYPE, envelope_bytes, sign_envelope
from archive.layout import derivative_key
from archive.metrics import REGISTRY
from archive.models import CustodyEvent, Evidence
from archive.seal import store_manifest
from archive.store import Retention
from tests.conftest import wait_until
from tests.test_ledger import ingest_files
from verify import fixity

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def verify_json(station, *args: str):
    result = station.cli("verify", *args, "--json", check=False)
    return result.returncode, json.loads(result.stdout), result.stderr


def failed_checks(document: dict) -> set[tuple[str, str]]:
    return {
        (item["evidence_id"], problem["check"])
        for item in document["items"]
        for problem in item["problems"]
    }


def add_playback_copy(archive, evidence_id: str, data: bytes) -> Derivative:
    """A stored playback copy with its signed lineage manifest, as the
    transcoder leaves it (made here without ffmpeg: fixity only reads bytes)."""
    sha = hashlib.sha256(data).hexdigest()
    with archive.db.session() as s:
        ev = s.get(Evidence, evidence_id)
    retention = Retention(ev.lock_mode, ev.retain_until, ev.legal_hold)
    stored = archive.store.put_bytes(derivative_key(sha), data, retention)
    payload = {
        "schema": "strongroom/derivative/v1",
        "evidence_id": evidence_id,
        "original": {"sha256": ev.sha256},
        "derivative": {"sha256": sha, "size": len(data)},
        "ffmpeg_version": "test",
        "args": [],
    }
    sealed = store_manifest(
        archive.store,
        archive.key,
        f"manifests/derivatives/{sha}.dsse.json",
        payload,
        DERIVATIVE_PAYLOAD_TYPE,
        retention,
        identity_fields=("derivative.sha256",),
    )
    row = Derivative(
        evidence_id=evidence_id,
        state="stored",
        action="remux",
        sha256=sha,
        size=len(data),
        key=stored.key,
        version_id=stored.version_id,
        manifest_key=sealed.stored.key,
        manifest_version_id=sealed.stored.version_id,
        probe={"kind": "video"},
    )
    with archive.db.session() as s:
        s.add(row)
    return row


@pytest.mark.stores("mini", "cluster")
def test_sweep_passes_untouched_items_and_records_each_result(station, tmp_path):
    items = ingest_files(station, tmp_path, 2)
    archive = station.archive()
    try:
        add_playback_copy(archive, items[0]["evidence_id"], b"playback " * 4000)
    finally:
        archive.close()
    result = station.cli("fixity", "--json")
    run = json.loads(result.stdout)
    assert run["ok"] and run["checked"] == 2 and run["failed"] == 0
    first = next(i for i in run["items"] if i["evidence_id"] == items[0]["evidence_id"])
    assert {o["kind"] for o in first["objects"]} == {
        "original",
        "manifest",
        "derivative",
        "derivative_manifest",
    }
    assert first["bytes_read"] == items[0]["size"] + len(b"playback " * 4000)

    archive = station.archive()
    try:
        with archive.db.session() as s:
            events = s.scalars(
                select(CustodyEvent).where(CustodyEvent.kind == "fixity_checked")
            ).all()
    finally:
        archive.close()
    assert {e.evidence_id for e in events} == {i["evidence_id"] for i in items}
    assert all(e.details["result"] == "ok" for e in events)

    status = json.loads(station.cli("status", "--json").stdout)
    assert status["fixity"]["last_run"]["checked"] == 2
    assert status["fixity"]["unresolved"] == []
    shown = json.loads(station.cli("show", items[0]["evidence_id"], "--json").stdout)
    assert shown["fixity"]["result"] == "ok"


@pytest.mark.stores("mini", "cluster")
def test_verify_names_an_original_overwritten_with_a_new_version(station, tmp_path):
    items = ingest_files(station, tmp_path, 2)
    victim = items[0]
    station.s3.put_object(Bucket=station.bucket, Key=victim["original_key"], Body=b"forged")
    code, document, _ = verify_json(station, "--all")
    assert code == 1
    assert failed_checks(document) == {(victim["evidence_id"], "original.current_version")}
    text = station.cli("verify", victim["evidence_id"], items[1]["evidence_id"], check=False)
    assert text.returncode == 1
    assert f"FAILED {victim['evidence_id']} [original.current_version]" in text.stderr, text.stderr
    assert items[1]["evidence_id"] not in text.stderr.split("FAILED", 1)[1]


@pytest.mark.stores("mini", "cluster")
def test_verify_names_a_deleted_original(station, tmp_path):
    (item,) = ingest_files(station, tmp_path, 1)
    station.s3.delete_object(Bucket=station.bucket, Key=item["original_key"])
    code, document, _ = verify_json(station, item["evidence_id"])
    assert code == 1
    problem = document["items"][0]["problems"][0]
    assert (problem["check"], problem["object"]) == (
        "original.current_version",
        item["original_key"],
    )
    assert "deleted" in problem["message"]


def test_verify_names_a_manifest_replaced_by_one_signed_with_another_key(station, tmp_path):
    (item,) = ingest_files(station, tmp_path, 1)
    s3 = station.s3
    envelope = json.loads(
        s3.get_object(Bucket=station.bucket, Key=item["manifest_key"])["Body"].read()
    )
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["source"]["officer"] = "999999"
    forged = sign_envelope(payload, envelope["payloadType"], SigningKey.generate())
    s3.put_object(Bucket=station.bucket, Key=item["manifest_key"], Body=envelope_bytes(forged))
    code, document, _ = verify_json(station, item["evidence_id"])
    assert code == 1
    assert failed_checks(document) == {
        (item["evidence_id"], "manifest.current_version"),
        (item["evidence_id"], "manifest.signature"),
    }
    signature = next(
        p for p in document["items"][0]["problems"] if p["check"] == "manifest.signature"
    )
    assert "unknown key" in signature["message"]


def test_catalog_hash_edit_is_loud_and_shown_until_resolved(station, tmp_path, caplog):
    items = ingest_files(station, tmp_path, 2)
    victim = items[0]["evidence_id"]
    archive = station.archive()
    try:
        with archive.db.session() as s:
            s.execute(
                update(Evidence).where(Evidence.evidence_id == victim).values(sha256="0" * 64)
            )
        before = (
            REGISTRY.get_sample_value(
                "strongroom_fixity_failures_total", {"check": "catalog.sha256"}
            )
            or 0
        )
        with caplog.at_level(logging.ERROR, logger="strongroom.fixity"):
            run = fixity.run_checks(archive, [victim], trigger="verify")
        assert [(p.check, run.items[0].evidence_id) for p in run.items[0].problems] == [
            ("catalog.sha256", victim)
        ]
        assert any(
            victim in r.getMessage() and "catalog.sha256" in r.getMessage()
            for r in caplog.records
            if r.levelno == logging.ERROR
        )
        after = REGISTRY.get_sample_value(
            "strongroom_fixity_failures_total", {"check": "catalog.sha256"}
        )
        assert after == before + 1

        status = json.loads(station.cli("status", "--json").stdout)
        (unresolved,) = status["fixity"]["unresolved"]
        assert unresolved["evidence_id"] == victim
        assert unresolved["problems"][0]["check"] == "catalog.sha256"
        assert "catalog.sha256" in station.cli("status").stdout + station.cli("status").stderr

        with archive.db.session() as s:  # repaired from the signed manifest
            s.execute(
                update(Evidence)
                .where(Evidence.evidence_id == victim)
                .values(sha256=items[0]["sha256"])
            )
    finally:
        archive.close()
    assert station.cli("verify", victim, check=False).returncode == 0
    status = json.loads(station.cli("status", "--json").stdout)
    assert status["fixity"]["unresolved"] == []


@pytest.mark.stores("mini", "cluster")
def test_verify_names_lock_state_that_differs_from_the_catalog(station, tmp_path):
    (item,) = ingest_files(station, tmp_path, 1)
    archive = station.archive()
    try:
        with archive.db.session() as s:
            ev = s.get(Evidence, item["evidence_id"])
            s.execute(
                update(Evidence)
                .where(Evidence.evidence_id == item["evidence_id"])
                .values(legal_hold=True, retain_until=ev.retain_until + timedelta(days=30))
            )
    finally:
        archive.close()
    code, document, _ = verify_json(station, item["evidence_id"])
    assert code == 1
    assert failed_checks(document) == {
        (item["evidence_id"], "lock.legal_hold"),
        (item["evidence_id"], "lock.retain_until"),
    }


def test_verify_names_a_playback_copy_overwritten(station, tmp_path):
    (item,) = ingest_files(station, tmp_path, 1)
    archive = station.archive()
    try:
        copy = add_playback_copy(archive, item["evidence_id"], b"playback " * 3000)
    finally:
        archive.close()
    assert station.cli("verify", item["evidence_id"], check=False).returncode == 0
    station.s3.put_object(Bucket=station.bucket, Key=copy.key, Body=b"other playback")
    code, document, _ = verify_json(station, item["evidence_id"])
    assert code == 1
    assert failed_checks(document) == {(item["evidence_id"], "derivative.current_version")}


def test_sweep_takes_oldest_checked_first_within_budget_but_never_past_the_cycle(station, tmp_path):
    items = ingest_files(station, tmp_path, 3)
    station.write_config("[fixity]\nbytes_per_run = 1\n")
    archive = station.archive()
    try:
        with archive.db.session() as s:
            query = select(Evidence.evidence_id).order_by(Evidence.sealed_at, Evidence.evidence_id)
            order = list(s.scalars(query))
        assert sorted(order) == sorted(i["evidence_id"] for i in items)
        seen = []
        for _ in range(4):
            run = fixity.sweep(archive)
            assert len(run.items) == 1, "a budget smaller than one item still checks one"
            seen.append(run.items[0].evidence_id)
        assert seen == [*order, order[0]], "never-checked first, then the longest unchecked"
    finally:
        archive.close()

    archive = station.archive()
    try:  # a month on, every item is past the 30-day cycle: all are taken, budget or not
        later = utcnow() + timedelta(days=30, seconds=1)
        assert sorted(fixity.plan_sweep(archive, now=later)) == sorted(order)
        assert len(fixity.plan_sweep(archive)) == 1
    finally:
        archive.close()


def test_daemon_runs_fixity_sweeps_on_schedule(station, tmp_path):
    station.write_config("[fixity]\ninterval_minutes = 0.02\n")
    daemon = station.start_daemon()
    try:
        station.dock.mkdir(exist_ok=True)
        (station.dock / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(b"y" * 7000)

        def swept():
            # the daemon may still be starting (the catalog is made in one
            # transaction by archive.schema): look again until status answers
            result = station.cli("status", "--json", check=False)
            if result.returncode != 0:
                return False
            status = json.loads(result.stdout)
            last = status["fixity"]["last_run"]
            return last and last["trigger"] == "schedule" and last["checked"] >= 1

        wait_until(swept, 90, interval=1, message="a scheduled fixity sweep of the new item")
    finally:
        assert daemon.stop() == 0, daemon.output()
