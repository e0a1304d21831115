"""Statistics: ``report`` – counts, hours, bytes, archive delay and deadline
compliance, as a table, JSON, CSV or a chart."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from archive.db import Database
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    ConfigOpt,
    JsonOpt,
    emit_json,
    instant_option,
    settings_from,
)
from verify.reports import build_report, draw_chart, report_csv, report_table


class By(StrEnum):
    officer = "officer"
    device = "device"
    unit = "unit"
    station = "station"
    day = "day"


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def report(
    from_: Annotated[
        str | None, typer.Option("--from", help="date or ISO time (station time zone)")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="exclusive end, like --from")] = None,
    by: Annotated[By | None, typer.Option("--by", help="group rows by")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv")] = Format.table,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="draw daily volume and delay to this PNG")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts, recorded hours, bytes, archive delay (median, p95) and deadline
    compliance, per officer / device / unit / station / day."""
    settings = settings_from(config)  # the catalog only: no store, no key needed
    tz = settings.station.tzinfo
    start, end = instant_option(from_, "--from", tz), instant_option(to, "--to", tz)
    db = Database(settings.catalog_url)
    try:
        with db.session() as session:
            document = build_report(
                session, settings, start=start, end=end, by=by.value if by else None
            )
    finally:
        db.dispose()
    if chart is not None:
        draw_chart(document, chart)
        document["chart"] = str(chart)
    if as_json or fmt is Format.json:
        emit_json(document)
    elif fmt is Format.csv:
        typer.echo(report_csv(document), nl=False)
    else:
        Console().print(report_table(document))
