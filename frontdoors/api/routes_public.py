"""Public pages and answers – no token: the 公示 transparency page, the
plain-text checkpoint, verify-your-copy and its lookup by hash.

Nothing here names an officer, unit of a single item, case or file unless the
operator sets ``[api] public_show_details``. The statistics are aggregates per
unit and month (built with :mod:`verify.reports`) and cached for a few minutes.
The lookup is rate-limited per client address (``[api]
public_lookups_per_minute``; 429 beyond).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from sqlalchemy import select

from archive import ledger
from archive.dsse import EnvelopeError, key_fingerprint, verify_envelope
from archive.models import Evidence
from archive.note import encode_vkey
from frontdoors.api import web
from frontdoors.api.deps import get_archive
from frontdoors.api.errors import ApiError
from verify.reports import FACT_COLUMNS, item_facts, summarize

router = APIRouter(tags=["public"])
_SHA256 = r"^[0-9a-fA-F]{64}$"
STATS_SECONDS = 300.0  # how long the aggregate statistics are cached
STATS_COLUMNS = ("unit", "month", "items", "recorded_hours", "within_deadline_share")


# -- rate limit ------------------------------------------------------------------


class RateLimit:
    """A sliding one-minute window per client address, in memory (one process
    serves the API). Old addresses are dropped as they go quiet."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle clients
                for key in [k for k, v in self._hits.items() if not v or v[-1] < now - 60]:
                    del self._hits[key]
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False
            hits.append(now)
            return True


def _limiter(request: Request) -> RateLimit:
    state = request.app.state
    if getattr(state, "public_limit", None) is None:
        state.public_limit = RateLimit(get_archive(request).settings.api.public_lookups_per_minute)
    return state.public_limit


# -- checkpoint ------------------------------------------------------------------


def latest_checkpoint(request: Request) -> dict[str, Any] | None:
    try:
        return ledger.checkpoint_document(get_archive(request))
    except LookupError:
        return None


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint as a C2SP signed note (public)",
    responses={200: {"content": {"text/plain": {}}}},
)
def checkpoint_note(request: Request) -> Response:
    """Exactly the note text a witness or `strongroom verify` reads."""
    document = latest_checkpoint(request)
    if document is None:
        raise ApiError(404, "no_checkpoint", "the ledger has no checkpoint yet")
    return PlainTextResponse(
        document["note"],
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# -- statistics ------------------------------------------------------------------


def unit_month_stats(request: Request) -> dict[str, Any]:
    """Items, recorded hours and the share archived within the deadline per
    (unit, month of recording, station time zone). Cached STATS_SECONDS."""
    state = request.app.state
    cached = getattr(state, "public_stats", None)
    if cached is not None and time.monotonic() - cached[0] < STATS_SECONDS:
        return cached[1]
    archive = get_archive(request)
    settings = archive.settings
    tz = settings.station.tzinfo
    deadline = settings.retention.archive_deadline_hours * 3600
    groups: dict[tuple[str, str], list] = {}
    with archive.db.session() as session:
        for row in session.execute(select(*FACT_COLUMNS)):
            fact = item_facts(row, tz)
            key = (fact.unit or "(unknown)", fact.day.strftime("%Y-%m"))
            groups.setdefault(key, []).append(fact)
    rows = []
    for (unit, month), facts in sorted(groups.items()):
        summary = summarize(facts, deadline)
        rows.append(
            {
                "unit": unit,
                "month": month,
                "items": summary["items"],
                "recorded_hours": round(summary["recorded_hours"], 2),
                "within_deadline_share": None
                if summary["within_deadline_share"] is None
                else round(summary["within_deadline_share"], 4),
            }
        )
    stats = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "deadline_hours": settings.retention.archive_deadline_hours,
        "rows": rows,
    }
    state.public_stats = (time.monotonic(), stats)
    return stats


class CsvResponse(Response):
    media_type = "text/csv; charset=utf-8"


@router.get(
    "/public/stats.csv",
    response_class=CsvResponse,
    summary="Aggregate statistics per unit and month (CSV)",
)
def stats_csv(request: Request) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in unit_month_stats(request)["rows"]:
        writer.writerow({k: "" if row[k] is None else row[k] for k in STATS_COLUMNS})
    return CsvResponse(
        out.getvalue(),
        headers={"Content-Disposition": 'attachment; filename="strongroom-stats.csv"'},
    )


@router.get("/public", include_in_schema=False)
def public_page(request: Request) -> Response:
    archive = get_archive(request)
    document = latest_checkpoint(request)
    key = archive.key
    return web.page(
        request,
        "public.html",
        archive.settings.api.ui_language,
        checkpoint=document,
        fingerprint=key_fingerprint(key.public_key),
        vkey=document["vkey"] if document else None,
        stats=unit_month_stats(request),
    )


