"""Case and unit commands: ``link``, ``unlink`` and ``unit set``.

The CLI acts with the ``admin`` role; its custody events name the operating
system user (``os:<user>@<host>``), because that is who typed the command.
"""

from __future__ import annotations

from typing import Annotated

import typer

from archive import caselinks
from archive.custody import cli_actor
from archive.store import StoreError
from archive.units import UnitRefused, correct_unit
from config.errors import UnknownEvidence
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
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
