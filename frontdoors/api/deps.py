"""Small helpers every route module shares: the archive, the audit record,
and the lookups that turn a missing row into the right 404."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.custody import record_event
from archive.geo import Circle, check_radius, parse_point
from archive.instants import parse_instant
from archive.models import Evidence
from frontdoors.api.auth import Principal
from frontdoors.api.errors import ApiError


def get_archive(request: Request) -> Archive:
    return request.app.state.archive


def not_found(evidence_id: str) -> ApiError:
    """The one answer for a missing item and for an item outside the caller's
    scope: same status, same body, so a scope cannot probe for existence."""
    return ApiError(404, "evidence_not_found", f"no evidence {evidence_id!r}")


def evidence_or_404(session: Session, evidence_id: str, principal: Principal) -> Evidence:
    """The item if it exists *and* the caller's scope covers it, else 404."""
    evidence = session.get(Evidence, evidence_id) if len(evidence_id) <= 40 else None
    if evidence is None or not principal.scope.covers(evidence.unit):
        raise not_found(evidence_id)
    return evidence


def audit(
    session: Session,
    kind: str,
    principal: Principal,
    request: Request,
    evidence_id: str,
    **details: Any,
) -> None:
    """Record an access as a custody event in the caller's transaction: if the
    record cannot be written, the access fails with it."""
    details = {
        "via": "api",
        "role": principal.role,
        "scope": principal.scope.to_dict(),
        "client": request.client.host if request.client else None,
        **details,
    }
    record_event(session, kind, actor=principal.actor, evidence_id=evidence_id, details=details)


#: RFC 3339 date-time; the offset may be left out, and then means UTC
TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)


def parse_time(value: str | None, name: str, zone: tzinfo = UTC) -> datetime | None:
    """A time in the query (``since``, ``until``, the report's ``from``/``to``),
    read as the CLI reads its options (:func:`archive.instants.parse_instant`):
    an ISO date (its midnight) or date-time; without an offset it is in
    ``zone`` – UTC for the searches, the station's zone for reports, as each
    route documents. A bad one is ``422 invalid_request``, like every other bad
    query value."""
    if value is None:
        return None
    try:
        return parse_instant(value.replace("z", "Z"), zone)
    except ValueError:
        raise ApiError(
            422, "invalid_request", f"query.{name}: not a valid time (an ISO date or time)"
        ) from None


def parse_circle(near: str | None, radius: float | None) -> Circle | None:
    """``near=LAT,LON`` with ``radius`` (metres), read by :mod:`archive.geo` as the
    CLI reads ``--near``/``--radius``; one without the other, or a bad point, is
    ``422 invalid_request`` like every other bad query value."""
    if near is None and radius is None:
        return None
    if near is None or radius is None:
        raise ApiError(422, "invalid_request", "query.near and query.radius go together")
    try:
        latitude, longitude = parse_point(near)
        return Circle(latitude, longitude, check_radius(radius))
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"query.near: {exc}") from None
