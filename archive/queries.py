"""Read-side catalog queries shared by the CLI, the API and the reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from archive.geo import Circle
from archive.instants import iso
from archive.models import ACTIVE_STATES, CustodyEvent, DockProblem, Evidence, IngestJob, JobState

if TYPE_CHECKING:  # for the annotations; the functions import it where they run
    from archive.derivatives import Derivative


@dataclass(frozen=True)
class EvidenceFilter:
    """The ``find`` filters; all optional, combined with AND."""

    officer: str | None = None
    device: str | None = None
    unit: str | None = None
    station: str | None = None
    sha256: str | None = None
    state: str | None = None
    #: recorded at or after: the item's time as archive.recorded_time says (name,
    #: media, file time, else sealed)
    since: datetime | None = None
    until: datetime | None = None
    #: recorded at or after / before by the recording's own clock (``Evidence.recorded_at``,
    #: a media tag): items whose file carries no time are not matched
    recorded_since: datetime | None = None
    recorded_until: datetime | None = None
    #: within this circle (the file's location tag); SQL narrows to its bounding
    #: box, :meth:`keeps` makes the exact (haversine) test
    near: Circle | None = None

    def to_dict(self) -> dict[str, Any]:
        """The filters as a search custody event records them."""
        return {
            name: value.isoformat()
            if isinstance(value, datetime)
            else value.to_dict()
            if isinstance(value, Circle)
            else value
            for name, value in vars(self).items()
        }

    def keeps(self, evidence: Evidence) -> bool:
        """The part of the filters SQL cannot say portably: the exact distance.
        Apply it to every row :func:`evidence_query` returns."""
        return self.near is None or self.near.contains(evidence.latitude, evidence.longitude)

    @property
    def exact(self) -> bool:
        """Every row of :func:`evidence_query` matches (no :meth:`keeps` needed)."""
        return self.near is None


def evidence_query(filters: EvidenceFilter) -> Select[Evidence]:
    """A SELECT of evidence rows in stable order (sealed time, then id).

    With ``near``, the rows are those in the circle's bounding box: keep those
    :meth:`EvidenceFilter.keeps` (see :func:`find_evidence`)."""
    query = select(Evidence)
    for column, value in (
        (Evidence.officer, filters.officer),
        (Evidence.device, filters.device),
        (Evidence.unit, filters.unit),
        (Evidence.station, filters.station),
        (Evidence.sha256, filters.sha256.lower() if filters.sha256 else None),
        (Evidence.state, filters.state),
    ):
        if value is not None:
            query = query.where(column == value)
    when = func.coalesce(
        Evidence.recorded_start, Evidence.media_created, Evidence.file_mtime, Evidence.sealed_at
    )
    if filters.since is not None:
        query = query.where(when >= filters.since)
    if filters.until is not None:
        query = query.where(when < filters.until)
    if filters.recorded_since is not None:
        query = query.where(Evidence.recorded_at >= filters.recorded_since)
    if filters.recorded_until is not None:
        query = query.where(Evidence.recorded_at < filters.recorded_until)
    if filters.near is not None:
        query = query.where(*_box(filters.near))
    return query.order_by(Evidence.sealed_at, Evidence.evidence_id)


def _box(circle: Circle) -> list[ColumnElement[bool]]:
    """The circle's bounding box as conditions on the indexed columns."""
    south, north = circle.latitude_range()
    conditions: list[ColumnElement[bool]] = [
        Evidence.latitude.between(south, north),
        Evidence.longitude.is_not(None),
    ]
    ranges = circle.longitude_ranges()
    if ranges is not None:
        conditions.append(or_(*(Evidence.longitude.between(w, e) for w, e in ranges)))
    return conditions


def find_evidence(
    session: Session,
    filters: EvidenceFilter,
    limit: int | None = None,
    query: Select[Any] | None = None,
) -> list[Evidence]:
    """The items matching ``filters`` (the exact distance test included), at most
    ``limit``; ``query``: :func:`evidence_query` narrowed further (a case, a scope)."""
    query = evidence_query(filters) if query is None else query
    if filters.exact:
        return list(session.scalars(query if limit is None else query.limit(limit)))
    found: list[Evidence] = []
    for evidence in session.scalars(query.execution_options(yield_per=500)):
        if filters.keeps(evidence):
            found.append(evidence)
            if limit is not None and len(found) >= limit:
                break
    return found


def job_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(IngestJob.state, func.count()).group_by(IngestJob.state)).all()
    return {state: count for state, count in rows}


