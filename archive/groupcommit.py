"""Group commit: many workers' small transactions, one durable commit.

The catalog commits with ``synchronous=FULL`` (a crash or power cut must not
undo a commit that a released dock file depends on), and each such commit
costs an fsync – about 4 ms on a VM disk, serialised by SQLite's single
writer. A dock of small files would spend its time waiting for fsyncs.

So pipeline workers hand their state changes to one writer thread, which
applies every change waiting at that moment in one transaction and commits
once. Each worker still waits until *its* change is durable before it moves
on, so the pipeline's ordering guarantees are unchanged; only the fsyncs are
shared. If one change in a batch fails, the batch is rolled back and each
change is retried alone, so one bad change never takes others down with it.
That is also the one retry after a connection the catalog server dropped
(a restart): the batch had not been committed, so running it again on a new
connection is safe. A connection lost *during* COMMIT is different: the
server may have committed, so the batch is not run again (that could insert
twice); each worker gets the error and reads its job back from the catalog.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from archive.db import Database, lost_connection

log = logging.getLogger("strongroom.catalog")
T = TypeVar("T")

_STOP = object()


class GroupCommitter:
    """Runs ``work(session)`` callables in shared transactions on one thread."""

    def __init__(self, db: Database, max_batch: int = 128) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[Session], T]) -> T:
        """Apply ``work`` and return its result once it is committed (or raise)."""
        future: Future[T] = Future()
        self._ensure_thread()
        self._queue.put((work, future))
        return future.result()

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(_STOP)
                self._thread.join()
                self._thread = None

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="catalog-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            self._apply(batch)

    def _apply(self, batch: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        committing = False
        try:
            with self.db.session() as session:
                results = [work(session) for work, _ in batch]
                session.flush()  # a refused row fails here, before the COMMIT
                committing = True
        except Exception as exc:
            if committing and lost_connection(exc):
                for _, future in batch:  # committed or not: nobody can say, so no re-run
                    future.set_exception(exc)
                return
            if len(batch) == 1:
                self._apply_alone(batch[0])
                return
            for item in batch:  # isolate the failing change
                self._apply_alone(item)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _apply_alone(self, item: tuple[Callable[[Session], Any], Future[Any]]) -> None:
        work, future = item
        try:
            with self.db.session() as session:
                result = work(session)
        except BaseException as exc:  # handed to the waiting worker, not swallowed
            future.set_exception(exc)
        else:
            future.set_result(result)
