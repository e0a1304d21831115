"""Playback copies from the queue, top to bottom: claim → fetch and verify the
original → probe → copy (ffmpeg) → store → seal lineage → commit.

The pipeline queues one ``Derivative`` row per sealed original; this module
consumes them with a bounded pool of threads (``transcode.workers``). Every
step only *reads* the original: it is fetched from the store by its exact
version into a work folder and its SHA-256 checked against the catalog before
ffmpeg sees it, so a copy is never made from unverified bytes (invariant 3).

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

Outcomes: ``stored`` (copy and lineage manifest in the store, one
``derivative_stored`` event), ``skipped`` (the policy says no copy, e.g. a
still: one ``derivative_skipped`` event), ``retrying`` (a retryable failure:
time-out, killed, store down; due again after a doubling delay) or ``failed``
(ffmpeg's or ffprobe's own last words in ``last_error``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.custody import record_event, system_actor
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.health import UNEXPECTED, Health, classify
from archive.lineage import derivative_payload, portable_args, seal_derivative
from archive.metrics import DERIVATIVE_SECONDS, DERIVATIVES, ERRORS
from archive.models import Evidence
from archive.owner import owner_gone, process_owner
from archive.retention import stronger_mode
from archive.seal import derivative_key
from archive.store import (
    AlreadyExists,
    NotFound,
    ObjectInfo,
    Retention,
    StoredObject,
    StoreError,
    composite_checksum,
    sha256_b64,
)
from config.errors import ConflictError
from ingest.probe import ProbeError, ProbeSummary, probe
from ingest.sandbox import sandbox_for
from ingest.transcode import Plan, PlaybackCopy, TranscodeError, choose_action, make_playback_copy

log = logging.getLogger("strongroom.playback")

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
STORED = "stored"
SKIPPED = "skipped"
FAILED = "failed"
#: states with work still to do
PENDING_STATES = (QUEUED, RETRYING, RUNNING)
#: claims of a row whose previous worker died, allowed on top of the retry budget
#: (a power cut is not the file's fault, but a file that kills us every time is)
CRASH_ALLOWANCE = 3
_PROGRESS_WRITE_SECONDS = 1.0
_HASH_CHUNK = 1024 * 1024


class LeaseLost(ConflictError):
    """Another worker took this row over (our lease ran out): our work is discarded."""

    code = "lease_lost"


class Stopping(Exception):
    """The worker was asked to stop; the row is handed back to the queue."""


class OriginalMismatch(ConflictError):
    """The store returned bytes that do not hash to the catalog's SHA-256."""

    code = "original_mismatch"


@dataclass(frozen=True)
class Claim:
    """One row this worker holds; ``attempt`` is the fencing token."""

    id: int
    evidence_id: str
    attempt: int
    file_name: str


@dataclass(frozen=True)
class Result:
    """What one attempt ended in (returned by :meth:`PlaybackWorker.run_until_idle`)."""

    derivative_id: int
    evidence_id: str
    state: str
    action: str | None = None
    detail: str | None = None
    sha256: str | None = None
    key: str | None = None


class Observer:
    """Hooks for a front end (the CLI's progress bar); the defaults do nothing."""

    def started(self, claim: Claim, plan: Plan | None) -> None:
        """A claimed row is about to be worked on."""

    def progress(self, claim: Claim, percent: float, speed: float | None) -> None:
        """ffmpeg reported progress (called in the worker's thread, often)."""

    def finished(self, claim: Claim, result: Result) -> None:
        """The attempt ended (any state)."""


@dataclass
class _Job:
    """Everything one attempt owns; never shared between attempts."""

    claim: Claim
    work: Path
    stop: threading.Event
    announced: bool = False  # derivative_started recorded
    last_write: float = 0.0
    lost: threading.Event = field(default_factory=threading.Event)


