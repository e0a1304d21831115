"""ISO 6709 point strings, as recorders write them into QuickTime/MP4 tags.

``©xyz`` (ffprobe's ``location``), ``com.apple.quicktime.location.ISO6709`` and
the like hold a point such as ``+31.2304+121.4737/`` or
``+31.2304+121.4737+012.000/``: latitude with two integer digits, longitude
with three, in decimal degrees (``±DD.D±DDD.D``), degrees and minutes
(``±DDMM.M±DDDMM.M``) or degrees, minutes and seconds
(``±DDMMSS.S±DDDMMSS.S``), then an optional altitude in metres, an optional
``CRSxxx`` and the closing ``/`` (some writers leave it out; accepted).

Pure and total: the text comes from a file anyone could have made, so any
string – too long, out of range, garbage, not a string at all – gives None,
never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: longer than any real point string; a longer one is not read at all
MAX_LENGTH = 100

_POINT = re.compile(
    r"(?P<lat>[+-]\d{2}(?:\d{2}){0,2}(?:\.\d{1,12})?)"
    r"(?P<lon>[+-]\d{3}(?:\d{2}){0,2}(?:\.\d{1,12})?)"
    r"(?P<alt>[+-]\d{1,6}(?:\.\d{1,6})?)?"
    r"(?:CRS[A-Za-z0-9_:.\-]{1,40})?"
    r"/?",
    re.ASCII,  # ``\d`` is 0-9 only: a float() of other scripts' digits would still parse
)


@dataclass(frozen=True)
class Point:
    """A point in WGS 84 degrees; altitude in metres when the string has one."""

    latitude: float
    longitude: float
    altitude: float | None = None


def parse_iso6709(text: object) -> Point | None:
    """The point ``text`` holds, or None if it is not a well-formed ISO 6709 point."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return None
    match = _POINT.fullmatch(text.strip())
    if match is None:
        return None
    latitude = _degrees(match["lat"], 2)
    longitude = _degrees(match["lon"], 3)
    if latitude is None or longitude is None:
        return None
    if abs(latitude) > 90 or abs(longitude) > 180:
        return None
    altitude = float(match["alt"]) if match["alt"] else None
    return Point(latitude, longitude, altitude)


def _degrees(part: str, degree_digits: int) -> float | None:
    """``±DD[MM[SS]][.f]`` as signed decimal degrees; None if minutes or seconds ≥ 60."""
    sign = -1.0 if part[0] == "-" else 1.0
    whole, _, fraction = part[1:].partition(".")
    fraction = f".{fraction}" if fraction else ""
    extra = len(whole) - degree_digits  # 0: degrees, 2: minutes, 4: minutes and seconds
    if extra == 0:
        return sign * float(whole + fraction)
    degrees = int(whole[:degree_digits])
    if extra == 2:
        minutes = float(whole[degree_digits:] + fraction)
        seconds = 0.0
    else:
        minutes = float(whole[degree_digits : degree_digits + 2])
        seconds = float(whole[degree_digits + 2 :] + fraction)
    if minutes >= 60 or seconds >= 60:
        return None
    return sign * (degrees + minutes / 60 + seconds / 3600)
