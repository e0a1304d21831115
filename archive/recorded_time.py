"""When an item was recorded, and which witness says so.

Three witnesses are kept side by side for every item, none overwriting another:
the file *name* (read by the dock's naming profile), the *media*'s own
``creation_time`` tag (from ffprobe), and the *file_mtime* the dock's file
system gave the file. Reports, ``find --since/--until`` and the API take an
item's time from the first one that is known, in that order, and say which it
was; an item with none of them counts by the time it was *sealed*.

The name comes first because it is what the recorder's clock and the officer
see on the device; a media tag is often the same clock written in another
zone, and a file time may be the docking station's copy time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from archive.models import ACTIVE_STATES, Evidence, IngestJob

#: the witnesses, in the order they are trusted
TIME_SOURCES = ("name", "media", "file_mtime", "sealed")


def item_time(
    recorded_start: datetime | None,
    media_created: datetime | None,
    file_mtime: datetime | None,
    sealed_at: datetime,
) -> tuple[datetime, str]:
    """The item's time and the name of the witness it came from."""
    for value, source in (
        (recorded_start, "name"),
        (media_created, "media"),
        (file_mtime, "file_mtime"),
    ):
        if value is not None:
            return value, source
    return sealed_at, "sealed"


def item_time_columns(evidence: Any) -> tuple[Any, ...]:
    """The catalog columns :func:`item_time` reads, in its argument order."""
    return (
        evidence.recorded_start,
        evidence.media_created,
        evidence.file_mtime,
        evidence.sealed_at,
    )


def media_time(
    probe: dict[str, Any] | None,
    *,
    now: datetime | None = None,
    future_skew: timedelta = timedelta(hours=1),
    earliest_year: int = 2000,
) -> tuple[datetime | None, str | None]:
    """The media's own ``creation_time`` (ffprobe's summary), or why it is not used.

    MP4/MOV store it in UTC by specification, so a time without a zone is
    taken as UTC. Recorders whose clock was never set write 1904/1970 or
    nothing: such times are refused, with the reason, never used.
    """
    return plausible_media_time(
        (probe or {}).get("creation_time"),
        "creation_time",
        now=now,
        future_skew=future_skew,
        earliest_year=earliest_year,
    )


def plausible_media_time(
    text: object,
    tag: str,
    *,
    now: datetime | None = None,
    future_skew: timedelta = timedelta(hours=1),
    earliest_year: int = 2000,
) -> tuple[datetime | None, str | None]:
    """A time tag of the media (``tag`` names it in the reason), or why it is refused:
    not ISO 8601, before ``earliest_year`` or in the future. No zone means UTC."""
    if not text:
        return None, None
    try:
        value = datetime.fromisoformat(str(text).strip())
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        value.astimezone(UTC)  # far-off years with an offset overflow here
    except (OverflowError, ValueError):
        return None, f"media {tag} {text!r} is not an ISO 8601 time"
    if value.year < earliest_year:
        return None, f"media {tag} {text} is before {earliest_year} (clock not set?)"
    if value > (now or datetime.now(UTC)) + future_skew:
        return None, f"media {tag} {text} is in the future"
    return value.astimezone(UTC), None


def bad_timestamp_section(session: Session, limit: int = 20) -> dict[str, Any]:
    """``strongroom status``: items whose file-name time was refused, with the reason.

    Archived items (their ``time_problem`` is set exactly when they carry the
    ``bad_timestamp`` flag) and files still in the pipeline with that flag.
    """
    total = session.scalar(
        select(func.count()).select_from(Evidence).where(Evidence.time_problem.is_not(None))
    )
    items = [
        {
            "evidence_id": row.evidence_id,
            "file": row.source_path,
            "dock": row.dock,
            "reason": row.time_problem,
            "time_source": item_time(*item_time_columns(row))[1],
            "sealed_at": row.sealed_at.isoformat(),
        }
        for row in session.execute(
            select(
                Evidence.evidence_id,
                Evidence.source_path,
                Evidence.dock,
                Evidence.time_problem,
                Evidence.recorded_start,
                Evidence.media_created,
                Evidence.file_mtime,
                Evidence.sealed_at,
            )
            .where(Evidence.time_problem.is_not(None))
            .order_by(Evidence.sealed_at.desc())
            .limit(limit)
        )
    ]
    pending = [
        {"file": job.display_name, "dock": job.dock, "state": job.state}
        for job in session.execute(
            select(IngestJob.display_name, IngestJob.dock, IngestJob.state)
            .where(IngestJob.state.in_([s.value for s in ACTIVE_STATES]))
            .where(cast(IngestJob.flags, Text).like('%"bad_timestamp"%'))
            .limit(limit)
        )
    ]
    return {"items": total or 0, "recent": items, "in_pipeline": pending}
