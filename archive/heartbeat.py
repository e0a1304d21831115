"""Station heartbeats: each daemon's vital signs, in the catalog every station shares.

The health board (:mod:`archive.health`) is a file on the station itself; a
county with twenty docking stations needs one place that says which of them
is silent, full, stalled or wrong about the time. So every daemon writes one
row here every ``[heartbeat] seconds`` (:mod:`ingest.heartbeat` measures it),
``strongroom status --stations`` renders the rows, and ``/metrics`` exports
them as gauges (:class:`HeartbeatCollector`) for the alert rules in
``deploy/prometheus/strongroom-rules.yml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from archive.db import Database, utcnow
from archive.fixity_models import FixityRecord
from archive.heartbeat_models import StationHeartbeat
from archive.metrics import ERRORS
from archive.models import IngestJob, JobState
from config.settings import Settings

#: what `status --stations` flags (the alert rules use the same thresholds)
DISK_FULL_RATIO = 0.90
CLOCK_OFFSET_SECONDS = 5.0
DEADLINE_WARNING_SECONDS = 20 * 3600


def software_version() -> str:
    try:
        return metadata.version("strongroom")
    except metadata.PackageNotFoundError:
        return "0"


@dataclass
class Beat:
    """One heartbeat as measured (a row of ``station_heartbeats``)."""

    station: str
    host: str
    pid: int
    at: datetime
    interval_seconds: float
    version: str = field(default_factory=software_version)
    docks: dict[str, dict[str, Any]] = field(default_factory=dict)
    spool_bytes: int = 0
    queue_depth: int = 0
    oldest_unarchived_seconds: float | None = None
    store_latency_seconds: float | None = None
    clock_offset_seconds: float | None = None
    store_error: str | None = None


def record(db: Database, beat: Beat) -> None:
    """Write the station's row (one per station, overwritten)."""
    values = asdict(beat)
    if values["store_error"]:
        values["store_error"] = values["store_error"][:500]
    for _ in range(2):
        try:
            with db.session() as session:
                row = session.get(StationHeartbeat, beat.station)
                if row is None:
                    session.add(StationHeartbeat(**values))
                else:
                    for name, value in values.items():
                        setattr(row, name, value)
            return
        except IntegrityError:  # a first row inserted at the same moment: update it
            continue


def _age(row: StationHeartbeat, now: datetime) -> float:
    return max(0.0, (now - row.at).total_seconds())


def station_dict(settings: Settings, row: StationHeartbeat, now: datetime) -> dict[str, Any]:
    """One station for ``status --stations``, with what is wrong with it."""
    age = _age(row, now)
    oldest = None
    if row.oldest_unarchived_seconds is not None:
        oldest = row.oldest_unarchived_seconds + age
    problems = []
    silent = age > settings.heartbeat.silent_after_seconds
    if silent:
        problems.append(f"silent for {age:.0f} s")
    docks = {}
    for label, dock in (row.docks or {}).items():
        size, free = dock.get("size_bytes"), dock.get("free_bytes")
        used = 1 - free / size if size and free is not None else None
        docks[label] = {**dock, "used_ratio": round(used, 4) if used is not None else None}
        if used is not None and used > DISK_FULL_RATIO:
            problems.append(f"dock {label} {used:.0%} full")
    offset = row.clock_offset_seconds
    if offset is not None and abs(offset) > CLOCK_OFFSET_SECONDS:
        problems.append(f"clock off by {offset:+.1f} s against the store")
    if oldest is not None and oldest > DEADLINE_WARNING_SECONDS:
        problems.append(f"a file waits for {oldest / 3600:.1f} h (deadline 24 h)")
    if row.store_error:
        problems.append(f"store: {row.store_error}")
    return {
        "station": row.station,
        "version": row.version,
        "host": row.host,
        "pid": row.pid,
        "last_seen": row.at.isoformat(),
        "age_seconds": round(age, 1),
        "silent": silent,
        "docks": docks,
        "spool_bytes": row.spool_bytes,
        "queue_depth": row.queue_depth,
        "oldest_unarchived_seconds": round(oldest, 1) if oldest is not None else None,
        "store_latency_seconds": row.store_latency_seconds,
        "clock_offset_seconds": offset,
        "store_error": row.store_error,
        "problems": problems,
    }


