"""Case and API commands: ``link``, ``unlink``, ``serve`` and ``token create``.

The CLI acts with the ``admin`` role; its custody events name the operating
system user (``os:<user>@<host>``), because that is who typed the command.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer

from archive import caselinks
from archive.custody import cli_actor
from archive.store import StoreError
from archive.tokens import ROLES, hash_token, new_token
from config.errors import UnknownEvidence
from config.settings import ConfigError
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

ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="why (kept in the custody ledger)")]
CaseArg = Annotated[str, typer.Argument(help="case id in the case system")]
EvidenceArg = Annotated[str, typer.Argument(help="evidence id (ev-…)")]


def _change(operation, config, case_id: str, evidence_id: str, reason: str, as_json: bool) -> None:
    with open_archive(config) as archive:
        try:
            result = operation(archive, case_id, evidence_id, actor=cli_actor(), reason=reason)
        except UnknownEvidence:
            console.print(f"[red]no evidence {evidence_id}[/]", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        except caselinks.LinkRefused as exc:
            console.print(f"[red]refused:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        except StoreError as exc:
            console.print(
                f"[red]the object store refused the legal hold:[/] {exc}", highlight=False
            )
            raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        emit_json(result.to_dict())
        return
    verb = "linked to" if result.linked else "unlinked from"
    note = "" if result.changed else " (already so; nothing changed)"
    console.print(
        f"{evidence_id} {verb} case {case_id}{note}; legal hold "
        f"{'ON' if result.legal_hold else 'OFF'}",
        highlight=False,
    )


@app.command()
def link(
    case_id: CaseArg,
    evidence_id: EvidenceArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link evidence to a case: legal hold ON, kept as case evidence. Idempotent."""
    _change(caselinks.link, config, case_id, evidence_id, reason, as_json)


@app.command()
def unlink(
    case_id: CaseArg,
    evidence_id: EvidenceArg,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a case link; the hold goes with the last link unless the category keeps it."""
    _change(caselinks.unlink, config, case_id, evidence_id, reason, as_json)


@app.command()
def serve(
    listen: Annotated[
        str | None, typer.Option(help="host:port (default: [api] listen)", show_default=False)
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the HTTP API alone, in the foreground. SIGTERM/SIGINT stop it."""
    from frontdoors.api.server import ApiServer

    with open_archive(config, self_check=True) as archive:
        try:
            server = ApiServer(archive, listen).start()
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
    from config.settings import ApiToken

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


unit_app = typer.Typer(help="Units (agencies) of evidence items.", no_args_is_help=True)
app.add_typer(unit_app, name="unit")


@unit_app.command("set")
def unit_set(
    evidence_id: EvidenceArg,
    unit: Annotated[str, typer.Argument(help="the unit code the item belongs to")],
    reason: ReasonOpt,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Correct an item's unit (a ``unit_corrected`` custody event; rebuild replays it)."""
    from archive.units import UnitRefused, correct_unit

    with open_archive(config) as archive:
        try:
            with archive.db.session() as session:
                old, changed = correct_unit(
                    session, archive.settings, evidence_id, unit, actor=cli_actor(), reason=reason
                )
        except UnknownEvidence:
            console.print(f"[red]no evidence {evidence_id}[/]", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        except (UnitRefused, caselinks.LinkRefused) as exc:
            console.print(f"[red]refused:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        emit_json({"evidence_id": evidence_id, "old": old, "unit": unit, "changed": changed})
        return
    note = "" if changed else " (already so; nothing changed)"
    console.print(f"{evidence_id}: unit {old or '-'} → {unit}{note}", highlight=False)
