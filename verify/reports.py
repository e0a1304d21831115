"""Statistics and compliance reports over the catalog (数据统计分析).

Read-only: counts, recorded hours, bytes, and the archive delay – from the end
of the recording (or, when the file name gave no end, the file's modification
time on the dock) to the moment the item was sealed – per officer, device,
unit, station or day, with the share archived within the configured deadline
(default 24 h) and the late items by name. Derivative and fixity status are
added when those tables exist.

Each item counts on the day of its recording time, taken from the first known
of its witnesses – the file name, the media's own creation time, the file's
time on the dock, else the moment it was sealed (``archive.recorded_time``) –
and the report says, per group and per item, which witness that was.

Percentiles use the nearest-rank method (the smallest value with at least q %
of the values at or below it), so every reported delay is a real item's delay.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from archive.derivatives import Derivative
from archive.instants import iso_z
from archive.models import ACTIVE_STATES, Evidence, IngestJob
from archive.queries import EvidenceFilter, evidence_query
from archive.recorded_time import TIME_SOURCES, item_time, item_time_columns
from archive.scope import ALL_UNITS, Scope
from config.settings import Settings

GROUPINGS = ("officer", "device", "unit", "station", "day")
UNKNOWN = "(unknown)"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class ItemFacts:
    """What one evidence item contributes to a report."""

    evidence_id: str
    file_name: str
    officer: str | None
    device: str | None
    unit: str | None
    station: str
    day: date
    #: the recording time the item counts by, and the witness it came from
    time: datetime
    time_source: str  # one of archive.recorded_time.TIME_SOURCES
    time_problem: str | None
    size: int
    recorded_seconds: float | None
    reference: str | None  # "recorded_end" | "file_mtime" | None
    reference_at: datetime | None
    sealed_at: datetime
    delay_seconds: float | None

    def group(self, by: str | None) -> str:
        if by is None:
            return "all"
        if by == "day":
            return self.day.isoformat()
        return getattr(self, by) or UNKNOWN


#: what a report reads of each item
_COLUMNS = (
    Evidence.evidence_id,
    Evidence.file_name,
    Evidence.officer,
    Evidence.device,
    Evidence.unit,
    Evidence.station,
    Evidence.size,
    Evidence.probe,
    Evidence.recorded_start,
    Evidence.recorded_end,
    Evidence.file_mtime,
    Evidence.media_created,
    Evidence.time_problem,
    Evidence.sealed_at,
)
#: the same, for callers that build their own groupings (the public statistics)
FACT_COLUMNS = _COLUMNS


def item_facts(evidence: Any, tz: ZoneInfo) -> ItemFacts:
    """``evidence``: an :class:`Evidence` or a row with the same named columns."""
    # duration from the probe (else end − start); delay from the end, else the file time
    seconds = None
    probe = evidence.probe or {}
    if isinstance(probe.get("duration"), int | float):
        seconds = float(probe["duration"])
    elif evidence.recorded_start and evidence.recorded_end:
        seconds = (evidence.recorded_end - evidence.recorded_start).total_seconds()
    if evidence.recorded_end is not None:
        reference, reference_at = "recorded_end", evidence.recorded_end
    elif evidence.file_mtime is not None:
        reference, reference_at = "file_mtime", evidence.file_mtime
    else:
        reference, reference_at = None, None
    delay = (evidence.sealed_at - reference_at).total_seconds() if reference_at else None
    when, source = item_time(*item_time_columns(evidence))
    return ItemFacts(
        evidence_id=evidence.evidence_id,
        file_name=evidence.file_name,
        officer=evidence.officer,
        device=evidence.device,
        unit=evidence.unit,
        station=evidence.station,
        day=when.astimezone(tz).date(),
        time=when,
        time_source=source,
        time_problem=evidence.time_problem,
        size=evidence.size,
        recorded_seconds=seconds,
        reference=reference,
        reference_at=reference_at,
        sealed_at=evidence.sealed_at,
        delay_seconds=delay,
    )


def summarize(facts: list[ItemFacts], deadline_seconds: float) -> dict[str, Any]:
    """Counts, hours, bytes, delay median/p95 and deadline compliance of some items."""
    delays = [f.delay_seconds for f in facts if f.delay_seconds is not None]
    within = sum(1 for d in delays if d <= deadline_seconds)
    return {
        "items": len(facts),
        "recorded_hours": sum(f.recorded_seconds or 0.0 for f in facts) / 3600,
        "items_without_duration": sum(1 for f in facts if f.recorded_seconds is None),
        "bytes": sum(f.size for f in facts),
        "delay_median_seconds": statistics.median(delays) if delays else None,
        "delay_p95_seconds": percentile(delays, 95),
        "delay_known": len(delays),
        "within_deadline": within,
        "late": len(delays) - within,
        "within_deadline_share": within / len(delays) if delays else None,
        # which witness the items' recording times came from (name, media, file_mtime, sealed)
        **{
            f"time_from_{source}": sum(1 for f in facts if f.time_source == source)
            for source in TIME_SOURCES
        },
    }


def build_report(
    session: Session,
    settings: Settings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    by: str | None = None,
    now: datetime | None = None,
    scope: Scope = ALL_UNITS,
) -> dict[str, Any]:
    """The report over items recorded (or, without a recording time, sealed) in
    ``[start, end)``, grouped ``by`` one of :data:`GROUPINGS`, counting only
    the items in ``scope`` (an API token's units)."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    tz = settings.station.tzinfo
    deadline = settings.retention.archive_deadline_hours * 3600
    query = scope.where(evidence_query(EvidenceFilter(since=start, until=end)))
    # plain rows, not ORM objects: a month of a busy station is tens of thousands
    facts = [item_facts(row, tz) for row in session.execute(query.with_only_columns(*_COLUMNS))]
    groups: dict[str, list[ItemFacts]] = {}
    for fact in facts:
        groups.setdefault(fact.group(by), []).append(fact)
    daily: dict[str, list[ItemFacts]] = {}
    for fact in facts:
        daily.setdefault(fact.day.isoformat(), []).append(fact)
    late = sorted(
        (f for f in facts if f.delay_seconds is not None and f.delay_seconds > deadline),
        key=lambda f: -(f.delay_seconds or 0),
    )
    ids = query.with_only_columns(Evidence.evidence_id).order_by(None).subquery()
    return {
        "generated_at": iso_z(now or datetime.now(UTC)),
        "from": iso_z(start),
        "to": iso_z(end),
        "by": by,
        "timezone": settings.station.timezone,
        "deadline_hours": settings.retention.archive_deadline_hours,
        "totals": summarize(facts, deadline),
        "groups": [
            {"key": key, **summarize(members, deadline)} for key, members in sorted(groups.items())
        ],
        "daily": [{"day": day, **summarize(daily[day], deadline)} for day in sorted(daily)],
        "late_items": [
            {
                "evidence_id": f.evidence_id,
                "file_name": f.file_name,
                "officer": f.officer,
                "device": f.device,
                "unit": f.unit,
                "station": f.station,
                "reference": f.reference,
                "reference_at": iso_z(f.reference_at),
                "sealed_at": iso_z(f.sealed_at),
                "delay_hours": (f.delay_seconds or 0) / 3600,
                "time_source": f.time_source,
            }
            for f in late
        ],
        # every item whose recording time did not come from its file name, and from what
        "time_not_from_name": [
            {
                "evidence_id": f.evidence_id,
                "file_name": f.file_name,
                "time_source": f.time_source,
                "time": iso_z(f.time),
                "day": f.day.isoformat(),
                "time_problem": f.time_problem,
            }
            for f in sorted(facts, key=lambda f: (f.time, f.evidence_id))
            if f.time_source != "name"
        ],
        "no_reference_time": [f.evidence_id for f in facts if f.reference is None],
        "states": _count(session, Evidence.state, Evidence.evidence_id.in_(select(ids))),
        "derivatives": _count(session, Derivative.state, Derivative.evidence_id.in_(select(ids))),
        "fixity": _fixity(session, ids),
    }


def _count(session: Session, column: Any, where: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).where(where).group_by(column)).all()
    return {str(state): count for state, count in rows}


