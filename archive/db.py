"""The catalog database: engine, session scope and the column types we need.

SQLite (WAL, ``synchronous=FULL``) on one machine, PostgreSQL when stations
share a catalog; both through SQLAlchemy 2. ``synchronous=FULL`` matters: the
pipeline releases a dock file only after its catalog commit, so that commit
must survive a power cut.

Model modules register their tables on :data:`Base`; :func:`import_models`
imports them all. Tables are made and changed only by the Alembic migrations
in :mod:`archive.migrations` (see :mod:`archive.schema`).
"""

from __future__ import annotations

import importlib
import os
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import JSON, DateTime, Engine, LargeBinary, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from config.errors import UnavailableError
from config.settings import ConfigError

T = TypeVar("T")

#: modules that define tables; each is imported before the schema is created
MODEL_MODULES = [
    "archive.models",
    "archive.cases",
    "archive.derivatives",
    "archive.ledger_models",
    "archive.fixity_models",
    "archive.disposition_models",
    "archive.share_models",
    "archive.leases",
    "archive.incident_models",
    "archive.heartbeat_models",
    "archive.upload_models",
]


#: JSON columns; JSONB on PostgreSQL, whose plain JSON has no equality (so no
#: DISTINCT over a row that holds one)
JSONColumn = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    # the parametrised forms are what the typed models write (Mapped[list[Any]])
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict: JSONColumn,
        list: JSONColumn,
        dict[str, Any]: JSONColumn,
        list[Any]: JSONColumn,
    }


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use UTC-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class FsPath(TypeDecorator[str]):
    """A file-system path kept as its exact bytes.

    Dock file names are whatever the camera vendor wrote, including bytes that
    are not UTF-8; ``os.fsencode``/``os.fsdecode`` round-trip them exactly,
    where a text column would refuse or mangle them.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(
        self, value: str | os.PathLike[str] | None, dialect: Any
    ) -> bytes | None:
        return None if value is None else os.fsencode(value)

    def process_result_value(self, value: bytes | None, dialect: Any) -> str | None:
        return None if value is None else os.fsdecode(value)


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as printable UTF-8 text: undecodable bytes shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    # no pool_pre_ping: a ping is one more round trip on every checkout (about a
    # fifth of a small file's round trips). A connection the server dropped is
    # seen without one (:func:`_hung_up`), and work that meets a dropped
    # connection anyway is retried once where that is safe (:meth:`Database.read`,
    # the catalog writer).
    engine = create_engine(url)
    event.listen(engine, "checkout", _refuse_hung_up_connection)
    return engine


def _hung_up(dbapi_connection: Any) -> bool:
    """Has the server spoken on (or closed) this idle connection?

    Between transactions a PostgreSQL connection receives nothing unless the
    server ends it – a restart or fast shutdown, ``pg_terminate_backend``, an
    idle timeout – and then it sends an error and closes the socket. A poll
    with zero timeout sees either at once, with no round trip. A peer that
    vanished silently (a cut cable) is not seen here; the first statement then
    fails, the pool drops every connection of that age, and the caller's retry
    or its loop's fault handling takes over (as it had to with a ping, too).
    """
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        fd = dbapi_connection.fileno()
    except Exception:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _refuse_hung_up_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection the server hung up on is replaced.

    Raising ``DisconnectionError`` is SQLAlchemy's documented way for a
    checkout hook to refuse a connection; this subclass, ``InvalidatePoolError``,
    makes the pool discard it and every connection older (one restart cut them
    all) and hand out a new one.
    """
    if _hung_up(dbapi_connection):
        raise InvalidatePoolError("the catalog server closed this connection")


def lost_connection(exc: BaseException) -> bool:
    """Did this error come from a connection the database dropped (restart, kill)?"""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def import_models() -> None:
    """Register every table on :data:`Base` (migrations compare against it)."""
    for module in MODEL_MODULES:
        importlib.import_module(module)


class CatalogUnavailable(UnavailableError, ConfigError):
    """The catalog database refused us or cannot be reached (at start-up).

    ``retryable``: it could not be reached (down, restarting) – a daemon waits
    for it; otherwise it answered and refused (wrong password, no such
    database) – a configuration error."""

    code = "catalog_unavailable"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


