"""The custody ledger: ``ledger checkpoint|audit|prove``. Each exits 1 when a
check fails, listing every failure."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from archive.ledger import LedgerError, checkpoint, proof_document
from archive.store import StoreError
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
    print_problems,
)
from verify.audit import audit

ledger_app = typer.Typer(
    help="The custody ledger: checkpoints, audit, proofs.", no_args_is_help=True
)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("checkpoint")
def ledger_checkpoint(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Sequence new custody events and publish a signed checkpoint now."""
    with open_archive(config) as archive:
        try:
            result = checkpoint(archive)
        except ConfigError as exc:
            raise config_error(exc) from None
        except (LedgerError, StoreError) as exc:
            console.print(
                f"[red]checkpoint failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(EXIT_FAILED) from None
    document = {"created": result is not None, **(result.to_dict() if result else {})}
    if as_json:
        emit_json(document)
    elif result is None:
        console.print("no new custody events: no checkpoint written")
    else:
        console.print(
            f"checkpoint {result.size} ({result.size - result.first_index} new leaves), "
            f"root {result.root_hash.hex()}\n  {result.checkpoint_key}\n  {result.segment_key}",
            highlight=False,
            soft_wrap=True,
        )


@ledger_app.command("audit")
def ledger_audit(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Rebuild the ledger from the bucket alone and check signatures, consistency
    and the catalog; lists every problem, exits 1 if there is any."""
    with open_archive(config) as archive:
        report = audit(archive)
    if as_json:
        emit_json(report.to_dict())
    else:
        console.print(
            f"{report.leaves} leaves and {report.checkpoints} checkpoints in the bucket, "
            f"{report.catalog_leaves} sequenced leaves in the catalog",
            highlight=False,
            soft_wrap=True,
        )
        print_problems(report.problems)
        console.print("ledger audit: " + ("[green]OK[/]" if report.ok else "[red]FAILED[/]"))
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@ledger_app.command("prove")
def ledger_prove(
    evidence_id: Annotated[str, typer.Argument(help="evidence id (ev-…)")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An item's ledger leaves with inclusion proofs against the latest checkpoint."""
    with open_archive(config) as archive:
        try:
            document = proof_document(archive, evidence_id)
        except KeyError:
            console.print(f"[red]no evidence {evidence_id}[/]")
            raise typer.Exit(EXIT_FAILED) from None
        except (LookupError, LedgerError) as exc:
            console.print(
                f"[red]{escape(str(exc))}[/] (run `strongroom ledger checkpoint`)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        emit_json(document)
        return
    cp = document["checkpoint"]
    console.print(
        f"checkpoint {cp['size']} of {cp['origin']}, root {cp['root_hash']}",
        highlight=False,
        soft_wrap=True,
    )
    for leaf in document["leaves"]:
        console.print(
            f"  leaf {leaf['index']}: {leaf['leaf']}\n"
            f"    proof ({len(leaf['inclusion_proof'])} hashes) verified",
            highlight=False,
            soft_wrap=True,
        )
