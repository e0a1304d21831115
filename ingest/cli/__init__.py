"""The ``strongroom`` command line: one Typer app, one module per group of commands."""

from ingest.cli import (
    cases_cmds,  # noqa: F401  (registers commands)
    catalog_cmds,  # noqa: F401  (registers commands)
    cluster_cmds,  # noqa: F401  (registers commands)
    core,  # noqa: F401  (registers commands)
    court_cmds,  # noqa: F401  (registers commands)
    keys_cmds,  # noqa: F401  (registers commands)
    ledger_cmds,  # noqa: F401  (registers commands)
    names_cmds,  # noqa: F401  (registers commands)
    playback_cmds,  # noqa: F401  (registers commands)
    retention_cmds,  # noqa: F401  (registers commands)
)
from ingest.cli.app import app

__all__ = ["app"]
