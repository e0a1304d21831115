"""A dock file's journey, top to bottom: claim → hash → store → seal → release.

Each step is one call into :mod:`archive` whose name says what it guarantees,
followed by one catalog commit that records the new state and its custody
event. A crash between steps loses nothing: on restart the job is picked up in
the last committed state, and every step is safe to run again (content-addressed
keys, create-only writes, manifests adopted when already stored).

The one rule that protects the evidence: the dock copy is released only from
the SEALED state, which is committed only after the store confirmed the
original's size and SHA-256 and the signed manifest was stored.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

from sqlalchemy import JSON, Connection, CursorResult, Row, Table, bindparam, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.custody import record_event, system_actor
from archive.db import display_path, utcnow
from archive.derivatives import Derivative
from archive.groupcommit import GroupCommitter
from archive.hashing import FileDigest, FileIdentity, NotRegularFile, hash_file
from archive.layout import original_key
from archive.manifest_rows import evidence_row
from archive.manifests import Source
from archive.models import ACTIVE_STATES, Evidence, IngestJob, JobState
from archive.recorded_time import item_time, media_time
from archive.seal import SealError, evidence_id_for, evidence_manifest, seal_evidence
from archive.states import CopyState
from archive.store import (
    AlreadyExists,
    ContentChanged,
    LockMode,
    NotFound,
    ObjectInfo,
    Retention,
    StoreError,
    sha256_b64,
)
from archive.uploads import UPLOAD_DOCK
from config.errors import BadInputError, ConflictError
from config.recorder import MISMATCH_FLAG
from config.settings import DockSettings, NameRule, keep_days, move_to
from ingest import dockfs
from ingest.identify import identify_with
from ingest.metadata import media_metadata
from ingest.prehash import PreHasher
from ingest.probe import ProbeError, probe_report
from ingest.recorder_hashes import (
    compare,
    for_manifest,
    marks_of,
    mismatch_reason,
    read_recorded,
    wants_md5,
)
from ingest.sandbox import sandbox_for
from ingest.scan import WORK_DIR, Candidate
from ingest.sniff import media_signature
from ingest.uploads import UploadOrigin, upload_origin

log = logging.getLogger("strongroom.pipeline")

#: attempts after which a job that keeps failing for the same non-store reason
#: is set aside in quarantine rather than retried for ever
MAX_ATTEMPTS = 8
#: a store error this soon after the store came back is the outage's tail …
STORE_SETTLE_SECONDS = 30.0
#: … and is tried again after this long, not after the job's backoff
STORE_SETTLE_RETRY_SECONDS = 1.0
TERMINAL_STATES = frozenset(
    {
        JobState.RELEASED,
        JobState.DUPLICATE,
        JobState.QUARANTINED,
        JobState.VANISHED,
        JobState.HELD,
    }
)
#: release policy of files archived where they lie (``strongroom ingest`` outside docks)
IN_PLACE = "keep-in-place"
#: test-only: kill -9 ourselves right after committing this state (crash tests)
CRASH_HOOK_ENV = "STRONGROOM_TEST_CRASH_AFTER"

#: what the seal takes from ffprobe: summary, media metadata, or why there are none
ProbeResult = tuple[dict | None, dict | None, str | None]


class Unreadable(BadInputError):
    """The file cannot be read as a regular file: it goes to quarantine."""

    code = "unreadable"


class NotConfirmed(ConflictError):
    """The store holds something other than what we hashed under our key."""

    code = "not_confirmed"


@dataclass(frozen=True)
class Outcome:
    job_id: int
    state: str
    evidence_id: str | None
    sha256: str | None
    name: str
    error: str | None = None


def work_dir(dock_root: str | Path) -> Path:
    return Path(dock_root) / WORK_DIR


class Pipeline:
    """Moves jobs through the steps. Safe to call from several worker threads:
    each job is advanced by one thread at a time (the daemon guarantees it)."""

    def __init__(
        self,
        archive: Archive,
        *,
        on_sealed: Callable[[str], None] | None = None,
    ) -> None:
        self.archive = archive
        self.settings = archive.settings
        self.actor = system_actor(archive.station)
        self.on_sealed = on_sealed
        # serialises identical bytes inside this process, so two copies of one
        # recording dropped together make one evidence item and one sighting;
        # striped by hash prefix so the table stays small for ever
        self._sha_locks = [threading.Lock() for _ in range(64)]
        self._crash_after = os.environ.get(CRASH_HOOK_ENV)
        self._writer = GroupCommitter(archive.db)
        #: digests taken while files settled (the daemon sets it; see ingest/prehash.py)
        self.prehasher: PreHasher | None = None
        #: when the store last answered again after an outage (the daemon's store
        #: probe sets it); a store error close to that moment is the outage's tail
        self.store_back_at: Callable[[], float | None] | None = None
        # the seal's ffprobe, started beside the original's upload (see _start_probe);
        # at most one per job in the store step, so never more than `workers` at once
        self._probes: dict[int, Future[ProbeResult]] = {}
        self._probes_lock = threading.Lock()
        self._probe_pool: ThreadPoolExecutor | None = None

    # -- entry points -------------------------------------------------------

    def register(
        self, dock: DockSettings, candidates: list[Candidate], *, in_place: bool = False
    ) -> list[int]:
        """Record settled files as jobs, all in one commit; returns their job ids
        (see :meth:`register_jobs`)."""
        return [job.id for job, _ in self._register(dock, candidates, in_place)]

    def register_for_workers(
        self, dock: DockSettings, candidates: list[Candidate]
    ) -> list[int | IngestJob]:
        """Register like :meth:`register`, for workers that run beside this call: a new
        job as committed (its worker starts from it without reading it back – one
        catalog read fewer per file), an adopted one by id (a worker may have
        moved it on since, so it is read afresh)."""
        return [job.id if adopted else job for job, adopted in self._register(dock, candidates)]

    def register_jobs(
        self, dock: DockSettings, candidates: list[Candidate], *, in_place: bool = False
    ) -> list[IngestJob]:
        """Record settled files as jobs, all in one commit; returns the jobs as
        committed (in memory, in no session: :meth:`advance` takes them without
        reading them back).

        The rows are committed *before* any file is moved, so a crash in between
        leaves CLAIMING jobs that the restart finishes (each file is then in the
        spool or still in the dock, never nowhere). Files archived in place
        (``strongroom ingest`` outside a dock) are claimed in the same commit.

        One job per dock file: a file that already has a job not yet claimed
        (a rescan, or a restart, saw it again) is *adopted* – that job is
        returned, no second one is made – and a file no longer in the dock
        because one of our jobs just claimed it is left out rather than
        registered to end "vanished". Both are decided inside the catalog
        writer, whose commits are serialised with the claims' own, so no claim
        can slip in between; a file the dock really removed is still recorded.
        """
        return [job for job, _ in self._register(dock, candidates, in_place)]

    def _register(
        self, dock: DockSettings, candidates: list[Candidate], in_place: bool = False
    ) -> list[tuple[IngestJob, bool]]:
        """:meth:`register_jobs`, each job with True if it was adopted (made earlier)."""
        root = self.settings.dock_path(dock)
        rule = self.settings.name_rule(dock)

        def insert(session: Session) -> list[tuple[IngestJob, bool]]:
            connection = session.connection()
            jobs: list[tuple[IngestJob, bool]] = []
            now = utcnow()
            unclaimed = {} if in_place else self._unclaimed_jobs(session, dock.label)
            for candidate in candidates:
                if not in_place:
                    adopted = unclaimed.get(candidate.path)
                    if adopted is not None:
                        jobs.append((self._adopt(session, adopted, candidate), True))
                        continue
                    if _taken_already(session, self.archive.station, dock.label, candidate):
                        continue
                relative = display_path(os.path.relpath(candidate.path, root))
                # in place: nothing to move, the file is claimed by this very commit
                claimed = in_place and os.path.lexists(candidate.path)
                row = {
                    "station": self.archive.station,
                    "dock": dock.label,
                    "dock_root": str(root),
                    "source_path": candidate.path,
                    "spool_path": candidate.path,
                    "display_name": relative,
                    "size": candidate.size,
                    "mtime_ns": candidate.mtime_ns,
                    "source_identity": candidate.identity,
                    "state": JobState.CLAIMED if claimed else JobState.CLAIMING,
                    "after_archive": dock.after_archive if not in_place else IN_PLACE,
                    "flags": list(identify_with(rule, relative).flags),
                    # the defaults, given here so the returned job holds them too
                    "attempts": 0,
                    "first_seen_at": now,
                    "updated_at": now,
                }
                inserted = connection.execute(_INSERT_JOB, row).inserted_primary_key
                job_id = cast(Row[Any], inserted)[0]  # an INSERT's result has the new key
                if not in_place:
                    row["spool_path"] = str(work_dir(root) / "spool" / str(job_id))
                    _update_job(
                        session, job_id, {"spool_path": row["spool_path"], "updated_at": now}
                    )
                elif claimed:
                    record_event(
                        session,
                        "claimed",
                        actor=self.actor,
                        details=_claim_details(dock.label, relative, candidate.path),
                        insert_now=True,
                    )
                jobs.append((IngestJob(id=job_id, **row), False))
            return jobs

        registered = self._writer.run(insert)
        if self._crash_after == JobState.CLAIMING and registered and not in_place:
            os.kill(os.getpid(), 9)  # test hook: registered, nothing moved yet
        return registered

    def _unclaimed_jobs(self, session: Session, dock_label: str) -> dict[str, int]:
        """This station's jobs of one dock whose file is still in the dock: path → id."""
        rows = session.execute(
            select(IngestJob.source_path, IngestJob.id).where(
                IngestJob.state == JobState.CLAIMING,
                IngestJob.station == self.archive.station,
                IngestJob.dock == dock_label,
            )
        )
        return {path: job_id for path, job_id in rows}

    def _adopt(self, session: Session, job_id: int, candidate: Candidate) -> IngestJob:
        """The earlier job takes the file; what it records of the file is brought up to date."""
        job = session.get(IngestJob, job_id)
        assert job is not None
        # the file may have been rewritten or replaced (a new inode) since: the
        # claim checks the identity recorded here, so it must be today's
        seen = (candidate.size, candidate.mtime_ns, candidate.identity)
        if (job.size, job.mtime_ns, job.source_identity) != seen:
            values = {
                "size": candidate.size,
                "mtime_ns": candidate.mtime_ns,
                "source_identity": candidate.identity,
                "updated_at": utcnow(),
            }
            _update_job(session, job.id, values)
            _apply(job, values)
        session.expunge(job)
        log.debug("%s: already registered as job %d; adopted", job.display_name, job.id)
        return job

    def wake_waiting(self) -> int:
        """Make every waiting job of this station due now (the store is back); returns how many."""

        def work(session: Session) -> int:
            result = session.execute(
                update(IngestJob)
                .where(
                    IngestJob.station == self.archive.station,
                    IngestJob.state.in_([s.value for s in ACTIVE_STATES]),
                    IngestJob.next_attempt_at.is_not(None),
                )
                .values(next_attempt_at=None)
                .execution_options(synchronize_session=False)
            )
            return int(cast(CursorResult[Any], result).rowcount or 0)  # an UPDATE's result

        return self._writer.run(work)

    def claim(
        self, dock: DockSettings, candidate: Candidate, *, in_place: bool = False
    ) -> int | None:
        """Register one file and move it into the spool; None if it vanished first."""
        registered = self.register_jobs(dock, [candidate], in_place=in_place)
        if not registered:  # claimed already by another job
            return None
        outcome = self.advance(registered[0], stop_after=JobState.CLAIMED)
        return registered[0].id if outcome.state != JobState.VANISHED else None

    def close(self) -> None:
        """Stop the catalog writer and the probe threads (after the workers have stopped)."""
        with self._probes_lock:
            pool, self._probe_pool = self._probe_pool, None
            self._probes.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # each probe is time-limited
        self._writer.close()

    def advance(self, job: int | IngestJob, *, stop_after: JobState | None = None) -> Outcome:
        """Run the job's remaining steps until it is done, must wait, or fails.

        ``job``: its id, or the job as :meth:`register_jobs` returned it. The
        job is read once; each step's commit also updates this in-memory copy
        (see :meth:`_commit`), so it stays what the catalog holds.
        """
        if isinstance(job, int):
            job = self._load(job)
        while True:
            state = JobState(job.state)
            if state in TERMINAL_STATES or (stop_after is not None and state == stop_after):
                return self._outcome(job)
            step = self._steps[state]
            started = time.monotonic()
            try:
                step(self, job)
            except StoreError as exc:
                if exc.retryable:
                    reason = f"store unavailable: {exc}"
                    return self._retry_later(job, reason, soon=self._outage_tail(started))
                return self._retry_later(job, str(exc), count_against=True)
            except Unreadable as exc:
                self._quarantine(job, str(exc))
            except (NotConfirmed, SealError, dockfs.Escape) as exc:
                # never release; keep the spool copy and say so loudly
                log.error(
                    "%s: %s; the dock copy is kept in %s", job.display_name, exc, job.spool_path
                )
                return self._retry_later(job, str(exc), count_against=True)
            except Exception as exc:
                log.exception("%s: unexpected error in step %s", job.display_name, state.value)
                return self._retry_later(job, f"{type(exc).__name__}: {exc}", count_against=True)
            self._log_step(job, state, time.monotonic() - started)
            if self._crash_after == job.state:
                os.kill(os.getpid(), 9)

    def wait_for_retry(self, job_id: int) -> bool:
        """Sleep until the job's next attempt is due; False once it has used its attempts."""
        job = self._load(job_id)
        if JobState(job.state) in TERMINAL_STATES or job.attempts >= MAX_ATTEMPTS:
            return False
        if job.next_attempt_at is not None:
            time.sleep(max(0.0, (job.next_attempt_at - utcnow()).total_seconds()))
        return True

    # -- steps --------------------------------------------------------------

    def _claim(self, job: IngestJob) -> None:
        """Move the file into the spool: a rename through folder handles from the dock
        root (``ingest/dockfs.py``), never by path, so a folder swapped for a link after
        inspection cannot lead out of the dock. The same check runs for a CLAIMING job
        resumed after a restart. A file that would leave the dock, or is not the one
        inspected, is quarantined with the reason; nothing outside is touched."""
        if job.spool_path != job.source_path:
            if not os.path.lexists(job.spool_path):
                try:
                    dockfs.claim(
                        job.dock_root, job.source_path, job.spool_path, job.source_identity
                    )
                except dockfs.Vanished:
                    self._commit(
                        job,
                        JobState.VANISHED,
                        error="the dock removed the file before it was claimed",
                    )
                    return
                except dockfs.Escape as exc:
                    raise Unreadable(str(exc)) from None
        elif not os.path.lexists(job.source_path):
            self._commit(job, JobState.VANISHED, error="the file was removed before it was claimed")
            return
        details = _claim_details(job.dock, job.display_name, job.spool_path)
        origin = self._origin(job)
        if origin is not None:
            details.update(origin.details())
        self._commit(job, JobState.CLAIMED, event=("claimed", None, details), **self._recorded(job))

    def _recorded(self, job: IngestJob) -> dict[str, Any]:
        """The recorder's hashes and marks beside a dock file (ingest/recorder_hashes.py),
        as the claim's fields: ``recorder_hashes``, and the marks added to ``flags``."""
        dock = self._dock_settings(job.dock)
        if dock is None or job.spool_path == job.source_path:
            return {}  # an upload, or a file archived in place: no dock beside it
        rows = [value.to_row() for value in read_recorded(dock, job.dock_root, job.source_path)]
        if not rows:
            return {}
        flags = list(dict.fromkeys([*(job.flags or []), *marks_of(rows)]))
        return {"recorder_hashes": rows, "flags": flags}

    def _hash(self, job: IngestJob) -> None:
        """Read the file once: SHA-256, size and upload-part digests.

        Same bytes as existing evidence → a sighting, released like any other.
        """
        digest = self._digest(job.spool_path, md5=wants_md5(job.recorder_hashes))
        if job.spool_path != job.source_path:
            if digest.identity is None:  # changed while read: the digest proves nothing
                raise NotConfirmed("the spool copy changed while it was hashed; hashed again later")
            dockfs.check_claimed(digest.identity.device, digest.identity.inode, job.source_identity)
        flags = list(job.flags or [])
        if digest.size == 0 and "empty" not in flags:
            flags.append("empty")
        recorded: dict[str, Any] = {}
        if job.recorder_hashes:
            rows, mismatch = compare(job.recorder_hashes, digest.sha256, digest.md5)
            recorded["recorder_hashes"] = rows
            if mismatch:
                # archived all the same (it may be all there is); the dock copy is held
                log.error("%s: %s", job.display_name, mismatch_reason(rows))
                if MISMATCH_FLAG not in flags:
                    flags.append(MISMATCH_FLAG)
        existing = self._evidence_by_sha(digest.sha256)
        if existing is not None:
            self._confirm_existing_original(existing)
            self._commit_sighting(
                job, existing, sha256=digest.sha256, size=digest.size, flags=flags, **recorded
            )
            return
        hashed: dict[str, Any] = {
            **recorded,
            "sha256": digest.sha256,
            "size": digest.size,
            "flags": flags,
            "part_size": digest.part_size,
            "part_digests": [d.hex() for d in digest.part_digests] or None,
            "expected_checksum": digest.store_checksum,
        }
        if digest.part_digests:  # a long upload follows: keep the hash
            self._commit(job, JobState.HASHED, **hashed)
            return
        # a single PUT follows at once; a crash before its commit only costs a re-hash
        for name, value in hashed.items():
            setattr(job, name, value)
        self._store(job, also=hashed)

    def _store(self, job: IngestJob, also: dict | None = None) -> None:
        """Put the original create-only with its checksums; confirm with a HEAD.

        The seal's ffprobe runs meanwhile (:meth:`_start_probe`): the upload
        waits on the store, the probe on ffprobe, and both only read the spool
        copy. A store step that does not end STORED drops its probe (the file
        may have changed; a retry probes again).
        """
        self._start_probe(job)
        try:
            self._store_original(job, also)
        finally:
            if job.state != JobState.STORED:
                self._drop_probe(job.id)

    def _store_original(self, job: IngestJob, also: dict | None = None) -> None:
        """The store step itself (:meth:`_store`).

        The store checks every byte against the digests taken while hashing;
        if the file changed since, the job goes back to be hashed again.
        ``also``: fields of the hash step committed together with this one.
        """
        assert job.sha256 is not None and job.size is not None
        key = original_key(job.sha256)
        retention = self.archive.retention_for(self._category(job.flags or []))
        try:
            stored = self.archive.store.put_file(
                key,
                Path(job.spool_path),
                job.sha256,
                job.size,
                retention,
                content_type=_media_type(job.display_name, None),
                metadata={"sha256": job.sha256},
                part_digests=tuple(bytes.fromhex(d) for d in job.part_digests or ()),
                part_size=job.part_size,
            )
            version_id = stored.version_id
        except AlreadyExists:
            version_id = None  # stored before (a retry, or the same bytes elsewhere)
        except ContentChanged as exc:
            self._commit(job, JobState.CLAIMED, error=f"{exc}; hashing again")
            self._refresh(job)  # drop the uncommitted hash fields set by _hash
            return
        info = self.archive.store.head(key, version_id)
        self._confirm(info, job)
        self._commit(
            job,
            JobState.STORED,
            original_version_id=info.version_id,
            original_checksum=info.checksum_sha256 or job.expected_checksum,
            original_lock_mode=info.lock_mode,
            original_retain_until=info.retain_until,
            **(also or {}),
            event=(
                "stored",
                evidence_id_for(job.sha256),
                {
                    "key": key,
                    "version_id": info.version_id,
                    "size": info.size,
                    "checksum": info.checksum_sha256,
                },
            ),
        )

    def _seal(self, job: IngestJob) -> None:
        """Sign and store the manifest, then commit the evidence row in one transaction."""
        assert job.sha256 is not None and job.size is not None
        probe = self._take_probe(job.id)
        with self._sha_lock(job.sha256):
            existing = self._evidence_by_sha(job.sha256)
            if existing is not None:  # sealed meanwhile by an identical file
                if probe is not None:
                    probe.cancel()
                self._commit_sighting(job, existing)
                return
            evidence_id = evidence_id_for(job.sha256)
            rule = self._name_rule(job.dock)
            source = identify_with(rule, job.display_name)
            name_unit = source.unit
            dock = self._dock_settings(job.dock)
            if dock is not None and dock.unit is not None:
                # the dock belongs to one agency: its unit is the item's, whatever the name says
                source = replace(source, unit=dock.unit)
            origin = self._origin(job)
            if origin is not None:
                # what the uploader declared wins (its unit was checked against the token's scope)
                source = replace(
                    source,
                    unit=origin.unit or source.unit,
                    officer=origin.officer or source.officer,
                    device=origin.device or source.device,
                )
            flags = list(dict.fromkeys([*(job.flags or []), *source.flags]))
            summary, media, probe_error = self._probe_result(probe, job, rule)
            media_created, media_problem = media_time(
                summary,
                future_skew=timedelta(minutes=rule.future_skew_minutes),
                earliest_year=rule.earliest_year,
            )
            if probe_error and job.size and "not_media" not in flags:
                flags.append("not_media")
            category = self._category(flags)
            retention = self.archive.retention_for(category)
            if job.original_retain_until:  # the manifest states the lock actually on the object
                retention = Retention(
                    # the catalog keeps the mode the store reported for the object
                    cast(LockMode, job.original_lock_mode or retention.mode),
                    job.original_retain_until,
                    retention.legal_hold,
                )
            ingested_at = job.first_seen_at
            sealed_at = utcnow()
            file_name = Path(job.display_name).name
            media_type = _media_type(file_name, summary)
            _, time_source = item_time(
                source.recorded_start, media_created, _dt_ns(job.mtime_ns), sealed_at
            )
            source_doc: Source = {
                "station": job.station,
                "dock": job.dock,
                "path": job.display_name,
                "file_mtime": _iso_ns(job.mtime_ns),
                **source.to_dict(),
                "flags": flags,
                # how the name was read, and the other witnesses of the recording time
                "name_profile": rule.profile,
                "name_timezone": rule.timezone,
                "media_created": media_created.isoformat() if media_created else None,
                "time_source": time_source,
            }
            if source.unit is not None:
                source_doc["unit_source"] = "name" if source.unit == name_unit else "dock"
            if origin is not None:
                if origin.unit is not None:
                    source_doc["unit_source"] = "upload"
                source_doc["uploaded_by"] = origin.actor
                source_doc["upload_id"] = origin.upload_id
            if name_unit is not None and name_unit != source.unit:
                source_doc["name_unit"] = name_unit  # what the file name claimed instead
            if media_problem:
                source_doc["media_time_problem"] = media_problem
            if probe_error:
                source_doc["probe_error"] = probe_error
            if for_manifest(job.recorder_hashes):
                source_doc["recorder_hashes"] = cast(Any, for_manifest(job.recorder_hashes))
            manifest = evidence_manifest(
                evidence_id=evidence_id,
                sha256=job.sha256,
                size=job.size,
                file_name=file_name,
                media_type=media_type,
                original_version_id=job.original_version_id,
                original_checksum=job.original_checksum or "",
                source=source_doc,
                probe=summary,
                ingested_at=ingested_at,
                sealed_at=sealed_at,
                category=category,
                retention=retention,
                keyid=self.archive.key.keyid,
                media=media,
            )
            sealed = seal_evidence(self.archive.store, self.archive.key, manifest, retention)
            # the row says what the stored manifest says (the adopted one, on a retry)
            evidence = evidence_row(
                sealed.manifest,
                manifest_key=sealed.stored.key,
                manifest_version_id=sealed.stored.version_id,
            )

            def commit_seal(session: Session) -> dict:
                session.connection().execute(_INSERT_EVIDENCE, evidence)
                values = _transition(JobState.SEALED, evidence_id=evidence_id, flags=flags)
                if self.settings.transcode.enabled:
                    # queued in the seal's own transaction: a crash cannot lose it
                    session.add(Derivative(evidence_id=evidence_id, state=CopyState.QUEUED))
                record_event(
                    session,
                    "sealed",
                    actor=self.actor,
                    evidence_id=evidence_id,
                    details={
                        "manifest_key": sealed.stored.key,
                        "manifest_version_id": sealed.stored.version_id,
                        "sha256": job.sha256,
                        "category": category,
                        "flags": flags,
                        **(origin.details() if origin is not None else {}),
                    },
                    insert_now=True,
                )
                self._finish_in_place(session, job, JobState.RELEASED, evidence_id, values)
                _update_job(session, job.id, values)
                return values

            try:
                _apply(job, self._writer.run(commit_seal))
            except IntegrityError:
                # another station committed the same bytes first: this drop is a sighting
                existing = self._evidence_by_sha(job.sha256)
                if existing is None:
                    raise
                self._commit_sighting(job, existing)
                return
        if self.on_sealed is not None:
            self.on_sealed(evidence_id)

    def _release(self, job: IngestJob) -> None:
        """Free the dock: delete, move or keep the spool copy, per the dock's policy.

        Not when the recorder's hash disagreed with the bytes: the copy is held
        (:meth:`_hold`). The recorder's own sidecars of this file leave with it.
        """
        if MISMATCH_FLAG in (job.flags or []):
            self._hold(job)
            return
        spool = Path(job.spool_path)
        action = job.after_archive
        destination: Path | None = None
        if action == IN_PLACE:
            pass  # `strongroom ingest` of files outside a dock leaves them where they are
        elif action == "delete":
            dockfs.unlink_claimed(job.dock_root, spool, job.source_identity)
        elif keep_days(action) is not None:
            destination = work_dir(job.dock_root) / "kept" / str(job.id)
        elif (target := move_to(action)) is not None:
            if not target.is_absolute():
                target = Path(job.dock_root) / target
            destination = target / os.path.relpath(job.source_path, job.dock_root)
        if destination is not None and os.path.lexists(spool):
            destination.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(destination):
                destination = destination.with_name(f"{destination.name}.{job.id}")
            shutil.move(spool, destination)
        self._release_sidecars(job, destination)
        final = JobState.DUPLICATE if job.state == JobState.SIGHTED else JobState.RELEASED
        self._commit(
            job,
            final,
            released_at=utcnow(),
            event=(
                "released",
                job.evidence_id,
                {
                    "action": action,
                    "path": job.display_name,
                    "to": display_path(destination) if destination else None,
                },
            ),
        )

    def _release_sidecars(self, job: IngestJob, destination: Path | None) -> None:
        """The recorder's sidecars of this one file go where the file went: deleted,
        kept or moved beside it. Each is first taken into the spool through folder
        handles (ingest/dockfs.py), and only if it is still the file that was read
        (device:inode); one replaced since, or a shared per-folder list, stays."""
        for row in job.recorder_hashes or ():
            identity, name = row.get("identity"), row.get("from")
            if not identity or not name:
                continue
            source = os.path.join(os.path.dirname(job.source_path), name)
            side = f"{job.spool_path}.{name}"
            if not os.path.lexists(side):
                try:
                    dockfs.claim(job.dock_root, source, side, identity)
                except dockfs.Vanished:
                    continue
                except (dockfs.Escape, OSError) as exc:
                    log.warning("%s: sidecar %s left in the dock: %s", job.display_name, name, exc)
                    continue
            if job.after_archive == "delete":
                dockfs.unlink_claimed(job.dock_root, side, identity)
            elif destination is not None:
                target = (
                    destination.with_name(f"{destination.name}.{name}")
                    if keep_days(job.after_archive) is not None
                    else destination.parent / name
                )
                shutil.move(side, target)

    def _hold(self, job: IngestJob) -> None:
        """Keep the dock copy: the item is archived and sealed (the bytes may be all
        there is), but the recorder's hash disagrees, so a person must look. The
        copy goes to the dock's ``.strongroom/held/<job>`` with a reason file; the
        recorder's sidecars stay where they are."""
        reason = mismatch_reason(job.recorder_hashes)
        folder = work_dir(job.dock_root) / "held"
        destination = folder / str(job.id)
        spool = Path(job.spool_path)
        if spool != destination and os.path.lexists(spool):
            folder.mkdir(parents=True, exist_ok=True)
            os.rename(spool, destination)
            (folder / f"{job.id}.reason.txt").write_text(
                f"file: {job.display_name}\nevidence: {job.evidence_id}\nreason: {reason}\n"
                f"at: {utcnow().isoformat()}\n",
                encoding="utf-8",
            )
        log.error(
            "%s: dock copy held at %s, not released: %s",
            job.display_name,
            display_path(destination),
            reason,
        )
        self._commit(
            job,
            JobState.HELD,
            error=reason,
            spool_path=str(destination),
            event=(
                "held",
                job.evidence_id,
                {"path": job.display_name, "reason": reason, "kept_at": display_path(destination)},
            ),
        )

    _steps: ClassVar[dict[JobState, Callable[[Pipeline, IngestJob], None]]] = {
        JobState.CLAIMING: _claim,
        JobState.CLAIMED: _hash,
        JobState.HASHED: _store,
        JobState.STORED: _seal,
        JobState.SEALED: _release,
        JobState.SIGHTED: _release,
    }

    # -- helpers ------------------------------------------------------------

    def part_size_for(self, size: int) -> int | None:
        """The upload part size a file of ``size`` bytes is hashed for (None: one PUT)."""
        store = self.archive.store
        return store.part_size if size >= store.multipart_threshold else None

    def _digest(self, path: str, *, md5: bool = False) -> FileDigest:
        try:
            st = os.stat(path, follow_symlinks=False)
            part_size = self.part_size_for(st.st_size)
            if self.prehasher is not None:
                early = self.prehasher.take(FileIdentity.of(st), part_size, md5=md5)
                if early is not None:
                    return early
            return hash_file(path, part_size, md5=md5)
        except FileNotFoundError as exc:
            raise Unreadable(f"the spool copy {display_path(path)} is missing") from exc
        except NotRegularFile as exc:
            raise Unreadable("not a regular file") from exc
        except OSError as exc:
            raise Unreadable(f"cannot read: {exc.strerror or exc}") from exc

    def _confirm(self, info: ObjectInfo, job: IngestJob) -> None:
        """The store's size and checksum must be those of the bytes we hashed, and
        an Object Lock must be in force on the version.

        This is why the HEAD after the PUT stays: the PUT's answer proves the
        checksum (the store's own ``x-amz-checksum-sha256``) and the version,
        but carries no lock mode or retain-until, so only the HEAD shows the
        lock is there – and an object found already stored (a retry, the same
        bytes from elsewhere, or written by someone else without a lock) has
        no PUT answer at all. An object found stored may also have been
        uploaded in other parts; if its checksum is not ours, it is read back
        and hashed.
        """
        if info.size != job.size:
            raise NotConfirmed(
                f"stored object {info.key} has {info.size} bytes, expected {job.size}"
            )
        if info.lock_mode is None or info.retain_until is None or info.retain_until <= utcnow():
            raise NotConfirmed(
                f"stored object {info.key} has no Object Lock in force; it is not sealed "
                "as evidence (an unlocked version can be deleted)"
            )
        assert job.sha256 is not None  # hashed before it was stored
        whole = sha256_b64(bytes.fromhex(job.sha256))
        if info.checksum_sha256 in (job.expected_checksum, whole):
            return
        digest = hashlib.sha256()
        for chunk in self.archive.store.iter_chunks(info.key, info.version_id):
            digest.update(chunk)
        if digest.hexdigest() != job.sha256:
            raise NotConfirmed(f"stored object {info.key} does not hash to {job.sha256}")

    def _confirm_existing_original(self, evidence: Row) -> None:
        """Before a re-drop is released, the archived copy must still be there."""
        try:
            info = self.archive.store.head(evidence.original_key, evidence.original_version_id)
        except NotFound as exc:
            raise NotConfirmed(
                f"{evidence.evidence_id}: original {evidence.original_key} missing from the store"
            ) from exc
        if info.size != evidence.size or info.checksum_sha256 != evidence.original_checksum:
            raise NotConfirmed(
                f"{evidence.evidence_id}: stored original does not match the catalog"
            )

    def _start_probe(self, job: IngestJob) -> None:
        """Start the seal's ffprobe of the spool copy on a probe thread.

        Safe beside the upload: the bytes were hashed already and the spool copy
        does not change (an upload that finds it changed drops the probe), and
        nothing is committed from it before the seal, whose commit needs the
        stored manifest as before. A job resumed in STORED after a restart has
        no probe running: its seal probes then (:meth:`_probe_result`).
        """
        path, name, rule = job.spool_path, job.display_name, self._name_rule(job.dock)
        with self._probes_lock:
            if job.id in self._probes:
                return
            if self._probe_pool is None:
                self._probe_pool = ThreadPoolExecutor(
                    max_workers=self.settings.pipeline.workers, thread_name_prefix="probe"
                )
            self._probes[job.id] = self._probe_pool.submit(self._probe, path, name, rule)

    def _take_probe(self, job_id: int) -> Future[ProbeResult] | None:
        with self._probes_lock:
            return self._probes.pop(job_id, None)

    def _drop_probe(self, job_id: int) -> None:
        probe = self._take_probe(job_id)
        if probe is not None:
            probe.cancel()  # not started yet: never runs; running: finishes unread

    def _probe_result(
        self, probe: Future[ProbeResult] | None, job: IngestJob, rule: NameRule
    ) -> ProbeResult:
        """The probe started beside the upload; one not yet begun is run here
        instead (a queued probe must not make the seal wait for a thread)."""
        if probe is not None and not probe.cancel():  # running or done: take its result
            return probe.result()
        return self._probe(job.spool_path, job.display_name, rule)

    def _probe(self, path: str, name: str, rule: NameRule) -> ProbeResult:
        """ffprobe's summary and the media's own metadata (``ingest.metadata``, read
        from the same ffprobe run), or why there are none. The original is archived
        either way; a file without metadata is logged by name."""
        if media_signature(path) is None:
            return None, None, "no media container signature in the file's first bytes; not probed"
        try:
            summary, report = probe_report(
                path,
                self.settings.pipeline.probe_timeout_seconds,
                sandbox_for(self.settings.transcode),
            )
        except ProbeError as exc:
            log.warning("%s: no media metadata: %s", name, str(exc)[-300:])
            return None, None, str(exc)[-500:]
        media = media_metadata(
            report,
            future_skew=timedelta(minutes=rule.future_skew_minutes),
            earliest_year=rule.earliest_year,
        )
        if media is None:
            log.warning("%s: no media metadata: its tags could not be read", name)
        return summary.to_dict(), media, None

    def _category(self, flags: list[str]) -> str:
        """Marked important on the recorder → the important category, else the default."""
        return self.settings.retention.category_for(flags)

    def _name_rule(self, dock_label: str) -> NameRule:
        """The dock's naming rule; files from outside any dock use the default."""
        return self.settings.name_rule(self._dock_settings(dock_label))

    def _dock_settings(self, label: str) -> DockSettings | None:
        return next((d for d in self.settings.docks if d.label == label), None)

    def _commit_sighting(self, job: IngestJob, existing: Row, **fields) -> None:
        """The same bytes again: this drop becomes a sighting of ``existing``."""
        details = {
            "station": job.station,
            "dock": job.dock,
            "path": job.display_name,
            "seen_at": job.first_seen_at.isoformat(),
            "job": job.id,
        }
        origin = self._origin(job)
        if origin is not None:
            details.update(origin.details())

        def work(session: Session) -> dict:
            values = _transition(JobState.SIGHTED, evidence_id=existing.evidence_id, **fields)
            record_event(
                session,
                "sighted",
                actor=self.actor,
                evidence_id=existing.evidence_id,
                details=details,
                insert_now=True,
            )
            self._finish_in_place(session, job, JobState.DUPLICATE, existing.evidence_id, values)
            _update_job(session, job.id, values)
            return values

        _apply(job, self._writer.run(work))

    def _finish_in_place(
        self, session: Session, job: IngestJob, final: JobState, evidence_id: str, values: dict
    ) -> None:
        """A file archived in place has nothing to release: it is done in the
        same commit (one commit fewer per file for `strongroom ingest`).
        ``values``, the row's new columns, are moved on to ``final``."""
        if job.after_archive != IN_PLACE:
            return
        values.update(state=final, released_at=utcnow())
        record_event(
            session,
            "released",
            actor=self.actor,
            evidence_id=evidence_id,
            details={"action": IN_PLACE, "path": job.display_name, "to": None},
            insert_now=True,
        )

    def _origin(self, job: IngestJob) -> UploadOrigin | None:
        """The upload a job came from (None for dock files, without a catalog read)."""
        if job.dock != UPLOAD_DOCK:
            return None
        with self.archive.db.session() as session:
            return upload_origin(session, job)

    def _sha_lock(self, sha256: str) -> threading.Lock:
        return self._sha_locks[int(sha256[:2], 16) % len(self._sha_locks)]

    def _evidence_by_sha(self, sha256: str) -> Row | None:
        """The evidence holding these bytes: the columns a sighting needs, or None."""
        return self.archive.db.read(
            lambda connection: connection.execute(_EVIDENCE_BY_SHA, {"sha256": sha256}).first()
        )

    def _load(self, job_id: int) -> IngestJob:
        """The job as the catalog holds it (one statement, no transaction around it)."""

        def read(connection: Connection) -> IngestJob:
            with Session(connection) as session:
                job = session.get(IngestJob, job_id)
                if job is None:
                    raise KeyError(f"no ingest job {job_id}")
                session.expunge(job)
                return job

        return self.archive.db.read(read)

    def _refresh(self, job: IngestJob) -> None:
        """Make the in-memory job what the catalog holds again."""
        fresh = self._load(job.id)
        for column in _JOBS.columns:
            setattr(job, column.key, getattr(fresh, column.key))

    def _commit(
        self, job: IngestJob, state: JobState, *, event: tuple | None = None, **fields
    ) -> None:
        """One transaction: the new state, its fields, and its custody event.

        Returns once committed (durably; shared with other workers' commits);
        then ``job`` holds the committed values too.
        """
        values = _transition(state, **fields)

        def work(session: Session) -> None:
            _update_job(session, job.id, values)
            if event is not None:
                kind, evidence_id, details = event
                record_event(
                    session,
                    kind,
                    actor=self.actor,
                    evidence_id=evidence_id,
                    details=details,
                    insert_now=True,
                )

        self._writer.run(work)
        _apply(job, values)

    def _outage_tail(self, step_started: float) -> bool:
        """Did the store come back while this step waited on it, or just before it began?

        The store probe wakes every waiting job when the store answers again; a
        step still stuck in a call to the dead store fails *after* that wake, and
        a store that has just restarted may refuse a write or two while it
        settles. Such a failure must not sit out the long per-job backoff.
        """
        back = self.store_back_at() if self.store_back_at is not None else None
        return back is not None and back > step_started - STORE_SETTLE_SECONDS

    def _retry_later(
        self, job: IngestJob, reason: str, *, count_against: bool = False, soon: bool = False
    ) -> Outcome:
        """Record a failed attempt and when to try again: the doubling backoff, or,
        with ``soon``, in a second (the store has only just come back)."""
        pipeline = self.settings.pipeline

        def work(session: Session) -> tuple[int, float]:
            row = session.get(IngestJob, job.id)
            assert row is not None  # job rows are never deleted
            row.attempts += 1
            delay = min(
                pipeline.retry_max_seconds,
                pipeline.retry_initial_seconds * 2 ** min(row.attempts - 1, 16),
            )
            if soon:
                delay = min(delay, STORE_SETTLE_RETRY_SECONDS)
            row.last_error = reason
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            return row.attempts, delay

        attempts, delay = self._writer.run(work)
        if (
            count_against
            and attempts >= MAX_ATTEMPTS
            and job.state in (JobState.CLAIMED, JobState.HASHED)
        ):
            self._quarantine(job, f"gave up after {attempts} attempts: {reason}")
            return self._outcome(self._load(job.id))
        log.warning(
            "%s: %s; state %s kept, retry in %.0fs (attempt %d)",
            job.display_name,
            reason,
            job.state,
            delay,
            attempts,
        )
        return self._outcome(self._load(job.id), error=reason)

    def _quarantine(self, job: IngestJob, reason: str) -> None:
        """Set a file aside with its reason; it stays on the dock's file system."""
        destination = None
        if job.spool_path != job.source_path and os.path.lexists(job.spool_path):
            folder = work_dir(job.dock_root) / "quarantine"
            folder.mkdir(parents=True, exist_ok=True)
            destination = folder / str(job.id)
            os.rename(job.spool_path, destination)
            (folder / f"{job.id}.reason.txt").write_text(
                f"file: {job.display_name}\nreason: {reason}\nat: {utcnow().isoformat()}\n",
                encoding="utf-8",
            )
        log.error(
            "%s: quarantined: %s%s",
            job.display_name,
            reason,
            f" (kept at {display_path(destination)})" if destination else "",
        )
        self._commit(
            job,
            JobState.QUARANTINED,
            error=reason,
            spool_path=str(destination) if destination else job.spool_path,
            event=(
                "quarantined",
                None,
                {
                    "path": job.display_name,
                    "reason": reason,
                    "kept_at": display_path(destination) if destination else None,
                },
            ),
        )

    def _log_step(self, job: IngestJob, previous: JobState, seconds: float) -> None:
        level = (
            logging.WARNING
            if job.state in (JobState.VANISHED, JobState.QUARANTINED)
            else logging.INFO
        )
        log.log(
            level,
            "%s: %s → %s",
            job.display_name,
            previous.value,
            job.state,
            extra={
                "file": job.display_name,
                "step": job.state,
                "job": job.id,
                "evidence_id": job.evidence_id,
                "sha256": job.sha256,
                "size": job.size,
                "seconds": round(seconds, 3),
                "error": job.last_error,
            },
        )

    def _outcome(self, job: IngestJob, error: str | None = None) -> Outcome:
        return Outcome(
            job.id,
            job.state,
            job.evidence_id,
            job.sha256,
            job.display_name,
            error or job.last_error,
        )


