"""``strongroom ledger audit``: rebuild the custody ledger from the bucket alone
and judge it, then hold the catalog up against it.

The bucket is the evidence here, the catalog only an index: the audit reads
every leaf segment and every checkpoint, checks each checkpoint's signature
and origin, recomputes each root from the leaves, verifies an RFC 9162
consistency proof between consecutive checkpoints, and notes any ledger object
with more than one version (the store refuses nothing to a raw client with
keys; our writes are create-only, so a second version is always a rewrite).
Then every catalog leaf is compared with the bucket's. It lists every problem
it finds, never only the first.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from archive.canonical import canonical_json
from archive.context import Archive
from archive.layout import (
    CHECKPOINTS,
    LEDGER,
    SEGMENTS,
    parse_checkpoint_key,
    parse_segment_key,
    segment_key,
)
from archive.ledger import (
    LedgerError,
    ledger_key_name,
    ledger_origin,
    parse_segment,
)
from archive.ledger_models import LedgerCheckpoint, LedgerState
from archive.merkle import (
    HASH_SIZE,
    CompactRange,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
)
from archive.models import CustodyEvent
from archive.note import Checkpoint, NoteError, open_checkpoint


@dataclass(frozen=True)
class Problem:
    """One thing wrong: which check, about what, in words."""

    check: str
    subject: str
    message: str


@dataclass
class AuditReport:
    leaves: int = 0
    checkpoints: int = 0
    latest_size: int | None = None
    catalog_leaves: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, check: str, subject: str, message: str) -> None:
        self.problems.append(Problem(check, subject, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "leaves": self.leaves,
            "checkpoints": self.checkpoints,
            "latest_size": self.latest_size,
            "catalog_leaves": self.catalog_leaves,
            "problems": [asdict(p) for p in self.problems],
        }


class SubtreeHashes:
    """Every perfect subtree's hash, level by level (about 2 x 32 bytes per leaf).

    ``archive.merkle.consistency_proof`` rehashes its ranges on every call,
    which costs O(n) per checkpoint pair and O(n x checkpoints) for a whole
    audit. Any range the RFC's recursion visits starts at a multiple of a
    power of two at least its length, so it splits into aligned perfect
    subtrees read from here: O(log n) per range, O(n) once to build.
    """

    def __init__(self, leaf_hashes: list[bytes]) -> None:
        self.levels = [b"".join(leaf_hashes)]
        count = len(leaf_hashes)
        while count > 1:
            below = self.levels[-1]
            above = bytearray()
            for i in range(count // 2):
                at = 2 * i * HASH_SIZE
                above += node_hash(below[at : at + HASH_SIZE], below[at + HASH_SIZE : at + 64])
            self.levels.append(bytes(above))
            count //= 2

    def _node(self, height: int, index: int) -> bytes:
        at = index * HASH_SIZE
        return self.levels[height][at : at + HASH_SIZE]

    def range_root(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range the RFC 9162 recursion produces."""
        pieces = []
        position = lo
        length = hi - lo
        for height in reversed(range(length.bit_length())):
            if length >> height & 1:
                pieces.append(self._node(height, position >> height))
                position += 1 << height
        result = pieces[-1]
        for left in reversed(pieces[:-1]):
            result = node_hash(left, result)
        return result

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1, as archive.merkle builds it."""
        if old_size in (0, new_size):
            return []
        siblings: list[bytes] = []
        lo, hi, m = 0, new_size, old_size
        complete = True
        while m != hi - lo:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if m <= k:
                siblings.append(self.range_root(lo + k, hi))
                hi = lo + k
            else:
                siblings.append(self.range_root(lo, lo + k))
                lo += k
                m -= k
                complete = False
        proof = [] if complete else [self.range_root(lo, hi)]
        proof.extend(reversed(siblings))
        return proof


def _versions(archive: Archive, prefix: str) -> Iterator[dict[str, Any]]:
    """Every version and delete marker under ``prefix`` (ObjectStore has no such call)."""
    paginator = archive.store.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=archive.store.bucket, Prefix=prefix):
        for entry in page.get("Versions", []):
            yield {"key": entry["Key"], "version_id": entry.get("VersionId"), "marker": False}
        for marker in page.get("DeleteMarkers", []):
            yield {"key": marker["Key"], "version_id": marker.get("VersionId"), "marker": True}


def _leaf_subject(index: int, leaf: bytes | None) -> str:
    """``leaf 7 (sealed ev-…)``: a leaf named by its index and, if readable, its item."""
    if leaf is None:
        return f"leaf {index}"
    try:
        doc = json.loads(leaf)
        return f"leaf {index} ({doc.get('kind')} {doc.get('evidence_id') or '-'})"
    except (ValueError, AttributeError):
        return f"leaf {index}"


def audit(archive: Archive) -> AuditReport:
    """Check the whole ledger; see the module doc. Reads only."""
    report = AuditReport()
    leaves, signed = read_bucket_ledger(archive, report)
    check_catalog(archive, report, leaves, signed)
    return report


def read_bucket_ledger(
    archive: Archive, report: AuditReport
) -> tuple[list[bytes], dict[int, tuple[bytes, str]]]:
    """The ledger as the bucket alone holds it: leaves ``0..n-1`` and the verified
    checkpoints ``{size: (signed root, note text)}``; every problem goes to ``report``.
    ``catalog rebuild`` reads the ledger with this too."""
    leaves = _read_segments(archive, report)
    _check_versions(archive, report)
    signed = _check_checkpoints(archive, report, leaves)
    return leaves, signed


def read_bucket_leaves(archive: Archive) -> tuple[list[bytes], list[Problem]]:
    """The contiguous leaves ``0..n-1`` as the bucket holds them, and the
    problems met reading them (the custody report proves against these)."""
    report = AuditReport()
    leaves = _read_segments(archive, report)
    return leaves, list(report.problems)


def _read_segments(archive: Archive, report: AuditReport) -> list[bytes]:
    """The contiguous leaves ``0..n-1`` as stored; gaps and overlaps are problems."""
    segments: list[tuple[int, int, str]] = []
    for key in archive.store.list_keys(SEGMENTS):
        span = parse_segment_key(key)
        if span is None:
            report.add("segment.name", key, "not a ledger segment name (<first>-<last>.jsonl)")
            continue
        segments.append((*span, key))
    segments.sort()
    leaves: list[bytes] = []
    contiguous = True
    for first, last, key in segments:
        if first != len(leaves) or not contiguous:
            if first > len(leaves):
                report.add(
                    "segment.missing",
                    segment_key(len(leaves), first - 1),
                    f"leaves {len(leaves)}..{first - 1} are not in the bucket",
                )
            else:
                report.add("segment.overlap", key, f"overlaps leaves before {len(leaves)}")
            contiguous = False
            continue
        try:
            lines = parse_segment(archive.store.get_bytes(key))
        except LedgerError as exc:
            report.add("segment.format", key, str(exc))
            contiguous = False
            continue
        if len(lines) != last - first + 1:
            report.add(
                "segment.count",
                key,
                f"holds {len(lines)} leaves, its name says {last - first + 1}",
            )
            contiguous = False
            continue
        for offset, line in enumerate(lines):
            _check_leaf_form(report, first + offset, line)
        leaves.extend(lines)
    report.leaves = len(leaves)
    return leaves


def _check_leaf_form(report: AuditReport, index: int, leaf: bytes) -> None:
    try:
        document = json.loads(leaf)
        canonical = canonical_json(document) == leaf
    except ValueError:
        document, canonical = None, False
    if not canonical or not isinstance(document, dict) or "kind" not in document:
        report.add("leaf.format", _leaf_subject(index, leaf), "is not a canonical JSON event")


def _check_versions(archive: Archive, report: AuditReport) -> None:
    """Our ledger writes are create-only: more than one version means a rewrite."""
    counts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in _versions(archive, LEDGER):
        counts[entry["key"]].append(entry)
    for key, entries in sorted(counts.items()):
        markers = sum(1 for e in entries if e["marker"])
        if markers:
            report.add("object.deleted", key, f"has {markers} delete marker(s)")
        if len(entries) - markers > 1:
            report.add(
                "object.rewritten",
                key,
                f"has {len(entries) - markers} versions; ledger objects are written once",
            )


def _open_with_any(text: bytes, verifier_sets: list[dict[str, bytes]]) -> Checkpoint:
    """The checkpoint, verified by the first trusted key that signed it (the
    same key name may have had several keys across rotations)."""
    error: NoteError | None = None
    for verifiers in verifier_sets:
        try:
            return open_checkpoint(text, verifiers)[0]
        except NoteError as exc:
            error = error or exc
    raise error or NoteError("no trusted key")


def _check_checkpoints(
    archive: Archive, report: AuditReport, leaves: list[bytes]
) -> dict[int, tuple[bytes, str]]:
    """Verify every stored checkpoint; returns ``{size: (signed root, note text)}``."""
    settings = archive.settings
    name = ledger_key_name(settings)
    # the current key and every configured retired one: a checkpoint signed
    # before a rotation verifies with the key of its time
    verifier_sets = [{name: raw} for raw in archive.key.public_keys().values()]
    origin = ledger_origin(settings)
    sizes: list[tuple[int, str]] = []
    for key in archive.store.list_keys(CHECKPOINTS):
        size = parse_checkpoint_key(key)
        if size is None:
            report.add("checkpoint.name", key, "not a checkpoint name (a tree size)")
            continue
        sizes.append((size, key))
    sizes.sort()
    report.checkpoints = len(sizes)
    signed: dict[int, tuple[bytes, str]] = {}
    tree = CompactRange()
    hashes = [leaf_hash(leaf) for leaf in leaves]
    subtrees = SubtreeHashes(hashes)
    previous: tuple[int, bytes] | None = None
    for size, key in sizes:
        text = archive.store.get_bytes(key)
        try:
            cp = _open_with_any(text, verifier_sets)
        except NoteError as exc:
            report.add("checkpoint.signature", key, f"does not verify: {exc}")
            continue
        if cp.origin != origin:
            report.add("checkpoint.origin", key, f"origin {cp.origin!r}, expected {origin!r}")
        if cp.size != size:
            report.add("checkpoint.size", key, f"says tree size {cp.size}, its key says {size}")
            continue
        signed[size] = (cp.root_hash, text.decode("utf-8"))
        report.latest_size = size
        if size > len(leaves):
            report.add(
                "checkpoint.leaves",
                key,
                f"covers {size} leaves but the bucket holds {len(leaves)} contiguous leaves",
            )
            continue
        while tree.size < size:
            tree.append(hashes[tree.size])
        if tree.root() != cp.root_hash:
            report.add(
                "checkpoint.root",
                key,
                f"signed root {cp.root_hash.hex()} differs from the root of the bucket's "
                f"first {size} leaves ({tree.root().hex()}): a leaf was altered or removed",
            )
        if previous is not None:
            old_size, old_root = previous
            try:
                proof = subtrees.consistency_proof(old_size, size)
                verify_consistency(old_size, size, old_root, cp.root_hash, proof)
            except ProofError as exc:
                report.add(
                    "checkpoint.consistency",
                    key,
                    f"is not consistent with checkpoint {old_size}: {exc}",
                )
        previous = (size, cp.root_hash)
    return signed


def check_catalog(
    archive: Archive,
    report: AuditReport,
    leaves: list[bytes],
    signed: dict[int, tuple[bytes, str]],
) -> None:
    """The catalog's leaves, state and checkpoint rows must agree with the bucket."""
    with archive.db.session() as session:
        rows = session.execute(
            select(
                CustodyEvent.ledger_index,
                CustodyEvent.seq,
                CustodyEvent.kind,
                CustodyEvent.evidence_id,
                CustodyEvent.actor,
                CustodyEvent.leaf,
            )
            .where(CustodyEvent.ledger_index.is_not(None))
            .order_by(CustodyEvent.ledger_index)
        ).all()
        state = session.get(LedgerState, 1)
        checkpoints = list(
            session.scalars(
                select(LedgerCheckpoint)
                .where(LedgerCheckpoint.stored_at.is_not(None))
                .order_by(LedgerCheckpoint.size)
            )
        )
    report.catalog_leaves = len(rows)
    published = checkpoints[-1].size if checkpoints else 0
    seen: set[int] = set()
    for index, seq, kind, evidence_id, actor, leaf in rows:
        assert index is not None  # the query above takes only indexed events
        seen.add(index)
        subject = _leaf_subject(index, leaves[index] if index < len(leaves) else leaf)
        if index < len(leaves):
            if leaf != leaves[index]:
                report.add(
                    "catalog.leaf",
                    subject,
                    f"catalog row seq {seq} holds another leaf than the bucket "
                    "(the catalog's custody record was altered)",
                )
        elif index < published:
            report.add("segment.missing", subject, "is in the catalog but not in the bucket")
        try:
            doc = json.loads(leaf)
            columns_agree = (doc.get("kind"), doc.get("evidence_id"), doc.get("actor")) == (
                kind,
                evidence_id,
                actor,
            )
        except (ValueError, AttributeError):
            columns_agree = False
        if not columns_agree:
            report.add(
                "catalog.columns",
                subject,
                f"catalog row seq {seq} columns (kind, evidence id, actor) disagree with its leaf",
            )
    for index in range(min(len(leaves), max(published, len(leaves)))):
        if index not in seen:
            report.add(
                "catalog.missing",
                _leaf_subject(index, leaves[index]),
                "is in the bucket but missing from the catalog (a custody record was deleted)",
            )
    if state is not None and rows and state.size != len(rows):
        report.add(
            "catalog.state",
            "ledger_state",
            f"says {state.size} leaves, the catalog numbers {len(rows)}",
        )
    for row in checkpoints:
        stored = signed.get(row.size)
        if stored is None:
            report.add(
                "catalog.checkpoint",
                row.checkpoint_key,
                "is in the catalog but no valid checkpoint of that size is in the bucket",
            )
        elif stored[1] != row.note or stored[0].hex() != row.root_hash:
            report.add(
                "catalog.checkpoint",
                row.checkpoint_key,
                "the bucket's note differs from the one the sequencer signed",
            )
