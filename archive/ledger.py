"""The custody ledger: sequencing custody events into an RFC 9162 Merkle log,
signing checkpoints, and proving that an item's events are in the log.

Every custody event row already carries its leaf (canonical JSON, fixed at
insert). The **sequencer** gives the rows without a ``ledger_index`` the next
indices, in ``seq`` order and without gaps, extends the tree's compact range,
and signs a C2SP ``tlog-checkpoint`` with the station key. The new leaves are
then written to ``ledger/leaves/<first>-<last>.jsonl`` (one leaf per line,
exact leaf bytes) and the signed note to ``ledger/checkpoints/<size>``, both
create-only under Object Lock, so the log can be rebuilt and checked from the
bucket alone (``verify.audit``).

Only one sequencer may append at a time, whichever station it runs on: it
holds the database's write lock (SQLite ``BEGIN IMMEDIATE``; elsewhere
``SELECT … FOR UPDATE`` on the state row) while it numbers rows. Publishing to
the store happens after that short transaction, from the committed checkpoint
row, so a slow or down store never blocks the pipeline's commits; a crash in
between is finished by the next run, which writes byte-identical objects.

Serving proofs is apart from sequencing: :func:`checkpoint_document` and
:func:`proof_document` only read, and cover what the latest *published*
checkpoint covers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive import leases
from archive.context import Archive
from archive.db import utcnow
from archive.layout import checkpoint_key, segment_key
from archive.ledger_models import LedgerCheckpoint, LedgerState
from archive.merkle import CompactRange, inclusion_proof, leaf_hash, verify_inclusion
from archive.metrics import ERRORS, LEDGER_SIZE
from archive.models import CustodyEvent, Evidence
from archive.note import NoteError, encode_vkey, format_checkpoint, open_note, sign_note
from archive.store import AlreadyExists, Retention
from config.errors import StrongroomError
from config.settings import ConfigError, Settings

log = logging.getLogger("strongroom.ledger")

_STATE_ID = 1


class LedgerError(StrongroomError):
    """The ledger cannot be extended or proved as it stands (the message says why)."""

    code = "ledger_error"


def ledger_origin(settings: Settings) -> str:
    """The checkpoint origin line: names this log, so a checkpoint of another
    log can never be taken for one of ours."""
    return settings.ledger.origin or f"strongroom.local/{settings.store.bucket}"


def ledger_key_name(settings: Settings) -> str:
    """The signed-note key name of the station key."""
    return settings.ledger.key_name or f"strongroom-{settings.station.name}"


def ledger_retention(archive: Archive) -> Retention:
    """Ledger objects are kept as long as the longest-kept evidence they describe."""
    settings = archive.settings
    name = settings.ledger.category or settings.retention.case_category
    if name not in settings.retention.categories:
        raise ConfigError(
            f"ledger.category {name!r} is not one of the categories "
            f"{sorted(settings.retention.categories)}"
        )
    return archive.retention_for(name)


def segment_bytes(leaves: list[bytes]) -> bytes:
    """One leaf per line. Canonical JSON escapes newlines, so a line is a leaf."""
    for leaf in leaves:
        if b"\n" in leaf:
            raise LedgerError("a ledger leaf contains a newline; leaves must be canonical JSON")
    return b"".join(leaf + b"\n" for leaf in leaves)


def parse_segment(data: bytes) -> list[bytes]:
    """The leaves of a segment object, exactly as written."""
    if not data.endswith(b"\n"):
        raise LedgerError("segment does not end with a newline")
    return data[:-1].split(b"\n")


@dataclass(frozen=True)
class CheckpointResult:
    """A checkpoint the sequencer signed and published."""

    size: int
    root_hash: bytes
    first_index: int
    note: str
    checkpoint_key: str
    segment_key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "new_leaves": self.size - self.first_index,
            "checkpoint_key": self.checkpoint_key,
            "segment_key": self.segment_key,
            "note": self.note,
        }


# --- sequencing -----------------------------------------------------------------


def checkpoint(archive: Archive, lease: leases.Lease | None = None) -> CheckpointResult | None:
    """Sequence every unsequenced event and publish a signed checkpoint.

    Returns None when there were no new leaves (nothing is written). Checkpoints
    left unpublished by a crash or a store outage are published first, in
    order; if that fails the error propagates and nothing new is sequenced, so
    the bucket never holds a later segment without the earlier one.
    """
    publish_pending(archive)
    size = _sequence(archive, lease)
    if size is None:
        return None
    row = _publish(archive, size)
    LEDGER_SIZE.set(row.size)
    log.info("ledger checkpoint %d (%d new leaves)", row.size, row.size - row.first_index)
    return CheckpointResult(
        size=row.size,
        root_hash=bytes.fromhex(row.root_hash),
        first_index=row.first_index,
        note=row.note,
        checkpoint_key=row.checkpoint_key,
        segment_key=row.segment_key,
    )


#: how long one node may hold the checkpoint job before another takes it over
CHECKPOINT_LEASE = timedelta(minutes=10)


def scheduled_checkpoint(archive: Archive) -> None:
    """The APScheduler job: a checkpoint when there are new leaves, on one node
    at a time (the ``ledger-checkpoint`` lease, see :mod:`archive.leases`). A
    failure is counted and raised to the scheduler's guard (one log line, a
    fault in ``status``); ``strongroom status`` also shows the events still
    waiting and any unpublished checkpoint until the next run succeeds."""
    try:
        leases.run_once(
            archive.db,
            "ledger-checkpoint",
            archive.station,
            CHECKPOINT_LEASE,
            lambda lease: checkpoint(archive, lease),
        )
    except Exception:
        ERRORS.labels(where="ledger").inc()
        raise


def _ensure_state_row(archive: Archive) -> None:
    with archive.db.session() as session:
        if session.get(LedgerState, _STATE_ID) is not None:
            return
    try:
        with archive.db.session() as session:
            session.add(LedgerState(id=_STATE_ID, size=0, hashes=[]))
    except IntegrityError:
        pass  # another sequencer created it first


def _lock_state(session: Session) -> LedgerState:
    """Take the database's writer lock for this transaction and return the state row.

    SQLite has one writer at a time: ``BEGIN IMMEDIATE`` takes that lock now
    (a deferred transaction could read, then fail to upgrade). Other databases
    lock the state row itself.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    state = session.scalars(
        select(LedgerState).where(LedgerState.id == _STATE_ID).with_for_update()
    ).one()
    return state


