"""Periodic tidying of the dock's own folder: kept copies past their days."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from sqlalchemy import select

from archive.context import Archive
from archive.db import display_path, utcnow
from archive.models import IngestJob, JobState
from config.settings import keep_days
from ingest.pipeline import work_dir

log = logging.getLogger("strongroom.housekeeping")


def sweep_kept(archive: Archive) -> int:
    """Delete ``keep:<days>`` copies whose days are over. Returns how many."""
    removed = 0
    now = utcnow()
    with archive.db.session() as session:
        jobs = session.scalars(
            select(IngestJob).where(
                IngestJob.after_archive.like("keep:%"),
                IngestJob.state.in_([JobState.RELEASED.value, JobState.DUPLICATE.value]),
            )
        ).all()
    for job in jobs:
        days = keep_days(job.after_archive) or 0
        kept = work_dir(job.dock_root) / "kept" / str(job.id)
        if (
            job.released_at
            and job.released_at + timedelta(days=days) <= now
            and os.path.lexists(kept)
        ):
            kept.unlink()
            for sidecar in kept.parent.glob(f"{job.id}.*"):  # the recorder's, kept with it
                sidecar.unlink()
            removed += 1
            log.info(
                "%s: kept copy removed after %d days (%s)",
                job.display_name,
                days,
                display_path(kept),
            )
    return removed
