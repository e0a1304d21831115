"""The Typer application; command modules register themselves on :data:`app`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ingest.logs import setup_logging

app = typer.Typer(
    name="strongroom",
    help="Strongroom: archive body-worn camera footage as signed, WORM-locked evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global(
    log_format: Annotated[
        str, typer.Option("--log-format", help="text or json", envvar="STRONGROOM_LOG_FORMAT")
    ] = "text",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", help="DEBUG, INFO, WARNING, ERROR", envvar="STRONGROOM_LOG_LEVEL"
        ),
    ] = "INFO",
) -> None:
    """Every command takes --config FILE and --help; --json prints one JSON document."""
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    setup_logging(log_format, log_level)
    os.umask(0o027)  # nothing we create is world-readable
