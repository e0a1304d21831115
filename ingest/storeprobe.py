"""The store's health probe: is the store answering, and since when not?

Workers only learn that the store hangs when their own call times out, and a
hung store used to look like nothing at all. The probe asks on its own thread
with its own short-timeout client, so ``status`` says "store not answering
since …" within one probe interval and one ``request_timeout``; when the store
answers again it tells the daemon, which wakes every waiting job at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from archive.db import utcnow
from archive.health import STORE, Health, classify
from archive.metrics import STORE_ANSWERING
from archive.store import ObjectStore


class StoreProbe:
    """Asks the store every ``probe_seconds`` (every second while it does not answer)
    whether it answers; records the outage and calls ``on_back`` when it ends.

    Its own thread and client with short timeouts: a hung store shows in
    ``status`` as "store not answering since …" within one probe and one
    timeout, whatever the workers are stuck in.
    """

    def __init__(
        self,
        store: ObjectStore,
        health: Health,
        interval: float,
        on_back: Callable[[float], None],
    ) -> None:
        self.store, self.health, self.interval, self.on_back = store, health, interval, on_back
        self.down_since: float | None = None  # monotonic
        #: when the store last answered again after an outage (monotonic), or None
        self.back_at: float | None = None
        self._down_at: str | None = None  # wall clock, for status
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="store-probe", daemon=True)
        STORE_ANSWERING.set(1)

    @property
    def answering(self) -> bool:
        return self.down_since is None

    def start(self) -> None:
        self.health.note("store", {"answering": True})
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        self._thread.join(timeout=self.store.settings.request_timeout * 2 + 1)

    def poke(self) -> None:
        """A worker met a store error: probe now rather than at the next interval."""
        self._poke.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._probe_once()
            wait = self.interval if self.answering else min(1.0, self.interval)
            self._poke.wait(wait)
            self._poke.clear()

    def _probe_once(self) -> None:
        started, started_at = time.monotonic(), utcnow()
        try:
            self.store.probe()
        except Exception as exc:  # the probe's whole job is to survive this
            if self.down_since is None:
                self.down_since, self._down_at = started, started_at.isoformat()
                STORE_ANSWERING.set(0)
            self.store.drop_idle_connections()
            message = f"store not answering since {self._down_at}: {' '.join(str(exc).split())}"
            self.health.note(
                "store", {"answering": False, "since": self._down_at, "message": message}
            )
            self.health.fault(STORE, "store probe", message[:600])
            return
        if self.down_since is None:
            return
        self.back_at = time.monotonic()
        outage = self.back_at - self.down_since
        self.down_since = self._down_at = None
        STORE_ANSWERING.set(1)
        self.health.note(
            "store",
            {"answering": True, "back_at": utcnow().isoformat(), "last_outage_s": round(outage)},
        )
        self.health.clear("store probe")
        try:
            self.on_back(outage)
        except Exception as exc:  # e.g. the catalog is busy: the jobs' own backoff remains
            kind, message = classify(exc)
            self.health.fault(kind, "store probe", f"cannot wake the waiting jobs: {message}")
