"""``python -m bench.sqlcount OUT.json strongroom-args…``: run a strongroom
command (the daemon) with every catalog call counted, written to OUT.json at exit.

The stations benchmark needs statements and round-trips per file from inside
the daemon processes; SQLAlchemy's engine and pool events see every one
without touching the product's code. Round-trips are an estimate of what a
network catalog pays: statements + BEGIN + COMMIT/ROLLBACK + the pool's
pre-ping on each checkout (psycopg sends BEGIN as its own command).
"""

from __future__ import annotations

import atexit
import json
import resource
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

COUNTS = {
    "statements": 0,
    "begins": 0,
    "commits": 0,
    "rollbacks": 0,
    "checkouts": 0,
    "statement_seconds": 0.0,
}
_lock = threading.Lock()
_local = threading.local()


def _add(name: str, value: float = 1) -> None:
    with _lock:
        COUNTS[name] += value


@event.listens_for(Engine, "before_cursor_execute")
def _before(*_args: object) -> None:
    _local.started = time.perf_counter()
    _add("statements")


@event.listens_for(Engine, "after_cursor_execute")
def _after(*_args: object) -> None:
    _add("statement_seconds", time.perf_counter() - getattr(_local, "started", time.perf_counter()))


event.listen(Engine, "begin", lambda *_: _add("begins"))
event.listen(Engine, "commit", lambda *_: _add("commits"))
event.listen(Engine, "rollback", lambda *_: _add("rollbacks"))
event.listen(Pool, "checkout", lambda *_: _add("checkouts"))


def main() -> int:
    out = Path(sys.argv[1])

    def dump() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.write_text(
            json.dumps({**COUNTS, "cpu_seconds": usage.ru_utime + usage.ru_stime}) + "\n"
        )

    atexit.register(dump)
    from frontdoors.main import main as strongroom

    return strongroom(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
