"""The Typer application; command modules register themselves on :data:`app`.

Command modules are imported lazily: ``strongroom status`` imports
``lookup_cmds`` (and what it needs), not the HTTP server, the daemon or the
report renderer. Each CLI start-up used to import every command module and
with them FastAPI, uvicorn, the pipeline and more – about a second of CPU per
call. :data:`COMMAND_MODULES` names, for each top-level command or group, the
module that registers it; help, completion and "did you mean" suggestions
load them all, in the order that fixes the help's order.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated

import typer
import typer.main
from typer import _click  # the Click that Typer ships and its groups are built on
from typer.core import TyperGroup

from ingest.logs import setup_logging

#: top-level command or group -> the module of :mod:`frontdoors.cli` that
#: registers it (``tests/test_cli_render.py`` checks this against the modules)
COMMAND_MODULES: dict[str, str] = {
    "serve": "api_cmds",
    "token": "api_cmds",
    "link": "cases_cmds",
    "unlink": "cases_cmds",
    "unit": "cases_cmds",
    "catalog": "catalog_cmds",
    "local-cluster": "cluster_cmds",
    "custody-report": "court_cmds",
    "share": "court_cmds",
    "incidents": "incidents_cmds",
    "links": "incidents_cmds",
    "keys": "keys_cmds",
    "ledger": "ledger_cmds",
    "status": "lookup_cmds",
    "find": "lookup_cmds",
    "show": "lookup_cmds",
    "names": "names_cmds",
    "playback": "playback_cmds",
    "report": "report_cmds",
    "retention": "retention_cmds",
    "init": "station_cmds",
    "run": "station_cmds",
    "ingest": "station_cmds",
    "local-store": "station_cmds",
    "fixity": "verify_cmds",
    "verify": "verify_cmds",
    "export": "verify_cmds",
}


def load_command_modules(*modules: str) -> None:
    """Import these command modules (all of them when none is named), in
    alphabetical order, so that they register their commands on :data:`app`."""
    for module in sorted(set(modules or COMMAND_MODULES.values())):
        importlib.import_module(f"frontdoors.cli.{module}")


class LazyCommands(TyperGroup):
    """The top-level group: a command's module is imported when it is asked for."""

    def _refresh(self, *modules: str) -> None:
        load_command_modules(*modules)
        self.commands = typer.main.get_group(app).commands

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in self.commands:
            # an unknown name loads them all: the error then suggests the closest
            module = COMMAND_MODULES.get(cmd_name)
            self._refresh(*([module] if module else []))
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        if not set(COMMAND_MODULES) <= set(self.commands):
            self._refresh()
        return super().list_commands(ctx)


app = typer.Typer(
    name="strongroom",
    cls=LazyCommands,
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
