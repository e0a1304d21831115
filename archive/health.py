"""What is wrong right now: said once, kept visible, cleared when it clears.

A daemon that only logs a fault hides it (a log line scrolls away) and one that
dies for it stops archiving. So every loop of the daemon hands what went wrong
to one :class:`Health` board: the first time a fault appears it is one log line
naming its kind and where it happened (JSON with ``--log-format json``); while
it lasts it is a gauge in ``/metrics`` and an entry in ``strongroom status``;
when the loop next succeeds it is cleared with one more line.

``status`` runs in another process, and the catalog may be the very thing that
is broken or full, so the board is published as a small JSON file in the data
folder, not in the catalog. The file is allocated once at start and then
overwritten in place: rewriting allocated blocks needs no free space, so the
board can still say "disk full" on a full disk.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from archive.db import CatalogCheck, check_catalog, make_engine
from archive.metrics import FAULT_ACTIVE, FAULTS
from archive.states import STORE_STEP_STATES
from archive.store import StoreError
from config.settings import Settings

log = logging.getLogger("strongroom.health")

DISK_FULL = "disk_full"
STORE = "store"
CATALOG = "catalog"
CATALOG_DAMAGED = "catalog_damaged"
IO = "io"
UNEXPECTED = "unexpected"

#: what an operator does about a damaged catalog (every message about one names it)
CATALOG_ADVICE = (
    "rebuild it from the bucket with `strongroom catalog rebuild --into NEW.db` or restore "
    "a backup with `strongroom catalog restore-backup --into NEW.db`, then point catalog.url at it"
)
#: a fault still present is logged again this often (with its count), never per occurrence
REPEAT_SECONDS = 300.0
#: the board file's size: allocated once, overwritten in place
BOARD_BYTES = 256 * 1024
HEALTH_FILE = "daemon-health.json"
CATALOG_CHECK_FILE = "catalog-check.json"


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlite_text(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).lower()


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, DBAPIError):
        text = _sqlite_text(exc)
        return "database or disk is full" in text or "no space left" in text
    return False


def is_catalog_damaged(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    text = _sqlite_text(exc)
    return "malformed" in text or "file is not a database" in text or "corrupt" in text


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of a fault that came from outside the code."""
    # a database error's own words, without SQLAlchemy's statement and link
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())[:500]
    if is_disk_full(exc):
        return DISK_FULL, f"disk full: {text}"
    if is_catalog_damaged(exc):
        return CATALOG_DAMAGED, f"the catalog is damaged ({text}); {CATALOG_ADVICE}"
    if isinstance(exc, DBAPIError):
        return CATALOG, f"catalog error: {text}"
    if isinstance(exc, StoreError):
        return STORE, f"store error: {text}"
    if isinstance(exc, OSError):
        return IO, f"I/O error: {text}"
    return UNEXPECTED, f"{type(exc).__name__}: {text}"


def is_transient_db_error(exc: BaseException) -> bool:
    """A catalog error that waiting may cure (busy, locked, full), as opposed to a bug."""
    return isinstance(exc, OperationalError)


