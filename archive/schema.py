"""The catalog's schema version: create a new catalog, refuse an old one, upgrade.

Alembic keeps the revision in ``alembic_version``; the migration scripts are
in :mod:`archive.migrations`. Opening a catalog (:class:`archive.db.Database`)
only reads that one row and compares it with ``migrations.HEAD``:

* an empty database is created by running every migration (so the migrations
  are what tests and fresh stations actually use);
* a catalog at ``HEAD`` is used as it is;
* anything else – an older revision, or a catalog made before Alembic (our
  tables, no ``alembic_version``) – is refused with one line naming
  ``strongroom catalog upgrade``; a newer revision than this program knows
  is refused too (running old code on a new schema loses data silently).

Several processes may open a new catalog at once (the daemon and a
``status``): migrating takes PostgreSQL's advisory lock, or SQLite's write
lock (``BEGIN IMMEDIATE``, so the tables and the version row appear in one
commit), and whoever comes second finds the work done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from archive import migrations
from config.settings import ConfigError

if TYPE_CHECKING:  # alembic is imported where it runs (see _alembic_config)
    from alembic.script import ScriptDirectory

VERSION_TABLE = "alembic_version"
#: a table every Strongroom catalog has had since the first release
MARKER_TABLE = "evidence"
#: arbitrary constant naming the advisory lock taken while migrating on PostgreSQL
_PG_LOCK = 0x5354524F4E47  # "STRONG"
UPGRADE_HINT = "run `strongroom catalog upgrade`"


class CatalogOutOfDate(ConfigError):
    """The catalog's schema is not the one this program was built for."""

    code = "catalog_out_of_date"


@dataclass(frozen=True)
class SchemaState:
    """What a catalog holds: ``revision`` None and ``empty`` False = pre-Alembic."""

    empty: bool
    revision: str | None

    @property
    def current(self) -> bool:
        return self.revision == migrations.HEAD

    def describe(self) -> str:
        if self.empty:
            return "empty"
        return self.revision or "made before schema migrations"


def read_state(connection: Connection) -> SchemaState:
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE not in tables:
        return SchemaState(empty=MARKER_TABLE not in tables, revision=None)
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return SchemaState(empty=revision is None and MARKER_TABLE not in tables, revision=revision)


def _known_revisions() -> set[str]:
    return {script.revision for script in _script_directory().walk_revisions()}


def _script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None))


def _alembic_config(connection: Connection | None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["connection"] = connection
    return config


def refusal(state: SchemaState) -> CatalogOutOfDate:
    if state.revision is None:
        return CatalogOutOfDate(f"the catalog was made before schema migrations: {UPGRADE_HINT}")
    if state.revision not in _known_revisions():
        return CatalogOutOfDate(
            f"the catalog's schema revision {state.revision} is newer than this Strongroom "
            f"knows ({migrations.HEAD}): install the newer Strongroom"
        )
    return CatalogOutOfDate(
        f"the catalog's schema is out of date (revision {state.revision}, this Strongroom "
        f"needs {migrations.HEAD}): {UPGRADE_HINT}"
    )


def ensure_current(engine: Engine) -> None:
    """Create an empty catalog; accept a current one; refuse any other."""
    for _attempt in range(5):
        with engine.connect() as connection:
            state = read_state(connection)
        if state.current:
            return
        if not state.empty:
            raise refusal(state)
        try:
            _migrate(engine, create_only=True)
        except (OperationalError, ProgrammingError) as exc:
            if "already exists" not in str(exc):
                raise
            time.sleep(0.5)  # lost a race to create it: look again
    with engine.connect() as connection:
        state = read_state(connection)
    if not state.current:
        raise refusal(state)


def upgrade(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Bring any earlier catalog (including a pre-Alembic one) to ``HEAD``.

    The baseline revision creates only the tables that are missing, so a
    catalog made before Alembic is adopted as it is, its rows untouched.
    Returns the state before and after.
    """
    with engine.connect() as connection:
        before = read_state(connection)
    if before.revision is not None and before.revision not in _known_revisions():
        raise refusal(before)
    _migrate(engine, create_only=False)
    with engine.connect() as connection:
        after = read_state(connection)
    return before, after


def _migrate(engine: Engine, *, create_only: bool) -> None:
    from alembic import command

    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            connection.commit()
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            if create_only:  # someone may have created it while we waited for the lock
                state = read_state(connection)
                if not state.empty:
                    connection.rollback()
                    return
            command.upgrade(_alembic_config(connection), "head")
            connection.commit()
        finally:
            connection.rollback()
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                connection.commit()
