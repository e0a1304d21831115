"""Reading the points in time that operators and case systems type.

An ISO date (``2026-03-01``, meaning its midnight) or an ISO date-time; one
without a zone is in ``default_tz`` (the station's zone for reports, where
people think in local days). The CLI and the API both read times here, so a
``--from`` and a ``?from=`` never disagree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo


def parse_instant(text: str, default_tz: tzinfo = UTC) -> datetime:
    """An aware UTC datetime, or ``ValueError`` saying what is wrong."""
    try:
        value = (
            datetime.combine(date.fromisoformat(text), time())
            if len(text) == 10
            else datetime.fromisoformat(text)
        )
        # far-off dates with an offset can fall outside what datetime holds
        return (value if value.tzinfo else value.replace(tzinfo=default_tz)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{text!r} is not an ISO date or time") from None
