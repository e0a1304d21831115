"""What a recording says about itself: the ``media`` section of its manifest.

Read from the ffprobe report the seal already asks for (``ingest.probe``),
so it costs no second run of ffprobe: container and stream tags give the
recording's own start time, the device (make, model, serial, software) and
the place (QuickTime ``©xyz`` – ffprobe's ``location`` – and the ISO 6709
location tags of Apple and Android, read by :mod:`ingest.iso6709`).

GPS *tracks* (GoPro GPMF ``gpmd``, Google ``camm``, vendor data streams) are
detected and named in ``gps_tracks`` but not decoded: their formats are the
vendors' own. The one point stored is the file's location tag, which
recorders write for where the recording started.

The report comes from a file anyone could have made: every value is checked,
bounded and cleaned of control characters, and :func:`media_metadata` never
raises – a report it cannot read gives None and the original is archived
without the section (the pipeline logs it, naming the file).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from archive.instants import iso_z
from archive.manifests import JSONObject
from archive.recorded_time import plausible_media_time
from ingest.iso6709 import parse_iso6709

log = logging.getLogger("strongroom.metadata")

#: a tag value longer than this is cut (a hostile file may carry megabytes)
MAX_VALUE = 200
#: tags looked at per container or stream; the rest are ignored
MAX_TAGS = 200
#: time tags, most trusted first: Apple's carries the local zone and the start
TIME_TAGS = ("com.apple.quicktime.creationdate", "creation_time", "date")
#: location tags, most specific first (``location`` is QuickTime's ``©xyz``)
LOCATION_TAGS = (
    "com.apple.quicktime.location.iso6709",
    "com.android.location.iso6709",
    "location",
    "location-eng",
)
DEVICE_TAGS: dict[str, tuple[str, ...]] = {
    "make": ("com.apple.quicktime.make", "com.android.manufacturer", "make", "manufacturer"),
    "model": ("com.apple.quicktime.model", "com.android.model", "model"),
    "serial": (
        "com.apple.quicktime.camera.identifier",
        "serial_number",
        "serialnumber",
        "serial",
        "device_serial",
        "camera_serial_number",
        "com.android.serial",
    ),
    "software": (
        "com.apple.quicktime.software",
        "com.android.version",
        "software",
        "firmware",
        "encoder",
    ),
}
#: any other tag naming a serial number counts as one (vendors spell it many ways)
_SERIALISH = re.compile(r"serial|(^|[._\-])sn$", re.IGNORECASE)
#: data or subtitle streams that carry a GPS track, by codec tag or handler name
_TRACK_TAGS = frozenset({"gpmd", "camm", "gps ", "gpsd", "nmea"})
_TRACK_HANDLER = re.compile(r"gps|gpmf|gopro met|camm|nmea|location", re.IGNORECASE)


def media_metadata(
    report: Mapping[str, Any],
    *,
    now: datetime | None = None,
    future_skew: timedelta = timedelta(hours=1),
    earliest_year: int = 2000,
) -> JSONObject | None:
    """The ``media`` section for an ffprobe report (``-show_format -show_streams``),
    or None if the report cannot be read. Keys are present only when known."""
    try:
        return _metadata(report, now, future_skew, earliest_year)
    except Exception:  # a hostile report must not stop the seal
        log.warning("media metadata could not be read from the probe report", exc_info=True)
        return None


def _metadata(
    report: Mapping[str, Any], now: datetime | None, future_skew: timedelta, earliest_year: int
) -> JSONObject:
    raw_format = report.get("format")
    fmt: Mapping[str, Any] = raw_format if isinstance(raw_format, Mapping) else {}
    raw_streams = report.get("streams")
    streams = (
        [s for s in raw_streams if isinstance(s, Mapping)][:MAX_TAGS]
        if isinstance(raw_streams, list)
        else []
    )
    tags = _tags([_tag_map(fmt), *(_tag_map(s) for s in streams)])
    media: JSONObject = {}

    for name in TIME_TAGS:
        if name in tags:
            when, problem = plausible_media_time(
                tags[name], name, now=now, future_skew=future_skew, earliest_year=earliest_year
            )
            if when is not None:
                media["recorded_at"] = iso_z(when)
                media["recorded_at_tag"] = name
                break
            if problem and "recorded_at_problem" not in media:
                media["recorded_at_problem"] = _clean(problem)
    if "recorded_at" in media:
        media.pop("recorded_at_problem", None)

    duration = _duration(fmt.get("duration"))
    if duration is not None:
        media["duration"] = duration

    for field, names in DEVICE_TAGS.items():
        for name in names:
            if tags.get(name):
                media[field] = tags[name]
                break
    if "serial" not in media:
        for name, text in tags.items():
            if _SERIALISH.search(name) and text:
                media["serial"] = text
                break

    for name in LOCATION_TAGS:
        if name not in tags:
            continue
        point = parse_iso6709(tags[name])
        if point is None:
            media.setdefault("location_problem", f"{name} {tags[name]!r} is not an ISO 6709 point")
            continue
        if point.latitude == 0 and point.longitude == 0:
            # recorders without a fix write zeros: the Gulf of Guinea is not where they were
            media.setdefault("location_problem", f"{name} {tags[name]!r}: 0,0 (no GPS fix)")
            continue
        location: JSONObject = {
            "latitude": round(point.latitude, 7),
            "longitude": round(point.longitude, 7),
            "tag": name,
            "text": tags[name],
        }
        if point.altitude is not None:
            location["altitude"] = point.altitude
        media["location"] = location
        media.pop("location_problem", None)
        break

    tracks: list[Any] = [_track(s) for s in streams if _is_gps_track(s)]
    if tracks:
        media["gps_tracks"] = tracks
    return media


def _tag_map(section: Mapping[str, Any]) -> dict[str, str]:
    """One container's or stream's tags: keys lower-cased, values cleaned and bounded."""
    raw = section.get("tags")
    if not isinstance(raw, Mapping):
        return {}
    tags: dict[str, str] = {}
    for key, value in list(raw.items())[:MAX_TAGS]:
        if not isinstance(key, str) or len(key) > 100 or not isinstance(value, str | int | float):
            continue
        text = _clean(str(value))
        if text and text != "[0][0][0][0]":
            tags[key.lower()] = text
    return tags


def _tags(sections: list[dict[str, str]]) -> dict[str, str]:
    """Container tags first, then stream tags the container lacks (cameras use both)."""
    merged: dict[str, str] = {}
    for section in sections:
        for key, value in section.items():
            merged.setdefault(key, value)
    return merged


def _clean(text: str) -> str:
    """Printable, trimmed, at most :data:`MAX_VALUE` characters (no terminal escapes)."""
    text = "".join(c for c in text[: MAX_VALUE * 2] if unicodedata.category(c)[0] != "C")
    return text.strip()[:MAX_VALUE]


def _duration(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 6) if 0 <= number < 1e9 else None


def _is_gps_track(stream: Mapping[str, Any]) -> bool:
    if stream.get("codec_type") not in ("data", "subtitle"):
        return False
    tag = str(stream.get("codec_tag_string") or "").lower()
    handler = str((_tag_map(stream)).get("handler_name") or "")
    return tag in _TRACK_TAGS or bool(_TRACK_HANDLER.search(handler))


def _track(stream: Mapping[str, Any]) -> JSONObject:
    """A GPS track named, not decoded (see the module's doc)."""
    index = stream.get("index")
    return {
        "stream": index if isinstance(index, int) and not isinstance(index, bool) else None,
        "codec_tag": _clean(str(stream.get("codec_tag_string") or "")) or None,
        "handler": _tag_map(stream).get("handler_name"),
        "decoded": False,
    }
