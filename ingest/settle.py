"""Deciding when a dock file is complete.

Events are only hints: inotify often sends no "closed" for a file written right
after its folder was made, and a polling observer never does. So the rule is
the file's own state: its size and mtime unchanged for ``settle_seconds``, and
– where the kernel can tell – no process holding it open. The last check uses
a Linux file lease (``F_SETLEASE``/``F_WRLCK``), which the kernel grants only
when nobody else has the file open; on file systems without leases (NFS, SMB)
the stability rule alone decides.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest.scan import Candidate

F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)


def open_by_others(path: str) -> bool | None:
    """True if another process has ``path`` open, None if the kernel cannot say."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
    except BlockingIOError:
        return True
    except OSError:
        return None  # leases unsupported here (network file system, or not the owner)
    else:
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


@dataclass
class _Observation:
    size: int
    mtime_ns: int
    stable_since: float


class Settler:
    """Tracks candidates until each has been still for ``settle_seconds``.

    "Still" is measured from whichever is earlier: when we first saw the file
    in its current size and mtime, or – where the kernel confirms that no
    process holds the file open – its mtime itself. The second makes a file
    that was closed a while ago (found by the rescan at start, or whose event
    came late) ready at once, instead of after another settle period.
    """

    def __init__(
        self,
        settle_seconds: float,
        clock=time.monotonic,
        wall_clock=time.time,
        ours: Callable[[str], bool] | None = None,
    ) -> None:
        self.settle_seconds = settle_seconds
        #: files this process itself is reading (the pre-hash): while it reads, the
        #: kernel refuses the lease because of *us*, which says nothing about the dock
        self._ours = ours or (lambda _path: False)
        self._clock = clock
        self._wall_clock = wall_clock
        self._seen: dict[str, _Observation] = {}

    def observe(self, candidate: Candidate) -> bool:
        """Record what the file looks like now; True once it is ready to claim."""
        now = self._clock()
        previous = self._seen.get(candidate.path)
        if (
            previous is None
            or previous.size != candidate.size
            or previous.mtime_ns != candidate.mtime_ns
        ):
            previous = _Observation(candidate.size, candidate.mtime_ns, now)
            self._seen[candidate.path] = previous
        observed_still = now - previous.stable_since
        written_ago = self._wall_clock() - candidate.mtime_ns / 1e9
        if max(observed_still, written_ago) < self.settle_seconds:
            return False
        if self._ours(candidate.path):
            return False  # ask again once our own read is done
        held = open_by_others(candidate.path)
        if held:
            if not self._ours(candidate.path):  # our read may have begun meanwhile
                previous.stable_since = now  # still being written (or read) by the dock
            return False
        # without a kernel answer (network file systems) only our own observation counts
        return held is False or observed_still >= self.settle_seconds

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)

    def prune(self, present: set[str]) -> None:
        """Drop files that are gone, so the table does not grow without end."""
        for path in list(self._seen):
            if path not in present:
                del self._seen[path]

    def paths(self) -> list[str]:
        """Files still settling: re-checked every tick, between full rescans."""
        return list(self._seen)