def _sequence(archive: Archive, lease: leases.Lease | None = None) -> int | None:
    """Number the new rows and commit the checkpoint row; returns its size.
    With a lease, the commit is refused if the lease was lost (fencing)."""
    _ensure_state_row(archive)
    settings = archive.settings
    with archive.db.session() as session:
        state = _lock_state(session)
        if lease is not None:
            leases.check(session, lease)
        rows = session.execute(
            select(CustodyEvent.seq, CustodyEvent.leaf)
            .where(CustodyEvent.ledger_index.is_(None))
            .order_by(CustodyEvent.seq)
        ).all()
        if not rows:
            return None
        tree = CompactRange(state.size, [bytes.fromhex(h) for h in state.hashes])
        first = tree.size
        updates = []
        for offset, (seq, leaf) in enumerate(rows):
            updates.append({"seq": seq, "ledger_index": first + offset})
            tree.append(leaf_hash(leaf))
        session.execute(update(CustodyEvent), updates)
        root_hash = tree.root()
        origin = ledger_origin(settings)
        key_name = ledger_key_name(settings)
        note = sign_note(
            format_checkpoint(origin, tree.size, root_hash), key_name, archive.key.signing_key
        )
        state.size = tree.size
        state.hashes = [h.hex() for h in tree.hashes]
        state.updated_at = utcnow()
        session.add(
            LedgerCheckpoint(
                size=tree.size,
                root_hash=root_hash.hex(),
                origin=origin,
                key_name=key_name,
                note=note,
                first_index=first,
                segment_key=segment_key(first, tree.size - 1),
                checkpoint_key=checkpoint_key(tree.size),
            )
        )
        return tree.size


def publish_pending(archive: Archive) -> int:
    """Publish checkpoint rows that were committed but not yet stored. Returns how many."""
    with archive.db.session() as session:
        sizes = list(
            session.scalars(
                select(LedgerCheckpoint.size)
                .where(LedgerCheckpoint.stored_at.is_(None))
                .order_by(LedgerCheckpoint.size)
            )
        )
    for size in sizes:
        _publish(archive, size)
    return len(sizes)


def _publish(archive: Archive, size: int) -> LedgerCheckpoint:
    """Write the segment, then the signed checkpoint, create-only and locked."""
    with archive.db.session() as session:
        row = session.get(LedgerCheckpoint, size)
        assert row is not None
        leaves = list(
            session.scalars(
                select(CustodyEvent.leaf)
                .where(CustodyEvent.ledger_index >= row.first_index)
                .where(CustodyEvent.ledger_index < row.size)
                .order_by(CustodyEvent.ledger_index)
            )
        )
    if len(leaves) != row.size - row.first_index:
        raise LedgerError(
            f"catalog holds {len(leaves)} of the leaves {row.first_index}..{row.size - 1} "
            "of a signed checkpoint; run `strongroom ledger audit`"
        )
    retention = ledger_retention(archive)
    segment_version = _put_once(
        archive, row.segment_key, segment_bytes(leaves), retention, "application/x-ndjson"
    )
    checkpoint_version = _put_once(
        archive, row.checkpoint_key, row.note.encode("utf-8"), retention, "text/plain"
    )
    with archive.db.session() as session:
        row = session.get(LedgerCheckpoint, size)
        assert row is not None
        row.segment_version_id = segment_version
        row.checkpoint_version_id = checkpoint_version
        row.stored_at = row.stored_at or utcnow()
    return row


def _put_once(
    archive: Archive, key: str, data: bytes, retention: Retention, content_type: str
) -> str | None:
    """Create ``key``; if it exists with these exact bytes, adopt it (a retry)."""
    store = archive.store
    try:
        return store.put_bytes(key, data, retention, content_type=content_type).version_id
    except AlreadyExists:
        existing = store.get_bytes(key)
        if existing != data:
            raise LedgerError(
                f"{key} already exists with other content: the bucket's ledger and the "
                "catalog disagree; run `strongroom ledger audit`"
            ) from None
        return store.head(key).version_id


