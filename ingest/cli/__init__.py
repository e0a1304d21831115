"""The ``strongroom`` command line: one Typer app, one module per group of commands."""

from ingest.cli import core  # noqa: F401  (registers commands)
from ingest.cli.app import app

__all__ = ["app"]
