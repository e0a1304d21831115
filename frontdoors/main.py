"""The ``strongroom`` console script.

``verify-bundle`` is dispatched before anything else is imported: an auditor
runs it with nothing but PyNaCl and the standard library installed, so it must
not pull in boto3, SQLAlchemy or Typer. Every other command goes to the Typer
application in :mod:`frontdoors.cli`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["verify-bundle"]:
        from verify.offline import main as verify_bundle_main

        return verify_bundle_main(args[1:])
    from sqlalchemy.exc import DatabaseError

    from config.errors import StrongroomError
    from config.settings import ConfigError
    from frontdoors.cli import app
    from frontdoors.cli.common import exit_code

    try:
        app(args, prog_name="strongroom")
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except ConfigError as exc:  # e.g. an out-of-date catalog met by any command
        sys.stderr.write(f"configuration error: {exc}\n")
        return exit_code(exc)
    except StrongroomError as exc:  # one of ours no command caught: one line, its exit code
        sys.stderr.write(f"strongroom: {exc}\n")
        return exit_code(exc)
    except (OSError, DatabaseError) as exc:
        # a fault outside the code (full disk, damaged catalog): one line, never a traceback
        from archive.health import classify

        _kind, message = classify(exc)
        sys.stderr.write(f"strongroom: {message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