def _has_fixity(session: Session) -> bool:
    return inspect(session.get_bind()).has_table("fixity_records")


def _fixity(session: Session, ids: Any) -> dict[str, int] | None:
    """ok / failed / unchecked, if the fixity feature's table exists."""
    if not _has_fixity(session):
        return None
    wanted = set(session.scalars(select(ids.c.evidence_id)))
    counts = {"ok": 0, "failed": 0, "unchecked": 0}
    seen = set()
    for evidence_id, result in session.execute(
        text("SELECT evidence_id, result FROM fixity_records")
    ):
        if evidence_id in wanted:
            seen.add(evidence_id)
            counts[str(result)] = counts.get(str(result), 0) + 1
    counts["unchecked"] = len(wanted - seen)
    return counts


# -- output ------------------------------------------------------------------------

COLUMNS = (
    "key",
    "items",
    "recorded_hours",
    "bytes",
    "delay_median_seconds",
    "delay_p95_seconds",
    "delay_known",
    "within_deadline",
    "late",
    "within_deadline_share",
    *(f"time_from_{source}" for source in TIME_SOURCES),
)


def report_csv(report: dict[str, Any]) -> str:
    """One row per group and a final ``(total)`` row; delays in seconds."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in [*report["groups"], {"key": "(total)", **report["totals"]}]:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return out.getvalue()


def report_table(report: dict[str, Any]) -> Any:
    """A rich renderable: the groups table, then compliance, late items, statuses."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    title = f"Strongroom report {report['from'] or '…'} – {report['to'] or '…'}"
    table = Table(title=title, title_justify="left")
    first = report["by"] or "group"
    table.add_column(first)
    for name in ("items", "hours", "size", "delay median", "delay p95"):
        table.add_column(name, justify="right")
    table.add_column(f"≤ {report['deadline_hours']:g} h", justify="right")
    table.add_column("late", justify="right")
    for row in [*report["groups"], None, {"key": "total", **report["totals"]}]:
        if row is None:
            table.add_section()
            continue
        table.add_row(
            row["key"],
            str(row["items"]),
            f"{row['recorded_hours']:.1f}",
            _size(row["bytes"]),
            _hours(row["delay_median_seconds"]),
            _hours(row["delay_p95_seconds"]),
            _share(row["within_deadline_share"]),
            str(row["late"]),
        )
    parts: list[Any] = [table]
    if report["late_items"]:
        late = Table(title=f"late items ({len(report['late_items'])})", title_justify="left")
        for name in ("evidence", "file", "officer", "device", "from", "delay"):
            late.add_column(name)
        for item in report["late_items"][:50]:
            late.add_row(
                item["evidence_id"],
                item["file_name"],
                item["officer"] or "",
                item["device"] or "",
                item["reference"] or "",
                f"{item['delay_hours']:.1f} h",
            )
        parts.append(late)
    totals = report["totals"]
    sources = ", ".join(f"{s} {totals[f'time_from_{s}']}" for s in TIME_SOURCES)
    others = report["time_not_from_name"]
    if others:
        table = Table(
            title=f"items not timed by their file name ({len(others)})", title_justify="left"
        )
        for name in ("evidence", "file", "time from", "day", "why"):
            table.add_column(name)
        for item in others[:50]:
            table.add_row(
                item["evidence_id"],
                escape(item["file_name"]),
                item["time_source"],
                item["day"],
                escape(item["time_problem"] or ""),
            )
        parts.append(table)
    extras = [
        f"recording time from: {sources}",
        f"items without a recording end or file time: {len(report['no_reference_time'])}",
        f"states: {_pairs(report['states'])}",
        f"playback copies: {_pairs(report['derivatives'])}",
        "fixity: "
        + (_pairs(report["fixity"]) if report["fixity"] is not None else "not available"),
    ]
    return Group(*parts, *extras)


