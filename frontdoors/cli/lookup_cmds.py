"""Looking things up: ``status`` (the station), ``find`` (a search) and ``show``
(one item).

The documents come from :mod:`verify.documents` (the API serves the same
facts); ``--json`` prints them as they are, and a person gets them through
:mod:`frontdoors.cli.render`: sections and tables, station time with the zone.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DatabaseError

from archive.custody import cli_actor, record_event
from archive.db import Database
from archive.health import classify, daemon_section
from archive.queries import EvidenceFilter
from frontdoors.cli import render
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    circle_option,
    console,
    emit_json,
    instant_option,
    settings_from,
)
from frontdoors.cli.stations_cmds import show_stations
from verify.documents import find_item, find_items, show_document, status_document

#: the status sections printed first, in this order, by their own rules
_STATUS_FIRST = (
    "station",
    "jobs",
    "evidence",
    "queue",
    "problems",
    "bad_timestamps",
    "faults",
    "recorder_hashes",
)


@app.command()
def status(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    stations: Annotated[
        bool, typer.Option("--stations", help="every station's heartbeat (silent ones flagged)")
    ] = False,
) -> None:
    """Items by state, the queue, last errors, last fixity and checkpoint."""
    if stations:
        show_stations(config, as_json)
        return
    settings = settings_from(config)
    document: dict[str, Any] = {"station": settings.station.name}
    daemon = daemon_section(settings.data_dir)
    catalog_failed = False
    try:
        db = Database(settings.catalog_url)
        try:
            with db.session() as session:
                document.update(status_document(settings, session, daemon))
        finally:
            db.dispose()
    except DatabaseError as exc:  # a damaged or unreachable catalog: say so, show the rest
        catalog_failed = True
        document["catalog_error"] = classify(exc)[1]
    document.update(daemon)
    if as_json:
        emit_json(document)
        if catalog_failed:
            raise typer.Exit(EXIT_FAILED)
        return
    zone = settings.station.tzinfo
    console.print(f"[bold]station {escape(document['station'])}[/]")
    if catalog_failed:
        console.print(f"[red]{escape(document['catalog_error'])}[/]", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    console.print(_status_view(document, zone), highlight=False)


def _status_view(document: dict[str, Any], zone: tzinfo) -> RenderableType:
    parts: list[RenderableType | None] = []
    for fault in document.get("faults") or []:
        parts.append(Text.assemble(("fault ", "red"), f"{fault['where']}: {fault['message']}"))
    parts.append(render.section("jobs", document["jobs"] or {"none": 0}, zone))
    parts.append(render.section("evidence", document["evidence"] or {"none": 0}, zone))
    queue = document["queue"]
    if queue:
        parts.append(
            render.rows(
                queue[:20],
                zone,
                ["state", "file", "attempts", "error", "waiting_for"],
                title=f"queue ({len(queue)})",
                whole=["file"],
            )
        )
    if document["problems"]:
        parts.append(
            render.rows(
                document["problems"],
                zone,
                ["state", "file", "error"],
                title="problems",
                whole=["file"],
            )
        )
    bad = document.get("bad_timestamps") or {}
    if bad.get("items") or bad.get("in_pipeline"):
        parts.append(
            Text.assemble(
                ("bad_timestamp", "red"),
                f" (file-name time refused): {bad['items']} archived, "
                f"{len(bad['in_pipeline'])} in the pipeline",
            )
        )
        if bad.get("recent"):
            parts.append(
                render.rows(
                    bad["recent"],
                    zone,
                    ["evidence_id", "file", "reason", "time_source"],
                    whole=["evidence_id", "file"],
                )
            )
        if bad["in_pipeline"]:
            parts.append(render.rows(bad["in_pipeline"], zone, ["state", "file"], whole=["file"]))
    recorder = document.get("recorder_hashes") or {}
    if recorder.get("matched_items") or recorder.get("mismatched_items"):
        parts.append(
            Text.assemble(
                ("recorder hashes ", "bold"),
                f"{recorder['matched_items']} item(s) matched, ",
                (f"{recorder['mismatched_items']} mismatched", "red")
                if recorder["mismatched_items"]
                else "0 mismatched",
            )
        )
    # each held dock copy on a line of its own: where it is kept and why
    for held in recorder.get("held") or []:
        parts.append(
            Text.assemble(
                ("held ", "red"),
                f"{held['file']} ({held['evidence_id']}) kept at {held['kept_at']}: "
                f"{held['reason']}",
            )
        )
    # each unresolved fixity problem on a line of its own, above the nested sections:
    # an operator must see which check failed on which item without a wide terminal
    for item in (document.get("fixity") or {}).get("unresolved") or []:
        for problem in item.get("problems") or []:
            parts.append(
                Text.assemble(
                    ("fixity FAILED ", "red"),
                    f"{item['evidence_id']}: [{problem.get('check')}] "
                    f"{problem.get('object')}: {problem.get('message')}",
                )
            )
    for name, value in document.items():
        if name not in _STATUS_FIRST:
            parts.append(render.section(name, value, zone))
    return render.group(*parts)


@app.command()
def find(
    case: Annotated[str | None, typer.Option(help="case id")] = None,
    officer: Annotated[str | None, typer.Option(help="police number (警号)")] = None,
    device: Annotated[str | None, typer.Option(help="recorder serial")] = None,
    unit: Annotated[str | None, typer.Option(help="unit code")] = None,
    sha256: Annotated[str | None, typer.Option(help="SHA-256 of the original")] = None,
    since: Annotated[str | None, typer.Option(help="recorded at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="recorded before (ISO 8601)")] = None,
    recorded_since: Annotated[
        str | None,
        typer.Option(help="recorded at or after by the file's own clock (a media tag)"),
    ] = None,
    recorded_until: Annotated[
        str | None, typer.Option(help="recorded before by the file's own clock")
    ] = None,
    near: Annotated[
        str | None, typer.Option(help="LAT,LON: recorded within --radius of this point")
    ] = None,
    radius: Annotated[float | None, typer.Option(help="metres around --near")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 1000,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Query the catalog."""
    settings = settings_from(config)
    filters = EvidenceFilter(
        officer=officer,
        device=device,
        unit=unit,
        sha256=sha256,
        since=instant_option(since, "--since"),
        until=instant_option(until, "--until"),
        recorded_since=instant_option(recorded_since, "--recorded-since"),
        recorded_until=instant_option(recorded_until, "--recorded-until"),
        near=circle_option(near, radius),
    )
    db = Database(settings.catalog_url)
    with db.session() as session:
        items = find_items(session, filters, case, limit)
        asked = {"case": case, **filters.to_dict(), "limit": limit}
        # a search is a custody event: who asked for what (not what was found)
        record_event(
            session,
            "searched",
            actor=cli_actor(),
            evidence_id=None,
            details={
                "via": "cli",
                "scope": {"all_units": True},
                "filters": {k: v for k, v in asked.items() if v is not None},
            },
        )
    db.dispose()
    if as_json:
        emit_json({"items": items, "count": len(items)})
        return
    out = Console()
    out.print(found_table(items, settings.station.tzinfo, out.width))


