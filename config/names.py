"""Recorder file-name layouts: the named profiles a dock can use, and the rules
a file-name pattern must follow.

Every county has several recorder brands, and each names its files its own
way. A *profile* is one layout: a regular expression with named groups
(matched against the path relative to the dock root, so folders count) plus a
time rule (which zone the recorder clock runs in, and a ``strptime`` format
for anything the groups below cannot read). A dock picks a profile with
``name_profile`` or gives its own ``name_pattern``; operators add their own
profiles under ``[names.profiles.<name>]``.

Named groups:

- who and what: ``device``, ``officer``, ``unit``, ``seq``, ``flag``;
- the start time, one of three ways: ``start`` (the whole time, digits with or
  without the separators ``- _ . : space T``, optionally ending in ``Z`` or an
  offset); ``date`` + ``time``; or ``year month day hour minute [second]``
  (``date`` may come with ``hour minute second``, ``year month day`` with
  ``time``). Any of them may sit in a folder name: the pattern sees the path;
- the end time: ``end`` (like ``start``), or ``end_time`` (clock time on the
  start's day, the next day when it is earlier) with an optional ``end_date``.

This module is data and validation only (no parsing of names): the parser is
``ingest/identify.py``; ``strongroom names profiles`` prints this library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: groups that say who recorded, on what, and how the file is marked
IDENTITY_GROUPS = frozenset({"device", "officer", "unit", "seq", "flag"})
#: groups that carry the start time, split or whole
SPLIT_DATE_GROUPS = ("year", "month", "day")
SPLIT_TIME_GROUPS = ("hour", "minute", "second")
TIME_GROUPS = frozenset(
    {"start", "end", "date", "time", "end_date", "end_time", *SPLIT_DATE_GROUPS, *SPLIT_TIME_GROUPS}
)
NAME_PATTERN_GROUPS = IDENTITY_GROUPS | TIME_GROUPS


@dataclass(frozen=True)
class NameProfile:
    """One recorder naming layout: pattern + time rule, with where it comes from."""

    name: str
    pattern: str
    description: str
    #: zone of the clock that wrote the name; None: the dock's, else the station's
    timezone: str | None = None
    #: strptime format for ``start``/``end`` (and ``date time``) when digits alone will not do
    time_format: str | None = None
    #: the public documents the layout was taken from
    sources: tuple[str, ...] = ()
    examples: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "pattern": self.pattern,
            "timezone": self.timezone,
            "time_format": self.time_format,
            "sources": list(self.sources),
            "examples": list(self.examples),
        }


#: the flag a recorder writes for "marked important" (``…_0001_IMP.MP4``): such a
#: file goes to ``[retention] important_category``
IMPORTANT_FLAG = "IMP"

#: the end of every built-in pattern: an optional sequence number, an optional
#: marker such as ``IMP`` (marked important on the recorder; any letters, 重要
#: too), the extension
_TAIL = r"(?:[_-](?P<seq>\d{1,6}))?(?:[_-](?P<flag>[^\W\d_]+))?\.[A-Za-z0-9]+$"

#: GA/T 947-style recorder file names: ``ABC1234_012345_20260301083015_0001_IMP.MP4``
#: (7-character device serial, 6-digit police number, start time, optional
#: sequence, optional ``IMP`` = marked important). Unchanged since the first
#: release: a dock without ``name_profile`` or ``name_pattern`` uses it.
DEFAULT_NAME_PATTERN = (
    r"(?:^|/)(?P<device>[A-Za-z0-9]{7})_(?P<officer>\d{6})_(?P<start>\d{14})"
    r"(?:_(?P<end>\d{14}))?(?:_(?P<seq>\d{1,6}))?(?:_(?P<flag>[A-Za-z]+))?\.[A-Za-z0-9]+$"
)

BUILTIN_PROFILES: dict[str, NameProfile] = {
    profile.name: profile
    for profile in (
        NameProfile(
            name="gat947",
            pattern=DEFAULT_NAME_PATTERN,
            description="GA/T 947 fields: DEVICE7_OFFICER6_YYYYMMDDhhmmss[_END][_SEQ][_IMP].ext",
            sources=(
                "GA/T 947 单警执法视音频记录系统 (947.1-2015 基本要求 … 947.4-2015 数据接口): "
                "7-character product serial, 6-digit police number, 12-digit unit code, "
                "YYYYMMDDhhmmss times (see shared/seed/README.md; scope at "
                "https://www.chinesestandards.org/standards/GA/T%20947-2011)",
            ),
            examples=(
                "ABC1234_012345_20260301083015_0001.MP4",
                "2026-03-01/ABC1234_012345_20260301083015_20260301084015_0002_IMP.MP4",
            ),
        ),
        NameProfile(
            name="ymd_hms",
            pattern=(
                r"(?:^|/)(?:(?P<device>[A-Za-z][A-Za-z0-9-]*)_)?"
                r"(?P<date>\d{8}|\d{6})[_-](?P<time>\d{6})(?:[_-](?P<officer>\d{6}))?" + _TAIL
            ),
            description="[DEVICE_]YYYYMMDD_hhmmss[_OFFICER6][_SEQ][_FLAG].ext (date and time "
            "as two digit groups; YYMMDD is 20YY)",
            sources=(
                "BlackVue recorders name files YYYYMMDD_HHMMSS_<mode>.mp4 "
                "(github.com/tfindlay-au/BlackvueDownloader README.md)",
                "Nextbase: YYMMDD_hhmmss_XXX_CQ.MP4, the same two groups with a 2-digit year "
                "(nextbase.zendesk.com/hc/en-au/articles/21362518328349-File-Names)",
            ),
            examples=(
                "20260301_083015_012345.MP4",
                "DSJA8_20260301-083015_0003_IMP.mp4",
                "240915_143027_001_FH.MP4",
            ),
        ),
        NameProfile(
            name="y_md_hms",
            pattern=(
                r"(?:^|/)(?:(?P<device>[A-Za-z0-9][A-Za-z0-9_-]*?)_)??(?:(?P<officer>\d{6})_)?"
                r"(?P<year>\d{4})_(?P<month>\d{2})(?P<day>\d{2})_"
                r"(?P<hour>\d{2})(?P<minute>\d{2})(?P<second>\d{2})" + _TAIL
            ),
            description="[DEVICE_][OFFICER6_]YYYY_MMDD_hhmmss[_NNN][_FLAG].ext (Novatek-style "
            "recorder firmware)",
            sources=(
                "SJCAM / Novatek-firmware cameras write YYYY_MMDD_HHMMSS_NNN.MP4 "
                "(github.com/sora8964/BadAssKickerTW dateFormatting.js parseSJCamFilename)",
            ),
            examples=("DSJ_A8_012345_2026_0301_083015.MP4", "2026_0301_083015_001.MP4"),
        ),
        NameProfile(
            name="iso_local",
            pattern=(
                r"(?:^|/)(?P<start>\d{4}-\d{2}-\d{2}[ _T]\d{2}[-.:]\d{2}[-.:]\d{2})"
                r"(?:[ _-](?P<device>[A-Za-z][A-Za-z0-9-]*?))?(?:[ _-](?P<officer>\d{6}))?"
                r"(?:[ _-](?P<flag>[^\W\d_]+))?\.[A-Za-z0-9]+$"
            ),
            description="YYYY-MM-DD hh.mm.ss [DEVICE] [OFFICER6] [FLAG].ext (separated date "
            "and time first, any of - _ . : space T)",
            sources=(
                "Tesla dashcam: YYYY-MM-DD_HH-MM-SS-<camera>.mp4 in YYYY-MM-DD folders "
                "(github.com/mulka/teslausb-download CLAUDE.md)",
                "Havis-Shields PT-VIDEO-MDVR manual p.25: <name>_Mmm.dd.yyyy_hh.mm.ss.avi in a "
                "folder per day (manualsdump.com/en/manuals/havis-shields-pt-video-mdvr/189973/25)",
            ),
            examples=("2026-03-01 08.30.15 DSJ-A8.mp4", "2026-03-01_08-30-15-front.mp4"),
        ),
        NameProfile(
            name="day_folder",
            pattern=(
                r"(?:^|/)(?:(?P<unit>\d{12})/)?(?:(?P<officer>\d{6})/)?"
                r"(?P<date>\d{4}-?\d{2}-?\d{2})/(?:(?P<device>[A-Za-z][A-Za-z0-9-]*)_)?"
                r"(?P<time>\d{6})" + _TAIL
            ),
            description="[UNIT12/][OFFICER6/]YYYYMMDD/[DEVICE_]hhmmss[_SEQ][_FLAG].ext (a "
            "folder per day, the clock time in the file name)",
            sources=(
                "Panasonic HomeHawk manual: recordings in folders by recording date, file "
                "names ending in the start time hhmmss "
                "(av.jpn.support.panasonic.com/support/global/cs/homehawk/manual2/us/en/2/"
                "pages/id_oi01_2111.html)",
                "DIGIOP EI-series manual appendix E: daily directory 20110601 holding "
                "hhmmss-named files",
            ),
            examples=("20260301/083015_0001.MP4", "330100000000/012345/2026-03-01/083015.MP4"),
        ),
        NameProfile(
            name="utc_z",
            pattern=(
                r"(?:^|/)(?:(?P<device>[A-Za-z0-9][A-Za-z0-9_-]*?)_)?"
                r"(?P<start>\d{8}T\d{6}Z)" + _TAIL
            ),
            timezone="UTC",
            description="[DEVICE_]YYYYMMDDThhmmssZ[_SEQ][_FLAG].ext (ISO 8601 basic, UTC)",
            sources=(
                "Axon cameras stamp video in UTC with the ISO 8601 Z designator "
                "(help.axon.com/hc/en-us/articles/115000552373-Time-Date-is-off-on-videos)",
                "Canon VB-S30D manual p.151: downloaded file names carry the recording start "
                "time in UTC (manualshelf.com/manual/canon/vb-s30d/operation-manual-english/"
                "page-151.html)",
            ),
            examples=("X81234567_20260301T003015Z.mp4", "20260301T003015Z_0002.mp4"),
        ),
    )
}


def check_name_pattern(value: str) -> str:
    """A pattern's named groups must be ours and its time groups must make one time."""
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    groups = set(compiled.groupindex)
    unknown = groups - NAME_PATTERN_GROUPS
    if unknown:
        raise ValueError(
            f"unknown named groups {sorted(unknown)}; allowed: {sorted(NAME_PATTERN_GROUPS)}"
        )
    has_date = "date" in groups or all(g in groups for g in SPLIT_DATE_GROUPS)
    has_time = "time" in groups or all(g in groups for g in ("hour", "minute"))
    split = groups & {"date", "time", *SPLIT_DATE_GROUPS, *SPLIT_TIME_GROUPS}
    if "start" in groups and split:
        raise ValueError(f"use either a start group or split groups, not both ({sorted(split)})")
    if split and not (has_date and has_time):
        raise ValueError(
            f"split time groups {sorted(split)} do not make a whole time: need date or "
            "year+month+day, and time or hour+minute"
        )
    if ("end_time" in groups or "end_date" in groups) and "end" in groups:
        raise ValueError("use either an end group or end_date/end_time, not both")
    if "end_date" in groups and "end_time" not in groups:
        raise ValueError("end_date needs an end_time group")
    return value


def check_time_format(value: str | None) -> str | None:
    """A strptime format must name at least a year, month and day."""
    if value is None:
        return value
    missing = [d for d in ("%Y", "%m", "%d") if d not in value and not _has_alternative(d, value)]
    if missing:
        raise ValueError(f"time_format {value!r} lacks {' '.join(missing)}")
    return value


def _has_alternative(directive: str, fmt: str) -> bool:
    alternatives = {"%Y": ("%y",), "%m": ("%b", "%B"), "%d": ("%j",)}
    return any(a in fmt for a in alternatives.get(directive, ()))
