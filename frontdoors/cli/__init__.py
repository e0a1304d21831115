"""The ``strongroom`` command line: one Typer app, one module per group of commands."""

from frontdoors.cli import (
    cases_cmds,  # noqa: F401  (registers commands)
    catalog_cmds,  # noqa: F401  (registers commands)
    core,  # noqa: F401  (registers commands)
    court_cmds,  # noqa: F401  (registers commands)
    incidents_cmds,  # noqa: F401  (registers commands)
    keys_cmds,  # noqa: F401  (registers commands)
    ledger_cmds,  # noqa: F401  (registers commands)
    names_cmds,  # noqa: F401  (registers commands)
    playback_cmds,  # noqa: F401  (registers commands)
    retention_cmds,  # noqa: F401  (registers commands)
)
from frontdoors.cli.app import app

__all__ = ["app"]