#: ``find``'s columns, most wanted first; narrower terminals lose them from the end
#: (the evidence id is never dropped nor wrapped: it is what a person copies)
FIND_COLUMNS = ("evidence_id", "recorded_start", "officer", "file_name", "device", "size")


def found_table(items: list[dict[str, Any]], zone: tzinfo, width: int) -> Table:
    """The search results in ``width`` columns: whole ids, the other columns
    dropped from the least wanted until the rest fits, the file name folded."""
    shown = [
        {**item, "recorded_start": render.scalar(item["recorded_start"], zone)} for item in items
    ]
    columns = list(FIND_COLUMNS)
    while len(columns) > 1 and _needed(shown, columns) > width:
        columns.pop()
    table = render.rows(shown, zone, columns, whole=[c for c in columns if c != "file_name"])
    table.columns[0].min_width = max((len(i["evidence_id"]) for i in items), default=0)
    return table


def _needed(items: list[dict[str, Any]], columns: list[str]) -> int:
    """Width a table needs with the rest whole and ``file_name`` folded to as
    little as 12 characters (a name wraps; an id must not)."""
    total = 0
    for column in columns:
        widest = max([len(render.label(column))] + [len(str(i.get(column))) for i in items])
        total += (min(widest, 12) if column == "file_name" else widest) + 2
    return total


