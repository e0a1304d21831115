"""``python -m bench.sqlcount OUT.json strongroom-args…``: run a strongroom
command (the daemon) with every catalog call counted, written to OUT.json at exit.

The stations benchmark needs statements, transactions and round-trips per file
from inside the daemon processes; SQLAlchemy's engine events see every one
without touching the product's code. :class:`CatalogCounter` is also what
``tests/test_catalog_cost.py`` uses to hold the per-file cost down.

What is counted:

* ``statements``: every statement sent (``before_cursor_execute``);
* ``transactions``: BEGIN … COMMIT/ROLLBACK blocks; a connection in
  autocommit (``Database.read``) has none – each of its statements stands
  alone – so its begins are not counted;
* ``statement_seconds`` and ``statement_cpu_seconds``: wall and CPU time of
  the calling thread inside statements (psycopg's BEGIN included; COMMIT not:
  SQLAlchemy has no event after it). On SQLite the CPU includes the database
  engine's own work, in-process; on PostgreSQL only the client's (driver,
  dialect), the server's is measured apart;
* ``held_cpu_seconds``: CPU of the threads while they hold a catalog
  connection (pool checkout to checkin): building and running the statements,
  the ORM's work and the COMMIT – the catalog's cost in the client, on either
  database, measured the same way;
* ``round_trips``, what a network catalog (PostgreSQL) pays: statements, plus
  BEGIN (psycopg sends it as its own command) and COMMIT/ROLLBACK per
  transaction. On SQLite these are in-process calls, not network round trips.
  (Until 2026-11-29 the pool also pinged on every checkout, one more each.)
"""

from __future__ import annotations

import atexit
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool


def _autocommit(connection: Connection) -> bool:
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


class CatalogCounter:
    """Counts the catalog calls of one engine (or of every engine: ``Engine``)."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {
            "statements": 0,
            "transactions": 0,
            "commits": 0,
            "rollbacks": 0,
            "checkouts": 0,
            "connects": 0,
            "statement_seconds": 0.0,
            "statement_cpu_seconds": 0.0,
            "held_cpu_seconds": 0.0,
        }
        self._lock = threading.Lock()
        self._local = threading.local()

    def attach(self, target: Any = Engine) -> CatalogCounter:
        """Listen on ``target``: an engine, or the ``Engine`` class for all of them."""
        event.listen(target, "before_cursor_execute", self._before)
        event.listen(target, "after_cursor_execute", self._after)
        event.listen(target, "begin", self._ended("transactions"))
        event.listen(target, "commit", self._ended("commits"))
        event.listen(target, "rollback", self._ended("rollbacks"))
        pool = Pool if target is Engine else target.pool
        event.listen(pool, "checkout", self._checkout)
        event.listen(pool, "connect", lambda *_: self._add("connects"))
        event.listen(pool, "checkin", self._checkin)
        return self

    def _checkout(self, _dbapi: object, record: Any, _proxy: object) -> None:
        self._add("checkouts")
        record.info["sqlcount_held"] = (threading.get_ident(), time.thread_time())

    def _checkin(self, _dbapi: object, record: Any) -> None:
        thread, cpu = record.info.pop("sqlcount_held", (None, 0.0))
        if thread == threading.get_ident():
            self._add("held_cpu_seconds", time.thread_time() - cpu)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            counts = dict(self.counts)
        counts["round_trips"] = (
            counts["statements"] + counts["transactions"] + counts["commits"] + counts["rollbacks"]
        )
        return counts

    def _add(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.counts[name] += value

    def _before(self, *_args: object) -> None:
        self._local.started = (time.perf_counter(), time.thread_time())
        self._add("statements")

    def _after(self, *_args: object) -> None:
        wall, cpu = getattr(self._local, "started", (time.perf_counter(), time.thread_time()))
        with self._lock:
            self.counts["statement_seconds"] += time.perf_counter() - wall
            self.counts["statement_cpu_seconds"] += time.thread_time() - cpu

    def _ended(self, name: str):
        def listener(connection: Connection, *_args: object) -> None:
            if not _autocommit(connection):
                self._add(name)

        return listener


def main() -> int:
    out = Path(sys.argv[1])
    counter = CatalogCounter().attach(Engine)

    def dump() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        counts = {**counter.snapshot(), "cpu_seconds": usage.ru_utime + usage.ru_stime}
        out.write_text(json.dumps(counts) + "\n")

    atexit.register(dump)
    from frontdoors.main import main as strongroom

    return strongroom(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
