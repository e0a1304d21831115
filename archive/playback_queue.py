"""The playback-copy queue, shared by every worker thread, process and station.

The pipeline queues one ``derivatives`` row per sealed original; workers take
rows here and nowhere else. Taking a row is one transaction:

* on PostgreSQL the oldest claimable row is locked ``FOR UPDATE SKIP
  LOCKED`` – exactly as fixity work is shared (:mod:`verify.fixity`): a row
  another station is taking at that moment is skipped, not waited for, so
  stations claiming together each get a different row at once;
* on SQLite (one station) the row is read and taken by a conditional UPDATE;
  a worker that lost the race to another thread looks again.

Either way the UPDATE repeats the claimable condition (state, due time), so
only a row still claimable is taken; it sets ``running``, bumps
``attempts`` – the claim's fencing token, which every later write of the
worker requires unchanged – and starts the lease (``next_attempt_at``,
renewed by the worker's heartbeat) in the name of its holder
(``lease_owner``, :mod:`archive.owner`). A row whose lease ran out is
claimable again; one whose holder's process is gone (same host) is taken
over at once (:func:`take_over`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from archive.db import Database, utcnow
from archive.derivatives import Derivative
from archive.models import Evidence
from archive.owner import owner_gone
from archive.states import CopyState

#: times a SQLite worker looks again after another thread took its row first
_SQLITE_LOOKS = 5


@dataclass(frozen=True)
class Taken:
    """A row just claimed: ``attempt`` is the fencing token; ``previous`` the
    state it was taken from (``running``: taken over from a dead or late holder)."""

    id: int
    evidence_id: str
    attempt: int
    file_name: str
    previous: str


def claimable(now: datetime) -> ColumnElement[bool]:
    """Due queued/retrying rows, and running rows whose lease ran out."""
    return or_(
        and_(
            Derivative.state.in_((CopyState.QUEUED, CopyState.RETRYING)),
            or_(Derivative.next_attempt_at.is_(None), Derivative.next_attempt_at <= now),
        ),
        and_(Derivative.state == CopyState.RUNNING, Derivative.next_attempt_at < now),
    )


def claim(
    db: Database, *, lease: timedelta, owner: str, only: Sequence[str] | None = None
) -> Taken | None:
    """Take the oldest claimable row (of ``only``'s items, if given), or None."""
    for _look in range(_SQLITE_LOOKS):
        now = utcnow()
        with db.session() as session:
            query = select(Derivative.id, Derivative.state).where(claimable(now))
            if only is not None:
                query = query.where(Derivative.evidence_id.in_(list(only)))
            query = query.order_by(Derivative.id).limit(1)
            locking = session.connection().dialect.name == "postgresql"
            if locking:
                query = query.with_for_update(skip_locked=True)
            row = session.execute(query).first()
            if row is None:
                return None
            taken = _take(session, row.id, row.state, claimable(now), now + lease, owner)
            if taken is not None or locking:
                return taken
    return None


def held_by_the_dead(db: Database, only: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """Running rows whose lease has not run out but whose holder's process is gone."""
    now = utcnow()
    with db.session() as session:
        query = select(Derivative.id, Derivative.lease_owner).where(
            Derivative.state == CopyState.RUNNING,
            Derivative.next_attempt_at >= now,
            Derivative.lease_owner.is_not(None),
        )
        if only is not None:
            query = query.where(Derivative.evidence_id.in_(list(only)))
        rows = session.execute(query.order_by(Derivative.id).limit(50)).all()
    # the query took only rows with a holder
    return [
        (row_id, holder) for row_id, holder in rows if holder is not None and owner_gone(holder)
    ]


def take_over(
    db: Database, derivative_id: int, dead_owner: str, *, lease: timedelta, owner: str
) -> Taken | None:
    """Take a running row from ``dead_owner`` if that (dead) process still holds it."""
    held = and_(Derivative.state == CopyState.RUNNING, Derivative.lease_owner == dead_owner)
    with db.session() as session:
        query = select(Derivative.id).where(Derivative.id == derivative_id, held)
        if session.connection().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        if session.execute(query).first() is None:
            return None
        return _take(session, derivative_id, CopyState.RUNNING, held, utcnow() + lease, owner)


def _take(
    session: Session,
    derivative_id: int,
    previous: str,
    condition: ColumnElement[bool],
    until: datetime,
    owner: str,
) -> Taken | None:
    """The conditional UPDATE that takes the row; None if it no longer meets ``condition``."""
    done = session.execute(
        update(Derivative)
        .where(Derivative.id == derivative_id, condition)
        .values(
            state=CopyState.RUNNING,
            attempts=Derivative.attempts + 1,
            next_attempt_at=until,
            lease_owner=owner,
            progress=0.0,
            speed=None,
        )
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], done).rowcount != 1:  # an UPDATE's result
        return None
    row = session.execute(
        select(Derivative.evidence_id, Derivative.attempts, Evidence.file_name)
        .outerjoin(Evidence, Evidence.evidence_id == Derivative.evidence_id)
        .where(Derivative.id == derivative_id)
    ).one()
    return Taken(derivative_id, row.evidence_id, row.attempts, row.file_name or "", previous)
