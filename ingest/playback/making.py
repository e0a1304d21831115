"""Making one playback copy of a claimed row, top to bottom: fetch and verify the
original → probe → copy (ffmpeg) → store → seal lineage → commit. Every step
only *reads* the original, and no copy is made from bytes that do not hash to
the catalog's SHA-256 (invariant 3)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import threading
import time
from pathlib import Path

from archive.custody import record_event
from archive.db import utcnow
from archive.layout import derivative_key
from archive.leases import LeaseLost
from archive.lineage import lineage_manifest, portable_args, seal_derivative
from archive.metrics import DERIVATIVE_SECONDS, DERIVATIVES, ERRORS
from archive.models import Evidence
from archive.states import CopyState
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
from ingest.playback.attempt import (
    LOST,
    TAKEN_OVER,
    Claim,
    Observer,
    OriginalMismatch,
    Result,
    Stopping,
    _Job,
    _reason,
)
from ingest.playback.claims import PlaybackQueue
from ingest.playback.locks import LockAligner
from ingest.probe import ProbeError, ProbeSummary, probe
from ingest.sandbox import sandbox_for
from ingest.transcode import Plan, PlaybackCopy, TranscodeError, choose_action, make_playback_copy

log = logging.getLogger("strongroom.playback")

_PROGRESS_WRITE_SECONDS = 1.0


class CopyMaker(PlaybackQueue, LockAligner):
    """Works one claimed row to an outcome (part of :class:`ingest.playback.PlaybackWorker`)."""

    observer: Observer
    work_root: Path
    _stop: threading.Event

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
            result = Result(claim.id, claim.evidence_id, LOST, detail="lease lost")
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
        payload = lineage_manifest(
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
                state=CopyState.STORED,
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
            CopyState.STORED,
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
            raise LeaseLost(TAKEN_OVER)
        if job.stop.is_set():
            raise Stopping()

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


def _catalog_probe(evidence: Evidence) -> ProbeSummary | None:
    """The probe summary ingest stored for this item, if it has a usable one."""
    if not evidence.probe:
        return None
    try:
        return ProbeSummary.from_dict(evidence.probe)
    except (TypeError, ValueError, KeyError):
        return None


def _safe_suffix(file_name: str) -> str:
    """The original's extension if it is plain (helps ffmpeg pick a demuxer), else none."""
    suffix = Path(file_name).suffix
    return suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
