"""The pool of playback workers: threads that claim rows from the queue and make
their copies, in the daemon's background or until the queue is empty (one-shot
commands); a fault never ends a worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from archive.context import Archive
from archive.custody import system_actor
from archive.health import UNEXPECTED, Health, classify
from archive.metrics import ERRORS
from ingest.playback.attempt import Observer, Result
from ingest.playback.making import CopyMaker

log = logging.getLogger("strongroom.playback")


class PlaybackWorker(CopyMaker):
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
