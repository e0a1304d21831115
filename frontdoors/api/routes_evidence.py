"""Evidence routes: search, one item, playback URLs, export bundles.

Reading one item, issuing a playback URL and downloading a bundle are custody
events naming the caller's token (the seed: every retrieval is recorded). The
event is written in the same transaction as the read, so an access that could
not be recorded does not happen. A search is one ``searched`` custody event
naming the caller and the filters (not the results).

Every route sees only the items in the caller's unit scope; an item outside it
answers exactly like a missing one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select

from archive.caselinks import MAX_CASE_ID, filter_by_case
from archive.custody import record_event
from archive.derivatives import Derivative
from archive.geo import MAX_RADIUS_M
from archive.queries import EvidenceFilter, evidence_query
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import (
    TIME_PATTERN,
    audit,
    evidence_or_404,
    get_archive,
    not_found,
    parse_circle,
    parse_time,
)
from frontdoors.api.errors import ApiError
from frontdoors.api.middleware import request_id
from frontdoors.api.paging import DEFAULT_LIMIT, MAX_LIMIT, page
from frontdoors.api.schemas import EvidenceDetail, EvidencePage, PlaybackOut
from frontdoors.api.transfer import bundle_zip, zip_response
from verify.documents import evidence_detail
from verify.export import ExportError

log = logging.getLogger("strongroom.api")
router = APIRouter(tags=["evidence"])

Text64 = Annotated[str | None, Query(max_length=64)]
EvidenceId = Annotated[str, "evidence id (ev-…)"]


@router.get("/v1/evidence", response_model=EvidencePage, summary="Search evidence")
def search_evidence(
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
    case: Annotated[str | None, Query(max_length=MAX_CASE_ID, description="case id")] = None,
    officer: Annotated[str | None, Query(max_length=64, description="police number")] = None,
    device: Annotated[str | None, Query(max_length=64, description="recorder serial")] = None,
    unit: Annotated[str | None, Query(max_length=64, description="unit code")] = None,
    station: Annotated[str | None, Query(max_length=64, description="station name")] = None,
    sha256: Annotated[
        str | None, Query(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the original")
    ] = None,
    state: Annotated[str | None, Query(max_length=20, description="evidence state")] = None,
    since: Annotated[
        str | None,
        Query(pattern=TIME_PATTERN, description="recorded at or after (RFC 3339; no offset = UTC)"),
    ] = None,
    until: Annotated[
        str | None,
        Query(pattern=TIME_PATTERN, description="recorded before (RFC 3339; no offset = UTC)"),
    ] = None,
    recorded_since: Annotated[
        str | None,
        Query(
            pattern=TIME_PATTERN,
            description="recorded at or after by the file's own clock (a media tag)",
        ),
    ] = None,
    recorded_until: Annotated[
        str | None,
        Query(pattern=TIME_PATTERN, description="recorded before by the file's own clock"),
    ] = None,
    near: Annotated[
        str | None,
        Query(max_length=64, description="LAT,LON in decimal degrees (needs radius)"),
    ] = None,
    radius: Annotated[
        float | None,
        Query(gt=0, le=MAX_RADIUS_M, description="metres around near (needs near)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512, description="from next_cursor")] = None,
) -> dict:
    """The ``find`` filters combined with AND, in a stable order (sealed time,
    then id), one page at a time."""
    archive = get_archive(request)
    filters = EvidenceFilter(
        officer=officer,
        device=device,
        unit=unit,
        station=station,
        sha256=sha256,
        state=state,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        recorded_since=parse_time(recorded_since, "recorded_since"),
        recorded_until=parse_time(recorded_until, "recorded_until"),
        near=parse_circle(near, radius),
    )
    query = principal.scope.where(evidence_query(filters))
    if case is not None:
        query = filter_by_case(query, case)
    with archive.db.session() as session:
        rows, next_cursor = page(
            session, query, cursor, limit, None if filters.exact else filters.keeps
        )
        items = [row[0].summary() for row in rows]
        asked = {"case": case, **filters.to_dict(), "limit": limit, "cursor": cursor is not None}
        record_event(
            session,
            "searched",
            actor=principal.actor,
            evidence_id=None,
            details={
                "via": "api",
                "role": principal.role,
                "scope": principal.scope.to_dict(),
                "client": request.client.host if request.client else None,
                "filters": {k: v for k, v in asked.items() if v not in (None, False)},
            },
        )
    return {"items": items, "count": len(items), "next_cursor": next_cursor}


@router.get(
    "/v1/evidence/{evidence_id}",
    response_model=EvidenceDetail,
    summary="One evidence item in full (recorded as viewed)",
)
def get_evidence(
    evidence_id: EvidenceId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.READ))],
) -> dict:
    """Hashes, source, the signed manifest as stored, playback copies, case
    links, retention and the latest fixity verdict."""
    archive = get_archive(request)
    with archive.db.session() as session:
        evidence = evidence_or_404(session, evidence_id, principal)
        document = evidence_detail(archive, session, evidence)
        audit(session, "viewed", principal, request, evidence.evidence_id)
    return document


@router.get(
    "/v1/evidence/{evidence_id}/playback",
    response_model=PlaybackOut,
    summary="A short-lived URL of the original or the playback copy (recorded)",
)
def playback(
    evidence_id: EvidenceId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.PLAYBACK))],
    variant: Annotated[Literal["original", "derivative"], Query()] = "derivative",
) -> dict:
    """A presigned GET of the exact stored version; it expires after
    ``[api] playback_expiry_seconds``. Issuing it is a ``playback_issued``
    custody event."""
    archive = get_archive(request)
    expires_in = archive.settings.api.playback_expiry_seconds
    with archive.db.session() as session:
        evidence = evidence_or_404(session, evidence_id, principal)
        if variant == "original":
            key, version_id = evidence.original_key, evidence.original_version_id
            sha256, size, media_type = evidence.sha256, evidence.size, evidence.media_type
        else:
            derivative = session.scalars(
                select(Derivative)
                .where(Derivative.evidence_id == evidence_id, Derivative.state == "stored")
                .where(Derivative.key.is_not(None))
                .order_by(Derivative.id.desc())
                .limit(1)
            ).first()
            if derivative is None or derivative.sha256 is None or derivative.size is None:
                raise ApiError(
                    404,
                    "no_derivative",
                    f"{evidence_id} has no playback copy (yet); ask for variant=original",
                )
            key, version_id = derivative.key or "", derivative.version_id
            sha256, size = derivative.sha256, derivative.size
            media_type = "audio/mp4" if derivative.action == "audio" else "video/mp4"
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        url = request.app.state.presigner.url(key, version_id, expires_in)
        audit(
            session,
            "playback_issued",
            principal,
            request,
            evidence_id,
            variant=variant,
            key=key,
            version_id=version_id,
            sha256=sha256,
            expires_at=expires_at.isoformat(),
        )
    return {
        "evidence_id": evidence_id,
        "variant": variant,
        "url": url,
        "expires_at": expires_at,
        "expires_in": expires_in,
        "sha256": sha256,
        "size": size,
        "media_type": media_type,
    }


@router.get(
    "/v1/evidence/{evidence_id}/bundle",
    summary="The item's BagIt export bundle as a zip (recorded as exported)",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "a zip of the bag"}},
)
def bundle(
    evidence_id: EvidenceId,
    request: Request,
    principal: Annotated[Principal, Depends(auth.require(auth.AUDIT))],
) -> FileResponse:
    """Original, manifests, ledger leaves with inclusion proofs, the latest
    checkpoint, the public key and VERIFY.txt – all an auditor needs for
    ``strongroom verify-bundle``, with nothing else trusted."""
    archive = get_archive(request)
    with archive.db.session() as session:
        evidence_or_404(session, evidence_id, principal)
    try:
        target = bundle_zip(
            archive,
            [evidence_id],
            f"{evidence_id}-bundle",
            actor=principal.actor,
            include_derivatives=False,
        )
    except KeyError as exc:
        if exc.args != (evidence_id,):  # not "unknown id": a bug, answered as one
            raise
        raise not_found(evidence_id) from None
    except ExportError as exc:
        # the reason names server paths and object keys: the log gets it, the client an id
        log.error(
            "export of %s failed (request id %s): %s", evidence_id, request_id(request.scope), exc
        )
        raise ApiError(500, "export_failed", "the bundle could not be made") from None
    return zip_response(target)