# -- catalog statements ------------------------------------------------------
# Core statements built once (SQLAlchemy then caches their compiled form): the
# catalog writer runs several per small file, and an ORM load + flush per
# change cost about three times as much CPU.

_JOBS = cast(Table, IngestJob.__table__)  # a mapped class's table
_INSERT_JOB = _JOBS.insert()
#: the SET clause is made from the parameters' keys (one compiled form per key set)
_UPDATE_JOB = _JOBS.update().where(_JOBS.c.id == bindparam("job_id_"))
_JOB_JSON_COLUMNS = frozenset(c.key for c in _JOBS.columns if isinstance(c.type, JSON))
_INSERT_EVIDENCE = cast(Table, Evidence.__table__).insert()
_EVIDENCE_BY_SHA = select(
    Evidence.evidence_id,
    Evidence.original_key,
    Evidence.original_version_id,
    Evidence.size,
    Evidence.original_checksum,
).where(Evidence.sha256 == bindparam("sha256"))


def _transition(state: JobState, **fields) -> dict:
    """The columns a move to ``state`` writes: the state, its fields (``error``
    becomes ``last_error``), and no pending retry."""
    return {
        "state": state,
        "last_error": fields.pop("error", None),
        "next_attempt_at": None,
        **fields,
    }


def _update_job(session: Session, job_id: int, values: dict) -> None:
    """UPDATE one job's row in the session's transaction (``updated_at`` is set too).

    A None for a JSON column is written as SQL NULL, as the ORM leaves it (a
    bound None would be stored as the JSON text 'null').
    """
    nulls = {name: null() for name in _JOB_JSON_COLUMNS if name in values and values[name] is None}
    statement = _UPDATE_JOB.values(nulls) if nulls else _UPDATE_JOB
    params = {name: value for name, value in values.items() if name not in nulls}
    session.connection().execute(statement, {"job_id_": job_id, **params})


