"""Court and disclosure: ``custody-report`` (PDF, CSV or JSON) and ``share``
(expiring, logged links for prosecutors and defence, with a signed receipt)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from archive.custody import cli_actor
from archive.shares import (
    ShareError,
    create_share,
    list_shares,
    parse_expiry,
    revoke_share,
    set_receipt,
)
from archive.store import StoreError
from config.errors import UnknownEvidence
from frontdoors.cli.app import app
from frontdoors.cli.common import EXIT_FAILED, ConfigOpt, JsonOpt, console, emit_json, open_archive
from verify.custody_report import FORMATS, EmptyCase, issue_report


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
    # here, not at the top: reportlab would load for every command (start-up time)
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


share_app = typer.Typer(
    help="disclosure shares: expiring, logged links for outsiders", no_args_is_help=True
)
app.add_typer(share_app, name="share")


def share_path(secret: str) -> str:
    return f"/share/{secret}"


@share_app.command("create")
def share_create(
    case: Annotated[str, typer.Option("--case", help="the case whose evidence is shared")],
    to: Annotated[str, typer.Option("--to", help="recipient, e.g. '某某律师事务所 / defence'")],
    evidence_ids: Annotated[
        list[str] | None,
        typer.Option("--items", help="only these items of the case (repeat, or comma-separate)"),
    ] = None,
    expires: Annotated[str, typer.Option("--expires", help="lifetime: 14d, 36h, 2w")] = "14d",
    allow: Annotated[str, typer.Option("--allow", help="view, or download (originals)")] = "view",
    receipt: Annotated[
        Path | None, typer.Option("--receipt", help="receipt PDF (default ./<share>-receipt.pdf)")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="the API's address as the recipient sees it")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new share: prints its link once (only a hash of the secret is kept) and
    writes a signed receipt (PDF + .dsse.json)."""
    # here, not at the top: reportlab would load for every command (start-up time)
    from verify.receipt import make_receipt
    from verify.report_pdf import FontMissing

    with open_archive(config) as archive:
        try:
            created = create_share(
                archive,
                case_id=case,
                recipient=to,
                expires_in=parse_expiry(expires),
                allow=allow,
                evidence_ids=[
                    i.strip() for v in evidence_ids or [] for i in v.split(",") if i.strip()
                ]
                or None,
                actor=cli_actor(),
            )
        except ShareError as exc:
            raise _fail(str(exc)) from None
        try:
            made = make_receipt(archive, created)
        except FontMissing as exc:
            raise _fail(f"share {created.share.share_id} created, but no receipt: {exc}") from None
        set_receipt(archive, created.share.share_id, made.sha256)
        base = base_url or f"http://{archive.settings.api.listen}"
    target = receipt or Path(f"{created.share.share_id}-receipt.pdf")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(made.pdf)
    signature = target.with_name(target.name + ".dsse.json")
    signature.write_bytes(made.envelope)
    url = base.rstrip("/") + share_path(created.secret)
    if as_json:
        emit_json(
            {
                "share_id": created.share.share_id,
                "url": url,
                "expires_at": created.share.expires_at.isoformat(),
                "allow": created.share.allow,
                "evidence_ids": [i["evidence_id"] for i in created.items],
                "receipt": str(target),
                "receipt_signature": str(signature),
                "receipt_sha256": made.sha256,
            }
        )
        return
    console.print(
        f"share {created.share.share_id} for {escape(created.share.recipient)}: "
        f"{len(created.items)} item(s), {allow}, until {created.share.expires_at.isoformat()}\n"
        f"link (shown once): {url}\nreceipt: {target} (signature {signature})",
        highlight=False,
        soft_wrap=True,
    )


@share_app.command("list")
def share_list(
    case: Annotated[str | None, typer.Option("--case", help="only this case")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every share with its status (active, expired, revoked)."""
    with open_archive(config) as archive:
        shares = list_shares(archive, case)
    if as_json:
        emit_json({"shares": shares})
        return
    for s in shares:
        console.print(
            escape(
                f"{s['share_id']}  {s['status']:8}  case {s['case_id']}  to {s['recipient']}  "
                f"{s['allow']}  until {s['expires_at']}  {len(s['evidence_ids'])} item(s)"
            ),
            highlight=False,
            soft_wrap=True,
        )


@share_app.command("revoke")
def share_revoke(
    share_id: Annotated[str, typer.Argument(help="share id (sh-…)")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a share now: every URL of it answers 410 from then on."""
    with open_archive(config) as archive:
        try:
            document = revoke_share(archive, share_id, actor=cli_actor())
        except KeyError:
            raise _fail(f"no share {share_id}") from None
    if as_json:
        emit_json(document)
    else:
        console.print(f"share {share_id} revoked at {document['revoked_at']}", highlight=False)
