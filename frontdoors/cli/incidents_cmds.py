"""Incident commands: ``incidents import / list / show`` and ``links pending /
confirm / reject`` (the logic is :mod:`archive.incidents`).

The CLI acts for every unit with the ``admin`` role; its custody events name
the operating-system user (``os:<user>@<host>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy import select

from archive import incidents
from archive.caselinks import LinkRefused
from archive.custody import cli_actor
from archive.incident_models import Incident
from archive.store import StoreError
from frontdoors.cli.app import app
from frontdoors.cli.common import EXIT_FAILED, ConfigOpt, JsonOpt, console, emit_json, open_archive

incidents_app = typer.Typer(
    help="Dispatch incidents (警情/CAD): import them; matching items link to their cases.",
    no_args_is_help=True,
)
app.add_typer(incidents_app, name="incidents")
links_app = typer.Typer(
    help="Links proposed by incident matching ([incidents] confirm = true).",
    no_args_is_help=True,
)
app.add_typer(links_app, name="links")

ReasonOpt = Annotated[
    str | None, typer.Option("--reason", "-r", help="why (kept in the custody ledger)")
]
MatchArg = Annotated[int, typer.Argument(help="match id (from `links pending`)")]


def _refused(message: str) -> typer.Exit:
    console.print(f"[red]refused:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_FAILED)


@incidents_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV: " + ", ".join(incidents.CSV_COLUMNS))],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import incidents from a CSV file: all rows or none (a bad row is named by its
    line); an incident already on record unchanged is skipped; matching items are
    linked to the incident's case (or proposed, with [incidents] confirm = true)."""
    with open_archive(config) as archive:
        try:
            records, sha256 = incidents.read_csv(archive.settings, file)
            result = incidents.import_incidents(
                archive,
                records,
                actor=cli_actor(),
                source={"file": file.name, "sha256": sha256, "rows": len(records)},
            )
        except OSError as exc:
            raise _refused(f"{file}: {exc.strerror or exc}") from None
        except incidents.IncidentRefused as exc:
            raise _refused(f"{file.name}: {exc}; nothing was imported") from None
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(
        f"{len(result.created)} new, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged incident(s); {len(result.matches)} match(es) "
        + ("proposed" if archive.settings.incidents.confirm else "linked"),
        highlight=False,
    )
    for match in result.matches:
        console.print(
            f"  {match['state']:<8} {match['evidence_id']} → case {match['case_id']} "
            f"(incident {match['incident_id']})",
            highlight=False,
            markup=False,
        )
    if result.matching_deferred:
        console.print(
            f"[yellow]matching not finished[/] ({escape(result.matching_deferred)}); "
            "the daemon's matcher finishes it",
            highlight=False,
        )


@incidents_app.command("list")
def list_(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every incident on record, newest window first."""
    with open_archive(config) as archive, archive.db.session() as session:
        rows = [
            incidents.incident_dict(row, incidents.officers_of(session, row.incident_id))
            for row in session.scalars(select(Incident).order_by(Incident.start.desc()))
        ]
    if as_json:
        emit_json({"incidents": rows})
        return
    for row in rows:
        console.print(
            f"{row['incident_id']}  case {row['case_id'] or '-'}  unit {row['unit']}  "
            f"{row['start']} – {row['end']}  officers {', '.join(row['officer_ids'])}",
            highlight=False,
            markup=False,
        )


@links_app.command("pending")
def pending(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Proposed links waiting for a person, oldest first."""
    with open_archive(config) as archive, archive.db.session() as session:
        rows = incidents.list_matches(session)
    if as_json:
        emit_json({"pending": rows})
        return
    if not rows:
        console.print("no proposed links")
    for row in rows:
        d = row["details"]
        console.print(
            f"{row['id']:>6}  {row['evidence_id']} → case {row['case_id']}  incident "
            f"{row['incident_id']}  officer {d.get('officer')}  recorded {d['recorded'][0]}",
            highlight=False,
            markup=False,
        )


def _decide(operation, match_id: int, reason: str | None, config, as_json: bool) -> None:
    with open_archive(config) as archive:
        try:
            row = operation(archive, match_id, actor=cli_actor(), reason=reason)
        except incidents.UnknownMatch:
            raise _refused(f"no match {match_id}") from None
        except (incidents.MatchDecided, LinkRefused) as exc:
            raise _refused(str(exc)) from None
        except StoreError as exc:
            raise _refused(f"the object store refused the legal hold: {exc}") from None
    if as_json:
        emit_json(row)
        return
    console.print(
        f"match {match_id}: {row['evidence_id']} → case {row['case_id']} {row['state']}",
        highlight=False,
        markup=False,
    )


@links_app.command("confirm")
def confirm(
    match_id: MatchArg, reason: ReasonOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """Make a proposed link (legal hold follows); the link is yours."""
    _decide(incidents.confirm, match_id, reason, config, as_json)


@links_app.command("reject")
def reject(
    match_id: MatchArg, reason: ReasonOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """Refuse a proposed link for good (the rule never proposes it again)."""
    _decide(incidents.reject, match_id, reason, config, as_json)
