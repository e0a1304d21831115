"""The ``strongroom`` command line: one Typer app, one module per group of commands.

Where a command lives (each module registers its commands on the app):

- ``station_cmds``: ``init``, ``run``, ``ingest``, ``local-store``
- ``cluster_cmds``: ``local-cluster``
- ``lookup_cmds``: ``status`` (``--stations``: ``stations_cmds``), ``find``, ``show``
- ``incidents_cmds``: ``incidents import|list``, ``links pending|confirm|reject``
- ``cases_cmds``: ``link``, ``unlink``, ``unit set``
- ``verify_cmds``: ``verify``, ``fixity``, ``export`` (``verify-bundle`` is :mod:`verify.offline`)
- ``ledger_cmds``: ``ledger checkpoint|audit|prove``
- ``catalog_cmds``: ``catalog upgrade|rebuild|backup|backups|restore-backup``
- ``retention_cmds``: ``retention set|plan|approve|apply|plans``
- ``report_cmds``: ``report``
- ``names_cmds``: ``names profiles|test``
- ``playback_cmds``: ``playback run|policy|retry|queue``
- ``court_cmds``: ``custody-report``, ``share create|list|revoke``
- ``keys_cmds``: ``keys rotate|show``
- ``api_cmds``: ``serve``, ``token create``
"""

from frontdoors.cli import (
    api_cmds,  # noqa: F401  (registers commands)
    cases_cmds,  # noqa: F401  (registers commands)
    catalog_cmds,  # noqa: F401  (registers commands)
    cluster_cmds,  # noqa: F401  (registers commands)
    court_cmds,  # noqa: F401  (registers commands)
    incidents_cmds,  # noqa: F401  (registers commands)
    keys_cmds,  # noqa: F401  (registers commands)
    ledger_cmds,  # noqa: F401  (registers commands)
    lookup_cmds,  # noqa: F401  (registers commands)
    names_cmds,  # noqa: F401  (registers commands)
    playback_cmds,  # noqa: F401  (registers commands)
    report_cmds,  # noqa: F401  (registers commands)
    retention_cmds,  # noqa: F401  (registers commands)
    station_cmds,  # noqa: F401  (registers commands)
    verify_cmds,  # noqa: F401  (registers commands)
)
from frontdoors.cli.app import app

__all__ = ["app"]
