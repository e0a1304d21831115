"""The daemon's incident matcher: links sealed items to incidents off the pipeline.

The pipeline only *wakes* it after a seal (``wake``), so a slow store or a
catalog hiccup in matching never delays or fails an original's archiving. It
does what :func:`archive.incidents.run_owed` says is owed: items not yet
matched (the ones just sealed, or left by a crash) and incidents changed since
their last matching (an import whose links met a store outage). It also runs
every ``[incidents] sweep_minutes`` without being woken. A failure is a fault
on the health board and the next pass is the retry.
"""

from __future__ import annotations

import logging
import threading

from archive.context import Archive
from archive.health import UNEXPECTED, Health, classify
from archive.incidents import run_owed

log = logging.getLogger("strongroom.incidents")
WHERE = "incident matcher"


class IncidentMatcher:
    def __init__(self, archive: Archive, health: Health | None = None) -> None:
        self.archive = archive
        self.health = health
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="incident-matcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def run_once(self) -> bool:
        """Everything owed now, in batches; False (and a fault) when a pass failed."""
        try:
            while not self._stop.is_set():
                done = run_owed(self.archive)
                if done["matches"]:
                    log.info("incident matching: %d link(s) or proposal(s) made", done["matches"])
                if done["incidents"] == 0 and done["items"] == 0:
                    break
        except Exception as exc:
            kind, message = classify(exc)
            if kind == UNEXPECTED:
                log.exception("unexpected error in the %s", WHERE)
            if self.health is not None:
                self.health.fault(kind, WHERE, message)
            else:
                log.warning("%s: %s (retried later)", WHERE, message)
            return False
        if self.health is not None and self.health.active(where=WHERE):
            self.health.clear(WHERE)
        return True

    def _loop(self) -> None:
        interval = self.archive.settings.incidents.sweep_minutes * 60
        while not self._stop.is_set():
            ok = self.run_once()
            # after a failure, try again soon rather than at the next sweep
            self._wake.wait(interval if ok else min(interval, 30.0))
            self._wake.clear()
