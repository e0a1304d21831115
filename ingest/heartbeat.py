"""Measuring a station's heartbeat: what its docks, spool, queue and store look like now.

Run by the daemon's scheduler every ``[heartbeat] seconds``; the row it writes
is described in :mod:`archive.heartbeat`. A store that does not answer is part
of the measurement (no latency, no clock offset, its error), never a reason to
skip the heartbeat: a silent heartbeat must mean a silent station.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from archive.context import Archive
from archive.db import utcnow
from archive.heartbeat import Beat, record
from archive.models import ACTIVE_STATES, IngestJob, JobState
from archive.store import StoreError
from ingest.scan import WORK_DIR

#: states of a dock file whose original is not yet sealed (archived)
UNARCHIVED = (JobState.CLAIMING, JobState.CLAIMED, JobState.HASHED, JobState.STORED)


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files below ``folder`` (never following links)."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


def measure(archive: Archive) -> Beat:
    settings = archive.settings
    now = utcnow()
    beat = Beat(
        station=archive.station,
        host=socket.gethostname(),
        pid=os.getpid(),
        at=now,
        interval_seconds=settings.heartbeat.seconds,
    )
    for dock in settings.docks:
        path = settings.dock_path(dock)
        entry: dict = {"path": str(path), "free_bytes": None, "size_bytes": None}
        try:
            st = os.statvfs(path)
            entry["free_bytes"] = st.f_bavail * st.f_frsize
            entry["size_bytes"] = st.f_blocks * st.f_frsize
        except OSError as exc:
            entry["error"] = exc.strerror or str(exc)
        beat.docks[dock.label] = entry
        beat.spool_bytes += folder_bytes(path / WORK_DIR / "spool")
    with archive.db.session() as session:
        mine = IngestJob.station == archive.station
        beat.queue_depth = (
            session.scalar(
                select(func.count())
                .select_from(IngestJob)
                .where(mine, IngestJob.state.in_([s.value for s in ACTIVE_STATES]))
            )
            or 0
        )
        waiting = session.execute(
            select(IngestJob.mtime_ns, IngestJob.first_seen_at).where(
                mine, IngestJob.state.in_([s.value for s in UNARCHIVED])
            )
        ).all()
    if waiting:
        # the deadline counts from the file's time, else from its first sighting
        oldest = min(
            datetime.fromtimestamp(m / 1e9, UTC) if m is not None else seen for m, seen in waiting
        )
        beat.oldest_unarchived_seconds = max(0.0, (now - oldest).total_seconds())
    try:
        reading = archive.store.clock_probe()
        beat.store_latency_seconds = reading.latency_seconds
        beat.clock_offset_seconds = reading.offset_seconds
    except StoreError as exc:
        beat.store_error = str(exc)
    return beat


def heartbeat(archive: Archive) -> None:
    """The scheduled job: measure and write; errors go to the scheduler's guard."""
    record(archive.db, measure(archive))