@app.command()
def show(
    evidence_id: Annotated[str, typer.Argument(help="evidence id (ev-…) or a SHA-256")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One item: hashes, source, manifests, derivatives, links, retention, fixity, events."""
    settings = settings_from(config)
    db = Database(settings.catalog_url)
    with db.session() as session:
        evidence = find_item(session, evidence_id)
        if evidence is None:
            console.print(f"[red]no evidence {escape(evidence_id)}[/]")
            raise typer.Exit(EXIT_FAILED)
        document = show_document(settings, session, evidence)
    db.dispose()
    if as_json:
        emit_json(document)
        return
    console.print(item_view(document, settings.station.tzinfo), highlight=False)


#: ``show``'s sections: title and the document's keys in it
ITEM_SECTIONS = (
    (
        "original",
        (
            "sha256",
            "size",
            "media_type",
            "file_name",
            "original_key",
            "original_version_id",
            "original_checksum",
        ),
    ),
    (
        "source",
        (
            "station",
            "dock",
            "source_path",
            "device",
            "officer",
            "unit",
            "flags",
            "recorded_start",
            "recorded_end",
            "time_source",
            "time_problem",
            "file_mtime",
            "media_created",
        ),
    ),
    (
        "seal",
        ("state", "manifest_key", "manifest_version_id", "keyid", "ingested_at", "sealed_at"),
    ),
    (
        "retention",
        ("category", "effective_category", "retain_until", "lock_mode", "legal_hold"),
    ),
)


def metadata_view(media: dict[str, Any]) -> dict[str, Any]:
    """The ``media`` section for a person: the point as ``LAT, LON`` in full
    precision (``render`` would round degrees to six digits), the rest as it is."""
    view = {k: v for k, v in media.items() if k != "location"}
    location = media.get("location")
    if isinstance(location, dict):
        point = f"{location.get('latitude')}, {location.get('longitude')}"
        if location.get("altitude") is not None:
            point += f", {location['altitude']} m"
        view["location"] = f"{point} (from {location.get('tag')})"
    return view


def item_view(document: dict[str, Any], zone: tzinfo) -> RenderableType:
    """``show`` for a person: one section per concern, tables for lists."""
    parts: list[RenderableType | None] = [
        Text.assemble((document["evidence_id"], "bold"), "  ", document["file_name"] or "")
    ]
    for title, keys in ITEM_SECTIONS:
        parts.append(render.fields(document, zone, keys, title=title))
    if document.get("media"):
        parts.append(render.fields(metadata_view(document["media"]), zone, title="metadata"))
    probe = document.get("probe") or {}
    if probe:
        parts.append(render.fields(probe, zone, title="media"))
    parts.append(
        render.rows(document["cases"], zone, title="case links")
        if document["cases"]
        else render.section("case links", None, zone)
    )
    copies = document["derivatives"]
    parts.append(
        render.rows(
            copies,
            zone,
            ["id", "state", "action", "sha256", "size", "attempts", "error", "updated_at"],
            title="playback copies",
        )
        if copies
        else render.section("playback copies", None, zone)
    )
    parts.append(render.section("fixity", document["fixity"], zone))
    parts.append(render.section("disposition", document["disposition"], zone))
    if document["sightings"]:
        parts.append(
            render.rows(
                [{**s, **(s["details"] or {})} for s in document["sightings"]],
                zone,
                ["at", "path", "station", "dock"],
                title="sightings",
            )
        )
    parts.append(
        render.rows(document["events"], zone, ["seq", "at", "kind", "actor"], title="events")
    )
    return render.group(*parts)
