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

Each module registers its commands on the app when it is imported, and
:class:`frontdoors.cli.app.LazyCommands` imports a module only when one of its
commands is asked for (``COMMAND_MODULES`` there says which module is whose).
"""

from frontdoors.cli.app import app

__all__ = ["app"]
