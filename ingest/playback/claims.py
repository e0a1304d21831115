"""The playback queue and its lease: claiming a row, renewing the claim, and
every state a claimed row moves on to (stored, skipped, retrying, failed, or
queued again).

Sharing the queue safely, between threads, processes and stations:

* a row is **claimed** in :mod:`archive.playback_queue`: on PostgreSQL locked
  ``FOR UPDATE SKIP LOCKED`` (stations claiming at once each take another
  row, as fixity work is shared), then taken by one conditional UPDATE (state
  and due time in the WHERE clause) that also bumps ``attempts``;
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
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from archive import playback_queue
from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.leases import LeaseLost
from archive.owner import process_owner
from archive.states import PENDING_COPY_STATES, CopyState
from config.settings import PlaybackSettings
from config.transcode import TranscodeSettings
from ingest.playback.attempt import (
    LOST,
    TAKEN_OVER,
    Claim,
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
            query = select(Derivative.id).where(Derivative.state.in_(PENDING_COPY_STATES))
            if evidence_ids is not None:
                query = query.where(Derivative.evidence_id.in_(list(evidence_ids)))
            return len(session.scalars(query).all())

    def claim_next(self, only: list[str] | None = None) -> Claim | None:
        """Take the oldest claimable row, or None. Atomic across threads and stations:
        on PostgreSQL the row is locked ``FOR UPDATE SKIP LOCKED``, so stations
        claiming at once each take another row (:mod:`archive.playback_queue`)."""
        db, lease = self.archive.db, timedelta(seconds=self.queue.lease_seconds)
        taken = playback_queue.claim(db, lease=lease, owner=process_owner(), only=only)
        dead_owner = None
        if taken is None:
            for derivative_id, dead_owner in playback_queue.held_by_the_dead(db, only):
                taken = playback_queue.take_over(
                    db, derivative_id, dead_owner, lease=lease, owner=process_owner()
                )
                if taken is not None:
                    break
        if taken is None:
            return None
        claim = Claim(taken.id, taken.evidence_id, taken.attempt, taken.file_name)
        if taken.previous != CopyState.RUNNING:
            return claim
        limit = 1 + self.transcode.retry_attempts + CRASH_ALLOWANCE
        if taken.attempt > limit:
            # the worker died this often on this very item: it is the item, not bad luck
            reason = f"gave up: the worker making this copy stopped {taken.attempt - 1} times"
            with db.session() as session:
                row = session.get(Derivative, taken.id)
                assert row is not None
                self._finish_failed(session, row, claim, reason, (), retry=False)
            log.error("%s: %s", taken.evidence_id, reason)
            return None
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
                Derivative.state.in_(PENDING_COPY_STATES)
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
                Derivative.state == CopyState.RUNNING,
                Derivative.attempts == claim.attempt,
            )
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], done).rowcount != 1:  # an UPDATE's result
            raise LeaseLost(TAKEN_OVER)

    def _skip(self, job: _Job, plan: Plan, summary: ProbeSummary | None) -> Result:
        claim = job.claim
        with self.archive.db.session() as session:
            self._fenced_update(
                session,
                claim,
                state=CopyState.SKIPPED,
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
        return Result(claim.id, claim.evidence_id, CopyState.SKIPPED, plan.action, _reason(plan))

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
                if row is None or row.state != CopyState.RUNNING or row.attempts != claim.attempt:
                    raise LeaseLost(TAKEN_OVER)
                retry = retryable and (not charge or row.attempts <= self.transcode.retry_attempts)
                self._finish_failed(session, row, claim, reason, stderr_tail, retry, charge=charge)
        except LeaseLost:
            return Result(claim.id, claim.evidence_id, LOST, detail=reason)
        state = CopyState.RETRYING if retry else CopyState.FAILED
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
            state=CopyState.RETRYING if retry else CopyState.FAILED,
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
                state=CopyState.QUEUED,
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
        return Result(claim.id, claim.evidence_id, CopyState.QUEUED, detail="stopped")
