"""Station commands: init, run, ingest, status, find, show, local-store."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, DBAPIError, InterfaceError, OperationalError

from archive.bootstrap import initialize, station_ready
from archive.custody import cli_actor, record_event
from archive.db import Database, display_path
from archive.health import classify, daemon_section, queue_entry
from archive.instants import parse_instant
from archive.models import Evidence, IngestJob, JobState
from archive.queries import (
    EvidenceFilter,
    active_jobs,
    events_for,
    evidence_counts,
    find_evidence,
    job_counts,
    recent_problems,
)
from archive.recorded_time import item_time, item_time_columns
from archive.store import ObjectStore, StoreError
from config.settings import ConfigError, DockSettings
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    config_error,
    console,
    emit_json,
    open_archive,
    settings_from,
)
from ingest.dockfs import identity
from ingest.pipeline import TERMINAL_STATES, Outcome, Pipeline
from ingest.scan import Candidate, Rejected, scan_dock

log = logging.getLogger("strongroom.cli")


@app.command()
def init(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Create data folders, signing key (0600), bucket with Object Lock; run the lock self-test."""
    settings = settings_from(config)
    try:
        store = ObjectStore(settings.store)
        report = initialize(settings, store)
    except (ConfigError, StoreError) as exc:
        raise config_error(exc) from None
    if as_json:
        emit_json(report.to_dict())
        return
    for item in report.created:
        console.print(f"[green]created[/]  {item}", highlight=False)
    for item in report.existing:
        console.print(f"[dim]exists[/]   {item}", highlight=False)
    console.print(f"signing key id {report.keyid}")
    console.print(report.lock.describe() if report.lock else "")


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the daemon in the foreground: watch docks, archive, run schedules. SIGTERM stops it."""
    from archive.health import Health, run_dir
    from frontdoors.api.server import ApiServer
    from ingest.daemon import Daemon
    from ingest.identity import StationIdentity
    from ingest.services import start_services

    stopping = threading.Event()
    daemon = None

    def _stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()
        if daemon is not None:
            daemon.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # a catalog that is down (not one that refuses us) is waited for, like the store
    with open_archive(config, self_check=True, wait_for_catalog=stopping) as archive:
        if not archive.settings.docks:
            raise config_error(ConfigError("no [[docks]] configured: nothing to watch"))
        identity = StationIdentity(archive)
        try:
            # a second daemon with this station name is refused
            if not _until_catalog_answers(stopping, "claiming the station name", identity.claim):
                return
        except ConfigError as exc:
            raise config_error(exc) from None
        health = Health(run_dir(archive.settings.data_dir))
        try:
            try:
                if not _wait_for_store(archive, stopping):
                    return
            except ConfigError as exc:
                raise config_error(exc) from None
            try:
                services = start_services(archive, health=health)
            except (ConfigError, OSError) as exc:
                raise config_error(exc) from None
            try:
                if archive.settings.api.listen:
                    services.stoppers.append(ApiServer(archive).start().stop)
            except (ConfigError, OSError) as exc:  # e.g. the API port is taken
                services.stop()
                raise config_error(exc) from None
            daemon = Daemon(archive, services.pipeline, health)
            if services.playback is not None:
                daemon.on_store_back.append(services.playback.wake)
            if stopping.is_set():  # SIGTERM came during start-up, before `daemon` existed
                daemon.stop()
            try:
                daemon.run()
            finally:
                services.stop()
        finally:
            try:
                identity.release()
            except DBAPIError as exc:  # the catalog is down: the lease simply expires
                log.warning("could not release the station lease (%s); it expires by itself", exc)


def _until_catalog_answers(
    stopping: threading.Event, what: str, work: Callable[[], object]
) -> bool:
    """Run one catalog step of the daemon's start-up, waiting out an outage.

    A catalog that went down after it opened (PostgreSQL restarting, a
    fail-over) must only delay the start like a store that does not answer
    yet, never end the daemon. Errors that are not the catalog being
    unreachable are raised. False: SIGTERM came while waiting."""
    delay = 1.0
    while not stopping.is_set():
        try:
            work()
            return True
        except (OperationalError, InterfaceError) as exc:
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            log.warning("catalog unreachable while %s (%s); retrying in %.0fs", what, detail, delay)
            stopping.wait(delay)
            delay = min(delay * 2, 30.0)
    return False


def _wait_for_store(archive, stopping: threading.Event) -> bool:
    """The store being down only delays: files wait in the docks until it answers.

    A store that answers but does not enforce Object Lock is a configuration
    error (exit 2), not something to wait out.
    """
    delay = 1.0
    while not stopping.is_set():
        try:
            station_ready(archive.settings, archive.store, archive.key)
            return True
        except StoreError as exc:
            if not exc.retryable:
                raise ConfigError(str(exc)) from exc
            log.warning(
                "object store unreachable (%s); retrying in %.0fs. Files wait in the docks.",
                exc,
                delay,
            )
            stopping.wait(delay)
            delay = min(delay * 2, 30.0)
    return False


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to archive")],
    playback: Annotated[
        bool,
        typer.Option(
            "--playback/--no-playback",
            help="also make the playback copies before exiting (else the daemon makes them)",
        ),
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive these files or folders once, then exit (same pipeline, same guarantees).

    Files inside a configured dock are claimed like the daemon does (and
    released per the dock's after_archive); files elsewhere are archived in
    place and left untouched.
    """
    from ingest.services import start_services

    with open_archive(config, self_check=True) as archive:
        try:
            station_ready(archive.settings, archive.store, archive.key)
        except (ConfigError, StoreError) as exc:
            raise config_error(exc) from None
        services = start_services(archive, scheduler=False)
        try:
            work, rejected = _collect(archive.settings, paths)
            for item in rejected:
                console.print(
                    f"[yellow]not taken[/] {display_path(item.path)}: {item.reason}",
                    highlight=False,
                )
            outcomes = _ingest_all(
                services.pipeline, work, archive.settings.pipeline.workers, not as_json
            )
            services.drain(playback=playback)
        finally:
            services.stop()
        results = _describe_outcomes(archive.db, outcomes)
    failed = [r for r in results if r["state"] not in (JobState.RELEASED, JobState.DUPLICATE)]
    if as_json:
        emit_json(
            {
                "items": results,
                "rejected": [{"path": display_path(r.path), "reason": r.reason} for r in rejected],
            }
        )
    else:
        for result in results:
            mark = "[green]ok[/]" if result not in failed else "[red]!![/]"
            console.print(
                f"{mark} {result['file']} → {result['state']} {result.get('evidence_id') or ''} "
                f"{result.get('error') or ''}",
                highlight=False,
            )
    if failed or rejected:
        raise typer.Exit(EXIT_FAILED)


