"""Retention routes: moving an item to a longer (or permanent) category (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from archive.retention import RetentionError, RetentionRefused, set_category
from config.errors import UnknownEvidence
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import evidence_or_404, get_archive, not_found
from frontdoors.api.errors import ApiError

router = APIRouter(tags=["reports"])


class RetentionRequest(BaseModel):
    category: str = Field(min_length=1, max_length=64, description="retention category name")
    reason: str = Field(min_length=1, max_length=2000, description="why (kept in the ledger)")


@router.put(
    "/v1/evidence/{evidence_id}/retention",
    response_model=dict[str, Any],
    summary="Move an item to a longer (or permanent) retention category",
)
def put_retention(
    evidence_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(frozenset({auth.ADMIN})))],
    body: Annotated[RetentionRequest, Body()],
) -> dict[str, Any]:
    """Extends the Object Lock of every object of the item; a permanent category
    sets a legal hold. A shorter category is refused (409): retention only grows."""
    archive = get_archive(request)
    with archive.db.session() as session:
        evidence_or_404(session, evidence_id, principal)  # a scoped admin: its units only
    try:
        change = set_category(
            archive, evidence_id, body.category, actor=principal.actor, reason=body.reason
        )
    except RetentionRefused as exc:
        raise ApiError(409, "retention_refused", str(exc)) from None
    except UnknownEvidence:
        raise not_found(evidence_id) from None
    except RetentionError as exc:
        raise ApiError(422, "bad_retention_request", str(exc)) from None
    return change.to_dict()
