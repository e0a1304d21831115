"""Schema migrations: a new catalog is made by them, an old one is refused until
``strongroom catalog upgrade`` brings it up, losing nothing, on SQLite and
PostgreSQL.

``tests/fixtures/catalog-pre-alembic.db`` is a catalog made by Strongroom
before it had migrations, with rows in every table (items, a playback copy,
jobs, events, a checkpoint, fixity, a case link, a disposition plan and its
approval, a dock problem with a non-UTF-8 path).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, inspect, select, text

from archive import migrations, schema
from archive.db import Base, Database, import_models

FIXTURE = Path(__file__).parent / "fixtures" / "catalog-pre-alembic.db"
REFUSING = (["run"], ["serve"], ["ingest", "."])


def snapshot(url: str) -> dict[str, list]:
    """Every row of every table but Alembic's, in a stable order."""
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        out = {}
        with engine.connect() as connection:
            for name, table in meta.tables.items():
                if name == "alembic_version":
                    continue
                rows = connection.execute(select(table)).mappings().all()
                out[name] = sorted((dict(r) for r in rows), key=repr)
        return out
    finally:
        engine.dispose()


def copy_rows(source_url: str, target_url: str) -> None:
    """Copy every row of the fixture into a database of the same (baseline) schema."""
    source, target = create_engine(source_url), create_engine(target_url)
    try:
        meta = MetaData()
        meta.reflect(target)
        with source.connect() as src, target.begin() as dst:
            for table in meta.sorted_tables:
                if table.name == "alembic_version":
                    continue
                rows = [dict(r) for r in src.execute(select(table)).mappings()]
                if rows:  # (serial sequences are not advanced: nothing inserts later)
                    dst.execute(table.insert(), rows)
    finally:
        source.dispose()
        target.dispose()


def pre_alembic_catalog(station, tmp_path: Path) -> str:
    """The station's catalog replaced by the fixture (SQLite: the file itself;
    PostgreSQL: the baseline schema with the fixture's rows, no version row)."""
    fixture_url = f"sqlite:///{tmp_path / 'fixture.db'}"
    shutil.copy(FIXTURE, tmp_path / "fixture.db")
    if station.backend == "sqlite":
        live = station.root / "var" / "catalog.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        shutil.copy(FIXTURE, live)
        return fixture_url
    engine = create_engine(station.catalog_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    with engine.connect() as connection:
        from alembic import command

        command.upgrade(schema._alembic_config(connection), "0001")
        connection.execute(text("DROP TABLE alembic_version"))
        connection.commit()
    engine.dispose()
    copy_rows(fixture_url, station.catalog_url)
    # rows copied with their ids leave each serial's sequence at 1, which a live
    # PostgreSQL catalog never has: move every sequence past its table's ids
    engine = create_engine(station.catalog_url)
    with engine.begin() as connection:
        serials = connection.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_default LIKE 'nextval(%'"
            )
        ).all()
        for table, column in serials:
            connection.execute(
                text(
                    # names from the catalog's own information_schema, not from input
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "  # noqa: S608
                    f'COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, false)'
                )
            )
    engine.dispose()
    return fixture_url


pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def test_head_is_the_only_head_of_the_scripts():
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(schema._alembic_config(None))
    assert scripts.get_heads() == [migrations.HEAD]


def test_a_new_catalog_is_made_by_the_migrations_and_matches_the_models(station):
    """Fails when a model changes without a migration: every schema change ships one."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import_models()
    engine = create_engine(station.absolute_catalog_url)
    try:
        with engine.connect() as connection:
            assert schema.read_state(connection).revision == migrations.HEAD
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_pre_alembic_catalog_is_refused_then_upgraded_losing_nothing(station, tmp_path):
    fixture_url = pre_alembic_catalog(station, tmp_path)
    before = snapshot(station.absolute_catalog_url)
    assert before == snapshot(fixture_url)
    assert all(before.values()), {k for k, v in before.items() if not v}

    for command in REFUSING:
        result = station.cli(*command, check=False, timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "strongroom catalog upgrade" in lines[0], result.stderr

    out = station.cli("catalog", "upgrade").stderr
    assert f"made before schema migrations → {migrations.HEAD}" in out
    assert station.cli("catalog", "upgrade").stderr.strip().endswith(f"({migrations.HEAD})")

    after = snapshot(station.absolute_catalog_url)
    # every row, every value; columns added by later revisions are new and empty
    for name, rows in before.items():
        kept = [
            {column: row[column] for column in old}
            for row, old in zip(after[name], rows, strict=True)
        ]
        assert kept == rows, name
        added = {column for row in after[name] for column in row} - {c for r in rows for c in r}
        assert all(row[column] is None for row in after[name] for column in added), name
    later_revisions = {
        "job_leases",
        "shares",
        "incidents",
        "incident_officers",
        "incident_matches",
        "incident_checks",
        "station_heartbeats",
        "uploads",
    }
    assert set(after) - set(before) == later_revisions
    engine = create_engine(station.absolute_catalog_url)
    with engine.connect() as connection:
        assert schema.read_state(connection).revision == migrations.HEAD
        if station.backend == "postgresql":
            kinds = {c["name"]: str(c["type"]) for c in inspect(connection).get_columns("evidence")}
            assert kinds["flags"] == "JSONB"
    engine.dispose()
    found = station.cli("find", "--json").stdout
    assert found.count('"evidence_id"') == len(before["evidence"])
    problems = station.cli("status", "--json").stdout
    assert '"station"' in problems


def test_an_older_or_unknown_revision_is_refused(station):
    from alembic import command

    engine = create_engine(station.absolute_catalog_url)
    with engine.connect() as connection:
        command.downgrade(schema._alembic_config(connection), "0001")
        connection.commit()
    with pytest.raises(schema.CatalogOutOfDate, match=r"revision 0001.*catalog upgrade"):
        Database(station.absolute_catalog_url)
    with engine.connect() as connection:
        command.upgrade(schema._alembic_config(connection), "head")
        connection.commit()
    Database(station.absolute_catalog_url).dispose()
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(schema.CatalogOutOfDate, match="newer than this Strongroom"):
        Database(station.absolute_catalog_url)
    result = station.cli("catalog", "upgrade", check=False)
    assert result.returncode == 2 and "newer" in result.stderr
    engine.dispose()


def test_fixture_is_a_pre_alembic_catalog():
    connection = sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True)
    try:
        names = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    finally:
        connection.close()
    assert "alembic_version" not in names and "evidence" in names
