"""``strongroom status --stations``: every station's last heartbeat, problems first.

Exit 1 when a station is silent or has a problem, so a cron job or a monitoring
check can use the command as it is. The rows are :mod:`archive.heartbeat`'s.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from archive.heartbeat import stations_section
from frontdoors.cli.common import EXIT_FAILED, console, emit_json, open_archive


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:,.0f} MB"


def show_stations(config: Path | None, as_json: bool) -> None:
    with open_archive(config) as archive, archive.db.session() as session:
        stations = stations_section(archive.settings, session)
    troubled = [s for s in stations if s["problems"]]
    if as_json:
        emit_json({"stations": stations, "troubled": [s["station"] for s in troubled]})
    else:
        if not stations:
            console.print("no station has written a heartbeat yet (is a daemon running?)")
        for s in stations:  # one block per station: readable on any terminal width
            seen = f"last seen {s['age_seconds']:.0f} s ago"
            console.print(
                f"[bold]{escape(s['station'])}[/]  "
                + (f"[red]SILENT[/] ({seen})" if s["silent"] else seen)
                + f"  version {escape(s['version'])}  {escape(s['host'])} pid {s['pid']}",
                highlight=False,
            )
            for label, d in s["docks"].items():
                used = d.get("used_ratio")
                console.print(
                    f"  dock {escape(label)}: {_mb(d.get('free_bytes'))} free"
                    + (f" ({used:.0%} used)" if used is not None else ""),
                    highlight=False,
                )
            oldest = s["oldest_unarchived_seconds"]
            latency = s["store_latency_seconds"]
            offset = s["clock_offset_seconds"]
            console.print(
                f"  spool {_mb(s['spool_bytes'])}, queue {s['queue_depth']}, oldest waiting "
                + ("-" if oldest is None else f"{oldest / 60:.1f} min")
                + ", store "
                + ("not answering" if latency is None else f"{latency * 1000:.0f} ms")
                + ", clock "
                + ("unknown" if offset is None else f"{offset:+.1f} s against the store"),
                highlight=False,
            )
            for problem in s["problems"]:
                console.print(f"  [red]problem:[/] {escape(problem)}", highlight=False)
    if troubled:
        raise typer.Exit(EXIT_FAILED)