# -- verify your copy --------------------------------------------------------------


@router.get("/verify", include_in_schema=False)
def verify_page(request: Request) -> Response:
    archive = get_archive(request)
    lang = web.language(request, archive.settings.api.ui_language)
    strings = web.strings(lang)
    wanted: tuple[str, ...] = ("hashing", "asking", "done", "match", "no_match", "sealed_at")
    wanted += ("manifest", "proof", "leaves", "tree_size", "hashes", "proof_here")
    return web.page(
        request,
        "verify.html",
        archive.settings.api.ui_language,
        script_strings=json.dumps({k: strings[k] for k in wanted}, ensure_ascii=False).replace(
            "<", "\\u003c"
        ),
    )


@router.get("/static/web/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    if name not in ("sha256.js", "verify.js"):
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(
        web.STATIC / name,
        media_type="text/javascript; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def _leaf_kind(leaf: str) -> str | None:
    try:
        kind = json.loads(leaf).get("kind")
    except (ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


@router.get(
    "/v1/public/lookup/{sha256}",
    response_model=dict[str, Any],
    summary="Is a file with this SHA-256 archived? (public, rate-limited)",
    responses={429: {"description": "too many lookups from this address"}},
)
def lookup(sha256: str, request: Request) -> dict[str, Any]:
    """``archived``; when it is: ``sealed_at``, the signed manifest as checked
    here (keyid, verified, the envelope's SHA-256), the ledger inclusion proof
    of the item's leaves against the latest checkpoint, and that checkpoint's
    signed note. Names, officers, units and cases only with ``[api]
    public_show_details``."""
    import re

    client = request.client.host if request.client else "unknown"
    if not _limiter(request).allow(client):  # every lookup counts, malformed ones too
        raise ApiError(
            429, "rate_limited", "too many lookups from this address", {"Retry-After": "60"}
        )
    if not re.match(_SHA256, sha256):
        raise ApiError(422, "invalid_request", "path.sha256: not 64 hexadecimal digits")
    archive = get_archive(request)
    details = archive.settings.api.public_show_details
    with archive.db.session() as session:
        evidence = session.scalars(
            select(Evidence).where(Evidence.sha256 == sha256.lower())
        ).first()
        if evidence is None or evidence.state == "disposed":
            return {"sha256": sha256.lower(), "archived": False}
        facts: dict[str, Any] = {
            "evidence_id": evidence.evidence_id,
            "sealed_at": evidence.sealed_at.isoformat(),
            "manifest_key": evidence.manifest_key,
            "manifest_version_id": evidence.manifest_version_id,
            "named": {
                "file_name": evidence.file_name,
                "officer": evidence.officer,
                "unit": evidence.unit,
                "device": evidence.device,
            },
        }
    raw = archive.store.get_bytes(facts["manifest_key"], facts["manifest_version_id"])
    key = archive.key
    try:
        verified = verify_envelope(raw, {key.keyid: key.public_key})
        original = verified.payload.get("original") or {}
        ok = original.get("sha256") == sha256.lower()  # signed, and about this file
    except EnvelopeError:
        verified, ok = None, False
    manifest: dict[str, Any] = {
        "verified": ok,
        "keyid": key.keyid,
        "key_fingerprint": key_fingerprint(key.public_key),
        "envelope_sha256": hashlib.sha256(raw).hexdigest(),
    }
    if details:
        manifest["envelope"] = json.loads(raw)
    answer: dict[str, Any] = {
        "sha256": sha256.lower(),
        "archived": True,
        "sealed_at": facts["sealed_at"],
        "manifest": manifest,
        "proof": None,
        "checkpoint": None,
    }
    try:
        document = ledger.proof_document(archive, facts["evidence_id"])
    except LookupError:  # not covered by a checkpoint yet
        document = None
    if document is not None:
        checkpoint = document["checkpoint"]
        answer["checkpoint"] = checkpoint["note"]
        answer["vkey"] = encode_vkey(checkpoint["key_name"], key.public_key)
        answer["proof"] = {
            "checkpoint_size": checkpoint["size"],
            "root_hash": checkpoint["root_hash"],
            "leaves": [
                {
                    "index": leaf["index"],
                    "kind": _leaf_kind(leaf["leaf"]),
                    "leaf_hash": leaf["leaf_hash"],
                    "inclusion_proof": leaf["inclusion_proof"],
                    **({"leaf": leaf["leaf"]} if details else {}),
                }
                for leaf in document["leaves"]
            ],
        }
    if details:
        answer.update(facts["named"], evidence_id=facts["evidence_id"])
    return answer