def _collect(
    settings, paths: list[Path]
) -> tuple[list[tuple[DockSettings, Candidate, bool]], list[Rejected]]:
    """Expand folders (never following links) and match each file to its dock."""
    docks = [(settings.dock_path(d), d) for d in settings.docks]
    work: list[tuple[DockSettings, Candidate, bool]] = []
    rejected: list[Rejected] = []
    for given in paths:
        given = given.absolute()
        if given.is_symlink():
            rejected.append(Rejected(str(given), "symbolic link: never followed"))
            continue
        if not given.exists():
            rejected.append(Rejected(str(given), "does not exist"))
            continue
        if given.is_dir():
            found = list(scan_dock(given, [".*"]))
        else:
            st = given.stat()
            found = [Candidate(str(given), st.st_size, st.st_mtime_ns, identity(st))]
            if not given.is_file():
                found = [Rejected(str(given), "not a regular file")]
        for item in found:
            if isinstance(item, Rejected):
                rejected.append(item)
                continue
            dock = next((d for root, d in docks if Path(item.path).is_relative_to(root)), None)
            if dock is not None:
                work.append((dock, item, False))
            else:
                adhoc = DockSettings(path=Path(item.path).parent, name="cli", settle_seconds=0)
                work.append((adhoc, item, True))
    return work, rejected