def _apply(job: IngestJob, values: dict) -> None:
    """Give the in-memory job the values just committed for it."""
    for name, value in values.items():
        setattr(job, name, value)


def _taken_already(session: Session, station: str, dock: str, candidate: Candidate) -> bool:
    """The file is gone from the dock because a job of ours claimed it after the scan
    saw it (same dock, path, size and mtime): registering it again would only
    make a job that ends "vanished" for a file that is safely on its way."""
    if os.path.lexists(candidate.path):
        return False
    taken = session.scalar(
        select(IngestJob.id)
        .where(
            IngestJob.station == station,
            IngestJob.dock == dock,
            IngestJob.source_path == candidate.path,
            IngestJob.size == candidate.size,
            IngestJob.mtime_ns == candidate.mtime_ns,
            IngestJob.state != JobState.VANISHED,
        )
        .limit(1)
    )
    return taken is not None


def _claim_details(dock: str, path: str, spool: str) -> dict:
    return {"dock": dock, "path": path, "spool": display_path(spool)}


def _media_type(file_name: str, probe_summary: dict | None) -> str:
    guessed, _ = mimetypes.guess_type(file_name, strict=False)
    if guessed:
        return guessed
    kind = (probe_summary or {}).get("kind")
    return {"video": "video/mp4", "audio": "audio/mpeg", "image": "image/jpeg"}.get(
        kind or "", "application/octet-stream"
    )


def _dt_ns(mtime_ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC) if mtime_ns else None


def _iso_ns(mtime_ns: int | None) -> str | None:
    value = _dt_ns(mtime_ns)
    return value.isoformat() if value else None
