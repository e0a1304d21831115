"""From a dock file's path to who recorded it, on which device, and when.

Vendors name recorder files from GA/T 947 fields (device serial, police number,
unit code, start time); the layout differs by vendor, so the pattern is a
configurable regex with named groups, matched against the path relative to the
dock root. A name that does not match is still archived, with empty fields and
a flag saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

#: recorder clocks run on local time; GA/T 947 timestamps carry no zone
CHINA_STANDARD_TIME = ZoneInfo("Asia/Shanghai")


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

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "officer": self.officer,
            "unit": self.unit,
            "recorded_start": _iso(self.recorded_start),
            "recorded_end": _iso(self.recorded_end),
            "seq": self.seq,
            "flags": list(self.flags),
        }


def identify(relative_path: str, pattern: str, tz: tzinfo = CHINA_STANDARD_TIME) -> SourceInfo:
    """Parse ``relative_path`` (``/``-separated) with ``pattern``.

    Flags: ``IMP`` style markers from the ``flag`` group (upper-cased), and
    ``name_unrecognised`` / ``bad_timestamp`` when the name is not what the
    pattern expects.
    """
    match = re.search(pattern, relative_path)
    if match is None:
        return SourceInfo(flags=("name_unrecognised",))
    groups = {k: v for k, v in match.groupdict().items() if v}
    flags: list[str] = []
    start = _parse_time(groups.get("start"), tz, flags)
    end = _parse_time(groups.get("end"), tz, flags)
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
    )


def _parse_time(text: str | None, tz: tzinfo, flags: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=tz)
    except ValueError:
        if "bad_timestamp" not in flags:
            flags.append("bad_timestamp")
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
