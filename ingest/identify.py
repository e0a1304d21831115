"""From a dock file's path to who recorded it, on which device, and when.

Vendors name recorder files from GA/T 947 fields (device serial, police number,
unit code, start time); the layout differs by vendor, so the pattern is a
profile or a configured regex with named groups (``config/names.py`` lists
them), matched against the path relative to the dock, folders included.

Nothing is silently wrong: a name that does not match is archived with the
flag ``name_unrecognised``; a name that matches but whose time cannot be read
or cannot be true (month 13, before ``earliest_year``, later than now by more
than the allowed clock skew, an end before the start) is archived with the
flag ``bad_timestamp``, no recorded time, and the reason in ``time_problem``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from config.errors import BadInputError
from config.names import SPLIT_DATE_GROUPS, SPLIT_TIME_GROUPS
from config.settings import NameRule

#: recorder clocks run on local time; GA/T 947 timestamps carry no zone
CHINA_STANDARD_TIME = ZoneInfo("Asia/Shanghai")
#: separators a time may carry between its digit groups
_SEPARATORS = re.compile(r"[-_.:T ]")
#: a zone written at the end of a time: Z, +08:00, +0800
_ZONE_SUFFIX = re.compile(r"(?:(?P<z>Z)|(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2}))$")
_DIGITS_WITH_FRACTION = re.compile(r"^(\d{14})(\d{1,6})?$")


class TimeProblem(BadInputError, ValueError):
    """A time in a name that cannot be read, or cannot be true; the message says why."""

    code = "bad_time"


@dataclass(frozen=True)
class SourceInfo:
    """What a file name tells about a recording."""

    device: str | None = None
    officer: str | None = None
    unit: str | None = None
    recorded_start: datetime | None = None
    recorded_end: datetime | None = None
    seq: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    #: why a time in the name was refused (with ``bad_timestamp`` in flags)
    time_problem: str | None = None

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "officer": self.officer,
            "unit": self.unit,
            "recorded_start": _iso(self.recorded_start),
            "recorded_end": _iso(self.recorded_end),
            "seq": self.seq,
            "flags": list(self.flags),
            "time_problem": self.time_problem,
        }


def identify(
    relative_path: str,
    pattern: str,
    tz: tzinfo = CHINA_STANDARD_TIME,
    *,
    time_format: str | None = None,
    now: datetime | None = None,
    future_skew: timedelta | None = None,
    earliest_year: int = 2000,
) -> SourceInfo:
    """Parse ``relative_path`` (``/``-separated) with ``pattern``.

    ``tz``: the zone of the recorder clock (a zone written in the name wins).
    ``now`` and ``future_skew``: a time later than ``now + future_skew`` is
    refused (no check when ``future_skew`` is None). Flags: ``IMP``-style
    markers from the ``flag`` group (upper-cased), and ``name_unrecognised`` /
    ``bad_timestamp`` when the name is not what the pattern expects.
    """
    match = re.search(pattern, relative_path)
    if match is None:
        return SourceInfo(flags=("name_unrecognised",))
    groups = {k: v for k, v in match.groupdict().items() if v}
    flags: list[str] = []
    problems: list[str] = []
    start = end = None
    try:
        start = _start_time(groups, tz, time_format)
    except TimeProblem as exc:
        problems.append(f"start: {exc}")
    try:
        end = _end_time(groups, tz, time_format, start)
    except TimeProblem as exc:
        problems.append(f"end: {exc}")
    latest = (now or datetime.now(UTC)) + future_skew if future_skew is not None else None
    for label, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if value.year < earliest_year:
            problems.append(f"{label} {value.isoformat()} is before {earliest_year}")
        elif latest is not None and future_skew is not None and value > latest:
            problems.append(
                f"{label} {value.isoformat()} is in the future (more than "
                f"{future_skew.total_seconds() / 60:g} min after now): recorder clock or zone?"
            )
    if not problems and start is not None and end is not None and end < start:
        problems.append(f"end {end.isoformat()} is before start {start.isoformat()}")
    if problems:
        flags.append("bad_timestamp")
        start = end = None
    if "flag" in groups:
        flags.append(groups["flag"].upper())
    return SourceInfo(
        device=groups.get("device"),
        officer=groups.get("officer"),
        unit=groups.get("unit"),
        recorded_start=start,
        recorded_end=end,
        seq=groups.get("seq"),
        flags=tuple(flags),
        time_problem="; ".join(problems) or None,
    )


def identify_with(rule: NameRule, relative_path: str, now: datetime | None = None) -> SourceInfo:
    """:func:`identify` with a dock's resolved rule (profile, zone, limits)."""
    return identify(
        relative_path,
        rule.pattern,
        rule.tzinfo,
        time_format=rule.time_format,
        now=now,
        future_skew=timedelta(minutes=rule.future_skew_minutes),
        earliest_year=rule.earliest_year,
    )


# -- reading times ---------------------------------------------------------------------


