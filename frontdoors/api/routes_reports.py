"""Statistics routes: the compliance report for auditors, computed by
:mod:`verify.reports` (read-only) – the same document as ``strongroom report``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import get_archive, parse_time
from frontdoors.api.errors import ApiError
from verify.reports import build_report

router = APIRouter(tags=["reports"])

GROUPINGS = ("officer", "device", "unit", "station", "day")


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
    if by is not None and by not in GROUPINGS:
        raise ApiError(422, "invalid_request", f"query.by: one of {', '.join(GROUPINGS)}")
    archive = get_archive(request)
    zone = archive.settings.station.tzinfo
    start, end = parse_time(from_, "from", zone), parse_time(to, "to", zone)
    with archive.db.session() as session:
        return build_report(
            session, archive.settings, start=start, end=end, by=by, scope=principal.scope
        )