#: files ``ingest`` registers per catalog commit (the daemon too claims a tick's files at once)
REGISTER_BATCH = 64


def _ingest_all(pipeline: Pipeline, work, workers: int, show_progress: bool) -> list[Outcome]:
    """Archive every file; the outcomes come in the order of ``work``.

    Files are registered in batches (one commit each) and the registered jobs
    go straight to the workers, which take them without reading them back.
    """
    progress = Progress(
        TextColumn("archiving"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress or not work,
    )

    def one(job: IngestJob) -> Outcome:
        outcome = pipeline.advance(job)
        # a step that must wait (store down) is retried here, so `ingest` exits done
        while (
            outcome.state not in TERMINAL_STATES
            and outcome.error
            and pipeline.wait_for_retry(job.id)
        ):
            outcome = pipeline.advance(job.id)
        return outcome

    # what start-up built lives until exit: keep it out of the collector's full
    # passes, which the per-file garbage of many small files triggers often
    gc.collect()
    gc.freeze()
    outcomes: list[Outcome] = []
    with progress, ThreadPoolExecutor(workers) as pool:
        task = progress.add_task("files", total=len(work))
        futures: list[Future[Outcome]] = []
        for dock, candidates, in_place in _batches(work, REGISTER_BATCH):
            for job in pipeline.register_jobs(dock, candidates, in_place=in_place):
                futures.append(pool.submit(one, job))
        for future in futures:
            outcomes.append(future.result())
            progress.advance(task)
    return outcomes


def _batches(
    work: list[tuple[DockSettings, Candidate, bool]], size: int
) -> Iterator[tuple[DockSettings, list[Candidate], bool]]:
    """Runs of up to ``size`` consecutive files of one dock (and placement), in order."""
    batch: list[Candidate] = []
    key: tuple[DockSettings, bool] | None = None
    for dock, candidate, in_place in work:
        if key is not None and batch and (key != (dock, in_place) or len(batch) == size):
            yield key[0], batch, key[1]
            batch = []
        key = (dock, in_place)
        batch.append(candidate)
    if key is not None and batch:
        yield key[0], batch, key[1]


def _describe_outcomes(db: Database, outcomes: list[Outcome]) -> list[dict]:
    results = []
    with db.session() as session:
        wanted = list({o.evidence_id for o in outcomes if o.evidence_id})
        items: dict[str, Evidence] = {}
        for start in range(0, len(wanted), 500):  # one query per 500, not one per file
            chunk = wanted[start : start + 500]
            for item in session.scalars(select(Evidence).where(Evidence.evidence_id.in_(chunk))):
                items[item.evidence_id] = item
        for outcome in outcomes:
            entry: dict = {"file": outcome.name, "state": outcome.state, "job": outcome.job_id}
            if outcome.evidence_id:
                evidence = items.get(outcome.evidence_id)
                if evidence is not None:
                    entry.update(evidence.summary())
                    entry["state"] = outcome.state
                    entry["evidence_state"] = evidence.state
            if outcome.error and outcome.state not in (JobState.RELEASED, JobState.DUPLICATE):
                entry["error"] = outcome.error
            results.append(entry)
    return results


@app.command()
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Items by state, the queue, last errors, last fixity and checkpoint."""
    from ingest.services import status_sections

    settings = settings_from(config)
    document: dict = {"station": settings.station.name}
    daemon = daemon_section(settings.data_dir)
    catalog_failed = False
    try:
        db = Database(settings.catalog_url)
        try:
            with db.session() as session:
                document.update(
                    {
                        "jobs": job_counts(session),
                        "evidence": evidence_counts(session),
                        "queue": [queue_entry(job, daemon) for job in active_jobs(session)],
                        "problems": recent_problems(session),
                    }
                )
                for name, section in status_sections(settings, session).items():
                    document[name] = section
        finally:
            db.dispose()
    except DatabaseError as exc:  # a damaged or unreachable catalog: say so, show the rest
        catalog_failed = True
        document["catalog_error"] = classify(exc)[1]
    document.update(daemon)
    if as_json:
        emit_json(document)
        if catalog_failed:
            raise typer.Exit(EXIT_FAILED)
        return
    console.print(f"[bold]station {document['station']}[/]")
    if catalog_failed:
        console.print(f"[red]{escape(document['catalog_error'])}[/]", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    for fault in document["faults"]:
        console.print(
            f"[red]fault[/] {fault['where']}: {escape(fault['message'])}", highlight=False
        )
    console.print("jobs:     " + _pairs(document["jobs"]))
    console.print("evidence: " + _pairs(document["evidence"]))
    if document["queue"]:
        console.print(f"queue ({len(document['queue'])}):")
        for job in document["queue"][:20]:
            console.print(
                f"  {job['state']:<9} {job['file']}  {job['error'] or ''}", highlight=False
            )
    if document["problems"]:
        console.print("[red]problems:[/]")
        for problem in document["problems"]:
            console.print(
                f"  {problem['state']:<11} {problem['file']}: {problem['error']}", highlight=False
            )
    bad = document.get("bad_timestamps") or {}
    if bad.get("items") or bad.get("in_pipeline"):
        console.print(
            f"[red]bad_timestamp[/] (file-name time refused): {bad['items']} archived, "
            f"{len(bad['in_pipeline'])} in the pipeline"
        )
        for item in bad["recent"]:
            console.print(
                f"  {item['evidence_id']} {item['file']}: {item['reason']} "
                f"(counted by {item['time_source']} time)",
                highlight=False,
                markup=False,
            )
        for job in bad["in_pipeline"]:
            console.print(f"  {job['state']:<9} {job['file']}", highlight=False, markup=False)
    for name, section in document.items():
        if name not in (
            "station",
            "jobs",
            "evidence",
            "queue",
            "problems",
            "bad_timestamps",
            "faults",
        ):
            console.print(
                f"{name}: {json.dumps(section, ensure_ascii=False, default=str)}", highlight=False
            )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _when(text: str | None) -> datetime | None:
    try:
        return None if text is None else parse_instant(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def find(
    case: Annotated[str | None, typer.Option(help="case id")] = None,
    officer: Annotated[str | None, typer.Option(help="police number (警号)")] = None,
    device: Annotated[str | None, typer.Option(help="recorder serial")] = None,
    unit: Annotated[str | None, typer.Option(help="unit code")] = None,
    sha256: Annotated[str | None, typer.Option(help="SHA-256 of the original")] = None,
    since: Annotated[str | None, typer.Option(help="recorded at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="recorded before (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 1000,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Query the catalog."""
    from ingest.services import find_with_case

    settings = settings_from(config)
    db = Database(settings.catalog_url)
    filters = EvidenceFilter(
        officer=officer,
        device=device,
        unit=unit,
        sha256=sha256,
        since=_when(since),
        until=_when(until),
    )
    with db.session() as session:
        rows = (
            find_with_case(session, filters, case, limit)
            if case
            else find_evidence(session, filters, limit)
        )
        items = [row.summary() for row in rows]
        asked = {"case": case, **filters.to_dict(), "limit": limit}
        # a search is a custody event: who asked for what (not what was found)
        record_event(
            session,
            "searched",
            actor=cli_actor(),
            evidence_id=None,
            details={
                "via": "cli",
                "scope": {"all_units": True},
                "filters": {k: v for k, v in asked.items() if v is not None},
            },
        )
    db.dispose()
    if as_json:
        emit_json({"items": items, "count": len(items)})
        return
    table = Table("evidence id", "recorded", "officer", "device", "size", "file")
    for item in items:
        table.add_row(
            item["evidence_id"],
            item["recorded_start"] or "",
            item["officer"] or "",
            item["device"] or "",
            str(item["size"]),
            item["file_name"],
        )
    Console().print(table)


@app.command()
def show(
    evidence_id: Annotated[str, typer.Argument(help="evidence id (ev-…) or a SHA-256")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One item: hashes, source, manifests, derivatives, links, retention, fixity, events."""
    from ingest.services import item_sections

    settings = settings_from(config)
    db = Database(settings.catalog_url)
    with db.session() as session:
        evidence = (
            session.get(Evidence, evidence_id)
            or session.scalars(
                select(Evidence).where(Evidence.sha256 == evidence_id.lower())
            ).first()
        )
        if evidence is None:
            console.print(f"[red]no evidence {evidence_id}[/]")
            raise typer.Exit(EXIT_FAILED)
        document = evidence.summary()
        document.update(
            {
                "media_type": evidence.media_type,
                "original_version_id": evidence.original_version_id,
                "original_checksum": evidence.original_checksum,
                "manifest_version_id": evidence.manifest_version_id,
                "keyid": evidence.keyid,
                "dock": evidence.dock,
                "source_path": evidence.source_path,
                "recorded_end": evidence.recorded_end.isoformat()
                if evidence.recorded_end
                else None,
                # the witnesses of the recording time, and the one the item counts by
                "file_mtime": _iso(evidence.file_mtime),
                "media_created": _iso(evidence.media_created),
                "time_source": item_time(*item_time_columns(evidence))[1],
                "time_problem": evidence.time_problem,
                "lock_mode": evidence.lock_mode,
                "ingested_at": evidence.ingested_at.isoformat(),
                "probe": evidence.probe,
                "sightings": [],
                "events": [],
            }
        )
        for event in events_for(session, evidence.evidence_id):
            entry = {
                "seq": event.seq,
                "kind": event.kind,
                "actor": event.actor,
                "at": event.at.isoformat(),
                "details": event.details,
            }
            document["events"].append(entry)
            if event.kind == "sighted":
                document["sightings"].append(entry)
        document.update(item_sections(settings, session, evidence))
    db.dispose()
    if as_json:
        emit_json(document)
        return
    for key, value in document.items():
        if key in ("events", "probe"):
            continue
        console.print(f"[bold]{key:>20}[/] {value}", highlight=False)
    console.print("[bold]events:[/]")
    for event in document["events"]:
        console.print(f"  {event['at']} {event['kind']:<18} {event['actor']}", highlight=False)


def _notify_ready() -> None:
    """Tell systemd (``Type=notify``) that S3 answers, so units ordered after
    the store start only then; does nothing outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")


@app.command("local-store")
def local_store(
    folder: Annotated[
        Path | None, typer.Option(help="SeaweedFS folder (default <data_dir>/seaweedfs)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="S3 port (default: from store.endpoint_url)")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(help="as root: the OS user weed runs as (default strongroom-store)"),
    ] = None,
    credentials_owner: Annotated[
        str | None,
        typer.Option(help="as root: the daemon's OS user, owner of credentials.json"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run SeaweedFS (weed mini) for one machine, in the foreground, with S3 as its only door.

    weed runs in a network and mount namespace of its own; only its S3 port is
    forwarded to 127.0.0.1 on the host. Writes the daemon's credentials to
    <folder>/credentials.json (mode 0600); point store.credentials_file at it.
    """
    from urllib.parse import urlparse

    from archive import localstore

    settings = settings_from(config)
    folder = folder or settings.data_dir / "seaweedfs"
    if port is None:
        parsed = urlparse(settings.store.endpoint_url or "http://127.0.0.1:8333")
        port = parsed.port or 8333
    try:
        store = localstore.start(folder, port, user=user, credentials_owner=credentials_owner)
    except (localstore.LocalStoreError, KeyError) as exc:
        console.print(f"[red]local store not started: {exc}[/]")
        raise typer.Exit(EXIT_FAILED) from exc
    console.print(
        f"SeaweedFS S3 at {store.endpoint_url}, "
        f"credentials in {folder / localstore.CREDENTIALS_JSON}"
    )
    _notify_ready()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            if store.process.poll() is not None:
                console.print(
                    f"[red]weed exited with {store.process.returncode}; see {folder}/weed.log[/]"
                )
                raise typer.Exit(EXIT_FAILED)
    finally:
        store.stop()
