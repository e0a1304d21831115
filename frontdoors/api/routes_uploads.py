"""Resumable uploads from outside the dock: the tus 1.0.0 protocol under ``/v1/uploads``.

Core protocol with the creation, termination, checksum and expiration
extensions (https://tus.io/protocols/resumable-upload). The work is done by
:mod:`archive.uploads`; this module speaks HTTP: headers in, headers out,
errors in the one JSON shape (``HEAD`` answers carry no body).

Who may upload: ``case-system`` and ``admin`` tokens – the roles that already
change what the archive holds (links, holds); an ``auditor`` only reads and
stays independent of what it audits. A token limited to some units must name
a unit of its own in ``Upload-Metadata``. An upload belongs to the token that
created it: any other token gets 404, as for an unknown upload.
"""

from __future__ import annotations

import asyncio
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from archive.uploads import (
    CHECKSUM_ALGORITHMS,
    TUS_EXTENSIONS,
    TUS_VERSION,
    Progress,
    Uploader,
    UploadError,
    declared,
    parse_metadata,
)
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.errors import ApiError
from frontdoors.api.schemas import ErrorResponse

router = APIRouter(tags=["uploads"])

PREFIX = "/v1/uploads"
OCTETS = "application/offset+octet-stream"
#: bytes gathered from the socket before one write to the partial (bounded memory)
WRITE_BYTES = 1024 * 1024
_TUS = {"Tus-Resumable": TUS_VERSION}


