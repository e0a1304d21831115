"""Turning the JSON documents of :mod:`verify.documents` into something a person
reads: sections and tables (rich), times in station time with the zone's name,
"–" for nothing, "yes"/"no" for flags – never a Python repr or raw JSON.

Any document renders: a dict is a section of labelled rows, a list of dicts a
table, a dict of numbers one line ("sealed 2, queued 1"). The commands choose
the order and the titles; what a value looks like is decided here, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from archive.instants import station_time

_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
NOTHING = "–"


def label(key: str) -> str:
    """``retain_until`` → ``retain until``."""
    return key.replace("_", " ")


def scalar(value: Any, zone: tzinfo) -> str:
    """One value as a person reads it (times in the station's zone)."""
    if value is None or value == "" or value == []:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_TIME.match(value)):
        return station_time(value, zone)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{label(str(k))} {scalar(v, zone)}" for k, v in value.items()) or NOTHING
    if isinstance(value, (list, tuple)):
        return ", ".join(scalar(item, zone) for item in value)
    return str(value)


def _flat(value: Any) -> bool:
    """Fits on one line: a scalar, a list of scalars, a dict of scalars."""
    if isinstance(value, Mapping):
        return all(not isinstance(v, (Mapping, list, tuple)) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(not isinstance(v, (Mapping, list, tuple)) for v in value)
    return True


def rows(
    items: Sequence[Mapping[str, Any]],
    zone: tzinfo,
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    whole: Iterable[str] = (),
) -> Table:
    """A table of dicts; ``columns`` picks and orders them (default: every key
    seen). Columns in ``whole`` never wrap (ids a person copies)."""
    if columns is None:
        seen: dict[str, None] = {}
        for item in items:
            seen.update(dict.fromkeys(item))
        columns = list(seen)
    keep = set(whole)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in columns:
        table.add_column(label(column), no_wrap=column in keep, overflow="fold")
    for item in items:
        table.add_row(*(cell(item.get(column), zone) for column in columns))
    return table


def cell(value: Any, zone: tzinfo) -> RenderableType:
    """A table cell: a nested table for a list of dicts, else one line of text."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
        return rows(value, zone)
    if isinstance(value, Mapping) and not _flat(value):
        return fields(value, zone)
    return Text(scalar(value, zone))


def fields(
    document: Mapping[str, Any],
    zone: tzinfo,
    keys: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Table:
    """A section: one labelled row per key (``keys`` picks and orders them)."""
    table = Table.grid(padding=(0, 2))
    table.title = title
    table.title_justify = "left"
    table.title_style = "bold"
    table.add_column(style="bold", no_wrap=True, justify="right")
    table.add_column(overflow="fold")
    for key in keys if keys is not None else list(document):
        if key in document:
            table.add_row(label(key), cell(document[key], zone))
    return table


def section(title: str, value: Any, zone: tzinfo) -> RenderableType:
    """Any document part under a title (``archive_deadline`` → ``archive deadline``)."""
    title = label(title)
    if isinstance(value, Mapping):
        if _flat(value):
            return Text.assemble((title, "bold"), "  ", scalar(value, zone))
        return fields(value, zone, title=title)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
        return rows(value, zone, title=title)
    return Text.assemble((title, "bold"), "  ", scalar(value, zone))


def group(*parts: RenderableType | None) -> Group:
    """Sections separated by a blank line (``None`` parts are left out)."""
    spaced: list[RenderableType] = []
    for part in parts:
        if part is None:
            continue
        if spaced:
            spaced.append(Text(""))
        spaced.append(part)
    return Group(*spaced)
