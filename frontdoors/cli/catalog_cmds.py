"""Catalog commands: ``catalog upgrade`` (migrate the schema to this version),
``catalog rebuild`` (a new catalog from the bucket alone),
``catalog backup`` / ``backups`` / ``restore-backup`` (the SQLite catalog's
locked copies in the bucket).

Rebuild and restore never touch the live catalog and do not even open it (it
may be the thing that was lost): they write a new file that must not exist,
and the operator swaps it in with the daemon stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from archive import schema
from archive.catalog_backup import (
    BackupError,
    NotSqlite,
    backup_catalog,
    list_backups,
    restore_backup,
)
from archive.context import Archive
from archive.db import Database
from archive.keys import load_station_key
from archive.layout import backup_prefix
from archive.rebuild import LedgerRead, Problem, TargetExists, new_sqlite_catalog, rebuild_catalog
from archive.store import ObjectStore, StoreError
from config.settings import ConfigError
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    config_error,
    console,
    emit_json,
    open_archive,
    print_problems,
    settings_from,
)
from verify import audit

catalog_app = typer.Typer(
    help="The catalog: upgrade its schema, rebuild it from the bucket, back it up, restore.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")

IntoOpt = Annotated[
    Path, typer.Option("--into", help="the new catalog file to write (must not exist)")
]
StationOpt = Annotated[
    str | None,
    typer.Option("--station", help="whose backups (default: this station's name)"),
]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/]", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_FAILED)


def read_ledger(archive: Archive) -> LedgerRead:
    """The bucket's ledger, read and judged by ``ledger audit``'s own code."""
    report = audit.AuditReport()
    leaves, signed = audit.read_bucket_ledger(archive, report)
    problems = [Problem(f"ledger.{p.check}", p.subject, p.message) for p in report.problems]
    return LedgerRead(leaves, signed, problems)


def _self_check(archive: Archive, ledger: LedgerRead) -> list[Problem]:
    """Hold the rebuilt catalog's ledger rows up against the bucket, as ``ledger
    audit`` does for a live catalog (leaves, sequencer state, checkpoint rows)."""
    report = audit.AuditReport()
    audit.check_catalog(archive, report, ledger.leaves, ledger.signed)
    return [Problem(f"rebuilt.{p.check}", p.subject, p.message) for p in report.problems]


@catalog_app.command("upgrade")
def catalog_upgrade(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Bring the catalog's schema to this Strongroom's version (Alembic
    migrations); adopts a catalog made before migrations without touching its
    rows. Stop the daemons and API servers of every station first."""
    settings = settings_from(config)
    try:
        db = Database(settings.catalog_url, check_schema=False)
    except ConfigError as exc:
        raise config_error(exc) from None
    try:
        before, after = schema.upgrade(db.engine)
    except schema.CatalogOutOfDate as exc:
        raise config_error(exc) from None
    finally:
        db.dispose()
    if as_json:
        emit_json({"from": before.describe(), "to": after.revision, "changed": before != after})
        return
    if before == after:
        console.print(f"catalog schema is current ({after.revision})", highlight=False)
    else:
        console.print(
            f"catalog schema upgraded: {before.describe()} → {after.revision}", highlight=False
        )


@catalog_app.command("rebuild")
def catalog_rebuild(into: IntoOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Build a NEW SQLite catalog from the bucket alone: verified manifests,
    playback copies, ledger leaves (checked against the signed checkpoints),
    case links, dispositions, dispatch incidents and their matches. Lists every
    problem; exits 1 if there is any
    (the catalog is still written, without what did not verify)."""
    settings = settings_from(config)
    try:
        key = load_station_key(settings)
        store = ObjectStore(settings.store)
    except ConfigError as exc:
        raise config_error(exc) from None
    try:
        with new_sqlite_catalog(into) as db:
            archive = Archive(settings, db, store, key)
            ledger = read_ledger(archive)
            report = rebuild_catalog(archive, ledger)
            report.problems.extend(_self_check(archive, ledger))
    except TargetExists as exc:
        raise _fail(str(exc)) from None
    except StoreError as exc:
        raise _fail(f"rebuild failed, nothing written: {exc}") from None
    finally:
        store.close()
    target = Path(into).absolute()
    if as_json:
        emit_json({"into": str(target), "bucket": settings.store.bucket, **report.to_dict()})
    else:
        console.print(
            f"rebuilt {target} from bucket {settings.store.bucket}: {report.items} items "
            f"({report.disposed} disposed), {report.derivatives} playback copies, "
            f"{report.events} custody events (latest checkpoint {report.latest_checkpoint}), "
            f"{report.links} case links, {report.incidents} incidents; "
            f"keys {', '.join(report.keys)}",
            highlight=False,
            soft_wrap=True,
        )
        print_problems(report.problems)
        console.print("catalog rebuild: " + ("[green]OK[/]" if report.ok else "[red]PROBLEMS[/]"))
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@catalog_app.command("backup")
def catalog_backup(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Back up the SQLite catalog to the bucket now (consistent while the daemon runs)."""
    with open_archive(config) as archive:
        try:
            result = backup_catalog(archive)
        except NotSqlite as exc:
            raise _fail(str(exc)) from None
        except (BackupError, StoreError, OSError) as exc:
            raise _fail(f"catalog backup failed: {exc}") from None
    if as_json:
        emit_json(result.to_dict())
    else:
        console.print(
            f"catalog backed up: {result.key} ({result.catalog_bytes} bytes, "
            f"{result.size} compressed), locked {result.lock_mode} until "
            f"{result.retain_until.isoformat()}",
            highlight=False,
            soft_wrap=True,
        )


@catalog_app.command("backups")
def catalog_backups(
    station: StationOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """List the catalog backups in the bucket, oldest first."""
    settings = settings_from(config)
    name = station or settings.station.name
    try:
        store = ObjectStore(settings.store)
    except ConfigError as exc:
        raise config_error(exc) from None
    try:
        keys = list_backups(store, name)
    except (StoreError, BackupError) as exc:
        raise _fail(f"cannot list backups: {exc}") from None
    finally:
        store.close()
    if as_json:
        emit_json({"station": name, "prefix": backup_prefix(name), "backups": keys})
    else:
        for key in keys:
            console.print(key, highlight=False)
        if not keys:
            console.print(f"no catalog backups of station {name}")


@catalog_app.command("restore-backup")
def catalog_restore_backup(
    into: IntoOpt,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="the backup's UTC timestamp, e.g. 20260301T083015Z (default: the latest)"
        ),
    ] = None,
    station: StationOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download the latest (or the named) catalog backup, verify its checksums
    and integrity, and write it as a new file (the live catalog is not touched)."""
    settings = settings_from(config)
    try:
        store = ObjectStore(settings.store)
    except ConfigError as exc:
        raise config_error(exc) from None
    try:
        result = restore_backup(store, station or settings.station.name, into, at)
    except (BackupError, StoreError, OSError) as exc:
        raise _fail(f"restore failed: {exc}") from None
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
    else:
        console.print(
            f"restored {result.key} to {result.into} ({result.catalog_bytes} bytes, "
            "checksums verified)",
            highlight=False,
            soft_wrap=True,
        )