def _documented(*statuses: int) -> dict[int | str, dict]:
    """The tus answers of a route, in the one error shape (HEAD: status only)."""
    described = {
        409: "Upload-Offset is not the upload's offset, or the upload is complete",
        410: "the upload expired, was aborted, or was refused",
        412: "Tus-Resumable is not 1.0.0",
        428: "Tus-Resumable is missing",
        413: "larger than [uploads] max_bytes, or the body goes past Upload-Length",
        415: "Content-Type is not application/offset+octet-stream",
        423: "another request is appending to this upload",
        429: "the token has [uploads] max_active_per_token unfinished uploads",
        460: "checksum mismatch: Upload-Checksum of this body, or (sha256_mismatch) the "
        "declared SHA-256 of the whole file – the upload is then refused",
        507: "not enough free space in the upload folder",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


Uploading = Annotated[Principal, Depends(auth.require(auth.UPLOAD))]
UploadId = Annotated[
    str,
    Path(pattern=r"^[0-9a-f]{32}$", description="from the Location of the creating POST"),
]


def _area(request: Request):
    area = getattr(request.app.state, "uploads", None)
    if area is None:
        raise ApiError(
            503,
            "uploads_unavailable",
            "this server takes no uploads ([uploads] enabled = false, or an API server "
            "started without a station's upload folder)",
            _TUS,
        )
    return area


def _uploader(request: Request, principal: Principal) -> Uploader:
    client = request.client.host if request.client else None
    return Uploader(principal.name, principal.role, principal.scope, client)


def _tus_version(value: str | None) -> None:
    """412 for a version we do not speak (tus core); a request without the header
    at all is not a tus request: 428, the precondition it lacks."""
    if value is None:
        raise ApiError(
            428,
            "tus_resumable_required",
            f"send Tus-Resumable: {TUS_VERSION} (this is a tus endpoint)",
            {"Tus-Version": TUS_VERSION, **_TUS},
        )
    if value != TUS_VERSION:
        raise ApiError(
            412,
            "tus_version",
            f"Tus-Resumable must be {TUS_VERSION}",
            {"Tus-Version": TUS_VERSION, **_TUS},
        )


def _refused(exc: UploadError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, _TUS)


def _headers(progress: Progress) -> dict[str, str]:
    headers = {
        **_TUS,
        "Upload-Offset": str(progress.offset),
        "Upload-Length": str(progress.length),
        "Upload-Expires": format_datetime(progress.expires_at, usegmt=True),
        "Cache-Control": "no-store",
        "X-Strongroom-Upload-State": progress.state,
    }
    if progress.evidence_id:
        headers["X-Strongroom-Evidence-Id"] = progress.evidence_id
    return headers


@router.options(
    PREFIX,
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Tus-Version, Tus-Extension, Tus-Max-Size headers"}},
    summary="What this tus server supports",
)
def options(request: Request, principal: Uploading) -> Response:
    area = _area(request)
    return Response(
        status_code=204,
        headers={
            **_TUS,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(area.settings.max_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


@router.post(
    PREFIX,
    status_code=201,
    response_class=Response,
    responses={
        201: {"description": "created: Location names the upload"},
        **_documented(412, 413, 428, 429, 507),
    },
    summary="Create an upload (tus creation)",
)
def create(
    request: Request,
    principal: Uploading,
    upload_length: Annotated[int, Header(ge=0, description="the file's size in bytes")],
    tus_resumable: Annotated[str | None, Header()] = None,
    upload_metadata: Annotated[
        str | None,
        Header(
            description="base64 values: filename and sha256 (hex) required; "
            "unit, officer, device optional"
        ),
    ] = None,
) -> Response:
    """201 with ``Location``. Refused: 413 over ``[uploads] max_bytes``, 403 a unit
    outside the token's units, 429 too many unfinished uploads, 507 no space."""
    _tus_version(tus_resumable)
    area = _area(request)
    if int(request.headers.get("content-length") or 0) > 0:
        raise ApiError(
            422,
            "invalid_request",
            "send the bytes with PATCH (creation-with-upload is not offered)",
        )
    try:
        progress = area.create(
            _uploader(request, principal), upload_length, declared(parse_metadata(upload_metadata))
        )
    except UploadError as exc:
        raise _refused(exc) from None
    return Response(
        status_code=201,
        headers={**_headers(progress), "Location": f"{PREFIX}/{progress.upload_id}"},
    )


@router.head(
    f"{PREFIX}/{{upload_id}}",
    response_class=Response,
    responses={
        200: {"description": "Upload-Offset and Upload-Length"},
        **_documented(410, 412, 428),
    },
    summary="How far an upload got (tus core)",
)
def head(
    upload_id: UploadId,
    request: Request,
    principal: Uploading,
    tus_resumable: Annotated[str | None, Header()] = None,
) -> Response:
    """``Upload-Offset``: the bytes the server holds durably; send from there.
    After completion ``X-Strongroom-Evidence-Id`` names the item."""
    _tus_version(tus_resumable)
    try:
        progress = _area(request).progress(_uploader(request, principal), upload_id)
    except UploadError as exc:
        raise _refused(exc) from None
    if progress.state not in ("receiving", "complete"):
        return Response(status_code=410, headers={**_headers(progress)})
    return Response(status_code=200, headers=_headers(progress))


@router.patch(
    f"{PREFIX}/{{upload_id}}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "appended: Upload-Offset is the new durable offset"},
        400: {"model": ErrorResponse, "description": "the client went away mid-body"},
        **_documented(409, 410, 412, 413, 415, 423, 428, 460),
    },
    summary="Append bytes (tus core)",
)
async def append(
    upload_id: UploadId,
    request: Request,
    principal: Uploading,
    upload_offset: Annotated[int, Header(ge=0)],
    content_type: Annotated[str | None, Header()] = None,
    tus_resumable: Annotated[str | None, Header()] = None,
    upload_checksum: Annotated[
        str | None, Header(description="tus checksum extension: '<sha256|sha1> <base64>'")
    ] = None,
) -> Response:
    """The body (``application/offset+octet-stream``) is written at ``Upload-Offset``,
    which must be the upload's offset (409 otherwise). 204 with the new offset,
    acknowledged only once durable. The last byte completes the upload: 460
    ``sha256_mismatch`` if the bytes are not the declared SHA-256 (the partial
    is discarded), else it is handed to the archive."""
    _tus_version(tus_resumable)
    if (content_type or "").split(";")[0].strip().lower() != OCTETS:
        raise ApiError(415, "unsupported_media_type", f"Content-Type must be {OCTETS}", _TUS)
    area = _area(request)
    uploader = _uploader(request, principal)
    try:
        writer = await run_in_threadpool(
            area.open_append, uploader, upload_id, upload_offset, upload_checksum
        )
    except UploadError as exc:
        raise _refused(exc) from None
    try:
        pending: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                pending.append(chunk)
                size += len(chunk)
                if size >= WRITE_BYTES:
                    await run_in_threadpool(writer.write, b"".join(pending))
                    pending, size = [], 0
            if pending:
                await run_in_threadpool(writer.write, b"".join(pending))
        except ClientDisconnect:
            # the client went away: keep what arrived, durably; it resumes with a HEAD
            await run_in_threadpool(writer.abandon)
            return Response(status_code=400, headers=_TUS)
        except asyncio.CancelledError:
            writer.abandon()  # the server is stopping: the same, before the task ends
            raise
        progress = await run_in_threadpool(writer.finish)
    except UploadError as exc:
        raise _refused(exc) from None
    finally:
        writer.close()
    return Response(status_code=204, headers=_headers(progress))


@router.delete(
    f"{PREFIX}/{{upload_id}}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "aborted, the partial removed"},
        **_documented(409, 410, 412, 428),
    },
    summary="Abort an upload (tus termination)",
)
def abort(
    upload_id: UploadId,
    request: Request,
    principal: Uploading,
    tus_resumable: Annotated[str | None, Header()] = None,
) -> Response:
    """The partial is removed; a complete upload (handed to the archive) answers 409."""
    _tus_version(tus_resumable)
    try:
        _area(request).abort(_uploader(request, principal), upload_id)
    except UploadError as exc:
        raise _refused(exc) from None
    return Response(status_code=204, headers=_TUS)
