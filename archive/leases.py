"""Leases: jobs that must run on one node at a time, whichever station runs them.

Every daemon keeps its own in-memory APScheduler (APScheduler 3's job stores
must not be shared between schedulers), so each station's scheduler fires the
ledger checkpoint, the retention planning and the catalog backup. Before such
a job works it takes the job's lease, a row in ``job_leases``:

* one holder at a time, until ``expires_at``; the holder renews it while it
  works, and another node may take it over only after it has expired
  (:func:`takeover_allowed` is the one place that decides – a check that the
  holder's process is dead can be added there);
* each take-over increments ``token``, the *fencing token*. A job checks its
  token (:func:`check`) inside the transaction of every catalog write it
  makes, under a row lock; a node that paused past its expiry (GC, SIGSTOP,
  a network partition) and comes back finds a newer token and its write is
  refused (:class:`LeaseLost`), instead of racing the node that took over.

Why rows and not PostgreSQL advisory locks: an advisory lock lives as long as
the session holding it, so it has no expiry to reason about and no token to
fence a late write with (a node whose connection broke and reconnected cannot
tell it lost the lock in between); it also does not exist on SQLite, which a
single station keeps using. The row works on both, and ``strongroom status``
can show who holds what.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from archive.db import Base, Database, UTCDateTime, utcnow
from config.errors import ConflictError

log = logging.getLogger("strongroom.leases")
T = TypeVar("T")


class JobLease(Base):
    """Who may run one cluster-wide job now, and the fencing token of that grant."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))  # station name
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LeaseLost(ConflictError):
    """The lease expired and another node holds it now: this node's write is refused."""

    code = "lease_lost"


@dataclass(frozen=True)
class Lease:
    """A granted lease: the fencing token is what every write checks."""

    name: str
    holder: str
    token: int
    ttl: timedelta


def _me(holder: str) -> tuple[str, str, int]:
    return holder, socket.gethostname(), os.getpid()


def _lock_row(session: Session, name: str) -> JobLease | None:
    """The lease row, locked for this transaction (SQLite: the database write lock)."""
    connection = session.connection()
    if (
        connection.dialect.name == "sqlite"
        # a checked-out pool connection always has its DBAPI connection
        and not cast(Any, connection.connection.dbapi_connection).in_transaction
    ):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return session.scalars(
        select(JobLease).where(JobLease.name == name).with_for_update()
    ).one_or_none()


Takeover = Callable[[JobLease, datetime], bool]


def takeover_allowed(row: JobLease, now: datetime) -> bool:
    """May another node take this lease? Only once it has expired."""
    return row.expires_at <= now


def expired_or_dead_here(row: JobLease, now: datetime) -> bool:
    """Also let a holder on *this* host whose process is gone be replaced at once
    (a daemon restarted after a crash must not wait for its own old lease)."""
    if takeover_allowed(row, now):
        return True
    if row.host != socket.gethostname():
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def holder_of(db: Database, name: str) -> JobLease | None:
    """The lease row as it stands (for messages and ``status``)."""
    with db.session() as session:
        return session.get(JobLease, name)


def acquire(
    db: Database,
    name: str,
    holder: str,
    ttl: timedelta,
    *,
    takeover: Takeover = takeover_allowed,
) -> Lease | None:
    """Take (or renew our own) lease ``name`` for ``ttl``; None if another node holds it."""
    holder, host, pid = _me(holder)
    for _attempt in range(2):
        now = utcnow()
        try:
            with db.session() as session:
                row = _lock_row(session, name)
                if row is None:
                    session.add(
                        JobLease(
                            name=name,
                            holder=holder,
                            host=host,
                            pid=pid,
                            token=1,
                            acquired_at=now,
                            expires_at=now + ttl,
                        )
                    )
                    return Lease(name, holder, 1, ttl)
                mine = (row.holder, row.host, row.pid) == (holder, host, pid)
                if not mine and not takeover(row, now):
                    return None
                if not mine or row.expires_at <= now:
                    row.token += 1  # a new grant: whoever held it before is fenced out
                    row.acquired_at = now
                    if not mine:
                        log.warning(
                            "lease %s taken over from %s@%s pid %d (expired %s)",
                            name,
                            row.holder,
                            row.host,
                            row.pid,
                            row.expires_at.isoformat(),
                        )
                row.holder, row.host, row.pid = holder, host, pid
                row.expires_at = now + ttl
                return Lease(name, holder, row.token, ttl)
        except IntegrityError:
            continue  # another node inserted the row first: look again
    return None


def check(session: Session, lease: Lease) -> None:
    """Inside a write transaction: refuse it unless ``lease`` is still the valid
    grant. Locks the lease row until the transaction ends, so the lease cannot
    change hands between this check and the commit."""
    row = _lock_row(session, lease.name)
    if row is None or row.token != lease.token or row.expires_at <= utcnow():
        held = f"token {row.token} held by {row.holder}@{row.host}" if row else "no lease"
        raise LeaseLost(
            f"lease {lease.name} token {lease.token} is no longer valid ({held}): write refused"
        )


def renew(db: Database, lease: Lease) -> None:
    """Extend our lease; :class:`LeaseLost` if it is no longer ours."""
    with db.session() as session:
        check(session, lease)
        row = session.get(JobLease, lease.name)
        assert row is not None
        row.expires_at = utcnow() + lease.ttl


def release(db: Database, lease: Lease) -> None:
    """Let the next node take the lease at once (it expires now), if still ours."""
    try:
        with db.session() as session:
            check(session, lease)
            row = session.get(JobLease, lease.name)
            assert row is not None
            row.expires_at = utcnow()
    except LeaseLost:
        pass


def run_once(
    db: Database, name: str, holder: str, ttl: timedelta, job: Callable[[Lease], T]
) -> tuple[bool, T | None]:
    """Run ``job(lease)`` if this node gets the lease; ``(ran, result)``."""
    lease = acquire(db, name, holder, ttl)
    if lease is None:
        log.debug("job %s runs elsewhere now; skipped here", name)
        return False, None
    try:
        return True, job(lease)
    finally:
        release(db, lease)
