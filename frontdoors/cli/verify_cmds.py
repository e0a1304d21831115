"""Checking and handing over evidence: ``verify`` (re-read items from the
store), ``fixity`` (one scheduled sweep now) and ``export`` (a BagIt bundle).
Each exits 1 when a check fails, listing every failure with the item and the
check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy import func, select

from archive.cases import CaseLink
from archive.custody import cli_actor
from archive.derivatives import Derivative
from archive.ledger import LedgerError
from archive.models import Evidence
from archive.store import StoreError
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
from verify.export import ExportError, export_bundle
from verify.fixity import RunResult, all_items, run_checks, sweep


def _report_run(run: RunResult, as_json: bool) -> None:
    if as_json:
        emit_json(run.to_dict())
    else:
        console.print(
            f"{len(run.items)} item(s) checked, {run.bytes_read} bytes re-read, "
            f"{len(run.failed)} failed",
            highlight=False,
            soft_wrap=True,
        )
        for item in run.failed:
            for problem in item.problems:
                console.print(
                    "[red]FAILED[/] "
                    + escape(
                        f"{item.evidence_id} [{problem.check}] {problem.object}: {problem.message}"
                    ),
                    highlight=False,
                    soft_wrap=True,
                )
        for problem in run.bucket_problems:
            console.print(
                "[red]FAILED[/] "
                + escape(f"bucket [{problem.check}] {problem.object}: {problem.message}"),
                highlight=False,
                soft_wrap=True,
            )
    if run.failed or run.bucket_problems:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def fixity(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Run one fixity sweep now (the scheduled job's plan: oldest-checked first,
    within the byte budget, every item at least once per cycle)."""
    with open_archive(config) as archive:
        try:
            run = sweep(archive, trigger="fixity", actor=cli_actor())
        except StoreError as exc:
            console.print(
                f"[red]fixity sweep could not run:[/] {escape(str(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_FAILED) from None
    _report_run(run, as_json)


@app.command()
def verify(
    evidence_ids: Annotated[list[str] | None, typer.Argument(help="evidence ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every item in the catalog")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read items from the store and check hashes, signatures and lock state."""
    if bool(evidence_ids) == all_:
        raise typer.BadParameter("give evidence ids or --all (not both)")
    with open_archive(config) as archive:
        ids = all_items(archive) if all_ else list(dict.fromkeys(evidence_ids or []))
        with archive.db.session() as session:
            known = set(
                session.scalars(select(Evidence.evidence_id).where(Evidence.evidence_id.in_(ids)))
            )
            total = (
                session.scalar(select(func.sum(Evidence.size)).where(Evidence.evidence_id.in_(ids)))
                or 0
            ) + (
                session.scalar(
                    select(func.sum(Derivative.size)).where(
                        Derivative.evidence_id.in_(ids), Derivative.state == "stored"
                    )
                )
                or 0
            )
        unknown = [i for i in ids if i not in known]
        if unknown:
            console.print(
                f"[red]no evidence {', '.join(unknown)}[/]", highlight=False, soft_wrap=True
            )
            raise typer.Exit(EXIT_FAILED)
        progress = Progress(
            TextColumn("verify"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=as_json or not console.is_terminal,
        )
        with progress:
            items_task = progress.add_task("items", total=len(ids))
            bytes_task = progress.add_task("bytes", total=total)
            try:
                run = run_checks(
                    archive,
                    ids,
                    trigger="verify",
                    actor=cli_actor(),
                    on_bytes=lambda n: progress.advance(bytes_task, n),
                    on_item=lambda _r: progress.advance(items_task),
                )
            except StoreError as exc:
                console.print(
                    f"[red]verify could not read the store:[/] {escape(str(exc))}",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(EXIT_FAILED) from None
    _report_run(run, as_json)


@app.command()
def export(
    evidence_ids: Annotated[list[str] | None, typer.Argument(help="evidence ids")] = None,
    case: Annotated[str | None, typer.Option("--case", help="every item linked to case")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="bundle folder (new or empty)")] = Path(
        "bundle"
    ),
    with_playback: Annotated[
        bool, typer.Option("--with-playback", help="include playback copies")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a BagIt export bundle: originals, manifests, ledger proofs, checkpoint, keys."""
    if bool(evidence_ids) == bool(case):
        raise typer.BadParameter("give evidence ids or --case (not both)")
    with open_archive(config) as archive:
        ids = list(evidence_ids or [])
        if case:
            with archive.db.session() as session:
                ids = list(
                    session.scalars(
                        select(CaseLink.evidence_id)
                        .where(CaseLink.case_id == case)
                        .order_by(CaseLink.linked_at, CaseLink.evidence_id)
                    )
                )
            if not ids:
                console.print(
                    f"[red]case {case} has no linked evidence[/]", highlight=False, soft_wrap=True
                )
                raise typer.Exit(EXIT_FAILED)
        try:
            path = export_bundle(
                archive, ids, out, actor=cli_actor(), include_derivatives=with_playback
            )
        except ConfigError as exc:
            raise config_error(exc) from None
        except UnknownEvidence as exc:
            console.print(f"[red]no evidence {exc.args[0]}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
        except (ExportError, LedgerError, StoreError) as exc:
            console.print(
                f"[red]export failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(EXIT_FAILED) from None
    document = {"bundle": str(path.resolve()), "items": ids, "case": case}
    if as_json:
        emit_json(document)
    else:
        console.print(
            f"wrote {path} ({len(ids)} item(s)); check it with: strongroom verify-bundle {path}",
            highlight=False,
            soft_wrap=True,
        )
