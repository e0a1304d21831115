"""The daemon: watch every dock, settle, claim, and keep the workers busy.

One loop thread decides *what* to do (which files are complete, which jobs are
due); a bounded pool of worker threads does it, one job per worker, so hashing
one file overlaps uploading another. On start the loop first resumes every
unfinished job from the catalog, then rescans every dock in full: files
dropped while the daemon was down are archived like any other.

No fault from outside the code stops it (see :mod:`archive.health`): a loop
that fails – the tick, a worker, the store probe – names the fault in one log
line, backs off, shows it in ``status`` and ``/metrics``, and carries on when
the fault clears. Below a free-space floor it stops claiming new files (they
wait in the dock); while the store does not answer it leaves the jobs that
need the store alone, and when the store answers again it wakes them all.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from archive.context import Archive
from archive.db import display_path, utcnow
from archive.health import (
    DISK_FULL,
    UNEXPECTED,
    Health,
    classify,
    free_mb,
    run_dir,
)
from archive.metrics import CLAIMING_PAUSED, IGNORED_FILES
from archive.models import ACTIVE_STATES, DockProblem, IngestJob, JobState
from archive.states import STORE_STEP_STATES
from config.settings import DockSettings
from ingest import recorder_hashes
from ingest.pipeline import Outcome, Pipeline
from ingest.prehash import PreHasher
from ingest.scan import Candidate, Rejected, inspect_path, scan_dock
from ingest.settle import Settler
from ingest.storeprobe import StoreProbe

log = logging.getLogger("strongroom.daemon")

HINT_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED}
)
TICK_SECONDS = 0.1
#: free space is looked at this often (a statvfs per dock and the data folder)
SPACE_CHECK_SECONDS = 1.0
#: the longest pause after a failed tick or worker (doubling from half a second)
MAX_BACKOFF_SECONDS = 30.0
#: how many ignored names status shows per dock (the count is complete)
IGNORED_EXAMPLES = 5


class _HintHandler(FileSystemEventHandler):
    """Turns file-system events into 'look at this path soon' hints."""

    def __init__(self, hints: set[str], lock: threading.Lock, wake: threading.Event) -> None:
        self._hints, self._lock, self._wake = hints, lock, wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in HINT_EVENTS:
            return
        path = event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path
        with self._lock:
            self._hints.add(os.fsdecode(path))
        self._wake.set()


class _DockState:
    def __init__(self, settings: DockSettings, root: Path, prehasher: PreHasher) -> None:
        self.settings = settings
        self.root = root
        self.settler = Settler(settings.settle_seconds, ours=prehasher.reading)
        self.last_scan = 0.0
        #: full scans finished since start (status shows it: a test or an operator can
        #: wait for "two more rescans" instead of guessing a number of seconds)
        self.scans = 0
        self.ready: list[Candidate] = []
        self.paused = False  # free space below the dock's floor: new files wait
        self.free_mb: float | None = None
        self.ignored = 0
        self.ignored_examples: list[str] = []


class Daemon:
    """Runs until :meth:`stop` is called (SIGTERM/SIGINT in ``strongroom run``)."""

    def __init__(self, archive: Archive, pipeline: Pipeline, health: Health | None = None) -> None:
        self.archive = archive
        self.pipeline = pipeline
        settings = archive.settings
        # large files are hashed while they settle; the claim then takes the digest
        self.prehasher = PreHasher(
            pipeline.part_size_for, min_size=archive.store.multipart_threshold
        )
        pipeline.prehasher = self.prehasher
        self.docks = [_DockState(d, settings.dock_path(d), self.prehasher) for d in settings.docks]
        self.rescan_seconds = settings.pipeline.rescan_seconds
        self._workers = settings.pipeline.workers
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ingest")
        # what the workers hold: ("job", id) and ("path", dock path) keys
        self._busy: set[tuple[str, object]] = set()
        self._busy_lock = threading.Lock()
        self._hints: set[str] = set()
        self._hints_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observers: list = []
        self._reported: dict[str, str] = {}
        self.health = health or Health(run_dir(settings.data_dir))
        self.probe = StoreProbe(
            archive.store, self.health, settings.store.probe_seconds, self._store_back
        )
        pipeline.store_back_at = lambda: self.probe.back_at
        #: called with the outage's length when the store answers again (e.g. wake playback)
        self.on_store_back: list[Callable[[], None]] = []
        self._paused_all = False  # the data folder is below its floor
        self._data_free_mb: float | None = None
        self._last_space_check = 0.0
        self._tick_backoff = 0.0
        self._worker_backoff = 0.0
        self._worker_pause_until = 0.0

    # -- lifecycle ----------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        for dock in self.docks:
            dock.root.mkdir(parents=True, exist_ok=True)
        self.probe.start()
        self._guarded("start", self._resume_unfinished)
        self._start_observers()
        log.info(
            "watching %d dock(s): %s", len(self.docks), ", ".join(str(d.root) for d in self.docks)
        )
        try:
            while not self._stop.is_set():
                if not self._guarded("tick", self._tick):
                    # a fault outside the code: say it once (above), wait, try again
                    self._tick_backoff = min(MAX_BACKOFF_SECONDS, max(0.5, self._tick_backoff * 2))
                    self.health.flush(force=True)
                    self._stop.wait(self._tick_backoff)
                    continue
                self._tick_backoff = 0.0
                self.health.flush()
                self._wake.wait(TICK_SECONDS)
                self._wake.clear()
        finally:
            for observer in self._observers:
                observer.stop()
            log.info("stopping: letting %d running step(s) finish", len(self._busy))
            self.prehasher.close()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.pipeline.prehasher = None
            self.probe.stop()
            for observer in self._observers:
                observer.join(timeout=5)
            self.health.close()

    def _guarded(self, where: str, work: Callable[[], object]) -> bool:
        """Run one loop's work; a fault is recorded (and cleared once it works again)."""
        try:
            work()
        except Exception as exc:
            kind, message = classify(exc)
            if kind == UNEXPECTED:
                log.exception("unexpected error in %s", where)
            self.health.fault(kind, where, message)
            return False
        if self.health.active(where=where):
            self.health.clear(where)
        return True

    def _start_observers(self) -> None:
        handler = _HintHandler(self._hints, self._hints_lock, self._wake)
        for dock in self.docks:
            observer = (
                PollingObserver(timeout=dock.settings.poll_interval)
                if dock.settings.poll
                else Observer()
            )
            observer.schedule(handler, os.fspath(dock.root), recursive=True)
            observer.daemon = True
            observer.start()
            self._observers.append(observer)

    # -- the loop -----------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_space_check >= SPACE_CHECK_SECONDS:
            self._last_space_check = now
            self._check_space()
        with self._hints_lock:  # the handler holds this very set: empty it, never replace it
            hints = set(self._hints)
            self._hints.clear()
        for dock in self.docks:
            if now - dock.last_scan >= self.rescan_seconds:
                self._full_scan(dock)
                dock.last_scan = now
            else:
                self._check_paths(dock, hints | set(dock.settler.paths()))
            if self._paused_all or dock.paused:
                dock.ready.clear()  # they wait in the dock; the next rescan finds them again
            else:
                self._claim_ready(dock)
        self._submit_due_jobs()

    def _check_space(self) -> None:
        """Stop claiming before the catalog or a spool cannot grow; resume when space returns."""
        data_dir = self.archive.settings.data_dir
        floor = self.archive.settings.station.min_free_mb
        self._data_free_mb = free_mb(data_dir)
        self._paused_all = self._below(
            "data folder", data_dir, self._data_free_mb, floor, "station.min_free_mb"
        )
        for dock in self.docks:
            dock.free_mb = free_mb(dock.root)
            dock.paused = self._below(
                f"dock {dock.settings.label}",
                dock.root,
                dock.free_mb,
                dock.settings.min_free_mb,
                "docks.min_free_mb",
            )
            CLAIMING_PAUSED.labels(dock.settings.label).set(
                1 if dock.paused or self._paused_all else 0
            )
        self._note_docks()

    def _below(self, where: str, path: Path, free: float | None, floor: float, key: str) -> bool:
        if free is None or free >= floor:
            if self.health.active(DISK_FULL, where):
                self.health.clear(where, DISK_FULL)
            return False
        self.health.fault(
            DISK_FULL,
            where,
            f"disk full: {path} has {free:.1f} MB free, below {key} = {floor:g}; "
            "new files wait in the dock until space returns",
        )
        return True

    def _note_docks(self) -> None:
        self.health.note(
            "space",
            {
                "data_dir_free_mb": _round(self._data_free_mb),
                "data_dir_min_free_mb": self.archive.settings.station.min_free_mb,
                "claiming_paused": self._paused_all,
            },
        )
        self.health.note(
            "docks",
            {
                dock.settings.label: {
                    "free_mb": _round(dock.free_mb),
                    "min_free_mb": dock.settings.min_free_mb,
                    "claiming_paused": dock.paused or self._paused_all,
                    "ignored": dock.ignored,
                    "ignored_examples": dock.ignored_examples,
                    "scans": dock.scans,
                }
                for dock in self.docks
            },
        )

    def _full_scan(self, dock: _DockState) -> None:
        present: set[str] = set()
        ignored: list[str] = []
        for found in scan_dock(dock.root, dock.settings.skip_patterns, ignored.append):
            if isinstance(found, Rejected):
                self._report(dock, found)
                continue
            present.add(found.path)
            self._observe(dock, found)
        dock.settler.prune(present)
        if len(ignored) != dock.ignored:
            log.info(
                "dock %s: %d name(s) match the ignore patterns and are not taken",
                dock.settings.label,
                len(ignored),
            )
        dock.ignored = len(ignored)
        dock.ignored_examples = [
            display_path(os.path.relpath(p, dock.root)) for p in ignored[:IGNORED_EXAMPLES]
        ]
        IGNORED_FILES.labels(dock.settings.label).set(dock.ignored)
        dock.scans += 1
        self._note_docks()

    def _check_paths(self, dock: _DockState, paths: set[str]) -> None:
        for path in paths:
            found = inspect_path(path, dock.root, dock.settings.skip_patterns)
            if found is None:
                dock.settler.forget(path)
            elif isinstance(found, Rejected):
                self._report(dock, found)
            else:
                self._observe(dock, found)

    def _observe(self, dock: _DockState, candidate: Candidate) -> None:
        if dock.settler.observe(candidate):
            dock.settler.forget(candidate.path)
            dock.ready.append(candidate)
        else:
            self.prehasher.offer(
                candidate.path,
                candidate.size,
                functools.partial(recorder_hashes.may_have_md5, dock.settings),
            )

    def _claim_ready(self, dock: _DockState) -> None:
        """Register every file that settled this tick in one commit, then hand
        each job to a worker (which moves it into the spool and on)."""
        if not dock.ready:
            return
        ready, dock.ready = dock.ready, []
        # a file already registered and not yet claimed is adopted, never registered again
        for job in self.pipeline.register_for_workers(dock.settings, ready):
            job_id = job if isinstance(job, int) else job.id
            self._submit(("job", job_id), self._advance, job)

    def _submit_due_jobs(self) -> None:
        if len(self._busy) >= self._workers * 4 or time.monotonic() < self._worker_pause_until:
            return
        rows = self.archive.db.read(
            lambda connection: connection.execute(
                select(IngestJob.id, IngestJob.state, IngestJob.next_attempt_at).where(
                    IngestJob.state.in_([s.value for s in ACTIVE_STATES]),
                    IngestJob.station == self.archive.station,
                )
            ).all()
        )
        now = utcnow()
        store_down = not self.probe.answering
        for job_id, state, due in rows:
            if store_down and state in STORE_STEP_STATES:
                continue  # it would only wait for the store's timeout; woken when it is back
            if due is None or due <= now:
                self._submit(("job", job_id), self._advance, job_id)

    def _advance(self, job: int | IngestJob) -> Outcome:
        """Move a job on; while the store does not answer, only as far as the spool
        (claimed files are safe there, and no worker waits out a hung store)."""
        if self.probe.answering:
            return self.pipeline.advance(job)
        return self.pipeline.advance(job, stop_after=JobState.CLAIMED)

    def _store_back(self, outage: float) -> None:
        """The store answers again: every waiting job is due now, not after its backoff."""
        woken = self.pipeline.wake_waiting()
        log.info(
            "store answering again after %.0fs; %d waiting job(s) resumed",
            outage,
            woken,
            extra={"store_outage_s": round(outage, 1), "resumed_jobs": woken},
        )
        self._wake.set()
        for callback in self.on_store_back:
            callback()

    def _resume_unfinished(self) -> None:
        with self.archive.db.session() as session:
            count = session.scalar(
                select(IngestJob.id)
                .where(IngestJob.state.in_([s.value for s in ACTIVE_STATES]))
                .limit(1)
            )
        if count:
            log.info("resuming unfinished jobs from the catalog")
        self._submit_due_jobs()

    def _hold(self, key: tuple[str, object]) -> bool:
        with self._busy_lock:
            if key in self._busy:
                return False
            self._busy.add(key)
            return True

    def _release(self, key: tuple[str, object]) -> None:
        with self._busy_lock:
            self._busy.discard(key)

    def _submit(self, key: tuple[str, object], work: Callable[..., object], *args: object) -> None:
        """Run ``work`` in a worker unless something already holds ``key``."""
        if not self._hold(key):
            return

        def run() -> None:
            try:
                result = work(*args)
            except Exception as exc:  # the catalog failed under the job (full, locked, damaged)
                kind, message = classify(exc)
                if kind == UNEXPECTED:
                    log.exception("unexpected error in %s %s", key[0], key[1])
                self.health.fault(kind, "worker", message)
                # its state is unchanged in the catalog; let the fault clear before the retry
                self._worker_backoff = min(MAX_BACKOFF_SECONDS, max(0.5, self._worker_backoff * 2))
                self._worker_pause_until = time.monotonic() + self._worker_backoff
            else:
                self._worker_backoff = 0.0
                if self.health.active(where="worker"):
                    self.health.clear("worker")
                if isinstance(result, Outcome) and (result.error or "").startswith(
                    "store unavailable"
                ):
                    self.probe.poke()
            finally:
                self._release(key)

        self._pool.submit(run)

    def _report(self, dock: _DockState, rejected: Rejected) -> None:
        """Say once what we refuse to take, and keep it visible in status."""
        first_time = self._reported.get(rejected.path) != rejected.reason
        self._reported[rejected.path] = rejected.reason
        with self.archive.db.session() as session:
            row = session.get(DockProblem, rejected.path)
            if row is None:
                session.add(
                    DockProblem(
                        path=rejected.path, dock=dock.settings.label, reason=rejected.reason
                    )
                )
            else:
                row.reason, row.last_seen = rejected.reason, utcnow()
                row.count += 1
        if first_time:
            log.warning("%s: not taken: %s", display_path(rejected.path), rejected.reason)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
