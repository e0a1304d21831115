"""Court and disclosure routes for token holders: chain-of-custody reports and
the management of disclosure shares.

A report is built, checked and rendered by ``verify.custody_report`` (the same
code as ``strongroom custody-report``); handing it out is a ``report_issued``
event carrying the SHA-256 of the bytes returned. Shares are created, listed
and revoked through ``archive.shares``; the pages a share opens are in
:mod:`frontdoors.api.routes_share`.

Scopes: a report of an item outside the caller's units is the 404 of a
missing item (and records nothing); a case report covers only the case's items
in scope, and a case with none answers like an unknown case. A share may hold
only items in the creator's units; shares are listed and revoked only by
callers whose units cover every item of the share (all-unit tokens: all).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from archive.caselinks import MAX_CASE_ID
from archive.shares import (
    create_share,
    list_shares,
    parse_expiry,
    set_receipt,
)
from archive.shares import revoke_share as revoke
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import evidence_or_404, get_archive
from frontdoors.api.errors import ApiError
from verify.custody_report import MEDIA_TYPES, issue_report
from verify.receipt import make_receipt
from verify.report_pdf import FontMissing

router = APIRouter(tags=["court"])
Format = Annotated[Literal["pdf", "csv", "json"], Query(description="pdf, csv or json")]
CaseId = Annotated[str, "case id"]


def _report(request: Request, principal: Principal, fmt: str, **scope) -> Response:
    archive = get_archive(request)
    # unknown items (404 evidence_not_found), an empty case (404 case_not_found), no
    # font (503 feature_unavailable), the store (503): by the error's kind and code
    issued = issue_report(
        archive,
        fmt=fmt,
        actor=principal.actor,
        via="api",
        role=principal.role,
        client=request.client.host if request.client else None,
        units=principal.scope,
        **scope,
    )
    name = scope.get("case") or scope["evidence_ids"][0]
    return Response(
        issued.data,
        media_type=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="custody-report.{fmt}"',
            "X-Report-SHA256": issued.sha256,
            "X-Report-Verdict": "ok" if issued.report.ok else "failed",
            "X-Report-Scope": name.encode("ascii", "replace").decode(),
        },
    )


@router.get(
    "/v1/evidence/{evidence_id}/custody-report",
    summary="Chain-of-custody report of one item (recorded as report_issued)",
    response_class=Response,
)
def evidence_report(
    evidence_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
    format: Format = "pdf",
) -> Response:
    with get_archive(request).db.session() as session:
        evidence_or_404(session, evidence_id, principal)  # out of scope = missing, nothing logged
    return _report(request, principal, format, evidence_ids=[evidence_id])


@router.get(
    "/v1/cases/{case_id}/custody-report",
    summary="Chain-of-custody report of a case's items (recorded as report_issued)",
    response_class=Response,
)
def case_report(
    case_id: CaseId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
    format: Format = "pdf",
) -> Response:
    if len(case_id) > MAX_CASE_ID:
        raise ApiError(404, "case_not_found", "no such case")
    return _report(request, principal, format, case=case_id)


class ShareIn(BaseModel):
    recipient: str = Field(min_length=1, max_length=500, description="who receives the link")
    expires: str = Field("14d", max_length=10, description="lifetime: 14d, 36h, 2w, 90m")
    allow: Literal["view", "download"] = "view"
    items: list[str] | None = Field(None, max_length=1000, description="only these items")


@router.post(
    "/v1/cases/{case_id}/shares",
    summary="Create a disclosure share of a case (the link is returned once)",
    status_code=201,
)
def create(
    case_id: CaseId,
    body: ShareIn,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
) -> dict:
    archive = get_archive(request)
    # refused (403 share_refused) or malformed (422): by the error's kind and code
    created = create_share(
        archive,
        case_id=case_id,
        recipient=body.recipient,
        expires_in=parse_expiry(body.expires),
        allow=body.allow,
        evidence_ids=body.items,
        actor=principal.actor,
        units=principal.scope,
    )
    base = str(request.base_url).rstrip("/")
    answer: dict[str, Any] = {
        "share_id": created.share.share_id,
        "url": f"{base}/share/{created.secret}",
        "expires_at": created.share.expires_at.isoformat(),
        "allow": created.share.allow,
        "evidence_ids": [i["evidence_id"] for i in created.items],
    }
    try:
        receipt = make_receipt(archive, created)
    except FontMissing as exc:  # the share stands; say plainly why there is no receipt
        return {**answer, "receipt_error": str(exc)}
    set_receipt(archive, created.share.share_id, receipt.sha256)
    return {
        **answer,
        "receipt_sha256": receipt.sha256,
        "receipt_pdf_base64": base64.b64encode(receipt.pdf).decode("ascii"),
        "receipt_envelope": receipt.envelope.decode("utf-8"),
    }


@router.get("/v1/shares", summary="Every disclosure share and its status")
def shares(
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
    case: Annotated[str | None, Query(max_length=MAX_CASE_ID)] = None,
) -> dict:
    return {"shares": list_shares(get_archive(request), case, principal.scope)}


@router.delete("/v1/shares/{share_id}", summary="Revoke a share: its URLs answer 410 from now on")
def revoke_one(
    share_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
) -> dict:
    try:
        return revoke(
            get_archive(request), share_id[:40], actor=principal.actor, units=principal.scope
        )
    except KeyError:
        raise ApiError(404, "share_not_found", f"no share {share_id[:40]!r}") from None
