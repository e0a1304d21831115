"""One live daemon per station name.

Every row, manifest and custody event names its station, so two daemons
running under one name would make two stations indistinguishable. ``run``
takes the ``station:<name>`` lease (:mod:`archive.leases`) before it starts
and renews it while it runs; a second daemon with the same name is refused,
naming the one that holds it. A daemon that died on this host is replaced at
once (its pid is gone); one on another host only after its lease expired.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from archive import leases
from archive.context import Archive
from config.settings import ConfigError

log = logging.getLogger("strongroom.identity")

#: how long a silent daemon keeps its name; renewed every third of it
STATION_LEASE = timedelta(seconds=60)


class StationIdentity:
    """The held ``station:<name>`` lease and the thread renewing it."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.name = f"station:{archive.station}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease: leases.Lease | None = None

    def claim(self) -> None:
        """Take the name, or raise ConfigError naming who has it."""
        self.lease = leases.acquire(
            self.archive.db,
            self.name,
            self.archive.station,
            STATION_LEASE,
            takeover=leases.expired_or_dead_here,
        )
        if self.lease is None:
            other = leases.holder_of(self.archive.db, self.name)
            where = f"host {other.host} pid {other.pid}" if other else "another host"
            raise ConfigError(
                f"station name {self.archive.station!r} is already in use by a live daemon on "
                f"{where}; every station needs its own [station] name"
            )
        self._thread = threading.Thread(target=self._renew, name="station-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(STATION_LEASE.total_seconds() / 3):
            assert self.lease is not None
            try:
                leases.renew(self.archive.db, self.lease)
            except leases.LeaseLost:
                log.error("the station name was taken over by another daemon; taking it back")
                self.lease = (
                    leases.acquire(self.archive.db, self.name, self.archive.station, STATION_LEASE)
                    or self.lease
                )
            except Exception:  # catalog down: the daemon waits, the next look renews
                log.warning("could not renew the station lease; retrying", exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.lease is not None:
            leases.release(self.archive.db, self.lease)
