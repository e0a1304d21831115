"""The daemon: watch every dock, settle, claim, and keep the workers busy.

One loop thread decides *what* to do (which files are complete, which jobs are
due); a bounded pool of worker threads does it, one job per worker, so hashing
one file overlaps uploading another. On start the loop first resumes every
unfinished job from the catalog, then rescans every dock in full: files
dropped while the daemon was down are archived like any other.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
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
from archive.models import ACTIVE_STATES, DockProblem, IngestJob
from config.settings import DockSettings
from ingest.pipeline import Pipeline
from ingest.prehash import PreHasher
from ingest.scan import Candidate, Rejected, inspect_path, scan_dock
from ingest.settle import Settler

log = logging.getLogger("strongroom.daemon")

HINT_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED}
)
TICK_SECONDS = 0.1


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
        self.ready: list[Candidate] = []


class Daemon:
    """Runs until :meth:`stop` is called (SIGTERM/SIGINT in ``strongroom run``)."""

    def __init__(self, archive: Archive, pipeline: Pipeline) -> None:
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

    # -- lifecycle ----------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        for dock in self.docks:
            dock.root.mkdir(parents=True, exist_ok=True)
        self._resume_unfinished()
        self._start_observers()
        log.info(
            "watching %d dock(s): %s", len(self.docks), ", ".join(str(d.root) for d in self.docks)
        )
        try:
            outage = 0.0
            while not self._stop.is_set():
                try:
                    self._tick()
                    outage = 0.0
                except (OperationalError, InterfaceError) as exc:
                    # the catalog is down or restarting: files wait in the docks
                    # (hints lost here come back with the next full scan)
                    outage = min(max(outage * 2, 1.0), 30.0)
                    log.warning(
                        "catalog unavailable (%s); retrying in %.0fs",
                        str(exc).splitlines()[0],
                        outage,
                    )
                    self._stop.wait(outage)
                    continue
                self._wake.wait(TICK_SECONDS)
                self._wake.clear()
        finally:
            for observer in self._observers:
                observer.stop()
            log.info("stopping: letting %d running step(s) finish", len(self._busy))
            self.prehasher.close()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.pipeline.prehasher = None
            for observer in self._observers:
                observer.join(timeout=5)

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
        with self._hints_lock:  # the handler holds this very set: empty it, never replace it
            hints = set(self._hints)
            self._hints.clear()
        for dock in self.docks:
            if now - dock.last_scan >= self.rescan_seconds:
                self._full_scan(dock)
                dock.last_scan = now
            else:
                self._check_paths(dock, hints | set(dock.settler.paths()))
            self._claim_ready(dock)
        self._submit_due_jobs()

    def _full_scan(self, dock: _DockState) -> None:
        present: set[str] = set()
        for found in scan_dock(dock.root, dock.settings.ignore):
            if isinstance(found, Rejected):
                self._report(dock, found)
                continue
            present.add(found.path)
            self._observe(dock, found)
        dock.settler.prune(present)

    def _check_paths(self, dock: _DockState, paths: set[str]) -> None:
        for path in paths:
            found = inspect_path(path, dock.root, dock.settings.ignore)
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
            self.prehasher.offer(candidate.path, candidate.size)

    def _claim_ready(self, dock: _DockState) -> None:
        """Register every file that settled this tick in one commit, then hand
        each job to a worker (which moves it into the spool and on)."""
        if not dock.ready:
            return
        ready, dock.ready = dock.ready, []
        for job_id in self.pipeline.register(dock.settings, ready):
            self._submit(("job", job_id), self.pipeline.advance, job_id)

    def _submit_due_jobs(self) -> None:
        if len(self._busy) >= self._workers * 4:
            return
        with self.archive.db.session() as session:
            rows = session.execute(
                select(IngestJob.id, IngestJob.next_attempt_at).where(
                    IngestJob.state.in_([s.value for s in ACTIVE_STATES]),
                    IngestJob.station == self.archive.station,
                )
            ).all()
        now = utcnow()
        for job_id, due in rows:
            if due is None or due <= now:
                self._submit(("job", job_id), self.pipeline.advance, job_id)

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
                work(*args)
            except Exception:
                log.exception("unexpected error in %s %s", key[0], key[1])
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
