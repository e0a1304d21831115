"""Playback copies (derivatives) in the catalog, and the list of every stored
object that belongs to one evidence item.

A derivative is a new object with its own hash and its own signed manifest
naming the original; the original is never touched (invariant 3).

One object may belong to several items: playback copies are content-addressed
(``derivatives/sha256/<hex>``), so two originals whose copies come out
byte-identical (e.g. they differ only in a data track the remux drops) share
one copy object and version. Originals cannot be shared (``Evidence.sha256``
is unique and the key is made from it), nor can manifests (their keys name
the evidence id). Whatever decides a hold or a deletion for an object must
therefore ask :func:`items_sharing` too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CursorResult,
    ForeignKey,
    Integer,
    String,
    Text,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from archive.custody import record_event
from archive.db import Base, UTCDateTime, utcnow
from archive.models import Evidence
from archive.states import GONE_STATES, CopyState


class Derivative(Base):
    """One playback copy, or one attempt at making it (state says which)."""

    __tablename__ = "derivatives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.evidence_id"), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # a CopyState
    action: Mapped[str | None] = mapped_column(String(20))  # remux|transcode|audio|none
    reason: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(String(200), index=True)
    version_id: Mapped[str | None] = mapped_column(String(200))
    checksum: Mapped[str | None] = mapped_column(String(100))
    manifest_key: Mapped[str | None] = mapped_column(String(200))
    manifest_version_id: Mapped[str | None] = mapped_column(String(200))
    probe: Mapped[dict[str, Any] | None] = mapped_column()
    ffmpeg_version: Mapped[str | None] = mapped_column(Text)
    ffmpeg_args: Mapped[list[Any] | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    progress: Mapped[float | None] = mapped_column()
    speed: Mapped[float | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: who holds the lease of a running row (``host:pid:start``, see archive.owner)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def evidence_objects(session: Session, evidence: Evidence) -> list[tuple[str, str | None]]:
    """Every stored object version of an item: original, manifest, derivatives
    and their manifests. Retention and legal hold apply to all of them alike."""
    objects = [
        (evidence.original_key, evidence.original_version_id),
        (evidence.manifest_key, evidence.manifest_version_id),
    ]
    for derivative in session.scalars(
        select(Derivative).where(
            Derivative.evidence_id == evidence.evidence_id, Derivative.state == CopyState.STORED
        )
    ):
        if derivative.key:
            objects.append((derivative.key, derivative.version_id))
        if derivative.manifest_key:
            objects.append((derivative.manifest_key, derivative.manifest_version_id))
    return objects


def items_sharing(
    session: Session, key: str, version_id: str | None, *, but: str
) -> list[Evidence]:
    """Other live (not disposed) items with a stored copy at exactly this object version.

    ``but`` is the asking item's id. Only playback copies can be shared (see
    the module doc); for any other key this finds nothing.
    """
    return list(
        session.scalars(
            select(Evidence)
            .join(Derivative, Derivative.evidence_id == Evidence.evidence_id)
            .where(
                Derivative.state == CopyState.STORED,
                or_(
                    (Derivative.key == key) & (Derivative.version_id == version_id),
                    (Derivative.manifest_key == key)
                    & (Derivative.manifest_version_id == version_id),
                ),
                Evidence.evidence_id != but,
                Evidence.state.not_in(GONE_STATES),
            )
            .distinct()
            .order_by(Evidence.evidence_id)
        )
    )


# -- the queue, by hand ---------------------------------------------------------------


def requeue_failed(
    session: Session, evidence_ids: list[str] | None, *, actor: str
) -> list[dict[str, Any]]:
    """Queue the failed copies of these items (None: of every live item) again.

    The retry budget starts afresh (``attempts`` = 0). What the failure was –
    ffmpeg's reason and how many attempts it took – is not lost with the row's
    reset: it goes into the ``derivative_requeued`` custody event. Each row
    moves only if it is still ``failed`` (a conditional UPDATE), so two
    operators retrying at once requeue it once. Returns one entry per row.
    """
    query = (
        select(Derivative)
        .join(Evidence, Evidence.evidence_id == Derivative.evidence_id)
        .where(Derivative.state == CopyState.FAILED, Evidence.state.not_in(GONE_STATES))
        .order_by(Derivative.id)
    )
    if evidence_ids is not None:
        query = query.where(Derivative.evidence_id.in_(evidence_ids))
    requeued = []
    for row in session.scalars(query).all():
        moved = session.execute(
            update(Derivative)
            .where(Derivative.id == row.id, Derivative.state == CopyState.FAILED)
            .values(
                state=CopyState.QUEUED,
                attempts=0,
                last_error=None,
                next_attempt_at=None,
                progress=None,
                speed=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], moved).rowcount != 1:  # an UPDATE answers a CursorResult
            continue
        entry = {
            "derivative_id": row.id,
            "evidence_id": row.evidence_id,
            "previous_attempts": row.attempts,
            "previous_error": row.last_error,
        }
        record_event(
            session,
            "derivative_requeued",
            actor=actor,
            evidence_id=row.evidence_id,
            details={**entry, "previous_state": CopyState.FAILED},
        )
        requeued.append(entry)
    return requeued


def queue_missing(session: Session, evidence_ids: list[str] | None, *, actor: str) -> list[str]:
    """Queue a playback copy for these live items (None: all) that never had one.

    "Never had one" means no derivative row at all – e.g. the item was sealed
    while ``transcode.enabled`` was false. Items with a row in any state
    (stored, skipped, failed, …) are left alone: a failed one is for
    :func:`requeue_failed`. Records ``derivative_queued`` per item; returns their ids.
    """
    query = (
        select(Evidence.evidence_id)
        .where(
            Evidence.state.not_in(GONE_STATES),
            ~exists().where(Derivative.evidence_id == Evidence.evidence_id),
        )
        .order_by(Evidence.ingested_at, Evidence.evidence_id)
    )
    if evidence_ids is not None:
        query = query.where(Evidence.evidence_id.in_(evidence_ids))
    candidates = list(session.scalars(query).all())
    if not candidates:
        return []
    # take the items' row locks, then look again: a concurrent run cannot queue twice
    session.execute(
        update(Evidence)
        .where(Evidence.evidence_id.in_(candidates))
        .values(state=Evidence.state)
        .execution_options(synchronize_session=False)
    )
    queued = list(session.scalars(query.where(Evidence.evidence_id.in_(candidates))).all())
    for evidence_id in queued:
        session.add(Derivative(evidence_id=evidence_id, state=CopyState.QUEUED))
        record_event(
            session,
            "derivative_queued",
            actor=actor,
            evidence_id=evidence_id,
            details={"why": "no playback copy was ever queued for this item"},
        )
    return queued
