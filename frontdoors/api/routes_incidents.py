"""Incident routes: dispatch incidents in, proposed links decided.

``POST /v1/incidents`` stores one incident (``case-system`` or ``admin``) and
matches it at once; posting the same incident again changes nothing (200,
``status: unchanged``). ``GET /v1/incidents`` and ``/v1/incidents/{id}`` show
incidents of the caller's units; one of another unit answers 404 like a missing
one. ``GET /v1/links/pending`` and ``POST /v1/links/{id}/confirm|reject`` are
the API side of ``strongroom links``; a match whose item is outside the caller's
units answers 404. The logic is :mod:`archive.incidents`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from archive import caselinks, incidents
from archive.incident_models import Incident
from archive.store import StoreError
from config.errors import UnknownEvidence
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import TIME_PATTERN, get_archive, parse_time
from frontdoors.api.errors import ApiError

router = APIRouter(tags=["incidents"])

IncidentId = Annotated[
    str,
    Path(min_length=1, max_length=caselinks.MAX_CASE_ID, pattern=caselinks.CASE_ID_PATTERN),
]


MatchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="match id")]


class IncidentIn(BaseModel):
    """One incident; times in ISO 8601 (without an offset: the station's zone)."""

    incident_id: str = Field(min_length=1, max_length=caselinks.MAX_CASE_ID)
    case_id: str | None = Field(None, max_length=caselinks.MAX_CASE_ID)
    officer_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=incidents.MAX_OFFICERS
    )
    unit: str = Field(min_length=1, max_length=64)
    start: str = Field(max_length=64)
    end: str = Field(max_length=64)


class DecisionIn(BaseModel):
    reason: str | None = Field(
        None,
        max_length=caselinks.MAX_REASON,
        pattern=caselinks.REASON_PATTERN,
        description="why; kept in the custody ledger",
    )


def _refused(exc: Exception) -> ApiError:
    message = str(exc)
    if "outside your units" in message:
        return ApiError(403, "out_of_scope", message)
    return ApiError(422, "invalid_request", message)


@router.post(
    "/v1/incidents",
    summary="Store a dispatch incident and match it (idempotent)",
    responses={
        200: {"description": "the incident was on record: updated, or unchanged"},
        201: {"description": "a new incident"},
    },
)
def post_incident(
    body: IncidentIn,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
) -> JSONResponse:
    """201 when new, 200 when updated or unchanged. Items recorded by its officers
    inside its window (± ``[incidents] slack_minutes``) are linked to its case as
    ``rule:incident-window`` or proposed (``[incidents] confirm``)."""
    archive = get_archive(request)
    zone = archive.settings.station.tzinfo
    try:
        record = incidents.check_record(
            archive.settings,
            incident_id=body.incident_id,
            case_id=body.case_id or None,
            officers=[o.strip() for o in body.officer_ids if o.strip()],
            unit=body.unit,
            start=incidents.parse_time(body.start, zone, "start"),
            end=incidents.parse_time(body.end, zone, "end"),
        )
        result = incidents.import_incidents(
            archive, [record], actor=principal.actor, scope=principal.scope, source={"api": True}
        )
    except incidents.IncidentRefused as exc:
        raise _refused(exc) from None
    status = "created" if result.created else "updated" if result.updated else "unchanged"
    document = {
        "status": status,
        "incident": record.to_dict(),
        "matches": result.matches,
        "matching_deferred": result.matching_deferred,
    }
    return JSONResponse(document, status_code=201 if result.created else 200)


def _incident_or_404(session: Any, incident_id: str, principal: Principal) -> Incident:
    row = session.get(Incident, incident_id)
    if row is None or not principal.scope.covers(row.unit):
        raise ApiError(404, "incident_not_found", f"no incident {incident_id!r}")
    return row


@router.get("/v1/incidents", summary="Incidents of the caller's units, newest window first")
def list_incidents(
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
    since: Annotated[
        str | None,
        Query(pattern=TIME_PATTERN, description="windows ending at or after (no offset = UTC)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict:
    archive = get_archive(request)
    query = select(Incident).order_by(Incident.start.desc(), Incident.incident_id).limit(limit)
    if principal.scope.units is not None:
        query = query.where(Incident.unit.in_(sorted(principal.scope.units)))
    if since is not None:
        query = query.where(Incident.end >= parse_time(since, "since"))
    with archive.db.session() as session:
        rows = [
            incidents.incident_dict(row, incidents.officers_of(session, row.incident_id))
            for row in session.scalars(query)
        ]
    return {"incidents": rows, "count": len(rows)}


@router.get("/v1/incidents/{incident_id}", summary="One incident and its matches")
def get_incident(
    incident_id: IncidentId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
) -> dict:
    """The matches listed are those whose item the caller's scope covers."""
    archive = get_archive(request)
    with archive.db.session() as session:
        row = _incident_or_404(session, incident_id, principal)
        document = incidents.incident_dict(row, incidents.officers_of(session, incident_id))
        document["matches"] = incidents.list_matches(
            session, scope=principal.scope, state=None, incident_id=incident_id, limit=10000
        )
    return document


@router.get("/v1/links/pending", summary="Proposed links waiting for a person")
def pending_links(
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> dict:
    archive = get_archive(request)
    with archive.db.session() as session:
        rows = incidents.list_matches(session, scope=principal.scope, limit=limit)
    return {"pending": rows, "count": len(rows)}


def _decide(operation: Any, request: Request, principal: Principal, match_id: int, body: Any):
    archive = get_archive(request)
    try:
        return operation(
            archive,
            match_id,
            actor=principal.actor,
            scope=principal.scope,
            reason=body.reason if body is not None else None,
        )
    except incidents.UnknownMatch:
        raise ApiError(404, "match_not_found", f"no match {match_id}") from None
    except incidents.MatchDecided as exc:
        raise ApiError(409, "match_decided", str(exc)) from None
    except UnknownEvidence:
        raise ApiError(404, "match_not_found", f"no match {match_id}") from None
    except caselinks.LinkRefused as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except StoreError as exc:
        raise ApiError(
            503, "store_unavailable", f"the store refused the legal hold: {exc}"
        ) from None


@router.post("/v1/links/{match_id}/confirm", summary="Make a proposed link (it is yours)")
def confirm_link(
    match_id: MatchId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
    body: DecisionIn | None = None,
) -> dict:
    return _decide(incidents.confirm, request, principal, match_id, body)


@router.post("/v1/links/{match_id}/reject", summary="Refuse a proposed link for good")
def reject_link(
    match_id: MatchId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.LINK))],
    body: DecisionIn | None = None,
) -> dict:
    return _decide(incidents.reject, request, principal, match_id, body)
