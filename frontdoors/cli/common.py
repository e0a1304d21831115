"""What every command shares: options, loading settings, opening the archive,
printing JSON, and turning errors into exit codes (2 = configuration,
1 = a check failed)."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from archive.context import Archive
from archive.db import CatalogUnavailable
from archive.geo import Circle, check_radius, parse_point
from archive.health import startup_check
from archive.instants import parse_instant
from config.errors import StrongroomError
from config.settings import ConfigError, Settings, default_config_path, load_settings

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="config file (default: $STRONGROOM_CONFIG, then ./strongroom.toml)",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
#: the boxed store's users (``local-store``, ``local-cluster``)
StoreUserOpt = Annotated[
    str | None,
    typer.Option(help="as root: the OS user weed runs as (default strongroom-store)"),
]
CredentialsOwnerOpt = Annotated[
    str | None,
    typer.Option(help="as root: the daemon's OS user, owner of credentials.json"),
]

console = Console(stderr=True)
log = logging.getLogger("strongroom.cli")
EXIT_CONFIG = 2
EXIT_FAILED = 1


def settings_from(config: Path | None) -> Settings:
    try:
        return load_settings(config or default_config_path())
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(EXIT_CONFIG) from None


@contextmanager
def open_archive(
    config: Path | None,
    *,
    self_check: bool = False,
    wait_for_catalog: threading.Event | None = None,
) -> Iterator[Archive]:
    """Open the archive; exit 2 on a configuration error.

    ``self_check`` (``run``, ``serve``, ``ingest``): first make sure there is
    room and the catalog is sound, else refuse in one line (exit 1). With
    ``wait_for_catalog`` (the daemon), a catalog that cannot be reached yet is
    waited for, with back-off, until it answers or the event is set."""
    settings = settings_from(config)
    if self_check:
        refusal, _check = startup_check(settings)
        if refusal is not None:
            console.print(f"[bold red]{escape(refusal)}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED)
    delay = 1.0
    while True:
        try:
            archive = Archive.open(settings)
            break
        except CatalogUnavailable as exc:
            if wait_for_catalog is None or not exc.retryable:
                raise config_error(exc) from None
            log.warning("%s; retrying in %.0fs", exc, delay)
            if wait_for_catalog.wait(delay):
                raise typer.Exit(0) from None
            delay = min(delay * 2, 30.0)
        except ConfigError as exc:
            raise config_error(exc) from None
    try:
        yield archive
    finally:
        archive.close()


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_problems(problems: Iterable[Any]) -> None:
    """One red line per problem of a check (anything with check, subject, message)."""
    for problem in problems:
        console.print(
            "[red]PROBLEM[/] " + escape(f"[{problem.check}] {problem.subject}: {problem.message}"),
            highlight=False,
            soft_wrap=True,
        )


def exit_code(exc: StrongroomError) -> int:
    """The exit code of an error: 2 for a configuration that cannot be used, else 1."""
    return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED


def config_error(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]configuration error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_CONFIG)


def instant_option(text: str | None, option: str, zone: tzinfo = UTC) -> datetime | None:
    """A time typed on the command line: an ISO date (its midnight) or date-time,
    read by :func:`archive.instants.parse_instant` as the API reads its query
    times; without an offset it is in ``zone`` (UTC for ``find``, the station's
    zone for ``report``, as documented for each). A bad one is a usage error."""
    try:
        return None if text is None else parse_instant(text, zone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def circle_option(near: str | None, radius: float | None) -> Circle | None:
    """``--near LAT,LON --radius M`` read by :mod:`archive.geo` (as the API reads
    ``near``/``radius``); one without the other, or a bad value, is a usage error."""
    if near is None and radius is None:
        return None
    if near is None or radius is None:
        raise typer.BadParameter("--near and --radius go together", param_hint="--near")
    try:
        latitude, longitude = parse_point(near)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--near") from None
    try:
        return Circle(latitude, longitude, check_radius(radius))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--radius") from None