class PlaybackWorker:
    """A bounded pool making playback copies, in the background or until the queue is empty."""

    def __init__(self, archive: Archive, *, observer: Observer | None = None) -> None:
        self.archive = archive
        self.transcode = archive.settings.transcode
        self.queue = archive.settings.playback
        self.actor = system_actor(archive.station)
        self.observer = observer or Observer()
        self.work_root = archive.settings.data_dir / "work" / "playback"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        #: the daemon's fault board (None in one-shot commands: faults are only logged)
        self.health: Health | None = None

    # -- running ------------------------------------------------------------------

    def start(self) -> None:
        """Run ``transcode.workers`` threads in the background until :meth:`stop`."""
        self._stop.clear()
        for number in range(self.transcode.workers):
            thread = threading.Thread(
                target=self._loop,
                kwargs={"stop": self._stop, "only": None, "idle_exit": False, "deadline": None},
                name=f"playback-{number}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info("playback workers started: %d", self.transcode.workers)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the threads to stop; a running ffmpeg is stopped and its row queued again."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wake(self) -> None:
        """Look for work now (called when an original was sealed)."""
        self._wake.set()

    def run_until_idle(
        self,
        evidence_ids: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> list[Result]:
        """Process the queue (or these items' rows) with the pool until nothing is pending.

        Waits for retries that fall due and for rows another worker holds, so
        on return every row in scope is stored, skipped or failed – unless
        ``timeout`` ran out or ``stop`` was set first.
        """
        only = None if evidence_ids is None else sorted(set(evidence_ids))
        if only is not None and not only:
            return []
        stop = stop or threading.Event()
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[Result] = []
        threads = [
            threading.Thread(
                target=self._loop,
                kwargs={
                    "stop": stop,
                    "only": only,
                    "idle_exit": True,
                    "deadline": deadline,
                    "results": results,
                },
                name=f"playback-run-{number}",
                daemon=True,
            )
            for number in range(self.transcode.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except BaseException:  # Ctrl-C: stop ffmpeg, hand rows back, then re-raise
            stop.set()
            for thread in threads:
                thread.join(30)
            raise
        return results

    def pending(self, evidence_ids: Iterable[str] | None = None) -> int:
        """Rows in scope that are not finished (queued, retrying or running)."""
        with self.archive.db.session() as session:
            query = select(Derivative.id).where(Derivative.state.in_(PENDING_STATES))
            if evidence_ids is not None:
                query = query.where(Derivative.evidence_id.in_(list(evidence_ids)))
            return len(session.scalars(query).all())

    def _loop(
        self,
        *,
        stop: threading.Event,
        only: list[str] | None,
        idle_exit: bool,
        deadline: float | None,
        results: list[Result] | None = None,
    ) -> None:
        while not stop.is_set() and not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            try:
                claim = self.claim_next(only)
            except Exception as exc:  # the catalog is unreachable: wait, never die
                self._fault(exc, "playback: cannot read the queue")
                ERRORS.labels("playback-queue").inc()
                claim = None
            else:
                if self.health is not None and self.health.active(where="playback"):
                    self.health.clear("playback")
            if claim is not None:
                try:
                    result = self.process(claim, stop)
                except Exception as exc:  # only the catalog failing can get here
                    self._fault(exc, f"playback: could not record the end of copy {claim.id}")
                    ERRORS.labels("playback-queue").inc()
                    self._wake.wait(self.queue.poll_seconds)
                    continue
                if results is not None:
                    results.append(result)
                continue
            wait = self.queue.poll_seconds
            if idle_exit:
                try:
                    due_in = self._next_due_in(only)
                except Exception:
                    log.exception("playback: cannot read the queue")
                    due_in = wait
                if due_in is None:
                    return
                wait = min(wait, max(0.05, due_in))
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()

    def _fault(self, exc: Exception, what: str) -> None:
        """One line naming the fault; on the daemon's board (status, metrics) when there is one."""
        if self.health is None:
            log.exception(what)
            return
        kind, message = classify(exc)
        if kind == UNEXPECTED:
            log.exception(what)
        self.health.fault(kind, "playback", f"{what}: {message}")

    # -- the queue ------------------------------------------------------------------

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
        # the query took only rows with an owner
        return [
            (row_id, owner) for row_id, owner in rows if owner is not None and owner_gone(owner)
        ]

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
            if cast(CursorResult[Any], done).rowcount != 1:  # an UPDATE's result
                return None
            row = session.get(Derivative, derivative_id)
            assert row is not None  # it was just updated, in this transaction
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

    # -- one copy -------------------------------------------------------------------

    def process(self, claim: Claim, stop: threading.Event | None = None) -> Result:
        """Work one claimed row to an outcome; never raises for a bad file or a down store."""
        job = _Job(claim, self.work_root / f"d{claim.id}", stop or self._stop)
        shutil.rmtree(job.work, ignore_errors=True)  # a dead worker's leftovers
        started = time.monotonic()
        done = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(job, done), name=f"lease-{claim.id}", daemon=True
        )
        heartbeat.start()
        action = None
        try:
            result = self._make(job)
            action = result.action
        except Stopping:
            result = self._hand_back(job)
        except LeaseLost:
            log.warning("%s: lost the lease on playback copy %d", claim.evidence_id, claim.id)
            result = Result(claim.id, claim.evidence_id, "lost", detail="lease lost")
        except TranscodeError as exc:
            result = self._fail(job, exc.reason, exc.stderr_tail, retryable=exc.retryable)
        except ProbeError as exc:
            result = self._fail(job, exc.reason, exc.stderr_tail, retryable=exc.timed_out)
        except OriginalMismatch as exc:
            ERRORS.labels("playback-original-mismatch").inc()
            log.error("%s: %s", claim.evidence_id, exc)
            result = self._fail(job, str(exc), (), retryable=False)
        except NotFound as exc:
            result = self._fail(job, f"not in the store: {exc}", (), retryable=False)
        except StoreError as exc:
            # the store being down only delays a copy: it does not use up the retries
            result = self._fail(
                job, f"store: {exc}", (), retryable=exc.retryable, charge=not exc.retryable
            )
        except Exception as exc:
            log.exception("%s: unexpected error making a playback copy", claim.evidence_id)
            ERRORS.labels("playback").inc()
            result = self._fail(job, f"{type(exc).__name__}: {exc}", (), retryable=True)
        finally:
            done.set()
            heartbeat.join(5)
            shutil.rmtree(job.work, ignore_errors=True)
        DERIVATIVES.labels(result.state).inc()
        if action:
            DERIVATIVE_SECONDS.labels(action).observe(time.monotonic() - started)
        self.observer.finished(claim, result)
        return result

    def _make(self, job: _Job) -> Result:
        claim = job.claim
        evidence = self._evidence(claim.evidence_id)
        known = _catalog_probe(evidence)
        plan = choose_action(known, self.transcode.rules) if known else None
        if plan is not None and plan.action == "none":
            return self._skip(job, plan, None)  # a still: nothing to fetch
        self.observer.started(claim, plan)
        self._announce(job, plan)
        suffix = _safe_suffix(evidence.file_name)
        original = job.work / f"original{suffix}"
        self._fetch_verified(evidence, original, job)
        # the bytes hash to the catalog's SHA-256, so the probe taken at ingest describes
        # them exactly; probe here only when ingest could not (ffprobe says why it fails)
        summary = known or probe(
            original, self.transcode.probe_timeout_seconds, sandbox_for(self.transcode)
        )
        plan = choose_action(summary, self.transcode.rules)
        if plan.action == "none":
            return self._skip(job, plan, summary)
        with self.archive.db.session() as session:
            self._fenced_update(session, claim, action=plan.action, reason=_reason(plan))
        out_dir = job.work / "out"
        copy = make_playback_copy(
            original, out_dir, summary, self.transcode, lambda p, s: self._on_progress(job, p, s)
        )
        if copy is None:  # the policy changed between the two looks: nothing to make
            return self._skip(job, plan, summary)
        self._check(job)
        retention = self._retention_like_original(evidence)
        stored = self._put_copy(copy, retention, evidence)
        args = portable_args(copy.args, original, out_dir)
        payload = derivative_payload(
            evidence_id=evidence.evidence_id,
            original_sha256=evidence.sha256,
            original_size=evidence.size,
            original_version_id=evidence.original_version_id,
            sha256=copy.sha256,
            size=copy.size,
            media_type=copy.media_type,
            version_id=stored.version_id,
            store_checksum=stored.checksum_sha256,
            probe=copy.probe.to_dict(),
            plan=copy.plan.to_dict(),
            ffmpeg_version=copy.ffmpeg_version,
            args=args,
            created_at=utcnow(),
            retention=retention,
            keyid=self.archive.key.keyid,
        )
        self._check(job)
        sealed = seal_derivative(self.archive.store, self.archive.key, payload, retention)
        speed = copy.run.speed if copy.run else None
        with self.archive.db.session() as session:
            self._fenced_update(
                session,
                job.claim,
                state=STORED,
                action=copy.plan.action,
                reason=_reason(copy.plan),
                sha256=copy.sha256,
                size=copy.size,
                key=stored.key,
                version_id=stored.version_id,
                checksum=stored.checksum_sha256,
                manifest_key=sealed.stored.key,
                manifest_version_id=sealed.stored.version_id,
                probe=copy.probe.to_dict(),
                ffmpeg_version=copy.ffmpeg_version,
                ffmpeg_args=args,
                progress=100.0,
                speed=speed,
                last_error=None,
                next_attempt_at=None,
            )
            record_event(
                session,
                "derivative_stored",
                actor=self.actor,
                evidence_id=claim.evidence_id,
                details={
                    "derivative_id": claim.id,
                    "attempt": claim.attempt,
                    "action": copy.plan.action,
                    "rule": copy.plan.rule,
                    "original_sha256": evidence.sha256,
                    "key": stored.key,
                    "version_id": stored.version_id,
                    "sha256": copy.sha256,
                    "size": copy.size,
                    "media_type": copy.media_type,
                    "manifest_key": sealed.stored.key,
                    "manifest_version_id": sealed.stored.version_id,
                    "ffmpeg_version": copy.ffmpeg_version,
                },
            )
        self._align_locks(evidence.evidence_id, [stored, sealed.stored], retention)
        log.info(
            "%s: playback copy stored (%s, %s bytes, %s)",
            claim.evidence_id,
            copy.plan.action,
            copy.size,
            stored.key,
        )
        return Result(
            claim.id,
            claim.evidence_id,
            STORED,
            copy.plan.action,
            _reason(copy.plan),
            copy.sha256,
            stored.key,
        )

    # -- steps ------------------------------------------------------------------------

    def _evidence(self, evidence_id: str) -> Evidence:
        with self.archive.db.session() as session:
            evidence = session.get(Evidence, evidence_id)
        if evidence is None:
            raise NotFound(f"evidence {evidence_id}")
        return evidence

    def _announce(self, job: _Job, plan: Plan | None) -> None:
        with self.archive.db.session() as session:
            planned = {"action": plan.action, "reason": _reason(plan)} if plan else {}
            self._fenced_update(session, job.claim, last_error=None, **planned)
            record_event(
                session,
                "derivative_started",
                actor=self.actor,
                evidence_id=job.claim.evidence_id,
                details={
                    "derivative_id": job.claim.id,
                    "attempt": job.claim.attempt,
                    "planned_action": plan.action if plan else None,
                    "rule": plan.rule if plan else None,
                },
            )
        job.announced = True

    def _fetch_verified(self, evidence: Evidence, path: Path, job: _Job) -> None:
        """Download the exact original version, hashing as it arrives; refuse a mismatch."""
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with path.open("xb") as handle:
            for chunk in self.archive.store.iter_chunks(
                evidence.original_key, evidence.original_version_id
            ):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
                if job.stop.is_set():
                    raise Stopping()
        if digest.hexdigest() != evidence.sha256 or size != evidence.size:
            raise OriginalMismatch(
                f"the stored original {evidence.original_key}@{evidence.original_version_id} "
                f"hashes to {digest.hexdigest()} ({size} bytes), the catalog says "
                f"{evidence.sha256} ({evidence.size} bytes): no copy is made from it"
            )

    def _on_progress(self, job: _Job, percent: float, speed: float | None) -> None:
        """ffmpeg's progress: to the row about once a second; also the way to cancel ffmpeg."""
        self._check(job)
        self.observer.progress(job.claim, percent, speed)
        now = time.monotonic()
        if now - job.last_write < _PROGRESS_WRITE_SECONDS and percent < 100.0:
            return
        job.last_write = now
        with self.archive.db.session() as session:
            self._fenced_update(session, job.claim, progress=round(percent, 2), speed=speed)

    def _check(self, job: _Job) -> None:
        if job.lost.is_set():
            raise LeaseLost()
        if job.stop.is_set():
            raise Stopping()

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

    def _retention_like_original(self, evidence: Evidence) -> Retention | None:
        """The original's own lock (mode and date, read from the store), and its hold."""
        info = self.archive.store.head(evidence.original_key, evidence.original_version_id)
        held = info.legal_hold or evidence.legal_hold
        if info.lock_mode and info.retain_until and info.retain_until > utcnow():
            return Retention(info.lock_mode, info.retain_until, held)
        if info.lock_mode is None and self.archive.settings.store.allow_unlocked:
            return None  # development store without Object Lock
        fallback = self.archive.retention_for(evidence.category)
        return Retention(fallback.mode, fallback.retain_until, fallback.legal_hold or held)

    def _put_copy(
        self, copy: PlaybackCopy, retention: Retention | None, evidence: Evidence
    ) -> StoredObject:
        """Create-only at ``derivatives/sha256/<hex>``; identical bytes found there are adopted."""
        key = derivative_key(copy.sha256)
        try:
            return self.archive.store.put_file(
                key,
                copy.path,
                copy.sha256,
                copy.size,
                retention,
                content_type=copy.media_type or "application/octet-stream",
                metadata={"sha256": copy.sha256, "original-sha256": evidence.sha256},
            )
        except AlreadyExists:
            info = self.archive.store.head(key)
            self._confirm_same(info, copy)
            return StoredObject(key, info.version_id, info.size, info.checksum_sha256 or "", False)

    def _confirm_same(self, info: ObjectInfo, copy: PlaybackCopy) -> None:
        whole = sha256_b64(bytes.fromhex(copy.sha256))
        if info.size == copy.size and info.checksum_sha256 == whole:
            return
        if info.size == copy.size and info.checksum_sha256 and "-" in info.checksum_sha256:
            digests = []
            part = self.archive.store.part_size
            with copy.path.open("rb") as handle:
                while chunk := handle.read(part):
                    digests.append(hashlib.sha256(chunk).digest())
            if composite_checksum(digests) == info.checksum_sha256:
                return
        raise StoreError(
            f"{info.key} exists but does not hold the bytes of this copy "
            f"({info.size} bytes, checksum {info.checksum_sha256})",
            retryable=False,
        )

    def _align_locks(
        self, evidence_id: str, objects: list[StoredObject], retention: Retention | None
    ) -> None:
        """Bring the copy's objects up to the original's lock as it is *now*.

        Holds and retention changes are applied to every *stored* copy of an
        item; a copy stored meanwhile read its lock before such a change, and a
        copy adopted from identical bytes (content-addressed) kept the lock it
        was first written with, for another item. Both only ever go up here:
        the later date, and the stronger mode.
        """
        if retention is None:
            return  # a development store without Object Lock
        try:
            with self.archive.db.session() as session:
                evidence = session.get(Evidence, evidence_id)
            if evidence is None:
                return
            info = self.archive.store.head(evidence.original_key, evidence.original_version_id)
            held = evidence.legal_hold or info.legal_hold
            until = max(filter(None, (info.retain_until, retention.retain_until)))
            mode = info.lock_mode or retention.mode
            for obj in objects:
                if held:
                    self.archive.store.set_legal_hold(obj.key, obj.version_id, True)
                # a copy shared with another item may be COMPLIANCE already: asking
                # for GOVERNANCE would be refused, and the longer date lost with it
                current = self.archive.store.head(obj.key, obj.version_id).lock_mode
                self.archive.store.extend_retention(
                    obj.key,
                    obj.version_id,
                    stronger_mode(current, mode),
                    until,
                )
        except StoreError as exc:
            # the copy is stored and recorded; the next hold or retention change re-applies
            # to all of the item's objects, so this is logged loudly and counted, not lost
            ERRORS.labels("playback-align-locks").inc()
            log.error("%s: could not align the playback copy's lock: %s", evidence_id, exc)

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
        if cast(CursorResult[Any], done).rowcount != 1:  # an UPDATE's result
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
            return Result(claim.id, claim.evidence_id, "lost", detail=reason)
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


def _catalog_probe(evidence: Evidence) -> ProbeSummary | None:
    """The probe summary ingest stored for this item, if it has a usable one."""
    if not evidence.probe:
        return None
    try:
        return ProbeSummary.from_dict(evidence.probe)
    except (TypeError, ValueError, KeyError):
        return None


def _reason(plan: Plan) -> str:
    return f"{plan.reason} (rule {plan.rule})" if plan.rule else plan.reason


def _safe_suffix(file_name: str) -> str:
    """The original's extension if it is plain (helps ffmpeg pick a demuxer), else none."""
    suffix = Path(file_name).suffix
    return suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""


# -- what status and show print ----------------------------------------------------------


def status_section(session: Session) -> dict[str, Any]:
    """``strongroom status``: copies by state, the running ones with percent and speed,
    and the latest failures with ffmpeg's reason."""
    from archive.queries import derivative_counts, derivatives_in

    running = [
        {
            "evidence_id": d.evidence_id,
            "action": d.action,
            "percent": round(d.progress or 0.0, 1),
            "speed": f"{d.speed:g}x" if d.speed is not None else None,
            "attempt": d.attempts,
        }
        for d in derivatives_in(session, [RUNNING])
    ]
    failed = [
        {
            "evidence_id": d.evidence_id,
            "state": d.state,
            "attempts": d.attempts,
            "error": d.last_error,
        }
        for d in derivatives_in(session, [FAILED, RETRYING], limit=10)
    ]
    return {"counts": derivative_counts(session), "running": running, "failed": failed}


def item_section(session: Session, evidence_id: str) -> list[dict[str, Any]]:
    """``strongroom show``: every playback copy of the item (or attempt at one)."""
    from archive.queries import derivative_summary, derivatives_of

    return [derivative_summary(d) for d in derivatives_of(session, evidence_id)]
