"""Running the station: init, run, ingest, local-store."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlparse

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from archive import localstore
from archive.bootstrap import initialize, station_ready
from archive.db import Database, display_path
from archive.health import Health, run_dir
from archive.models import Evidence, IngestJob, JobState
from archive.store import ObjectStore, StoreError
from config.settings import ConfigError, DockSettings
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    CredentialsOwnerOpt,
    JsonOpt,
    StoreUserOpt,
    config_error,
    console,
    emit_json,
    open_archive,
    settings_from,
)
from ingest.dockfs import identity

# The daemon, the pipeline and the services behind them (the playback worker,
# the scheduler, the HTTP server) are imported by the commands that run them,
# not here: `init` runs once per station and the tests make hundreds, and
# `local-store` and `local-cluster` need none of it (start-up time, not
# layering – these imports point downwards as the others do).
if TYPE_CHECKING:
    from ingest.pipeline import Outcome, Pipeline
    from ingest.scan import Candidate, Rejected

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
    # not at the top: FastAPI, uvicorn and Jinja would load for every command
    # (start-up time, not layering: the CLI may import the HTTP server)
    from frontdoors.api.server import ApiServer
    from ingest.daemon import Daemon
    from ingest.identity import StationIdentity
    from ingest.services import start_services
    from ingest.uploads import upload_area

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
                    api = ApiServer(archive, uploads=upload_area(archive))
                    services.stoppers.append(api.start().stop)
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
            work, rejected, skipped = _collect(archive.settings, paths)
            for item in rejected:
                console.print(
                    f"[yellow]not taken[/] {display_path(item.path)}: {item.reason}",
                    highlight=False,
                )
            if skipped and not as_json:
                console.print(
                    f"skipped {len(skipped)} file(s) the dock never takes as items "
                    "(recorder sidecars, partial or hidden files)",
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
                "skipped": [display_path(p) for p in skipped],
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
) -> tuple[list[tuple[DockSettings, Candidate, bool]], list[Rejected], list[str]]:
    """Expand folders (never following links) and match each file to its dock.

    A folder is read with its dock's rules (a default dock's outside the docks):
    the recorder's sidecars, partial and hidden files are never items; their
    paths are the third list. A file named on its own is taken as named."""
    from ingest.scan import Candidate, Rejected, scan_dock

    docks = [(settings.dock_path(d), d) for d in settings.docks]
    work: list[tuple[DockSettings, Candidate, bool]] = []
    rejected: list[Rejected] = []
    skipped: list[str] = []
    for given in paths:
        given = given.absolute()
        if given.is_symlink():
            rejected.append(Rejected(str(given), "symbolic link: never followed"))
            continue
        if not given.exists():
            rejected.append(Rejected(str(given), "does not exist"))
            continue
        if given.is_dir():
            home = next((d for root, d in docks if given.is_relative_to(root)), None)
            rules = home or DockSettings(path=given)
            found = list(scan_dock(given, rules.skip_patterns, skipped.append))
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
    return work, rejected, skipped


#: files ``ingest`` registers per catalog commit (the daemon too claims a tick's files at once)
REGISTER_BATCH = 64


def _ingest_all(pipeline: Pipeline, work, workers: int, show_progress: bool) -> list[Outcome]:
    """Archive every file; the outcomes come in the order of ``work``.

    Files are registered in batches (one commit each) and the registered jobs
    go straight to the workers, which take them without reading them back.
    """
    from ingest.pipeline import TERMINAL_STATES

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


def notify_ready() -> None:
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
    user: StoreUserOpt = None,
    credentials_owner: CredentialsOwnerOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run SeaweedFS (weed mini) for one machine, in the foreground, with S3 as its only door.

    weed runs in a network and mount namespace of its own; only its S3 port is
    forwarded to 127.0.0.1 on the host. Writes the daemon's credentials to
    <folder>/credentials.json (mode 0600); point store.credentials_file at it.
    """

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
    notify_ready()
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
