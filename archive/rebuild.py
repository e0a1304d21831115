"""Rebuilding the catalog from the bucket alone (DESIGN.md: "The catalog can be
rebuilt from the bucket alone").

The catalog is an index; what it indexes is signed and locked in the bucket:

* ``manifests/<id>.dsse.json`` – one evidence row each, after its signature
  verifies with a *configured* key (the key file's and ``[[signing.trusted]]``;
  a ``keys/<keyid>.pub`` in the bucket that is not configured is a problem); the
  lock and hold in force are read from a HEAD of the original (the store is
  the truth for locks, the manifest only says what they were at sealing);
* ``manifests/<id>.derivative.<sha>.dsse.json`` – one stored playback copy each;
* ``ledger/leaves/*.jsonl`` – one custody event per leaf, at its ledger index;
  case links are the replay of ``linked``/``unlinked`` events in ledger order,
  the current category the replay of ``retention_changed``, dispatch incidents
  and their matches the replay of ``incidents_imported`` and the link events
  (:mod:`archive.incident_replay`);
* ``dispositions/<plan>.dsse.json`` – the items a disposition deleted are
  marked ``disposed`` (with their playback copies), as ``retention apply`` does.

Reading and judging the ledger is the auditor's job (:mod:`verify.audit`); this
module receives its result as a :class:`LedgerRead` and never imports
``verify`` (the import direction is config ← archive ← ingest, verify → archive).

Nothing is trusted that does not verify: a manifest whose signature fails is
reported and left out, never imported half-way. Every problem is listed;
the rebuilt catalog is still written, and the caller exits non-zero.
Pipeline jobs, fixity history and disposition plans are station-local
working state, not in the bucket, and are not rebuilt; custody events not yet
sequenced into a published segment are not in the bucket either.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlalchemy.orm import Session

from archive.cases import CaseLink
from archive.context import Archive
from archive.db import Database
from archive.derivatives import Derivative
from archive.disposition import DISPOSITION_PAYLOAD_TYPE
from archive.dsse import (
    DERIVATIVE_PAYLOAD_TYPE,
    EVIDENCE_PAYLOAD_TYPE,
    EnvelopeError,
    key_id,
    verify_envelope,
)
from archive.incident_replay import IncidentReplay
from archive.layout import (
    CHECKPOINTS,
    DISPOSITIONS,
    KEYS,
    MANIFESTS,
    SEGMENTS,
    checkpoint_key,
    is_public_key_name,
    parse_derivative_manifest_key,
    parse_manifest_key,
    parse_public_key_key,
    parse_segment_key,
)
from archive.ledger import ledger_key_name, ledger_origin
from archive.ledger_models import LedgerCheckpoint, LedgerState
from archive.manifest_rows import DerivativeRow, EvidenceRow, derivative_row, evidence_row
from archive.manifests import (
    EvidenceManifest,
    JSONObject,
    LineageManifest,
    ManifestError,
    disposed_ids,
    parse_time,
)
from archive.merkle import CompactRange, leaf_hash
from archive.models import CustodyEvent, Evidence
from archive.seal import evidence_id_for
from archive.store import NotFound, ObjectInfo, StoreError
from config.errors import ConflictError

log = logging.getLogger("strongroom.rebuild")

T = TypeVar("T")
#: rows per INSERT batch (bounds memory and statement size)
BATCH = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Problem:
    """One thing that could not be rebuilt as it should: which check, about what, why."""

    check: str
    subject: str
    message: str


@dataclass(frozen=True)
class LedgerRead:
    """The ledger as the bucket holds it, already judged by the auditor.

    ``leaves``: the contiguous leaves from index 0, exact bytes; ``signed``:
    checkpoint size → (signed root hash, note text) for every checkpoint whose
    signature verified; ``problems``: what the auditor found wrong.
    """

    leaves: list[bytes]
    signed: dict[int, tuple[bytes, str]]
    problems: list[Problem] = field(default_factory=list)


@dataclass
class RebuildReport:
    """What a rebuild wrote, and every problem it met."""

    items: int = 0
    disposed: int = 0
    derivatives: int = 0
    events: int = 0
    links: int = 0
    incidents: int = 0
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    keys: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, check: str, subject: str, message: str) -> None:
        self.problems.append(Problem(check, subject, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "items": self.items,
            "disposed": self.disposed,
            "derivatives": self.derivatives,
            "events": self.events,
            "links": self.links,
            "incidents": self.incidents,
            "checkpoints": self.checkpoints,
            "latest_checkpoint": self.latest_checkpoint,
            "keys": self.keys,
            "problems": [asdict(p) for p in self.problems],
        }


@dataclass(frozen=True)
class _Version:
    """One entry of a versioned listing."""

    key: str
    version_id: str | None
    latest: bool
    marker: bool
    last_modified: datetime | None


@dataclass
class _Replay:
    """What the ledger says about the present: links, categories, dispositions."""

    links: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    disposed: set[str] = field(default_factory=set)
    incidents: IncidentReplay = field(default_factory=IncidentReplay)


def rebuild_catalog(archive: Archive, ledger: LedgerRead) -> RebuildReport:
    """Fill ``archive.db`` – a NEW, empty catalog – from ``archive.store``.

    ``archive.key`` is trusted besides the keys published in the bucket. The
    caller makes sure ``archive.db`` is not a live catalog (see
    :func:`archive.rebuild.new_sqlite_catalog` – not here: the CLI owns paths).
    """
    report = RebuildReport(problems=list(ledger.problems))
    trusted = _trusted_keys(archive, report)
    report.keys = sorted(trusted)
    replay = _replay_ledger(ledger.leaves, report)
    replay.disposed |= _disposed_by_certificates(archive, trusted, report)
    with archive.db.session() as session:
        _insert(session, CustodyEvent, _event_rows(ledger.leaves, report))
    report.events = len(ledger.leaves)
    _write_ledger_state(archive, ledger, report)
    evidence_keys, derivative_keys = [], []
    for version in _latest_versions(archive, MANIFESTS, report, "manifest"):
        if parse_manifest_key(version.key):
            evidence_keys.append(version)
        elif parse_derivative_manifest_key(version.key):
            derivative_keys.append(version)
        else:
            report.add("manifest.name", version.key, "not a manifest name Strongroom writes")
    items = _rebuild_evidence(archive, evidence_keys, trusted, replay, report)
    _rebuild_derivatives(archive, derivative_keys, trusted, items, replay, report)
    _rebuild_links(archive, replay, items, report)
    with archive.db.session() as session:
        report.incidents = replay.incidents.write(session, items, _EPOCH)
    for check, subject, message in replay.incidents.problems:
        report.add(check, subject, message)
    log.info(
        "catalog rebuilt from bucket %s: %d items, %d playback copies, %d events, %d links, "
        "%d problems",
        archive.store.bucket,
        report.items,
        report.derivatives,
        report.events,
        report.links,
        len(report.problems),
    )
    return report


class TargetExists(ConflictError, FileExistsError):
    """The rebuild target exists: a rebuild never overwrites a catalog."""

    code = "target_exists"


@contextmanager
def new_sqlite_catalog(path: Path) -> Iterator[Database]:
    """A fresh, empty SQLite catalog that appears at ``path`` only when complete.

    Refuses an existing ``path`` (so never the live catalog, nor an earlier
    rebuild). The catalog is built under a hidden partial name next to
    ``path`` and hard-linked into place at the end – which also refuses a file
    created there meanwhile – so a crash or an error leaves no half-built
    catalog that could be mistaken for a complete one.
    """
    path = Path(os.path.abspath(path))
    if os.path.lexists(path):
        raise TargetExists(f"{path} exists; a rebuild writes a new catalog only")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    leftovers = [partial, *(partial.with_name(partial.name + s) for s in ("-wal", "-shm"))]
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    database = Database(f"sqlite:///{partial}")
    try:
        yield database
        with database.engine.connect() as connection:  # fold the WAL into the file
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database.dispose()
        try:
            os.link(partial, path)
        except FileExistsError:
            raise TargetExists(f"{path} appeared while rebuilding; left untouched") from None
    finally:
        database.dispose()
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)


# -- keys ------------------------------------------------------------------------------


def _trusted_keys(archive: Archive, report: RebuildReport) -> dict[str, bytes]:
    """The configured trust set (the key file's key and ``[[signing.trusted]]``)
    – and nothing else. ``keys/<keyid>.pub`` objects are checked against it:
    whoever can write to the bucket can publish a key, so a published key
    that is not configured is a problem, never a reason to trust."""
    trusted = dict(archive.key.public_keys())
    for version in _latest_versions(archive, KEYS, report, "key"):
        if not is_public_key_name(version.key):
            continue  # rotation statements (keys/<keyid>.rotation.dsse.json)
        name = parse_public_key_key(version.key)
        try:
            document = json.loads(archive.store.get_bytes(version.key, version.version_id))
            raw = bytes.fromhex(document["public_key"])
        except (ValueError, KeyError, TypeError, StoreError) as exc:
            report.add("key.format", version.key, f"is not a published public key: {exc!r}")
            continue
        if len(raw) != 32 or key_id(raw) != name or document.get("keyid") != name:
            report.add("key.id", version.key, "its key does not hash to the key id in its name")
            continue
        if trusted.get(name) != raw:
            report.add(
                "key.untrusted",
                version.key,
                "published in the bucket but not a configured signing key "
                "([signing] key_file or [[signing.trusted]]); what it signed is not trusted",
            )
    return trusted


def _verified(
    archive: Archive,
    version: _Version,
    trusted: dict[str, bytes],
    payload_type: str,
    report: RebuildReport,
) -> JSONObject | None:
    """The payload of a signed object, or None (with the problem reported)."""
    try:
        data = archive.store.get_bytes(version.key, version.version_id)
    except StoreError as exc:
        report.add("manifest.read", version.key, str(exc))
        return None
    try:
        verified = verify_envelope(data, trusted)
    except EnvelopeError as exc:
        report.add("manifest.signature", version.key, f"does not verify: {exc}")
        return None
    if verified.payload_type != payload_type:
        report.add(
            "manifest.type",
            version.key,
            f"payload type {verified.payload_type!r}, expected {payload_type!r}",
        )
        return None
    if not isinstance(verified.payload, dict):
        report.add("manifest.format", version.key, "the signed payload is not a JSON object")
        return None
    problem = archive.key.window_problem(verified.keyid, verified.payload)
    if problem is not None:  # a retired key signing after its retirement: not trusted
        report.add("manifest.key_window", version.key, problem)
        return None
    return verified.payload


# -- ledger ----------------------------------------------------------------------------


def _leaf_document(leaf: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(leaf)
    except ValueError:
        return None
    return document if isinstance(document, dict) and "kind" in document else None


def _event_rows(leaves: list[bytes], report: RebuildReport) -> Iterator[dict[str, Any]]:
    """One custody event row per leaf, numbered as the ledger numbers it.

    ``seq`` follows the ledger index, so "in recording order" still holds for
    everything rebuilt; an unreadable leaf keeps its place and bytes (the
    ledger's hashes must not shift) and is reported.
    """
    for index, leaf in enumerate(leaves):
        document = _leaf_document(leaf) or {}
        at = parse_time(document.get("at"))
        if not document or at is None:
            report.add("event.format", f"leaf {index}", "is not a readable custody event")
        yield {
            "seq": index + 1,
            "kind": str(document.get("kind", "unreadable"))[:40],
            "evidence_id": document.get("evidence_id"),
            "actor": str(document.get("actor", ""))[:200],
            "at": at or _EPOCH,
            "details": document.get("details") if isinstance(document.get("details"), dict) else {},
            "leaf": leaf,
            "ledger_index": index,
        }


def _replay_ledger(leaves: list[bytes], report: RebuildReport) -> _Replay:
    """Links, categories and dispositions as the events left them, in ledger order."""
    replay = _Replay()
    for leaf in leaves:
        document = _leaf_document(leaf)
        if document is None:
            continue
        # a missing id becomes "", which matches no item (a link to it is reported)
        kind, evidence_id = document["kind"], str(document.get("evidence_id") or "")
        details = document.get("details") or {}
        if not isinstance(details, dict):
            continue
        at = parse_time(document.get("at"))
        replay.incidents.take(kind, evidence_id, str(document.get("actor") or ""), at, details)
        case_id = str(details.get("case_id") or "")
        if kind == "linked":
            replay.links[(case_id, evidence_id)] = {
                "linked_by": document.get("actor"),
                "reason": details.get("reason") or "",
                "linked_at": at,
                "linked_scope": details.get("scope"),
            }
        elif kind in ("unlinked", "unlinked_by_admin"):
            replay.links.pop((case_id, evidence_id), None)
        elif kind == "unit_corrected" and details.get("new"):
            replay.units[evidence_id] = str(details["new"])[:64]
        elif kind == "retention_changed":
            category = (details.get("new") or {}).get("category")
            if category:
                replay.categories[evidence_id] = category
        elif kind == "disposed" and not details.get("partial"):
            replay.disposed.add(evidence_id)
    return replay


def _write_ledger_state(archive: Archive, ledger: LedgerRead, report: RebuildReport) -> None:
    """The sequencer's state (tree size and compact range) and one row per
    signed checkpoint, so the rebuilt catalog can go on appending and proving."""
    leaves = ledger.leaves
    audited = RebuildReport()  # rewrites of ledger objects: the auditor reported them already
    tree = CompactRange()
    tree.extend(leaf_hash(leaf) for leaf in leaves)
    segments = {
        m[1]: (m[0], v)
        for v in _latest_versions(archive, SEGMENTS, audited, "segment")
        if (m := parse_segment_key(v.key))
    }
    stored = {v.key: v for v in _latest_versions(archive, CHECKPOINTS, audited, "checkpoint")}
    rows: list[dict[str, Any]] = []
    for size, (root, note) in sorted(ledger.signed.items()):
        if size > len(leaves) or size - 1 not in segments:
            continue  # the auditor reported it; a checkpoint without its leaves proves nothing
        first, segment = segments[size - 1]
        cp = stored.get(checkpoint_key(size))
        at = (cp.last_modified if cp else None) or _EPOCH
        rows.append(
            {
                "size": size,
                "root_hash": root.hex(),
                "origin": ledger_origin(archive.settings),
                "key_name": ledger_key_name(archive.settings),
                "note": note,
                "first_index": first,
                "segment_key": segment.key,
                "segment_version_id": segment.version_id,
                "checkpoint_key": checkpoint_key(size),
                "checkpoint_version_id": cp.version_id if cp else None,
                "created_at": at,
                "stored_at": at,
            }
        )
    latest = rows[-1]["size"] if rows else 0
    report.checkpoints = len(rows)
    report.latest_checkpoint = latest or None
    if len(leaves) > latest:
        report.add(
            "ledger.unsigned",
            f"leaves {latest}..{len(leaves) - 1}",
            "are in the bucket but no signed checkpoint covers them",
        )
    with archive.db.session() as session:
        _insert(session, LedgerCheckpoint, rows)
        if leaves:
            session.add(LedgerState(id=1, size=tree.size, hashes=[h.hex() for h in tree.hashes]))


# -- dispositions ----------------------------------------------------------------------


def _disposed_by_certificates(
    archive: Archive, trusted: dict[str, bytes], report: RebuildReport
) -> set[str]:
    """Ids of the items the signed disposition certificates say were deleted."""
    disposed: set[str] = set()
    for version in _latest_versions(archive, DISPOSITIONS, report, "certificate"):
        payload = _verified(archive, version, trusted, DISPOSITION_PAYLOAD_TYPE, report)
        if payload is None:
            continue
        disposed.update(disposed_ids(payload))
    return disposed


# -- evidence --------------------------------------------------------------------------


def _rebuild_evidence(
    archive: Archive,
    versions: list[_Version],
    trusted: dict[str, bytes],
    replay: _Replay,
    report: RebuildReport,
) -> set[str]:
    """Insert one row per verified evidence manifest; returns the ids written."""
    written: set[str] = set()
    workers = archive.settings.store.max_concurrency
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rebuild") as pool:
        for batch in _batches(versions, BATCH):
            found = pool.map(lambda v: _read_evidence(archive, v, trusted, replay), batch)
            rows = []
            for row, problems in found:
                report.problems.extend(problems)
                if row is not None:
                    rows.append(row)
            with archive.db.session() as session:
                _insert(session, Evidence, rows)
            written.update(row["evidence_id"] for row in rows)
            report.items += len(rows)
            report.disposed += sum(1 for row in rows if row["state"] == "disposed")
    return written


def _read_evidence(
    archive: Archive, version: _Version, trusted: dict[str, bytes], replay: _Replay
) -> tuple[EvidenceRow | None, list[Problem]]:
    """(row, problems) for one evidence manifest; row None when it is refused.

    Runs in a worker thread: problems are returned, not added to the report.
    """
    local = RebuildReport()
    payload = _verified(archive, version, trusted, EVIDENCE_PAYLOAD_TYPE, local)
    if payload is None:
        return None, local.problems
    try:
        manifest = EvidenceManifest.from_payload(payload)
    except ManifestError as exc:
        local.add("manifest.format", version.key, f"is not an evidence manifest: {exc}")
        return None, local.problems
    row = evidence_row(manifest, manifest_key=version.key, manifest_version_id=version.version_id)
    expected_id = parse_manifest_key(version.key)
    if row["evidence_id"] != expected_id or evidence_id_for(row["sha256"]) != expected_id:
        local.add("manifest.identity", version.key, "names another item than its key")
        return None, local.problems
    evidence_id = row["evidence_id"]
    row["category"] = replay.categories.get(evidence_id, row["category"])
    row["unit"] = replay.units.get(evidence_id, row["unit"])
    if evidence_id in replay.disposed:
        row["state"] = "disposed"
    try:
        info = archive.store.head(row["original_key"], row["original_version_id"])
    except NotFound:
        if row["state"] != "disposed":
            local.add("original.missing", evidence_id, f"{row['original_key']} is not in the store")
        return row, local.problems
    except StoreError as exc:
        local.add("original.read", evidence_id, str(exc))
        return row, local.problems
    _take_lock_state(row, info, local)
    return row, local.problems


def _take_lock_state(row: EvidenceRow, info: ObjectInfo, report: RebuildReport) -> None:
    """Lock mode, retain-until and hold as the store holds them now; the stored
    object must still be the one the manifest describes."""
    if info.size != row["size"]:
        report.add(
            "original.size",
            row["evidence_id"],
            f"{row['original_key']} has {info.size} bytes, the manifest says {row['size']}",
        )
    if row["original_checksum"] and info.checksum_sha256 not in (None, row["original_checksum"]):
        report.add(
            "original.checksum",
            row["evidence_id"],
            f"{row['original_key']} has checksum {info.checksum_sha256}, the manifest says "
            f"{row['original_checksum']}",
        )
    row["lock_mode"] = info.lock_mode or row["lock_mode"]
    row["retain_until"] = info.retain_until or row["retain_until"]
    row["legal_hold"] = info.legal_hold


# -- playback copies -------------------------------------------------------------------


def _rebuild_derivatives(
    archive: Archive,
    versions: list[_Version],
    trusted: dict[str, bytes],
    items: set[str],
    replay: _Replay,
    report: RebuildReport,
) -> None:
    rows: list[DerivativeRow] = []
    for version in versions:
        payload = _verified(archive, version, trusted, DERIVATIVE_PAYLOAD_TYPE, report)
        if payload is None:
            continue
        try:
            lineage = LineageManifest.from_payload(payload)
        except ManifestError as exc:
            report.add("manifest.format", version.key, f"is not a lineage manifest: {exc}")
            continue
        row = derivative_row(
            lineage, manifest_key=version.key, manifest_version_id=version.version_id
        )
        evidence_id = row["evidence_id"]
        named = parse_derivative_manifest_key(version.key)
        if evidence_id not in items or named is None or named[0] != evidence_id:
            report.add(
                "derivative.orphan", version.key, f"names {evidence_id}, which was not rebuilt"
            )
            continue
        if evidence_id in replay.disposed:
            row["state"] = "disposed"  # as retention apply leaves a disposed item's copies
        rows.append(row)
    with archive.db.session() as session:
        _insert(session, Derivative, rows)
    report.derivatives = len(rows)


# -- case links ------------------------------------------------------------------------


def _rebuild_links(
    archive: Archive, replay: _Replay, items: set[str], report: RebuildReport
) -> None:
    rows = []
    for (case_id, evidence_id), link in sorted(replay.links.items(), key=lambda kv: str(kv[0])):
        if evidence_id not in items:
            report.add(
                "link.orphan", f"{case_id}/{evidence_id}", "links an item that was not rebuilt"
            )
            continue
        rows.append(
            {
                "case_id": case_id,
                "evidence_id": evidence_id,
                "linked_by": link["linked_by"] or "",
                "reason": link["reason"],
                "linked_at": link["linked_at"] or _EPOCH,
                "linked_scope": link.get("linked_scope"),
            }
        )
    with archive.db.session() as session:
        _insert(session, CaseLink, rows)
    report.links = len(rows)


# -- helpers ---------------------------------------------------------------------------


def _latest_versions(
    archive: Archive, prefix: str, report: RebuildReport, what: str
) -> list[_Version]:
    """The newest real version of every key under ``prefix``, in key order.

    Strongroom writes these objects once (create-only): a second version is a
    rewrite and a delete marker a deletion attempt; both are reported. A key
    whose newest entry is a delete marker is still read (its locked version
    is still there) – the marker is reported, not obeyed.
    """
    entries: dict[str, list[_Version]] = defaultdict(list)
    paginator = archive.store.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=archive.store.bucket, Prefix=prefix):
        for entry in page.get("Versions", []):
            entries[entry["Key"]].append(_version(entry, marker=False))
        for marker in page.get("DeleteMarkers", []):
            entries[marker["Key"]].append(_version(marker, marker=True))
    latest = []
    for key in sorted(entries):
        versions = entries[key]
        markers = [v for v in versions if v.marker]
        real = sorted(
            (v for v in versions if not v.marker),
            key=lambda v: (v.latest, v.last_modified or _EPOCH),
        )
        if markers:
            report.add(f"{what}.deleted", key, f"has {len(markers)} delete marker(s)")
        if len(real) > 1:
            report.add(
                f"{what}.rewritten",
                key,
                f"has {len(real)} versions; Strongroom writes it once (the newest is read)",
            )
        if real:
            latest.append(real[-1])
    return latest


def _version(entry: Mapping[str, Any], *, marker: bool) -> _Version:
    return _Version(
        key=entry["Key"],
        version_id=entry.get("VersionId"),
        latest=bool(entry.get("IsLatest")),
        marker=marker,
        last_modified=entry.get("LastModified"),
    )


def _insert(session: Session, model: type, rows: Iterable[Mapping[str, object]]) -> None:
    for batch in _batches(list(rows), BATCH):
        session.execute(insert(model), batch)


def _batches(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
