"""Who holds a lease, so that a lease held by a dead process is noticed at once.

A lease that only expires makes every crash cost its whole length (two
minutes for a playback copy) before another worker may take the work over.
A lease that also names its holder – host, process id and the process's start
time – can be judged sooner: on the same host, a holder whose process no
longer exists (or whose pid now belongs to a younger process) is dead, and its
work may be taken over at once. Holders on other hosts are only judged by
their lease's expiry.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else "?"


@cache
def process_owner() -> str:
    """``host:pid:start`` of this process (fixed for its lifetime)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def owner_gone(owner: str | None) -> bool:
    """True only when ``owner`` names a process on this host that no longer exists."""
    if not owner:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid_text, started = parts
    if host != socket.gethostname():
        return False
    pid = int(pid_text)
    if os.path.isdir("/proc"):
        now = _start_time(pid)
        return now is None or (started != "?" and now != "?" and now != started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
