"""Daemon wiring: the one place that assembles the pipeline, the background
workers, the scheduler and the API around an opened :class:`Archive`.

Feature modules stay independent of each other; this module knows them all,
which is why nothing but the CLI imports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.models import Evidence
from archive.queries import EvidenceFilter
from config.settings import Settings
from ingest.housekeeping import sweep_kept
from ingest.pipeline import Pipeline

log = logging.getLogger("strongroom.services")


@dataclass
class Services:
    pipeline: Pipeline
    scheduler: BackgroundScheduler | None = None
    stoppers: list = field(default_factory=list)

    def drain(self) -> None:
        """Wait for queued background work that a one-shot command started."""

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception:
                log.exception("error while stopping a service")


def start_services(archive: Archive, *, scheduler: bool = True, api: bool = True) -> Services:
    pipeline = Pipeline(archive)
    services = Services(pipeline)
    if scheduler:
        services.scheduler = build_scheduler(archive)
        services.scheduler.start()
    return services


def build_scheduler(archive: Archive) -> BackgroundScheduler:
    """Every periodic job of the station. One instance of each runs at a time."""
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    scheduler.add_job(sweep_kept, "interval", hours=1, args=[archive], id="sweep-kept")
    return scheduler


def status_sections(settings: Settings, session: Session) -> dict[str, Any]:
    """Extra ``strongroom status`` sections contributed by features."""
    return {}


def item_sections(settings: Settings, session: Session, evidence: Evidence) -> dict[str, Any]:
    """Extra ``strongroom show`` fields contributed by features."""
    return {}


def find_with_case(
    session: Session, filters: EvidenceFilter, case: str, limit: int
) -> list[Evidence]:
    raise NotImplementedError("case links arrive with the case-system API")
