"""Court and disclosure: ``custody-report`` (PDF, CSV or JSON) and ``share``
(expiring, logged links for prosecutors and defence, with a signed receipt)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from archive.custody import cli_actor
from archive.store import StoreError
from ingest.cli.app import app
from ingest.cli.common import EXIT_FAILED, ConfigOpt, JsonOpt, console, emit_json, open_archive
from verify.custody_report import FORMATS, EmptyCase, UnknownEvidence, issue_report


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/]", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_FAILED)


@app.command("custody-report")
def custody_report(
    evidence_ids: Annotated[list[str] | None, typer.Argument(help="evidence ids")] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="every item linked to this case")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write")] = None,
    fmt: Annotated[str, typer.Option("--format", help="pdf, csv or json")] = "pdf",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A chain-of-custody report: page 1 one verdict per item with every failing
    check; then identity, hashes, manifest signature, every custody event with its
    ledger inclusion proof, fixity, case links, retention, playback copies.
    Issuing it is a report_issued custody event carrying the file's SHA-256.
    Exit 1 when an id is unknown or any item fails a check."""
    if bool(evidence_ids) == (case is not None):
        raise typer.BadParameter("give evidence ids or --case (not both)")
    if output is None:
        raise typer.BadParameter("-o FILE is required", param_hint="-o")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    from verify.report_pdf import FontMissing

    with open_archive(config) as archive:
        try:
            issued = issue_report(
                archive, evidence_ids=evidence_ids, case=case, fmt=fmt, actor=cli_actor(), via="cli"
            )
        except UnknownEvidence as exc:
            raise _fail(str(exc)) from None
        except EmptyCase as exc:
            raise _fail(str(exc)) from None
        except FontMissing as exc:
            raise _fail(str(exc)) from None
        except StoreError as exc:
            raise _fail(f"the store could not be read: {exc}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(issued.data)
    report = issued.report
    failed = [item for item in report.items if item.verdict == "FAILED"]
    if as_json:
        emit_json(
            {
                "output": str(output),
                "format": fmt,
                "sha256": issued.sha256,
                "ok": report.ok,
                "items": [
                    {
                        "evidence_id": i.evidence_id,
                        "verdict": i.verdict,
                        "failures": [f.check for f in i.failures],
                    }
                    for i in report.items
                ],
            }
        )
    else:
        console.print(
            f"wrote {output} ({fmt}, {len(report.items)} item(s), sha256 {issued.sha256}); "
            "recorded as report_issued",
            highlight=False,
            soft_wrap=True,
        )
        for item in failed:
            for f in item.failures:
                console.print(
                    "[red]FAILED[/] "
                    + escape(f"{item.evidence_id} [{f.check}] {f.subject}: {f.message}"),
                    highlight=False,
                    soft_wrap=True,
                )
    if failed:
        raise typer.Exit(EXIT_FAILED)