def stations_section(settings: Settings, session: Session) -> list[dict[str, Any]]:
    now = utcnow()
    rows = session.scalars(select(StationHeartbeat).order_by(StationHeartbeat.station))
    return [station_dict(settings, row, now) for row in rows]


class HeartbeatCollector(Collector):
    """The heartbeat rows as gauges, read at scrape time (every API server agrees),
    and the catalog's count of items whose latest fixity check failed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.db.session() as session:
                rows = list(session.scalars(select(StationHeartbeat)))
                failed = session.scalar(
                    select(func.count())
                    .select_from(FixityRecord)
                    .where(FixityRecord.result == "failed")
                )
                held = session.scalar(
                    select(func.count())
                    .select_from(IngestJob)
                    .where(IngestJob.state == JobState.HELD)
                )
                session.expunge_all()
        except DBAPIError:
            ERRORS.labels("metrics-catalog").inc()
            return
        now = utcnow()

        def family(
            name: str, doc: str, labels: tuple[str, ...] = ("station",)
        ) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=list(labels))

        info = family(
            "strongroom_station_info",
            "A station's software version and host (value 1)",
            ("station", "version", "host"),
        )
        stamp = family(
            "strongroom_station_heartbeat_timestamp_seconds",
            "Unix time of the station's last heartbeat",
        )
        age = family("strongroom_station_heartbeat_age_seconds", "Seconds since the last heartbeat")
        free = family(
            "strongroom_dock_free_bytes", "Free bytes of a dock's file system", ("station", "dock")
        )
        size = family(
            "strongroom_dock_size_bytes", "Size of a dock's file system", ("station", "dock")
        )
        spool = family("strongroom_station_spool_bytes", "Bytes in the station's spools")
        queue = family("strongroom_station_queue_depth", "Dock files in the pipeline")
        oldest = family(
            "strongroom_station_oldest_unarchived_seconds",
            "Age of the oldest dock file not yet archived (0: none waits)",
        )
        latency = family(
            "strongroom_station_store_latency_seconds", "Round trip of one small store call"
        )
        offset = family(
            "strongroom_station_clock_offset_seconds",
            "Station clock minus the store's HTTP Date (±0.5 s)",
        )
        for row in rows:
            station = [row.station]
            seen = _age(row, now)
            info.add_metric([row.station, row.version, row.host], 1)
            stamp.add_metric(station, row.at.timestamp())
            age.add_metric(station, seen)
            for label, dock in (row.docks or {}).items():
                if dock.get("free_bytes") is not None and dock.get("size_bytes"):
                    free.add_metric([row.station, label], dock["free_bytes"])
                    size.add_metric([row.station, label], dock["size_bytes"])
            spool.add_metric(station, row.spool_bytes)
            queue.add_metric(station, row.queue_depth)
            waited = row.oldest_unarchived_seconds
            oldest.add_metric(station, 0.0 if waited is None else waited + seen)
            if row.store_latency_seconds is not None:
                latency.add_metric(station, row.store_latency_seconds)
            if row.clock_offset_seconds is not None:
                offset.add_metric(station, row.clock_offset_seconds)
        yield from (info, stamp, age, free, size, spool, queue, oldest, latency, offset)
        yield GaugeMetricFamily(
            "strongroom_fixity_failed_items",
            "Evidence items whose latest fixity check failed (from the catalog)",
            value=failed or 0,
        )
        yield GaugeMetricFamily(
            "strongroom_recorder_hash_held_files",
            "Dock copies held, not released, because the recorder's own hash disagreed "
            "with the archived bytes (from the catalog)",
            value=held or 0,
        )
