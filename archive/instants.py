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


def iso(value: datetime | None) -> str | None:
    """A catalog time in the documents' one ISO form (``…+00:00``, what
    ``show``/``find``/``status --json`` have always printed); None stays None."""
    return value.isoformat() if value else None


def iso_z(value: datetime | None) -> str | None:
    """A UTC time in RFC 3339's ``Z`` form: the form of what is signed or
    hashed (manifests, ledger events, plans), frozen because those bytes are."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def station_time(value: datetime | str | None, zone: tzinfo) -> str:
    """A time for people: in the station's zone, with the zone's name
    (``2026-03-01 08:30:15 CST``); an ISO string is read first; None is "–"."""
    if value is None or value == "":
        return "–"
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value  # not a time: shown as it is
    assert isinstance(when, datetime)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
