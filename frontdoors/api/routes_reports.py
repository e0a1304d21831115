"""Statistics and retention routes: the compliance report for auditors, and
changing an item's retention category (admin).

The report is computed by :mod:`verify.reports` (read-only), imported inside
the route as the bundle route does with :mod:`verify.export`, so the API
package does not depend on ``verify`` at import time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from archive.instants import parse_instant
from archive.retention import set_category
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import evidence_or_404, get_archive
from frontdoors.api.errors import ApiError

router = APIRouter(tags=["reports"])

GROUPINGS = ("officer", "device", "unit", "station", "day")


class RetentionRequest(BaseModel):
    category: str = Field(min_length=1, max_length=64, description="retention category name")
    reason: str = Field(min_length=1, max_length=2000, description="why (kept in the ledger)")


def _when(text: str | None, tz, name: str) -> datetime | None:
    try:
        return None if text is None else parse_instant(text, tz)
    except ValueError:
        raise ApiError(422, "bad_parameter", f"{name} must be an ISO date or time") from None


@router.get(
    "/v1/reports/summary",
    response_model=dict[str, Any],
    summary="Counts, recorded hours, bytes, archive delay and deadline compliance",
)
def get_summary(
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.AUDIT))],
    from_: Annotated[
        str | None, Query(alias="from", description="date or ISO time (station zone)")
    ] = None,
    to: Annotated[str | None, Query(description="exclusive end, like from")] = None,
    by: Annotated[str | None, Query(description="officer|device|unit|station|day")] = None,
) -> dict[str, Any]:
    """The same document as ``strongroom report --json``: totals, groups, daily
    rows, late items, derivative and fixity status."""
    from verify.reports import build_report

    if by is not None and by not in GROUPINGS:
        raise ApiError(422, "bad_parameter", f"by must be one of {', '.join(GROUPINGS)}")
    archive = get_archive(request)
    tz = archive.settings.station.tzinfo
    start, end = _when(from_, tz, "from"), _when(to, tz, "to")
    with archive.db.session() as session:
        return build_report(
            session, archive.settings, start=start, end=end, by=by, scope=principal.scope
        )


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
    # refused (409 retention_refused), unknown (404) and bad requests (422) are
    # answered by the error's kind and code (frontdoors/api/errors.py)
    change = set_category(
        archive, evidence_id, body.category, actor=principal.actor, reason=body.reason
    )
    return change.to_dict()