def _start_time(groups: dict[str, str], tz: tzinfo, time_format: str | None) -> datetime | None:
    if "start" in groups:
        return parse_time(groups["start"], tz, time_format)
    day = _date_part(groups)
    clock = _clock_part(groups, "time")
    if day is None and clock is None:
        return None
    if day is None or clock is None:
        raise TimeProblem("the name has only a date or only a clock time")
    if time_format and "date" in groups and "time" in groups:
        return parse_time(f"{groups['date']} {groups['time']}", tz, time_format)
    return _combine(day, clock, tz)


def _end_time(
    groups: dict[str, str], tz: tzinfo, time_format: str | None, start: datetime | None
) -> datetime | None:
    if "end" in groups:
        return parse_time(groups["end"], tz, time_format)
    clock = _clock_part(groups, "end_time")
    if clock is None:
        return None
    if "end_date" in groups:
        return _combine(_read_date(groups["end_date"]), clock, tz)
    if start is None:
        return None  # the start's problem is already reported
    local_start = start.astimezone(tz)
    end = _combine(local_start.date(), clock, tz)
    # a recording that runs past midnight ends on the next day
    return end + timedelta(days=1) if end < start else end


def parse_time(text: str, tz: tzinfo, time_format: str | None = None) -> datetime:
    """A whole time from a name: ``20260301083015``, ``2026-03-01 08.30.15``,
    ``20260301T003015Z``, ``2026-03-01T08:30:15+08:00``, ``20260301083015123``
    (milliseconds), or whatever ``time_format`` (strptime) says.

    Naive times are in ``tz``; a zone written in the text wins.
    """
    if time_format:
        try:
            value = datetime.strptime(text, time_format)
        except ValueError as exc:
            raise TimeProblem(f"{text!r} does not fit time_format {time_format!r}: {exc}") from None
        return value if value.tzinfo else value.replace(tzinfo=tz)
    zone: tzinfo = tz
    suffix = _ZONE_SUFFIX.search(text)
    body = text
    if suffix is not None and len(_SEPARATORS.sub("", text[: suffix.start()])) >= 14:
        body = text[: suffix.start()]
        if suffix.group("z"):
            zone = UTC
        else:
            sign = 1 if suffix.group("sign") == "+" else -1
            offset = timedelta(hours=int(suffix.group("hh")), minutes=int(suffix.group("mm")))
            zone = timezone(sign * offset)
    digits = _SEPARATORS.sub("", body)
    found = _DIGITS_WITH_FRACTION.match(digits)
    if found is None:
        raise TimeProblem(f"{text!r} is not YYYYMMDDhhmmss (with or without separators)")
    d = found.group(1)
    try:  # by position, not strptime: "20261341…" must fail on the month, not shift digits
        value = datetime(
            int(d[0:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]), int(d[12:14])
        )
    except ValueError as exc:
        raise TimeProblem(f"{text!r}: {exc}") from None
    if found.group(2):
        value = value.replace(microsecond=int(found.group(2).ljust(6, "0")))
    return value.replace(tzinfo=zone)


def _date_part(groups: dict[str, str]) -> date | None:
    if "date" in groups:
        return _read_date(groups["date"])
    if not any(g in groups for g in SPLIT_DATE_GROUPS):
        return None
    try:
        year = int(groups["year"])
        year = year + 2000 if len(groups["year"]) == 2 else year
        return date(year, int(groups["month"]), int(groups["day"]))
    except KeyError as exc:
        raise TimeProblem(f"the name has no {exc.args[0]}") from None
    except ValueError as exc:
        parts = "-".join(groups.get(g, "?") for g in SPLIT_DATE_GROUPS)
        raise TimeProblem(f"date {parts}: {exc}") from None


def _read_date(text: str) -> date:
    digits = _SEPARATORS.sub("", text)
    if len(digits) not in (6, 8) or not digits.isdigit():
        raise TimeProblem(f"date {text!r} is not YYYYMMDD or YYMMDD")
    year = int(digits[:-4]) + (2000 if len(digits) == 6 else 0)
    try:
        return date(year, int(digits[-4:-2]), int(digits[-2:]))
    except ValueError as exc:
        raise TimeProblem(f"date {text!r}: {exc}") from None


def _clock_part(groups: dict[str, str], name: str) -> time | None:
    if name in groups:
        digits = _SEPARATORS.sub("", groups[name])
        if len(digits) not in (4, 6):
            raise TimeProblem(f"clock time {groups[name]!r} is not hhmmss or hhmm")
        parts = [int(digits[i : i + 2]) for i in range(0, len(digits), 2)]
        text = groups[name]
    elif name == "time" and any(g in groups for g in SPLIT_TIME_GROUPS):
        parts = [int(groups.get(g, "0")) for g in SPLIT_TIME_GROUPS]
        text = ":".join(groups.get(g, "00") for g in SPLIT_TIME_GROUPS)
    else:
        return None
    try:
        return time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
    except ValueError as exc:
        raise TimeProblem(f"clock time {text!r}: {exc}") from None


def _combine(day: date, clock: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, clock).replace(tzinfo=tz)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
