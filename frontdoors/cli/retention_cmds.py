"""Retention commands: ``retention set|plan|approve|apply|plans``.

Custody events name the operating-system user who typed the command
(``os:<user>@<host>``); an approval also names the approver given with
``--by``, because the two-person rule is about people, not accounts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from archive import disposition
from archive.custody import cli_actor
from archive.db import Database
from archive.retention import RetentionError, set_category
from archive.store import StoreError
from config.errors import UnknownEvidence
from frontdoors.cli.app import app
from frontdoors.cli.common import (
    EXIT_FAILED,
    ConfigOpt,
    JsonOpt,
    console,
    emit_json,
    open_archive,
    settings_from,
)
from verify import retention_sweep

retention_app = typer.Typer(
    help="Retention categories and two-person disposition of expired footage.",
    no_args_is_help=True,
)
app.add_typer(retention_app, name="retention")

PlanArg = Annotated[str, typer.Argument(help="plan id (dp-…) or the plan's JSON file")]


def _fail(message: str) -> typer.Exit:
    console.print(message, style="red", highlight=False, markup=False)
    return typer.Exit(EXIT_FAILED)


@retention_app.command("set")
def set_(
    evidence_id: Annotated[str, typer.Argument(help="evidence id (ev-…)")],
    category: Annotated[str, typer.Argument(help="retention category name")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why (kept in the ledger)")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an item to a category that keeps it at least as long (never shorter)."""
    with open_archive(config) as archive:
        try:
            change = set_category(archive, evidence_id, category, actor=cli_actor(), reason=reason)
        except (RetentionError, UnknownEvidence) as exc:
            raise _fail(f"refused: {exc}") from None
        except StoreError as exc:
            raise _fail(f"the object store refused the longer lock: {exc}") from None
    if as_json:
        emit_json(change.to_dict())
        return
    if not change.changed:
        console.print(f"{evidence_id} is already in {category}; nothing changed")
        return
    console.print(
        f"{evidence_id}: {change.old_category} → {change.new_category}; retained until "
        f"{change.new_retain_until or 'permanently'}"
        f"{' (legal hold)' if change.legal_hold else ''}; "
        f"{len(change.extended)} object lock(s) extended",
        highlight=False,
        markup=False,
    )


@retention_app.command()
def plan(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="also write the plan JSON here")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sweep now: list items whose retention ended into a plan. Deletes nothing."""
    with open_archive(config) as archive:
        try:
            outcome = retention_sweep.plan_disposition(archive, actor=cli_actor())
        except StoreError as exc:
            raise _fail(f"the object store could not be checked: {exc}") from None
    if outcome is None:
        if as_json:
            emit_json({"plan_id": None, "plan": None})
        else:
            console.print("nothing is due for disposition")
        return
    if output is not None:
        output.write_text(
            json.dumps(outcome.document, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        outcome.files.append(output)
    if as_json:
        emit_json(outcome.to_dict())
        return
    console.print(retention_sweep.plan_summary(outcome.document), highlight=False, markup=False)
    console.print(
        "written: " + ", ".join(str(p) for p in outcome.files), highlight=False, markup=False
    )


@retention_app.command()
def approve(
    plan_ref: PlanArg,
    by: Annotated[str, typer.Option("--by", help="the approver's name")],
    note: Annotated[str | None, typer.Option("--note", help="optional remark")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a plan by name; apply needs the configured number of different names."""
    with open_archive(config) as archive:
        try:
            outcome = disposition.approve(archive, plan_ref, by=by, actor=cli_actor(), note=note)
        except disposition.DispositionError as exc:
            raise _fail(f"refused: {exc}") from None
    if as_json:
        emit_json(outcome.to_dict())
        return
    already = "" if outcome.new else " (had approved already; counts once)"
    console.print(
        f"{outcome.plan_id} approved by {outcome.approver}{already}: "
        f"{len(outcome.approvers)} of {outcome.required} approvers"
        + ("; ready to apply" if outcome.ready else ""),
        highlight=False,
        markup=False,
    )


@retention_app.command()
def apply(
    plan_ref: PlanArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete the planned versions (originals, playback copies), keep manifests and
    ledger leaves, and store the signed disposition certificate. Exit 1 on failures."""
    with open_archive(config) as archive:
        try:
            outcome = disposition.apply_plan(archive, plan_ref, actor=cli_actor())
        except disposition.DispositionError as exc:
            raise _fail(f"refused: {exc}") from None
        except StoreError as exc:
            raise _fail(f"the object store failed: {exc}") from None
    if as_json:
        emit_json(outcome.to_dict())
    else:
        doc = outcome.to_dict()
        note = " (applied before; certificate checked)" if outcome.already_applied else ""
        console.print(
            f"{outcome.plan_id}{note}: {len(doc['disposed'])} disposed, "
            f"{len(doc['skipped'])} skipped, {len(doc['failed'])} failed; certificate "
            f"{outcome.certificate_key}",
            highlight=False,
        )
        for entry in doc["skipped"]:
            console.print(
                f"  skipped {entry['evidence_id']}: {entry['reason']}",
                highlight=False,
                markup=False,
            )
        for entry in doc["failed"]:
            console.print(
                f"  failed {entry['evidence_id']}: {entry['error']}",
                style="red",
                highlight=False,
                markup=False,
            )
    if outcome.result["failed"]:
        raise typer.Exit(EXIT_FAILED)


@retention_app.command()
def plans(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Recent disposition plans, their approvers and state."""
    db = Database(settings_from(config).catalog_url)  # the catalog only
    try:
        with db.session() as session:
            rows = disposition.list_plans(session)
    finally:
        db.dispose()
    if as_json:
        emit_json({"plans": rows})
        return
    if not rows:
        console.print("no disposition plans")
    for row in rows:
        console.print(
            f"{row['plan_id']}  {row['state']:<8} {row['items']} item(s)  approvers: "
            f"{', '.join(row['approvers']) or 'none'}",
            highlight=False,
            markup=False,
        )
