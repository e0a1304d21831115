"""`strongroom catalog rebuild` makes a new catalog from the bucket alone: the
rebuilt evidence rows, playback copies, custody events (exact leaf bytes at
their ledger index), case links and ledger state equal the live catalog's, and
the rebuilt catalog works (audit, link, checkpoint). A manifest re-signed with
another key is refused and fails the command; disposed items come back as
disposed; an existing file is never overwritten."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import media_clips
import pytest
from conftest import wait_until
from ingest_helpers import SHORT_RETENTION
from nacl.signing import SigningKey
from sqlalchemy import select

from archive.cases import CaseLink
from archive.db import Database
from archive.derivatives import Derivative
from archive.dsse import EVIDENCE_PAYLOAD_TYPE, envelope_bytes, sign_envelope
from archive.ledger_models import LedgerCheckpoint, LedgerState
from archive.models import CustodyEvent, Evidence

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

#: what a rebuilt playback copy must carry over (attempt bookkeeping is not in the bucket)
COPY_FIELDS = (
    "evidence_id",
    "state",
    "action",
    "reason",
    "sha256",
    "size",
    "key",
    "version_id",
    "checksum",
    "manifest_key",
    "manifest_version_id",
    "probe",
    "ffmpeg_version",
    "ffmpeg_args",
)
EVENT_FIELDS = ("ledger_index", "kind", "evidence_id", "actor", "at", "details", "leaf")
LINK_FIELDS = ("case_id", "evidence_id", "linked_by", "reason", "linked_at")


def table(where: Path | str, model: type, *order: object) -> list[dict]:
    """Every row of ``model`` in the SQLite catalog at ``where`` (or at that URL), as dicts."""
    db = Database(where if isinstance(where, str) else f"sqlite:///{where}")
    try:
        with db.session() as session:
            columns = [c.key for c in model.__table__.columns]
            rows = session.scalars(select(model).order_by(*order))
            return [{c: getattr(row, c) for c in columns} for row in rows]
    finally:
        db.dispose()


def pick(rows: list[dict], fields: tuple[str, ...]) -> list[dict]:
    return [{f: row[f] for f in fields} for row in rows]


def rebuild(station, target: Path, check: bool = True):
    result = station.cli("catalog", "rebuild", "--into", str(target), "--json", check=check)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def test_rebuilt_catalog_equals_the_live_one_and_works(station, tmp_path):
    clip = media_clips.make_h264_mp4(
        tmp_path / "ABC1234_012345_20260301083015_0001.mp4", faststart=True
    )
    drop = tmp_path / "drop"
    drop.mkdir()
    clip.rename(drop / clip.name)
    (drop / "ABC1234_012345_20260301090000_0002_IMP.MP4").write_bytes(b"important " * 3000)
    (drop / "odd name.bin").write_bytes(b"plain " * 3000)
    items = json.loads(station.cli("ingest", str(drop), "--playback", "--json").stdout)["items"]
    ids = {Path(i["file"]).name: i["evidence_id"] for i in items}
    video = ids[clip.name]
    important = ids["ABC1234_012345_20260301090000_0002_IMP.MP4"]
    station.cli("link", "CASE-1", video, "--reason", "complaint 1")
    station.cli("link", "CASE-2", important, "--reason", "first look")
    station.cli("unlink", "CASE-2", important, "--reason", "wrong case")
    station.cli("link", "CASE-2", important, "--reason", "right case after all")
    station.cli("ledger", "checkpoint")

    live = station.absolute_catalog_url  # SQLite or PostgreSQL; the rebuild is SQLite
    target = tmp_path / "rebuilt" / "catalog.db"
    _, summary = rebuild(station, target)
    assert summary["ok"] is True, summary["problems"]
    assert (summary["items"], summary["derivatives"], summary["links"]) == (3, 1, 2)

    assert table(target, Evidence, Evidence.evidence_id) == table(
        live, Evidence, Evidence.evidence_id
    )
    copies = pick(table(target, Derivative, Derivative.id), COPY_FIELDS)
    stored = [
        row
        for row in pick(table(live, Derivative, Derivative.id), COPY_FIELDS)
        if row["state"] == "stored"
    ]
    assert copies == stored and stored[0]["evidence_id"] == video
    live_events = table(live, CustodyEvent, CustodyEvent.seq)
    assert all(e["ledger_index"] is not None for e in live_events), "all events checkpointed"
    rebuilt_events = table(target, CustodyEvent, CustodyEvent.ledger_index)
    assert summary["events"] == len(live_events) == len(rebuilt_events)
    assert pick(rebuilt_events, EVENT_FIELDS) == pick(
        sorted(live_events, key=lambda e: e["ledger_index"]), EVENT_FIELDS
    )
    order = (CaseLink.case_id, CaseLink.evidence_id)
    links = pick(table(target, CaseLink, *order), LINK_FIELDS)
    assert links == pick(table(live, CaseLink, *order), LINK_FIELDS)
    assert [(row["case_id"], row["reason"]) for row in links] == [
        ("CASE-1", "complaint 1"),
        ("CASE-2", "right case after all"),
    ]
    state = ("id", "size", "hashes")
    assert pick(table(target, LedgerState, LedgerState.id), state) == pick(
        table(live, LedgerState, LedgerState.id), state
    )
    cp_fields = tuple(
        c.key
        for c in LedgerCheckpoint.__table__.columns
        if c.key not in ("created_at", "stored_at")
    )
    assert pick(table(target, LedgerCheckpoint, LedgerCheckpoint.size), cp_fields) == pick(
        table(live, LedgerCheckpoint, LedgerCheckpoint.size), cp_fields
    )

    # the rebuilt catalog is a working catalog: it audits clean, takes a link, and
    # its sequencer continues the same log
    on_rebuilt = {"STRONGROOM_CATALOG__URL": f"sqlite:///{target}"}
    station.cli("link", "CASE-3", ids["odd name.bin"], "--reason", "after rebuild", env=on_rebuilt)
    station.cli("ledger", "checkpoint", env=on_rebuilt)
    audit = json.loads(station.cli("ledger", "audit", "--json", env=on_rebuilt).stdout)
    # two new leaves: linked, legal_hold_changed
    assert audit["ok"] is True and audit["leaves"] == len(live_events) + 2

    # never over an existing file (here: the rebuilt catalog just used)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    refused, _ = rebuild(station, target, check=False)
    assert refused.returncode == 1 and "exists" in refused.stderr
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    assert not list(target.parent.glob(".*partial*")), "no partial file is left behind"


#: items expire ~4 s after ingest; the case category stays permanent
SHORT = SHORT_RETENTION + "[transcode]\nenabled = false\n"


def test_resigned_manifest_is_refused_and_disposed_items_stay_disposed(station, tmp_path):
    station.write_config(SHORT)
    kept = station.ingest_bytes("ABC1234_012345_20261120080000_0001.MP4", b"kept " * 4000)
    forged = station.ingest_bytes("ABC1234_012345_20261120081000_0002.MP4", b"forged " * 4000)
    gone = station.ingest_bytes("ABC1234_012345_20261120082000_0003.MP4", b"gone " * 4000)
    station.cli("link", "CASE-1", kept["evidence_id"], "--reason", "keep it")
    station.cli("link", "CASE-2", forged["evidence_id"], "--reason", "keep it too")

    def expired() -> bool:
        head = station.s3.head_object(Bucket=station.bucket, Key=gone["original_key"])
        return head["ObjectLockRetainUntilDate"] < datetime.now(UTC)

    wait_until(expired, 60, message="expiry")
    plan = json.loads(station.cli("retention", "plan", "--json").stdout)
    assert [i["evidence_id"] for i in plan["plan"]["items"]] == [gone["evidence_id"]]
    for name in ("Officer Li", "Auditor Wang"):
        station.cli("retention", "approve", plan["plan_id"], "--by", name)
    station.cli("retention", "apply", plan["plan_id"])
    station.cli("ledger", "checkpoint")

    # an attacker with store keys writes a new version of a manifest, signed by another key
    s3 = station.s3
    body = s3.get_object(Bucket=station.bucket, Key=forged["manifest_key"])["Body"].read()
    payload = json.loads(base64.b64decode(json.loads(body)["payload"]))
    payload["source"]["officer"] = "999999"
    envelope = envelope_bytes(sign_envelope(payload, EVIDENCE_PAYLOAD_TYPE, SigningKey.generate()))
    s3.put_object(
        Bucket=station.bucket,
        Key=forged["manifest_key"],
        Body=envelope,
        ChecksumAlgorithm="SHA256",
    )

    target = tmp_path / "rebuilt.db"
    result, summary = rebuild(station, target, check=False)
    assert result.returncode == 1, result.stderr
    problems = {(p["check"], p["subject"]) for p in summary["problems"]}
    assert ("manifest.signature", forged["manifest_key"]) in problems
    assert ("manifest.rewritten", forged["manifest_key"]) in problems
    assert ("link.orphan", f"CASE-2/{forged['evidence_id']}") in problems
    assert summary["items"] == 2 and summary["disposed"] == 1 and summary["links"] == 1

    rows = {row["evidence_id"]: row for row in table(target, Evidence, Evidence.evidence_id)}
    assert forged["evidence_id"] not in rows, "a manifest that does not verify is not imported"
    assert rows[gone["evidence_id"]]["state"] == "disposed"
    assert rows[kept["evidence_id"]]["state"] == "sealed"
    assert rows[kept["evidence_id"]]["legal_hold"] is True  # from the store's HEAD
    # the forged item's history is still there: events are the ledger's, not the manifest's
    kinds = {
        e["kind"]
        for e in table(target, CustodyEvent, CustodyEvent.seq)
        if e["evidence_id"] == forged["evidence_id"]
    }
    assert {"sealed", "linked"} <= kinds
    text = station.cli("catalog", "rebuild", "--into", str(tmp_path / "again.db"), check=False)
    assert text.returncode == 1 and "PROBLEM" in text.stderr and "does not verify" in text.stderr