@dataclass
class Fault:
    kind: str
    where: str
    message: str
    since: str
    last: str
    count: int = 1


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Health:
    """The faults of one process, and a few facts about it (``note``) for ``status``."""

    def __init__(self, folder: Path | None = None, *, role: str = "daemon") -> None:
        self.role = role
        self._lock = threading.Lock()
        self._faults: dict[tuple[str, str], Fault] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._notes: dict[str, Any] = {}
        self._started = _now().isoformat()
        self._path = folder / HEALTH_FILE if folder is not None else None
        self._fd: int | None = None
        self._last_flush = 0.0
        if self._path is not None:
            self._open_board()

    # -- faults ---------------------------------------------------------------

    def fault(self, kind: str, where: str, message: str) -> None:
        """Record a fault in ``where``; logged when it appears, then every REPEAT_SECONDS."""
        now = _now()
        key = (kind, where)
        with self._lock:
            fault = self._faults.get(key)
            if fault is None:
                fault = self._faults[key] = Fault(
                    kind, where, message, now.isoformat(), now.isoformat()
                )
                FAULT_ACTIVE.labels(kind, where).set(1)
            else:
                fault.count += 1
                fault.message, fault.last = message, now.isoformat()
            FAULTS.labels(kind).inc()
            due = time.monotonic() - self._logged.get(key, -REPEAT_SECONDS) >= REPEAT_SECONDS
            if due:
                self._logged[key] = time.monotonic()
            count = fault.count
        if due:
            log.error(
                "fault in %s: %s%s",
                where,
                message,
                f" (seen {count} times since {fault.since})" if count > 1 else "",
                extra={"fault": kind, "where": where, "since": fault.since, "count": count},
            )
        self.flush()

    def clear(self, where: str, kind: str | None = None) -> None:
        """The loop in ``where`` works again: its faults (of ``kind``, or all) are gone."""
        with self._lock:
            gone = [
                key for key in self._faults if key[1] == where and (kind is None or key[0] == kind)
            ]
            faults = [self._faults.pop(key) for key in gone]
            for key in gone:
                self._logged.pop(key, None)
                FAULT_ACTIVE.labels(*key).set(0)
        for fault in faults:
            log.info(
                "recovered in %s: %s cleared (since %s, %d times)",
                where,
                fault.kind,
                fault.since,
                fault.count,
                extra={"fault": fault.kind, "where": where, "recovered": True},
            )
        if faults:
            self.flush(force=True)

    def active(self, kind: str | None = None, where: str | None = None) -> list[Fault]:
        with self._lock:
            return [
                f
                for f in self._faults.values()
                if (kind is None or f.kind == kind) and (where is None or f.where == where)
            ]

    def note(self, name: str, value: Any) -> None:
        """A fact for ``status`` (the store's state, the docks' free space, ignored names)."""
        with self._lock:
            self._notes[name] = value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "role": self.role,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": self._started,
                "updated_at": _now().isoformat(),
                "faults": [asdict(f) for f in self._faults.values()],
                **self._notes,
            }

    # -- the board file -------------------------------------------------------

    def _open_board(self) -> None:
        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o640)
            if os.fstat(fd).st_size < BOARD_BYTES:
                os.posix_fallocate(fd, 0, BOARD_BYTES)
            self._fd = fd
        except OSError as exc:  # a full disk at start: the caller reports it
            log.warning("cannot keep %s: %s", self._path, exc)

    def flush(self, *, force: bool = False) -> None:
        """Write the board (at most every half second unless forced); never raises."""
        if self._fd is None or (not force and time.monotonic() - self._last_flush < 0.5):
            return
        self._last_flush = time.monotonic()
        data = json.dumps(self.snapshot(), default=str).encode()
        if len(data) >= BOARD_BYTES:
            data = json.dumps({**self.snapshot(), "truncated": True, "faults": []}).encode()
        try:
            os.pwrite(self._fd, data.ljust(BOARD_BYTES, b" "), 0)
        except OSError as exc:
            log.debug("cannot write the health board: %s", exc)

    def close(self) -> None:
        """Say we stopped (status then shows the daemon as not running)."""
        self.note("stopped_at", _now().isoformat())
        self.flush(force=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_board(data_dir: Path) -> dict[str, Any] | None:
    """The daemon's last published board, with ``running`` (its process is alive)."""
    path = run_dir(data_dir) / HEALTH_FILE
    for _ in range(5):  # a read may meet a write half done
        try:
            raw = path.read_bytes().strip(b" \0\n")
        except FileNotFoundError:
            return None
        if not raw:
            return None
        try:
            board: dict[str, Any] = json.loads(raw)
        except ValueError:
            time.sleep(0.05)
            continue
        board["running"] = (
            "stopped_at" not in board
            and board.get("host") == socket.gethostname()
            and process_alive(int(board.get("pid", 0)))
        )
        return board
    return None


def record_catalog_check(data_dir: Path, result: dict[str, Any]) -> None:
    """Keep the last catalog self-check for ``status`` (best effort: the disk may be full)."""
    folder = run_dir(data_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{CATALOG_CHECK_FILE}.{os.getpid()}"
        temp.write_text(json.dumps(result), encoding="utf-8")
        os.replace(temp, folder / CATALOG_CHECK_FILE)
    except OSError as exc:
        log.debug("cannot record the catalog check: %s", exc)


def read_catalog_check(data_dir: Path) -> dict[str, Any] | None:
    try:
        check: dict[str, Any] = json.loads(
            (run_dir(data_dir) / CATALOG_CHECK_FILE).read_text(encoding="utf-8")
        )
        return check
    except (OSError, ValueError):
        return None


def free_mb(path: Path) -> float | None:
    """Free space (for unprivileged writers) of the file system holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize / (1024 * 1024)


def data_floor_mb(settings: Settings) -> float:
    return settings.station.min_free_mb


def startup_check(settings: Settings) -> tuple[str | None, CatalogCheck | None]:
    """Before ``run``, ``serve`` or ``ingest`` open the catalog: is there room, and is
    the catalog sound? Returns (the one line refusing to start, or None; the check).

    A full disk is named as such: SQLite would only say ``disk I/O error`` when
    it cannot create its WAL files.
    """
    data_dir = settings.data_dir
    free = free_mb(data_dir if data_dir.exists() else data_dir.parent)
    floor = data_floor_mb(settings)
    full = free is not None and (free < 1 or free < floor)
    if free is not None and free < 1:
        return _disk_full_line(data_dir, free, floor), None
    engine = make_engine(settings.catalog_url)
    try:
        check = check_catalog(engine)
    finally:
        engine.dispose()
    record_catalog_check(data_dir, {**check.to_dict(), "by": "start"})
    if check.ok or not check.connected:
        # a database server that does not answer (or refuses us) is not a damaged
        # catalog: opening it says which, and the daemon waits for one that is down
        return None, check
    if full:
        return _disk_full_line(data_dir, free or 0.0, floor), check
    return (
        f"the catalog failed its self-check ({check.kind}: {check.detail}); {CATALOG_ADVICE}",
        check,
    )


def _disk_full_line(data_dir: Path, free: float, floor: float) -> str:
    return (
        f"disk full: the data folder {data_dir} has {free:.1f} MB free "
        f"(station.min_free_mb = {floor:g}); free some space and start again"
    )


def daemon_section(data_dir: Path) -> dict[str, Any]:
    """``status``: the daemon's faults, the store's state, free space and ignored
    names per dock (from its board), and the last catalog self-check."""
    board = read_board(data_dir)
    check = read_catalog_check(data_dir)
    if board is None:
        return {"daemon": {"running": False}, "faults": [], "catalog_check": check}
    running = bool(board.get("running"))
    daemon = {
        key: board.get(key)
        for key in ("pid", "host", "started_at", "updated_at", "stopped_at")
        if board.get(key) is not None
    }
    daemon["running"] = running
    if not running and board.get("faults"):
        daemon["faults_when_last_seen"] = board["faults"]
    return {
        "daemon": daemon,
        "faults": board.get("faults", []) if running else [],
        "store": board.get("store") if running else None,
        "space": board.get("space") if running else None,
        "docks": board.get("docks", {}),
        "catalog_check": check,
    }


def queue_entry(job: Any, daemon: dict[str, Any]) -> dict[str, Any]:
    """One waiting job for ``status``: its attempt, its last error, and what it waits for."""
    entry = {
        "file": job.display_name,
        "state": job.state,
        "attempts": job.attempts,
        "error": job.last_error,
        "waiting_since": job.first_seen_at.isoformat(),
        "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
    }
    store = daemon.get("store") or {}
    if store.get("answering") is False and job.state in STORE_STEP_STATES:
        entry["waiting_for"] = store.get("message")
    return entry
