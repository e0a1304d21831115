"""The custody ledger: gap-free sequencing under concurrency, locked segments
and signed checkpoints in the bucket, proofs that verify, and an audit that
rebuilds the log from the bucket and names every tampering."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from sqlalchemy import delete, select, update

from archive import ledger
from archive.merkle import consistency_proof, leaf_hash, verify_inclusion
from archive.models import CustodyEvent
from archive.note import format_checkpoint, open_checkpoint, parse_vkey, sign_note
from tests.conftest import wait_until
from verify.audit import SubtreeHashes

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def ingest_files(station, tmp_path: Path, count: int, tag: str = "a") -> list[dict]:
    folder = tmp_path / f"in-{tag}"
    folder.mkdir()
    for i in range(count):
        (folder / f"ABC1234_012345_2026030108{i:02d}15_000{i}.MP4").write_bytes(
            f"{tag} clip {i} ".encode() * 3000
        )
    return json.loads(station.cli("ingest", str(folder), "--json").stdout)["items"]


def audit_json(station) -> tuple[int, dict]:
    result = station.cli("ledger", "audit", "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def test_checkpoint_writes_locked_segment_and_signed_note(station, tmp_path):
    items = ingest_files(station, tmp_path, 2)
    first = json.loads(station.cli("ledger", "checkpoint", "--json").stdout)
    archive = station.archive()
    try:
        with archive.db.session() as s:
            leaves = list(s.scalars(select(CustodyEvent.leaf).order_by(CustodyEvent.seq)))
            indices = list(s.scalars(select(CustodyEvent.ledger_index).order_by(CustodyEvent.seq)))
        vkey = ledger.checkpoint_document(archive)["vkey"]
    finally:
        archive.close()
    assert first["created"] and first["size"] == len(leaves) >= 2 * len(items)
    assert indices == list(range(len(leaves)))

    s3 = station.s3
    segment = s3.get_object(Bucket=station.bucket, Key=f"ledger/leaves/0-{len(leaves) - 1}.jsonl")
    assert segment["Body"].read() == b"".join(leaf + b"\n" for leaf in leaves)
    assert segment["ObjectLockMode"] == "COMPLIANCE"
    note = s3.get_object(Bucket=station.bucket, Key=f"ledger/checkpoints/{len(leaves)}")
    assert note["ObjectLockMode"] == "COMPLIANCE"
    name, key = parse_vkey(vkey)
    cp, _ = open_checkpoint(note["Body"].read(), {name: key})
    assert cp.size == len(leaves) and cp.origin == f"strongroom.local/{station.bucket}"
    assert cp.root_hash.hex() == first["root_hash"]

    again = json.loads(station.cli("ledger", "checkpoint", "--json").stdout)
    assert again == {"created": False}, "no new leaves must mean no new checkpoint"

    ingest_files(station, tmp_path, 1, tag="b")
    second = json.loads(station.cli("ledger", "checkpoint", "--json").stdout)
    assert second["segment_key"] == f"ledger/leaves/{len(leaves)}-{second['size'] - 1}.jsonl"
    code, report = audit_json(station)
    assert code == 0 and report["ok"], report
    assert report["checkpoints"] == 2 and report["leaves"] == second["size"]


def test_prove_gives_inclusion_proofs_that_verify_against_the_signed_root(station, tmp_path):
    items = ingest_files(station, tmp_path, 3)
    archive = station.archive()
    try:
        with pytest.raises(LookupError):
            ledger.checkpoint_document(archive)
        ledger.checkpoint(archive)
        with pytest.raises(KeyError):
            ledger.proof_document(archive, "ev-000000000000000000000000")
    finally:
        archive.close()
    target = items[1]["evidence_id"]
    document = json.loads(station.cli("ledger", "prove", target, "--json").stdout)
    cp = document["checkpoint"]
    name, key = parse_vkey(cp["vkey"])
    signed, _ = open_checkpoint(cp["note"], {name: key})
    assert signed.root_hash.hex() == cp["root_hash"] and signed.size == cp["size"]
    kinds = set()
    for entry in document["leaves"]:
        leaf = entry["leaf"].encode()
        assert json.loads(leaf)["evidence_id"] == target
        assert leaf_hash(leaf).hex() == entry["leaf_hash"]
        proof = [bytes.fromhex(h) for h in entry["inclusion_proof"]]
        verify_inclusion(leaf_hash(leaf), entry["index"], signed.size, proof, signed.root_hash)
        kinds.add(json.loads(leaf)["kind"])
    assert {"stored", "sealed"} <= kinds


def test_concurrent_sequencers_assign_each_index_once_without_gaps(station, tmp_path):
    ingest_files(station, tmp_path, 4)
    archives = [station.archive() for _ in range(4)]
    results, errors = [], []
    start = threading.Barrier(len(archives))

    def run(archive):
        try:
            start.wait()
            results.append(ledger.checkpoint(archive))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in archives]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        made = [r for r in results if r is not None]
        assert len(made) == 1, "exactly one sequencer finds the new leaves"
        with archives[0].db.session() as s:
            indices = sorted(s.scalars(select(CustodyEvent.ledger_index)))
        assert indices == list(range(len(indices))) and made[0].size == len(indices)
    finally:
        for a in archives:
            a.close()
    assert audit_json(station)[0] == 0


def test_scheduler_checkpoints_new_leaves(station, tmp_path):
    station.write_config("[ledger]\ncheckpoint_minutes = 0.02\n")
    daemon = station.start_daemon()
    try:
        station.dock.mkdir(exist_ok=True)
        (station.dock / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(b"x" * 5000)
        s3 = station.s3

        def checkpoint_with_sealed():
            keys = s3.list_objects_v2(Bucket=station.bucket, Prefix="ledger/leaves/")
            for entry in keys.get("Contents", []):
                body = s3.get_object(Bucket=station.bucket, Key=entry["Key"])["Body"].read()
                if b'"kind":"released"' in body:
                    return True
            return False

        wait_until(checkpoint_with_sealed, 90, message="a scheduled checkpoint with the new leaves")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert audit_json(station)[0] == 0


def _problems(report: dict) -> list[tuple[str, str, str]]:
    return [(p["check"], p["subject"], p["message"]) for p in report["problems"]]


def test_audit_names_a_catalog_leaf_altered_or_removed(station, tmp_path):
    items = ingest_files(station, tmp_path, 2)
    station.cli("ledger", "checkpoint")
    victim = items[0]["evidence_id"]
    archive = station.archive()
    try:
        with archive.db.session() as s:
            altered = s.scalars(
                select(CustodyEvent).where(
                    CustodyEvent.evidence_id == victim, CustodyEvent.kind == "sealed"
                )
            ).one()
            index = altered.ledger_index
            s.execute(
                update(CustodyEvent)
                .where(CustodyEvent.seq == altered.seq)
                .values(leaf=altered.leaf.replace(b'"sealed"', b'"flagged"'))
            )
            removed = s.scalars(
                select(CustodyEvent).where(
                    CustodyEvent.evidence_id == items[1]["evidence_id"],
                    CustodyEvent.kind == "stored",
                )
            ).one()
            removed_index = removed.ledger_index
            s.execute(delete(CustodyEvent).where(CustodyEvent.seq == removed.seq))
    finally:
        archive.close()
    code, report = audit_json(station)
    assert code == 1
    problems = _problems(report)
    assert any(
        c == "catalog.leaf" and f"leaf {index} " in subj and victim in subj
        for c, subj, _ in problems
    ), problems
    assert any(
        c == "catalog.missing"
        and f"leaf {removed_index} " in subj
        and items[1]["evidence_id"] in subj
        for c, subj, _ in problems
    ), problems
    text = station.cli("ledger", "audit", check=False)
    assert text.returncode == 1 and victim in text.stderr + text.stdout


def test_audit_names_a_rewritten_leaf_segment(station, tmp_path):
    items = ingest_files(station, tmp_path, 2)
    made = json.loads(station.cli("ledger", "checkpoint", "--json").stdout)
    s3 = station.s3
    key = made["segment_key"]
    data = s3.get_object(Bucket=station.bucket, Key=key)["Body"].read()
    lines = data.split(b"\n")[:-1]
    victim = next(i for i, line in enumerate(lines) if b'"sealed"' in line)
    lines[victim] = lines[victim].replace(b'"sealed"', b'"flagged"')
    s3.put_object(Bucket=station.bucket, Key=key, Body=b"\n".join(lines) + b"\n")
    code, report = audit_json(station)
    assert code == 1
    checks = {c for c, _, _ in _problems(report)}
    assert {"object.rewritten", "checkpoint.root", "catalog.leaf"} <= checks, report
    evidence_id = json.loads(lines[victim])["evidence_id"]
    assert evidence_id in {i["evidence_id"] for i in items}
    assert any(
        c == "catalog.leaf" and f"leaf {victim} " in s and evidence_id in s
        for c, s, _ in _problems(report)
    )

    # a leaf dropped from a segment (a third version) shifts every later leaf
    s3.put_object(Bucket=station.bucket, Key=key, Body=b"\n".join(lines[1:]) + b"\n")
    code, report = audit_json(station)
    assert code == 1 and "segment.count" in {c for c, _, _ in _problems(report)}, report


def test_audit_names_a_rewritten_checkpoint(station, tmp_path):
    ingest_files(station, tmp_path, 2)
    made = json.loads(station.cli("ledger", "checkpoint", "--json").stdout)
    ingest_files(station, tmp_path, 1, tag="b")
    station.cli("ledger", "checkpoint")
    key = made["checkpoint_key"]
    size = made["size"]
    settings = station.settings()
    name = ledger.ledger_key_name(settings)
    forged_root = bytes(32)
    body = format_checkpoint(ledger.ledger_origin(settings), size, forged_root)
    s3 = station.s3
    # signed by another key under the station's key name
    s3.put_object(Bucket=station.bucket, Key=key, Body=sign_note(body, name, SigningKey.generate()))
    code, report = audit_json(station)
    problems = _problems(report)
    assert code == 1
    assert ("checkpoint.signature", key) in {(c, s) for c, s, _ in problems}, problems
    assert ("object.rewritten", key) in {(c, s) for c, s, _ in problems}, problems

    # re-signed with the station's own key (a stolen key): the root gives it away
    archive = station.archive()
    try:
        note = sign_note(body, name, archive.key.signing_key)
    finally:
        archive.close()
    s3.put_object(Bucket=station.bucket, Key=key, Body=note)
    code, report = audit_json(station)
    found = {(c, s) for c, s, _ in _problems(report)}
    assert code == 1
    latest = f"ledger/checkpoints/{report['latest_size']}"
    assert ("checkpoint.root", key) in found, report
    assert ("checkpoint.consistency", latest) in found, report
    assert ("catalog.checkpoint", key) in found


def test_audit_consistency_proofs_equal_the_reference_implementation():
    hashes = [leaf_hash(str(i).encode()) for i in range(70)]
    for n in range(1, 71):
        subtrees = SubtreeHashes(hashes[:n])
        for m in range(0, n + 1):
            assert subtrees.consistency_proof(m, n) == consistency_proof(hashes, m, new_size=n)
