"""``strongroom names profiles`` and ``strongroom names test NAME``: the recorder
naming profiles, and what a dock would read from one file name – before a
single file of a new recorder brand reaches the archive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from config.settings import DockSettings, NameRule, Settings
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    emit_json,
    settings_from,
)
from ingest.identify import identify_with

names_app = typer.Typer(
    help="Recorder file names: the naming profiles, and testing a name against a dock.",
    no_args_is_help=True,
)
app.add_typer(names_app, name="names")


@names_app.command("profiles")
def names_profiles(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The naming profiles (built in and [names.profiles.*]) and which docks use which."""
    settings = settings_from(config)
    used: dict[str, list[str]] = {}
    for dock in settings.docks:
        used.setdefault(settings.name_rule(dock).profile, []).append(dock.label)
    profiles = [
        {**profile.to_dict(), "docks": used.get(name, [])}
        for name, profile in settings.name_profiles().items()
    ]
    custom = used.get("custom", [])
    if as_json:
        emit_json(
            {
                "profiles": profiles,
                "docks_with_own_pattern": custom,
                "station_timezone": settings.station.timezone,
                "future_skew_minutes": settings.names.future_skew_minutes,
                "earliest_year": settings.names.earliest_year,
            }
        )
        return
    out = Console()
    table = Table(title="recorder naming profiles", title_justify="left", show_lines=True)
    for column in ("profile", "layout", "zone", "example", "docks"):
        table.add_column(column)
    for profile in profiles:
        table.add_row(
            profile["name"],
            escape(profile["description"]),
            profile["timezone"] or f"station ({settings.station.timezone})",
            escape("\n".join(profile["examples"])),
            ", ".join(profile["docks"]),
        )
    out.print(table)
    if custom:
        out.print(f"docks with their own name_pattern: {', '.join(custom)}", highlight=False)
    out.print(
        "`strongroom names profiles --json` shows each pattern and the documents it comes from; "
        '`strongroom names test "NAME" --dock D` shows what a dock reads from a name.',
        highlight=False,
    )


@names_app.command("test")
def names_test(
    name: Annotated[str, typer.Argument(help="a file name, or a path relative to the dock")],
    dock: Annotated[
        str | None, typer.Option("--dock", "-d", help="read it as this dock does (its label)")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="read it with this profile instead")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a dock reads from NAME: device, officer, unit, times (station time), flags.

    Exit 1 when the name is not recognised or its time is refused (bad_timestamp).
    """
    settings = settings_from(config)
    rule = _rule(settings, dock, profile)
    now = datetime.now(UTC)
    info = identify_with(rule, name.replace("\\", "/"), now=now)
    station = settings.station.tzinfo

    def times(value: datetime | None) -> dict | None:
        if value is None:
            return None
        return {
            "as_written": value.isoformat(),
            "station": value.astimezone(station).isoformat(),
            "utc": value.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    document = {
        "name": name,
        "dock": dock,
        "profile": rule.profile,
        "pattern": rule.pattern,
        "timezone": rule.timezone,
        "time_format": rule.time_format,
        "station_timezone": settings.station.timezone,
        "recognised": "name_unrecognised" not in info.flags,
        "device": info.device,
        "officer": info.officer,
        "unit": info.unit,
        "seq": info.seq,
        "start": times(info.recorded_start),
        "end": times(info.recorded_end),
        "flags": list(info.flags),
        "time_problem": info.time_problem,
    }
    failed = "name_unrecognised" in info.flags or "bad_timestamp" in info.flags
    if as_json:
        emit_json(document)
    else:
        _print_test(document)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _rule(settings: Settings, dock: str | None, profile: str | None) -> NameRule:
    """The rule of ``--dock`` (by label), with ``--profile`` swapped in if given."""
    chosen = None
    if dock is not None:
        chosen = next((d for d in settings.docks if d.label == dock), None)
        if chosen is None:
            labels = ", ".join(d.label for d in settings.docks) or "none configured"
            _refuse(f"no dock {dock!r} (docks: {labels})")
    if profile is not None:
        known = settings.name_profiles()
        if profile not in known:
            _refuse(f"unknown profile {profile!r}; known: {', '.join(sorted(known))}")
        update = {"name_profile": profile, "name_pattern": None}
        chosen = chosen.model_copy(update=update) if chosen else None
        if chosen is None:
            chosen = DockSettings(path=".", name_profile=profile)
    return settings.name_rule(chosen)


def _refuse(message: str) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(EXIT_CONFIG)


def _print_test(doc: dict) -> None:
    out = Console()
    ok = "[green]recognised[/]" if doc["recognised"] else "[red]not recognised[/]"
    out.print(
        f"{escape(doc['name'])}: {ok} by profile [bold]{doc['profile']}[/] "
        f"(recorder clock: {doc['timezone']})",
        highlight=False,
    )
    for key in ("device", "officer", "unit", "seq"):
        out.print(f"  {key:<8} {escape(doc[key] or '–')}", highlight=False)
    for key in ("start", "end"):
        value = doc[key]
        text = (
            "–"
            if value is None
            else f"{value['station']} station time ({doc['station_timezone']}), {value['utc']}"
        )
        out.print(f"  {key:<8} {text}", highlight=False)
    out.print(f"  flags    {', '.join(doc['flags']) or '–'}", highlight=False)
    if doc["time_problem"]:
        out.print(f"  [red]bad_timestamp:[/] {escape(doc['time_problem'])}", highlight=False)