# --- serving ------------------------------------------------------------------


def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    """The newest checkpoint that is in the bucket."""
    return session.scalars(
        select(LedgerCheckpoint)
        .where(LedgerCheckpoint.stored_at.is_not(None))
        .order_by(LedgerCheckpoint.size.desc())
        .limit(1)
    ).first()


def _signer(archive: Archive, row: LedgerCheckpoint) -> bytes:
    """The configured key that signed this checkpoint's note: after a key
    rotation the latest checkpoint may still be the retired key's."""
    for raw in (archive.key.public_key, *archive.key.public_keys().values()):
        try:
            open_note(row.note, {row.key_name: raw})
        except NoteError:
            continue
        return raw
    return archive.key.public_key


def _checkpoint_dict(archive: Archive, row: LedgerCheckpoint) -> dict[str, Any]:
    return {
        "origin": row.origin,
        "size": row.size,
        "root_hash": row.root_hash,
        "note": row.note,
        "key_name": row.key_name,
        "vkey": encode_vkey(row.key_name, _signer(archive, row)),
        "key": row.checkpoint_key,
        "version_id": row.checkpoint_version_id,
        "created_at": row.created_at.isoformat(),
    }


def checkpoint_document(archive: Archive) -> dict[str, Any]:
    """The latest published checkpoint: origin, size, root_hash (hex), note (the
    signed note text), key_name, vkey. Raises LookupError when there is none."""
    with archive.db.session() as session:
        row = latest_checkpoint(session)
        if row is None:
            raise LookupError("the ledger has no checkpoint yet")
        return _checkpoint_dict(archive, row)


def proof_document(archive: Archive, evidence_id: str) -> dict[str, Any]:
    """An item's leaves with inclusion proofs against the latest checkpoint.

    ``{"evidence_id", "checkpoint": {…as checkpoint_document…}, "leaves": [{"index",
    "leaf" (JSON text), "leaf_hash" (hex), "inclusion_proof" ([hex])}]}``. Only
    leaves the checkpoint covers are listed (newer events wait for the next
    one). Raises KeyError for an unknown evidence id and LookupError (of which
    KeyError is a subclass: catch KeyError first) when there is no checkpoint.
    Every proof is verified before it is returned.
    """
    with archive.db.session() as session:
        if session.get(Evidence, evidence_id) is None:
            raise KeyError(evidence_id)
        row = latest_checkpoint(session)
        if row is None:
            raise LookupError("the ledger has no checkpoint yet")
        document: dict[str, Any] = {
            "evidence_id": evidence_id,
            "checkpoint": _checkpoint_dict(archive, row),
        }
        mine = session.execute(
            select(CustodyEvent.ledger_index, CustodyEvent.leaf)
            .where(CustodyEvent.evidence_id == evidence_id)
            .where(CustodyEvent.ledger_index < row.size)
            .order_by(CustodyEvent.ledger_index)
        ).all()
        hashes = [
            leaf_hash(leaf)
            for leaf in session.scalars(
                select(CustodyEvent.leaf)
                .where(CustodyEvent.ledger_index < row.size)
                .order_by(CustodyEvent.ledger_index)
            )
        ]
    if len(hashes) != row.size:
        raise LedgerError(
            f"catalog holds {len(hashes)} of the {row.size} leaves of checkpoint {row.size}; "
            "run `strongroom ledger audit`"
        )
    root_hash = bytes.fromhex(row.root_hash)
    leaves = []
    for index, leaf in mine:
        assert index is not None  # the query above compares it with the size
        proof = inclusion_proof(hashes, index)
        verify_inclusion(hashes[index], index, row.size, proof, root_hash)
        leaves.append(
            {
                "index": index,
                "leaf": leaf.decode("utf-8"),
                "leaf_hash": hashes[index].hex(),
                "inclusion_proof": [p.hex() for p in proof],
            }
        )
    document["leaves"] = leaves
    return document


def ledger_summary(session: Session) -> dict[str, Any]:
    """For ``strongroom status``: sequenced size, waiting events, last checkpoint."""
    state = session.get(LedgerState, _STATE_ID)
    waiting = session.scalar(
        select(func.count()).select_from(CustodyEvent).where(CustodyEvent.ledger_index.is_(None))
    )
    last = latest_checkpoint(session)
    unpublished = session.scalar(
        select(func.count())
        .select_from(LedgerCheckpoint)
        .where(LedgerCheckpoint.stored_at.is_(None))
    )
    return {
        "size": state.size if state else 0,
        "events_waiting": waiting or 0,
        "unpublished_checkpoints": unpublished or 0,
        "last_checkpoint": None
        if last is None
        else {
            "size": last.size,
            "root_hash": last.root_hash,
            "at": last.stored_at.isoformat() if last.stored_at else None,
            "key": last.checkpoint_key,
        },
    }
