"""Daemon wiring: the one place that assembles the pipeline, the background
workers and the scheduler around an opened :class:`Archive` (the HTTP server is
a front door: ``strongroom run`` starts it beside these).

Feature modules stay independent of each other; this module knows them all,
which is why nothing but the CLI imports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from archive.catalog_backup import (
    START_DELAY,
    backup_check_minutes,
    backup_interval_hours,
    scheduled_backup,
)
from archive.context import Archive
from archive.db import utcnow
from archive.health import UNEXPECTED, Health, classify
from archive.ledger import scheduled_checkpoint
from ingest.heartbeat import heartbeat
from ingest.housekeeping import sweep_kept
from ingest.incident_matcher import IncidentMatcher
from ingest.pipeline import Pipeline
from ingest.playback import PlaybackWorker
from ingest.uploads import expire_uploads
from verify.fixity import scheduled_sweep
from verify.retention_sweep import scheduled_plan

log = logging.getLogger("strongroom.services")


@dataclass
class Services:
    pipeline: Pipeline
    scheduler: BackgroundScheduler | None = None
    stoppers: list = field(default_factory=list)
    #: playback-copy workers (None when transcode.enabled is false)
    playback: PlaybackWorker | None = None
    #: evidence ids sealed by this process (what a one-shot command's drain waits for)
    sealed: list[str] = field(default_factory=list)
    #: links sealed items to dispatch incidents, off the pipeline's path
    incidents: IncidentMatcher | None = None

    def drain(self, timeout: float | None = None, *, playback: bool = False) -> None:
        """Wait for queued background work that a one-shot command started.

        ``playback=True``: make the playback copies of the items sealed by this
        process before returning (or until ``timeout``): with the background
        workers if they run, else with the pool in the foreground.
        A one-shot command matches its sealed items with incidents here too
        (a failure is only reported: the daemon's matcher catches up later).
        """
        if self.incidents is not None and self.sealed:
            self.incidents.run_once()
        if not playback or self.playback is None or not self.sealed:
            return
        if self.playback.running:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.playback.pending(self.sealed) and (
                deadline is None or time.monotonic() < deadline
            ):
                time.sleep(0.2)
            return
        self.playback.run_until_idle(self.sealed, timeout=timeout)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception:
                log.exception("error while stopping a service")
        self.pipeline.close()  # last: the workers above may still commit


def start_services(
    archive: Archive,
    *,
    scheduler: bool = True,
    playback: bool | None = None,
    health: Health | None = None,
) -> Services:
    """``playback``: run the playback-copy workers in the background (default: with the
    scheduler, i.e. in the daemon; one-shot commands make copies in ``drain``).
    ``health``: where the scheduled jobs report faults (the daemon's board)."""
    sealed: list[str] = []
    worker = PlaybackWorker(archive) if archive.settings.transcode.enabled else None
    if worker is not None:
        worker.health = health

    matcher = IncidentMatcher(archive, health)

    def on_sealed(evidence_id: str) -> None:
        sealed.append(evidence_id)
        if worker is not None:
            worker.wake()
        matcher.wake()

    pipeline = Pipeline(archive, on_sealed=on_sealed)
    services = Services(pipeline, playback=worker, sealed=sealed, incidents=matcher)
    if scheduler:  # the daemon: match in the background (one-shot commands do it in drain)
        matcher.start()
        services.stoppers.append(matcher.stop)
    if worker is not None and (scheduler if playback is None else playback):
        worker.start()
        services.stoppers.append(worker.stop)
    if scheduler:
        services.scheduler = build_scheduler(archive, health or Health())
        services.scheduler.start()
    return services


def guarded(health: Health, name: str, work: Callable[..., Any]) -> Callable[..., Any]:
    """A scheduled job that reports a fault (one line, status, metrics) instead of
    raising, and clears it when a later run succeeds; the next run is the retry.
    A run that succeeds returns what the job returned (e.g. the plan id)."""
    where = f"schedule {name}"

    def run(*args: Any) -> Any:
        try:
            result = work(*args)
        except Exception as exc:
            kind, message = classify(exc)
            if kind == UNEXPECTED:
                log.exception("unexpected error in %s", where)
            health.fault(kind, where, message)
            return None
        if health.active(where=where):
            health.clear(where)
        return result

    run.__name__ = getattr(work, "__name__", name)
    return run


def build_scheduler(archive: Archive, health: Health | None = None) -> BackgroundScheduler:
    """Every periodic job of the station. One instance of each runs at a time; a
    job that fails for a fault outside the code reports it to ``health``."""
    health = health or Health()
    scheduler = _GuardedScheduler(
        health,
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    scheduler.add_job(sweep_kept, "interval", hours=1, args=[archive], id="sweep-kept")
    scheduler.add_job(  # this station's vital signs, for status --stations and /metrics
        heartbeat,
        "interval",
        seconds=archive.settings.heartbeat.seconds,
        next_run_time=utcnow(),
        args=[archive],
        id="heartbeat",
    )
    scheduler.add_job(
        scheduled_checkpoint,
        "interval",
        minutes=archive.settings.ledger.checkpoint_minutes,
        args=[archive],
        id="ledger-checkpoint",
    )
    scheduler.add_job(
        scheduled_sweep,
        "interval",
        minutes=archive.settings.fixity.interval_minutes,
        args=[archive],
        id="fixity-sweep",
    )
    scheduler.add_job(  # plans only; deleting needs two approvers and `retention apply`
        scheduled_plan,
        "cron",
        hour=archive.settings.retention.sweep_hour,
        timezone=archive.settings.station.tzinfo,
        args=[archive],
        id="retention-sweep",
    )
    if archive.settings.uploads.enabled:  # stale partial uploads: discarded after expire_hours
        scheduler.add_job(
            expire_uploads, "interval", minutes=15, args=[archive], id="upload-expiry"
        )
    backup_hours = backup_interval_hours(archive.settings)  # None: off, or not SQLite
    if backup_hours:
        scheduler.add_job(  # looks hourly; backs up when the newest backup is backup_hours old
            scheduled_backup,
            "interval",
            minutes=backup_check_minutes(backup_hours),
            next_run_time=utcnow() + START_DELAY,
            args=[archive, backup_hours],
            id="catalog-backup",
        )
    return scheduler


class _GuardedScheduler(BackgroundScheduler):
    """Every job added is wrapped by :func:`guarded` under its id."""

    def __init__(self, health: Health, **options: Any) -> None:
        super().__init__(**options)
        self._health = health

    def add_job(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(kwargs.get("id") or getattr(func, "__name__", "job"))
        return super().add_job(guarded(self._health, name, func), *args, **kwargs)
