"""The pages a disclosure share opens – no account, no token: the secret in
the link is the key.

``GET /share/{secret}`` is a server-rendered page (works on a phone) listing
the shared items with their SHA-256, a player for each playback copy and, when
the share allows it, a download of each original. Playback and downloads are
streamed from the store through the API with HTTP range requests, so the
store's address never leaves the station. Every view, play and download is a
custody event naming the share and the client's address.

A malformed or unknown secret answers 404, an expired or revoked one 410,
both with the same few words and nothing else. The secret is part of the
path, so uvicorn's access log line is redacted here (see ``_RedactShares``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from archive.instants import station_time
from archive.share_models import Share
from archive.shares import (
    ShareGone,
    ShareNotFound,
    open_share,
    record_access,
    shared_items,
)
from frontdoors.api.deps import get_archive
from frontdoors.api.transfer import bundle_zip, parse_range, ranged, unsatisfiable, zip_response
from verify.export import ExportError

log = logging.getLogger("strongroom.api")
router = APIRouter(tags=["share pages"], include_in_schema=False)
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
Secret = Annotated[str, "the share's secret"]
_PLAIN = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "media-src 'self'; img-src 'self'; frame-ancestors 'none'",
}


class _RedactShares(logging.Filter):
    """Replaces the secret in uvicorn's access log lines with ``…``."""

    pattern = re.compile(r"/share/[^/\s?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.pattern.sub("/share/…", a) if isinstance(a, str) else a for a in record.args
            )
        return True


logging.getLogger("uvicorn.access").addFilter(_RedactShares())


def _closed(status: int) -> HTMLResponse:
    text = "Not found." if status == 404 else "This link is no longer valid."
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8><title>{status}</title><p>{text}</p>",
        status_code=status,
        headers=_PLAIN,
    )


def _opened(session: Session, secret: str) -> Share | HTMLResponse:
    """The share, or the page that says why there is none: 404 for a secret
    never issued, 410 once it expired or was revoked."""
    try:
        return open_share(session, secret)
    except ShareNotFound:
        return _closed(404)
    except ShareGone:
        return _closed(410)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/share/{secret}", response_class=HTMLResponse)
def share_page(secret: Secret, request: Request) -> Response:
    archive = get_archive(request)
    zone = archive.settings.station.tzinfo
    with archive.db.session() as session:
        share = _opened(session, secret)
        if not isinstance(share, Share):
            return share
        items = []
        for evidence, copy in shared_items(session, share):
            items.append(
                {
                    "evidence_id": evidence.evidence_id,
                    "file_name": evidence.file_name,
                    "size": evidence.size,
                    "sha256": evidence.sha256,
                    "recorded": station_time(evidence.recorded_start, zone)
                    if evidence.recorded_start
                    else None,
                    "officer": evidence.officer,
                    "play": f"/share/{secret}/play/{evidence.evidence_id}" if copy else None,
                    "play_type": "audio" if copy and copy.action == "audio" else "video",
                    "copy_sha256": copy.sha256 if copy else None,
                    "download": f"/share/{secret}/download/{evidence.evidence_id}"
                    if share.allow == "download"
                    else None,
                }
            )
            record_access(session, "share_viewed", share, evidence.evidence_id, _client(request))
        html = _TEMPLATES.get_template("share.html").render(
            share=share,
            items=items,
            expires=station_time(share.expires_at, zone),
            station=archive.station,
            bundle=f"/share/{secret}/bundle" if share.allow == "download" else None,
        )
    return HTMLResponse(html, headers=_PLAIN)


def _stream(request: Request, secret: str, evidence_id: str, kind: str) -> Response:
    archive = get_archive(request)
    with archive.db.session() as session:
        share = _opened(session, secret)
        if not isinstance(share, Share):
            return share
        found = {ev.evidence_id: (ev, copy) for ev, copy in shared_items(session, share)}
        if evidence_id not in found:
            return _closed(404)
        evidence, copy = found[evidence_id]
        if kind == "share_played":
            if copy is None or copy.size is None:
                return _closed(404)
            key, version_id, size = copy.key or "", copy.version_id, copy.size
            media_type = "audio/mp4" if copy.action == "audio" else "video/mp4"
            sha256, disposition = copy.sha256, None
        else:
            if share.allow != "download":
                return _closed(404)
            key, version_id, size = (
                evidence.original_key,
                evidence.original_version_id,
                evidence.size,
            )
            media_type, sha256 = "application/octet-stream", evidence.sha256
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", evidence.file_name)[:150] or evidence_id
            disposition = f'attachment; filename="{safe}"'
        try:
            wanted = parse_range(request.headers.get("range"), size)
        except ValueError:
            return unsatisfiable(size)
        # one event per play or download, not per range request of it
        if wanted is None or wanted[0] == 0:
            record_access(
                session, kind, share, evidence_id, _client(request), sha256=sha256, key=key
            )
    headers = {**_PLAIN, "X-Content-SHA256": sha256 or ""}
    if disposition:
        headers["Content-Disposition"] = disposition
    return ranged(archive, key, version_id, size, wanted, media_type, headers)


@router.get("/share/{secret}/play/{evidence_id}")
def play(secret: Secret, evidence_id: str, request: Request) -> Response:
    return _stream(request, secret, evidence_id, "share_played")


@router.get("/share/{secret}/download/{evidence_id}")
def download(secret: Secret, evidence_id: str, request: Request) -> Response:
    return _stream(request, secret, evidence_id, "share_downloaded")


@router.get("/share/{secret}/bundle")
def bundle(secret: Secret, request: Request) -> Response:
    """The shared items as one BagIt bundle (zip) with proofs, the checkpoint,
    the public key and VERIFY.txt – when the share allows downloads."""
    archive = get_archive(request)
    with archive.db.session() as session:
        share = _opened(session, secret)
        if not isinstance(share, Share):
            return share
        if share.allow != "download":
            return _closed(404)
        share_id, ids = share.share_id, list(share.evidence_ids or [])
        for evidence_id in ids:
            record_access(
                session, "share_downloaded", share, evidence_id, _client(request), variant="bundle"
            )
    try:
        target = bundle_zip(archive, ids, f"{share_id}-bundle", actor=f"share:{share_id}")
    except (ExportError, KeyError):
        log.error("bundle of share %s failed", share_id, exc_info=True)
        return _closed(404)
    return zip_response(target, _PLAIN)
