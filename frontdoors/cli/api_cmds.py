"""Serving the HTTP API: ``serve`` (the API alone) and ``token create`` (a new
bearer token, printed once, with its entry for the tokens file)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer

from archive.tokens import ROLES, hash_token, new_token
from config.settings import ApiToken, ConfigError
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    config_error,
    console,
    emit_json,
    open_archive,
)
from ingest.uploads import upload_area


@app.command()
def serve(
    listen: Annotated[
        str | None, typer.Option(help="host:port (default: [api] listen)", show_default=False)
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the HTTP API alone, in the foreground. SIGTERM/SIGINT stop it."""
    # not at the top: FastAPI, uvicorn and Jinja would load for every command
    # (start-up time, not layering: the CLI may import the HTTP server)
    from frontdoors.api.server import ApiServer

    with open_archive(config, self_check=True) as archive:
        try:
            server = ApiServer(archive, listen, uploads=upload_area(archive)).start()
        except ConfigError as exc:
            raise config_error(exc) from None
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        try:
            while not stopping.wait(1):
                if not server.thread.is_alive():
                    console.print("[red]the API server stopped unexpectedly[/]")
                    raise typer.Exit(EXIT_FAILED)
        finally:
            server.stop()


token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="who the token is for (shown in the ledger)")],
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    unit: Annotated[
        list[str] | None,
        typer.Option("--unit", help="a unit code the token may see (with its sub-units); repeat"),
    ] = None,
    all_units: Annotated[
        bool, typer.Option("--all-units", help="every unit (needed for a case-system token)")
    ] = False,
    config: ConfigOpt = None,  # accepted like everywhere; a new token needs no config
    as_json: JsonOpt = False,
) -> None:
    """Print a new random token once, and the entry for the tokens file.

    Only the SHA-256 goes into the configuration; the token itself is shown
    here and nowhere else – give it to the client and do not store it.
    Without ``--unit`` the token sees every unit: allowed for auditor and
    admin, and for a case-system token only with ``--all-units``.
    """
    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    token = new_token()
    units = list(dict.fromkeys(unit or []))
    try:
        entry = ApiToken(
            name=name,
            role=role,
            sha256=hash_token(token),
            units=units,
            all_units=all_units,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1]) from None
    toml = f'[[tokens]]\nname = "{entry.name}"\nrole = "{entry.role}"\nsha256 = "{entry.sha256}"\n'
    if entry.units:
        toml += f"units = {json.dumps(entry.units, ensure_ascii=False)}\n"
    if entry.all_units:
        toml += "all_units = true\n"
    if as_json:
        emit_json({"token": token, **entry.model_dump(), "tokens_file_entry": toml})
        return
    typer.echo(token)
    console.print(
        "\nAdd this to the [api] tokens_file (mode 0600), or to the JSON list in "
        f"STRONGROOM_API__TOKENS as {json.dumps(entry.model_dump())}:\n\n{toml}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