def draw_chart(report: dict[str, Any], path: Path) -> Path:
    """Daily volume (items, bars) and archive delay (median and p95, hours) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [date.fromisoformat(d["day"]) for d in report["daily"]]
    figure, (volume, delay) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    try:
        volume.bar(days, [d["items"] for d in report["daily"]], color="#4a78a8")
        volume.set_ylabel("items archived")
        volume.set_title("Strongroom: daily volume and archive delay")
        for key, label in (("delay_median_seconds", "median"), ("delay_p95_seconds", "p95")):
            values = [
                d[key] / 3600 if d[key] is not None else float("nan") for d in report["daily"]
            ]
            delay.plot(days, values, marker="o", label=label)
        delay.axhline(report["deadline_hours"], color="#c0392b", linestyle="--", label="deadline")
        delay.set_ylabel("delay (hours)")
        delay.legend(loc="upper left")
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


# -- status: items approaching the archive deadline -----------------------------------


def deadline_section(
    settings: Settings, session: Session, now: datetime | None = None
) -> dict[str, Any]:
    """Pipeline items (not yet sealed and released) whose file time – or first
    sighting, if the file time is unknown – is within ``deadline_warning_hours``
    of the archive deadline, or past it."""
    now = now or datetime.now(UTC)
    deadline = timedelta(hours=settings.retention.archive_deadline_hours)
    warn_after = deadline - timedelta(hours=settings.retention.deadline_warning_hours)
    items = []
    for job in session.scalars(
        select(IngestJob)
        .where(IngestJob.state.in_([s.value for s in ACTIVE_STATES]))
        .order_by(IngestJob.first_seen_at)
    ):
        since = (
            datetime.fromtimestamp(job.mtime_ns / 1e9, UTC)
            if job.mtime_ns is not None
            else job.first_seen_at
        )
        age = now - since
        if age >= warn_after:
            items.append(
                {
                    "file": job.display_name,
                    "state": job.state,
                    "since": iso_z(since),
                    "age_hours": round(age.total_seconds() / 3600, 2),
                    "overdue": age > deadline,
                    "error": job.last_error,
                }
            )
    return {
        "deadline_hours": settings.retention.archive_deadline_hours,
        "approaching": sum(1 for i in items if not i["overdue"]),
        "overdue": sum(1 for i in items if i["overdue"]),
        "items": items[:50],
    }


def _hours(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 3600:.2f} h"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