def active_jobs(session: Session) -> list[IngestJob]:
    return list(
        session.scalars(
            select(IngestJob)
            .where(IngestJob.state.in_([s.value for s in ACTIVE_STATES]))
            .order_by(IngestJob.first_seen_at)
        )
    )


def recent_problems(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """Jobs with an error (retrying or quarantined) and things refused in docks."""
    jobs = session.scalars(
        select(IngestJob)
        .where(IngestJob.last_error.is_not(None))
        .where(
            IngestJob.state.in_(
                [*(s.value for s in ACTIVE_STATES), JobState.QUARANTINED.value, JobState.HELD.value]
            )
        )
        .order_by(IngestJob.updated_at.desc())
        .limit(limit)
    )
    problems = [
        {
            "file": job.display_name,
            "dock": job.dock,
            "state": job.state,
            "error": job.last_error,
            "attempts": job.attempts,
            "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
            "at": job.updated_at.isoformat(),
        }
        for job in jobs
    ]
    from archive.db import display_path

    for row in session.scalars(
        select(DockProblem).order_by(DockProblem.last_seen.desc()).limit(limit)
    ):
        problems.append(
            {
                "file": display_path(row.path),
                "dock": row.dock,
                "state": "not taken",
                "error": row.reason,
                "at": row.last_seen.isoformat(),
            }
        )
    return problems


def recorder_hash_section(session: Session, limit: int = 20) -> dict[str, Any]:
    """``strongroom status``: items whose recorder hash disagreed with their bytes,
    and the dock copies held for them (not released until a person looks)."""
    held = session.scalars(
        select(IngestJob)
        .where(IngestJob.state == JobState.HELD)
        .order_by(IngestJob.updated_at.desc())
        .limit(limit)
    )
    counts = dict(
        session.execute(
            select(Evidence.recorder_hash, func.count())
            .where(Evidence.recorder_hash.is_not(None))
            .group_by(Evidence.recorder_hash)
        ).all()
    )
    return {
        "matched_items": counts.get("match", 0),
        "mismatched_items": counts.get("mismatch", 0),
        "held": [
            {
                "file": job.display_name,
                "dock": job.dock,
                "evidence_id": job.evidence_id,
                "kept_at": job.spool_path,
                "reason": job.last_error,
            }
            for job in held
        ],
    }


def evidence_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Evidence.state, func.count()).group_by(Evidence.state)).all()
    return dict(Counter({state: count for state, count in rows}))


def events_for(session: Session, evidence_id: str) -> list[CustodyEvent]:
    return list(
        session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.evidence_id == evidence_id)
            .order_by(CustodyEvent.seq)
        )
    )


# -- playback copies (derivatives) ----------------------------------------------


def derivative_counts(session: Session) -> dict[str, int]:
    """Playback copies by state (queued, running, retrying, stored, skipped, failed)."""
    from archive.derivatives import Derivative

    rows = session.execute(select(Derivative.state, func.count()).group_by(Derivative.state)).all()
    return {state: count for state, count in rows}


def derivatives_in(session: Session, states: list[str], limit: int = 50) -> list[Derivative]:
    """Playback copies in these states, most recently changed first."""
    from archive.derivatives import Derivative

    return list(
        session.scalars(
            select(Derivative)
            .where(Derivative.state.in_(states))
            .order_by(Derivative.updated_at.desc(), Derivative.id.desc())
            .limit(limit)
        )
    )


def derivatives_of(session: Session, evidence_id: str) -> list[Derivative]:
    """Every playback copy (or attempt at one) of an item, oldest first."""
    from archive.derivatives import Derivative

    return list(
        session.scalars(
            select(Derivative).where(Derivative.evidence_id == evidence_id).order_by(Derivative.id)
        )
    )


def derivative_summary(derivative: Derivative) -> dict[str, Any]:
    """One playback copy as ``show``, ``status`` and the API print it."""
    return {
        "id": derivative.id,
        "state": derivative.state,
        "action": derivative.action,
        "reason": derivative.reason,
        "key": derivative.key,
        "version_id": derivative.version_id,
        "sha256": derivative.sha256,
        "size": derivative.size,
        "manifest_key": derivative.manifest_key,
        "ffmpeg_version": derivative.ffmpeg_version,
        "progress": round(derivative.progress, 1) if derivative.progress is not None else None,
        "speed": derivative.speed,
        "attempts": derivative.attempts,
        "error": derivative.last_error,
        "next_attempt_at": iso(derivative.next_attempt_at),
        "updated_at": iso(derivative.updated_at),
    }
