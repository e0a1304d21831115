"""The playback queue and its lease: claiming a row, renewing the claim, and
every state a claimed row moves on to (stored, skipped, retrying, failed, or
queued again).

Sharing the queue safely, between threads, processes and stations:

* a row is **claimed** by one conditional UPDATE (state and due time in the
  WHERE clause) that also bumps ``attempts``; only the winner sees rowcount 1;
* while it runs, ``next_attempt_at`` is the claim's **lease**, renewed by a
  heartbeat thread; a row left ``running`` by a dead process is claimable
  again once its lease has run out, so a crash only delays the copy – and
  not even that on the same host: the lease names its holder
  (``lease_owner``, see :mod:`archive.owner`), and a holder whose process is
  gone is taken over at once;
* ``attempts`` is the claim's **fencing token**: every later write requires
  it unchanged, so a worker that lost its lease cannot overwrite the row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.models import Evidence
from archive.owner import owner_gone, process_owner
from config.settings import PlaybackSettings
from config.transcode import TranscodeSettings
from ingest.playback.attempt import (
    FAILED,
    LOST,
    PENDING_STATES,
    QUEUED,
    RETRYING,
    RUNNING,
    SKIPPED,
    Claim,
    LeaseLost,
    Result,
    _Job,
    _reason,
)
from ingest.probe import ProbeSummary
from ingest.transcode import Plan

log = logging.getLogger("strongroom.playback")

#: claims of a row whose previous worker died, allowed on top of the retry budget
#: (a power cut is not the file's fault, but a file that kills us every time is)
CRASH_ALLOWANCE = 3


class PlaybackQueue:
    """The queue's rows as one worker claims, renews and finishes them (the
    worker's part of :class:`ingest.playback.PlaybackWorker`)."""

    archive: Archive
    transcode: TranscodeSettings
    queue: PlaybackSettings
    actor: str

    # -- the queue ------------------------------------------------------------------

    def pending(self, evidence_ids: Iterable[str] | None = None) -> int:
        """Rows in scope that are not finished (queued, retrying or running)."""
        with self.archive.db.session() as session:
            query = select(Derivative.id).where(Derivative.state.in_(PENDING_STATES))
            if evidence_ids is not None:
                query = query.where(Derivative.evidence_id.in_(list(evidence_ids)))
            return len(session.scalars(query).all())

    @staticmethod
    def _claimable(now: datetime):
        """Due queued/retrying rows, and running rows whose lease ran out."""
        return or_(
            and_(
                Derivative.state.in_((QUEUED, RETRYING)),
                or_(Derivative.next_attempt_at.is_(None), Derivative.next_attempt_at <= now),
            ),
            and_(Derivative.state == RUNNING, Derivative.next_attempt_at < now),
        )

    def claim_next(self, only: list[str] | None = None) -> Claim | None:
        """Take the oldest claimable row, or None. Atomic across threads and stations."""
        now = utcnow()
        with self.archive.db.session() as session:
            query = select(Derivative.id).where(self._claimable(now))
            if only is not None:
                query = query.where(Derivative.evidence_id.in_(only))
            candidates = session.scalars(query.order_by(Derivative.id).limit(20)).all()
        for derivative_id in candidates:
            claim = self._try_claim(derivative_id)
            if claim is not None:
                return claim
        for derivative_id, owner in self._held_by_the_dead(only, now):
            claim = self._try_claim(derivative_id, dead_owner=owner)
            if claim is not None:
                return claim
        return None

    def _held_by_the_dead(self, only: list[str] | None, now: datetime) -> list[tuple[int, str]]:
        """Running rows whose lease has not run out but whose holder's process is gone."""
        with self.archive.db.session() as session:
            query = select(Derivative.id, Derivative.lease_owner).where(
                Derivative.state == RUNNING,
                Derivative.next_attempt_at >= now,
                Derivative.lease_owner.is_not(None),
            )
            if only is not None:
                query = query.where(Derivative.evidence_id.in_(only))
            rows = session.execute(query.order_by(Derivative.id).limit(50)).all()
        return [(row_id, owner) for row_id, owner in rows if owner_gone(owner)]

    def _try_claim(self, derivative_id: int, *, dead_owner: str | None = None) -> Claim | None:
        """Claim one row if it is claimable – or, with ``dead_owner``, if that dead
        process still holds it (the condition is checked in the UPDATE itself)."""
        now = utcnow()
        lease = now + timedelta(seconds=self.queue.lease_seconds)
        claimable = self._claimable(now)
        if dead_owner is not None:
            claimable = and_(Derivative.state == RUNNING, Derivative.lease_owner == dead_owner)
        with self.archive.db.session() as session:
            previous = session.scalar(
                select(Derivative.state).where(Derivative.id == derivative_id)
            )
            done = session.execute(
                update(Derivative)
                .where(Derivative.id == derivative_id, claimable)
                .values(
                    state=RUNNING,
                    attempts=Derivative.attempts + 1,
                    next_attempt_at=lease,
                    lease_owner=process_owner(),
                    progress=0.0,
                    speed=None,
                )
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:
                return None
            row = session.get(Derivative, derivative_id)
            evidence = session.get(Evidence, row.evidence_id)
            claim = Claim(
                row.id, row.evidence_id, row.attempts, evidence.file_name if evidence else ""
            )
            limit = 1 + self.transcode.retry_attempts + CRASH_ALLOWANCE
            if previous == RUNNING and row.attempts > limit:
                # the worker died this often on this very item: it is the item, not bad luck
                reason = f"gave up: the worker making this copy stopped {row.attempts - 1} times"
                self._finish_failed(session, row, claim, reason, (), retry=False)
                log.error("%s: %s", row.evidence_id, reason)
                return None
        if previous == RUNNING:
            log.warning(
                "%s: taking over playback copy %d from %s",
                claim.evidence_id,
                claim.id,
                f"process {dead_owner}, which no longer exists"
                if dead_owner
                else "a worker whose lease ran out",
            )
        return claim

    def _next_due_in(self, only: list[str] | None) -> float | None:
        """Seconds until a pending row in scope may be claimable; None if none is pending."""
        with self.archive.db.session() as session:
            query = select(Derivative.state, Derivative.next_attempt_at).where(
                Derivative.state.in_(PENDING_STATES)
            )
            if only is not None:
                query = query.where(Derivative.evidence_id.in_(only))
            rows = session.execute(query).all()
        if not rows:
            return None
        now = utcnow()
        waits = [
            0.0 if when is None else max(0.0, (when - now).total_seconds()) for _state, when in rows
        ]
        return min(waits)

    # -- the lease ------------------------------------------------------------------

    def _heartbeat(self, job: _Job, done: threading.Event) -> None:
        """Renew the lease while the attempt runs; note it if another worker took over."""
        interval = max(0.05, self.queue.lease_seconds / 4)
        while not done.wait(interval):
            lease = utcnow() + timedelta(seconds=self.queue.lease_seconds)
            try:
                with self.archive.db.session() as session:
                    self._fenced_update(session, job.claim, next_attempt_at=lease)
            except LeaseLost:
                job.lost.set()
                return
            except Exception:  # a busy catalog: try again next beat, the lease has slack
                log.warning("playback: could not renew the lease of %d", job.claim.id)

    # -- endings ------------------------------------------------------------------------

    def _fenced_update(self, session: Session, claim: Claim, **values: Any) -> None:
        """Update our row only while we still hold it (state running, our attempt)."""
        done = session.execute(
            update(Derivative)
            .where(
                Derivative.id == claim.id,
                Derivative.state == RUNNING,
                Derivative.attempts == claim.attempt,
            )
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise LeaseLost()

    def _skip(self, job: _Job, plan: Plan, summary: ProbeSummary | None) -> Result:
        claim = job.claim
        with self.archive.db.session() as session:
            self._fenced_update(
                session,
                claim,
                state=SKIPPED,
                action=plan.action,
                reason=_reason(plan),
                progress=None,
                speed=None,
                last_error=None,
                next_attempt_at=None,
            )
            record_event(
                session,
                "derivative_skipped",
                actor=self.actor,
                evidence_id=claim.evidence_id,
                details={"derivative_id": claim.id, **plan.to_dict()},
            )
        log.info("%s: no playback copy: %s", claim.evidence_id, plan.reason)
        return Result(claim.id, claim.evidence_id, SKIPPED, plan.action, _reason(plan))

    def _fail(
        self,
        job: _Job,
        reason: str,
        stderr_tail: tuple[str, ...],
        *,
        retryable: bool,
        charge: bool = True,
    ) -> Result:
        claim = job.claim
        try:
            with self.archive.db.session() as session:
                row = session.get(Derivative, claim.id)
                if row is None or row.state != RUNNING or row.attempts != claim.attempt:
                    raise LeaseLost()
                retry = retryable and (not charge or row.attempts <= self.transcode.retry_attempts)
                self._finish_failed(session, row, claim, reason, stderr_tail, retry, charge=charge)
        except LeaseLost:
            return Result(claim.id, claim.evidence_id, LOST, detail=reason)
        state = RETRYING if retry else FAILED
        (log.warning if retry else log.error)(
            "%s: playback copy %s: %s", claim.evidence_id, state, reason
        )
        return Result(claim.id, claim.evidence_id, state, detail=reason)

    def _finish_failed(
        self,
        session: Session,
        row: Derivative,
        claim: Claim,
        reason: str,
        stderr_tail: tuple[str, ...],
        retry: bool,
        *,
        charge: bool = True,
    ) -> None:
        delay = None
        if retry:
            initial, ceiling = self.queue.retry_initial_seconds, self.queue.retry_max_seconds
            delay = min(ceiling, initial * 2 ** min(max(row.attempts - 1, 0), 16))
        self._fenced_update(
            session,
            claim,
            state=RETRYING if retry else FAILED,
            attempts=row.attempts if charge else row.attempts - 1,
            last_error=reason,
            next_attempt_at=utcnow() + timedelta(seconds=delay) if delay is not None else None,
            speed=None,
        )
        record_event(
            session,
            "derivative_failed",
            actor=self.actor,
            evidence_id=claim.evidence_id,
            details={
                "derivative_id": claim.id,
                "attempt": claim.attempt,
                "reason": reason,
                "stderr_tail": list(stderr_tail[-10:]),
                "retry": retry,
                "retry_in_seconds": delay,
            },
        )

    def _hand_back(self, job: _Job) -> Result:
        """Stopped (shutdown or Ctrl-C): queue the row again without using up an attempt."""
        claim = job.claim
        with contextlib.suppress(LeaseLost), self.archive.db.session() as session:
            self._fenced_update(
                session,
                claim,
                state=QUEUED,
                attempts=claim.attempt - 1,
                next_attempt_at=None,
                progress=None,
                speed=None,
            )
            if job.announced:
                record_event(
                    session,
                    "derivative_failed",
                    actor=self.actor,
                    evidence_id=claim.evidence_id,
                    details={
                        "derivative_id": claim.id,
                        "attempt": claim.attempt,
                        "reason": "stopped: the worker shut down; queued again",
                        "retry": True,
                    },
                )
        log.info("%s: playback copy stopped and queued again", claim.evidence_id)
        return Result(claim.id, claim.evidence_id, QUEUED, detail="stopped")
