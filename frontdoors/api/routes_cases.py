"""Case routes: link and unlink evidence (legal hold follows), list a case.

``PUT`` and ``DELETE`` are idempotent: repeating one returns 200 with
``changed: false`` and adds nothing to the ledger. A reason is required: in
the JSON body ``{"reason": …}`` of a ``PUT``, as ``?reason=`` on a ``DELETE``
(many HTTP clients send no body with DELETE). A blank reason is refused.

Scopes: an item outside the caller's units answers 404 exactly like a missing
one, a case lists (and counts) only the caller's items, and a link is removed
only by the identity that made it or by an admin (``unlinked_by_admin``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import func, select

from archive import caselinks
from archive.caselinks import MAX_CASE_ID, link_dict
from archive.cases import CaseLink
from archive.models import Evidence
from archive.queries import EvidenceFilter, evidence_query
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import get_archive
from frontdoors.api.errors import ApiError
from frontdoors.api.paging import DEFAULT_LIMIT, MAX_LIMIT, page
from frontdoors.api.schemas import CaseOut, LinkOut, LinkRequest

router = APIRouter(tags=["cases"])

CaseId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_CASE_ID,
        pattern=caselinks.CASE_ID_PATTERN,
        description="case id: printable, no '/' or '\\', no surrounding spaces",
    ),
]
ReasonQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=caselinks.MAX_REASON,
        pattern=caselinks.REASON_PATTERN,
        description="why; kept in the custody ledger (not blank, no control characters)",
    ),
]


def _change(
    request: Request,
    principal: Principal,
    case_id: str,
    evidence_id: str,
    reason: str,
    operation: Callable[..., caselinks.LinkResult],
) -> dict:
    archive = get_archive(request)
    # unknown or outside the scope (404 evidence_not_found), not the link's owner
    # (403), disposed of (409), a bad case id or reason (422): answered by the
    # error's kind and code (frontdoors/api/errors.py)
    result = operation(
        archive,
        case_id,
        evidence_id,
        actor=principal.actor,
        reason=reason,
        scope=principal.scope,
        admin=principal.role == auth.ADMIN,
    )
    return result.to_dict()


@router.put(
    "/v1/cases/{case_id}/evidence/{evidence_id}",
    response_model=LinkOut,
    summary="Link an item to a case (sets legal hold; idempotent)",
)
def put_link(
    case_id: CaseId,
    evidence_id: str,
    body: LinkRequest,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
) -> dict:
    """While linked, the item counts as the case retention category and every
    object of it is under S3 legal hold. Recorded as ``linked``."""
    return _change(request, principal, case_id, evidence_id, body.reason, caselinks.link)


@router.delete(
    "/v1/cases/{case_id}/evidence/{evidence_id}",
    response_model=LinkOut,
    summary="Unlink an item from a case (hold released with the last link; idempotent)",
)
def delete_link(
    case_id: CaseId,
    evidence_id: str,
    reason: ReasonQuery,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
) -> dict:
    """The legal hold stays while another case links the item or its own
    category is permanent. Recorded as ``unlinked``. The reason is a query
    parameter, because many HTTP clients send no body with DELETE."""
    return _change(request, principal, case_id, evidence_id, reason, caselinks.unlink)


@router.get("/v1/cases/{case_id}", response_model=CaseOut, summary="A case's evidence")
def get_case(
    case_id: CaseId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict:
    """Every item linked to the case with its link, in the stable evidence
    order; 404 when nothing is linked to it."""
    archive = get_archive(request)
    scope = principal.scope
    with archive.db.session() as session:
        total = session.scalar(
            scope.where(
                select(func.count())
                .select_from(CaseLink)
                .join(Evidence, Evidence.evidence_id == CaseLink.evidence_id)
                .where(CaseLink.case_id == case_id)
            )
        )
        if not total:  # nothing of the caller's: the same answer as no case at all
            raise ApiError(404, "case_not_found", f"no evidence is linked to case {case_id!r}")
        query = scope.where(
            evidence_query(EvidenceFilter())
            .add_columns(CaseLink)
            .join(CaseLink, CaseLink.evidence_id == Evidence.evidence_id)
            .where(CaseLink.case_id == case_id)
        )
        rows, next_cursor = page(session, query, cursor, limit)
        items = [{**evidence.summary(), "link": link_dict(row)} for evidence, row in rows]
    return {
        "case_id": case_id,
        "total": total,
        "items": items,
        "count": len(items),
        "next_cursor": next_cursor,
    }