#: driver messages of a database that is not there (yet), rather than one that refuses us
_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
    "server closed the connection",
    "timeout expired",
    "no route to host",
    "terminating connection",  # stopped (fast) while we opened it
    "consuming input failed",
)


def unavailable_message(url: str, exc: Exception) -> str:
    """The driver's first line, with the URL's password removed wherever it appears."""
    parsed = make_url(url)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if parsed.password:
        detail = detail.replace(str(parsed.password), "***")
    where = parsed.render_as_string(hide_password=True)
    return f"cannot open the catalog {where}: {detail}"


class Database:
    """An engine plus a session factory; ``with db.session() as s:`` commits or rolls back."""

    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        """Open the catalog; a new (empty) one is created at the current schema,
        one at another schema version is refused (``archive.schema``) unless
        ``check_schema`` is False (``catalog upgrade`` itself)."""
        from archive import schema  # it imports this module

        self.url = url
        self.engine = make_engine(url)
        import_models()
        if check_schema:
            try:
                schema.ensure_current(self.engine)
            except (OperationalError, InterfaceError) as exc:
                self.engine.dispose()
                message = unavailable_message(url, exc)
                retryable = any(m in message.lower() for m in _UNREACHABLE)
                raise CatalogUnavailable(message, retryable=retryable) from None
            except BaseException:
                self.engine.dispose()
                raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: for :meth:`read`: the same pool in autocommit (each statement its own transaction)
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def read(self, work: Callable[[Any], T]) -> T:
        """Run read-only ``work(connection)`` outside a transaction and return its result.

        For single-statement lookups on the hot path: the connection is in
        autocommit, so PostgreSQL gets the statement alone – one round trip,
        not BEGIN, statement and ROLLBACK. A read is always safe to repeat, so
        one that meets a connection the server dropped is run once more on a
        new one (the pool has let go of the dropped ones by then).
        """
        for attempt in (1, 2):
            try:
                with self._reads.connect() as connection:
                    return work(connection)
            except DBAPIError as exc:
                if attempt == 2 or not lost_connection(exc):
                    raise
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


# -- the catalog's self-check ---------------------------------------------------


@dataclass(frozen=True)
class CatalogCheck:
    """The result of :func:`check_catalog`: ``ok`` and what was found."""

    ok: bool
    detail: str
    kind: str
    checked_at: str
    seconds: float
    #: False: no connection at all (down, refused, wrong password) – that is for
    #: opening the catalog to report or wait out, not a sign of damage
    connected: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "kind": self.kind,
            "checked_at": self.checked_at,
            "seconds": self.seconds,
        }


#: extra checks per SQLAlchemy dialect name (e.g. PostgreSQL's schema version):
#: each gets a connection and returns None when all is well, else what is wrong
CATALOG_CHECKS: dict[str, list[Callable[[Any], str | None]]] = {}


def register_catalog_check(dialect: str, check: Callable[[Any], str | None]) -> None:
    """Add a start-up check of catalogs of one dialect (``"postgresql"``, ``"sqlite"``)."""
    CATALOG_CHECKS.setdefault(dialect, []).append(check)


def _sqlite_quick_check(connection: Any) -> str | None:
    """SQLite's ``PRAGMA quick_check``: page and index structure, in one read pass."""
    rows = [row[0] for row in connection.execute(text("PRAGMA quick_check")).fetchall()]
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows[:5])


register_catalog_check("sqlite", _sqlite_quick_check)


def check_catalog(engine: Engine) -> CatalogCheck:
    """Run the dialect's checks (SQLite: ``quick_check``; any: a connection).

    Never raises for a catalog fault: a damaged or unreachable catalog is a
    result (``ok=False``) the caller reports in one line.
    """
    started = time.monotonic()
    kind = engine.dialect.name
    connected = False
    try:
        with engine.connect() as connection:
            connected = True
            connection.execute(text("SELECT 1"))
            problems = [p for check in CATALOG_CHECKS.get(kind, []) if (p := check(connection))]
    except DBAPIError as exc:
        problems = [" ".join(str(exc.orig or exc).split())[:500]]
    return CatalogCheck(
        ok=not problems,
        detail="; ".join(problems) if problems else "ok",
        kind=f"{kind} quick_check" if kind == "sqlite" else f"{kind} connection",
        checked_at=utcnow().isoformat(),
        seconds=round(time.monotonic() - started, 3),
        connected=connected or kind == "sqlite",
    )
