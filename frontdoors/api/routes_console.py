"""The auditor console: server-rendered pages for ``auditor`` and ``admin``
tokens.

The login form takes the token once; the server keeps it in memory behind a
random session id sent as an HttpOnly, SameSite=Strict cookie scoped to
``/console``. Each page re-checks the token through :func:`console_principal`
(so a revoked token or a role change ends the session at the next click – and
per-agency scopes can plug in there). Every form carries a CSRF token: the
session's for signed-in forms, a pre-login cookie's for the login form.
A wrong or expired session lands on the login page.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from archive.caselinks import link_dict, links_of
from archive.instants import station_time
from archive.ledger import ledger_summary, proof_document
from archive.models import Evidence
from archive.queries import (
    EvidenceFilter,
    derivative_counts,
    derivatives_of,
    evidence_counts,
    evidence_query,
    job_counts,
    recent_problems,
)
from frontdoors.api import auth, web
from frontdoors.api.auth import Principal
from frontdoors.api.deps import audit, get_archive, parse_time
from frontdoors.api.errors import ApiError
from frontdoors.api.paging import page
from frontdoors.api.transfer import parse_range, ranged, unsatisfiable
from verify.documents import copies_of, events_of, fixity_counts, fixity_of
from verify.reports import build_report

router = APIRouter(prefix="/console", include_in_schema=False)
COOKIE = "sr_console"
PRE_COOKIE = "sr_console_login"
SESSION_SECONDS = 8 * 3600  # absolute lifetime of a console session
PAGE = 50
FILTERS = ("officer", "device", "unit", "station", "sha256", "state", "since", "until")


@dataclass
class WebSession:
    token: str
    csrf: str
    expires: float


class Sessions:
    """Console sessions in memory: a restart signs everyone out, which is fine."""

    def __init__(self) -> None:
        self._by_id: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def create(self, token: str) -> tuple[str, WebSession]:
        sid = secrets.token_urlsafe(32)
        session = WebSession(token, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS)
        with self._lock:
            now = time.time()
            for old in [k for k, v in self._by_id.items() if v.expires < now]:
                del self._by_id[old]
            self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> WebSession | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.expires < time.time():
                del self._by_id[sid]
                return None
            return session

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def _sessions(request: Request) -> Sessions:
    state = request.app.state
    if getattr(state, "console_sessions", None) is None:
        state.console_sessions = Sessions()
    return state.console_sessions


def admits(principal: Principal | None) -> bool:
    """Who may use the console: the audit roles, over all units. Its pages do
    not yet filter by unit, so a token limited to some units is refused here
    rather than shown items outside its scope."""
    return principal is not None and principal.role in auth.AUDIT and principal.scope.all_units


def console_principal(request: Request) -> tuple[Principal, WebSession] | None:
    """The signed-in caller, re-checked against the token book on every page."""
    session = _sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    principal = request.app.state.tokens.lookup(session.token)
    return (principal, session) if admits(principal) else None


def _default_lang(request: Request) -> str:
    return get_archive(request).settings.api.ui_language


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    csrf = secrets.token_urlsafe(32)
    response = web.page(
        request, "console_login.html", _default_lang(request), status, csrf=csrf, error=error
    )
    response.set_cookie(
        PRE_COOKIE, csrf, httponly=True, samesite="strict", path="/console", max_age=3600
    )
    return response


def _to_login(request: Request) -> Response:
    """A wrong or expired session: the login page, saying so."""
    response = _login_page(request, "session_gone", 401 if request.cookies.get(COOKIE) else 200)
    response.delete_cookie(COOKIE, path="/console")
    return response


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    expected = request.cookies.get(PRE_COOKIE) or ""
    if not expected or not hmac.compare_digest(form.get("csrf", ""), expected):
        return _login_page(request, "session_gone", 403)
    token = form.get("token", "").strip()
    if not admits(request.app.state.tokens.lookup(token)):
        return _login_page(request, "login_failed", 401)
    sid, _ = _sessions(request).create(token)
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="strict",
        path="/console",
        secure=request.url.scheme == "https",
        max_age=SESSION_SECONDS,
    )
    response.delete_cookie(PRE_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    signed_in = console_principal(request)
    if signed_in is None:
        return _to_login(request)
    if not hmac.compare_digest(form.get("csrf", ""), signed_in[1].csrf):
        raise ApiError(403, "csrf_failed", "the form's CSRF token does not match")
    _sessions(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


def _render(
    request: Request, template: str, signed_in, status_code: int = 200, **context: Any
) -> Response:
    principal, session = signed_in
    return web.page(
        request,
        template,
        _default_lang(request),
        status_code,
        principal=principal,
        csrf=session.csrf,
        **context,
    )


def _zone_time(request: Request, value: datetime | str | None) -> str:
    """A time for the page: station time with the zone's name."""
    return station_time(value, get_archive(request).settings.station.tzinfo)


@router.get("")
def search(request: Request) -> Response:
    signed_in = console_principal(request)
    if signed_in is None:
        return _to_login(request)
    params = {k: (request.query_params.get(k) or "").strip() for k in FILTERS}
    cursor = request.query_params.get("cursor") or None
    archive = get_archive(request)
    try:
        texts: dict[str, Any] = {
            k: params[k] or None for k in FILTERS if k not in ("since", "until")
        }
        filters = EvidenceFilter(
            **texts,
            since=parse_time(params["since"] or None, "since"),
            until=parse_time(params["until"] or None, "until"),
        )
        with archive.db.session() as session:
            # the API's paging: stable order, a cursor that never repeats nor skips
            rows, next_cursor = page(session, evidence_query(filters), cursor, PAGE)
            items = [
                {**row[0].summary(), "recorded": _zone_time(request, row[0].recorded_start)}
                for row in rows
            ]
    except ApiError as exc:  # a bad time or cursor: say so on the page, search nothing
        return _render(
            request,
            "console_search.html",
            signed_in,
            params=params,
            items=[],
            more=None,
            error=exc.message,
            status_code=422,
        )
    more = None
    if next_cursor:
        more = "?" + urlencode({**{k: v for k, v in params.items() if v}, "cursor": next_cursor})
    return _render(
        request, "console_search.html", signed_in, params=params, items=items, more=more, error=None
    )


@router.get("/item/{evidence_id}")
def item(evidence_id: str, request: Request) -> Response:
    signed_in = console_principal(request)
    if signed_in is None:
        return _to_login(request)
    archive = get_archive(request)
    with archive.db.session() as session:
        evidence = session.get(Evidence, evidence_id) if len(evidence_id) <= 40 else None
        if evidence is None:
            raise ApiError(404, "evidence_not_found", f"no evidence {evidence_id!r}")
        events = [
            {**event, "at": _zone_time(request, event["at"])}
            for event in events_of(session, evidence_id)
        ]
        copies = copies_of(session, evidence_id)
        cases = [link_dict(row) for row in links_of(session, evidence_id)]
        fixity = fixity_of(session, evidence_id)
        if fixity is not None:
            fixity["checked"] = _zone_time(request, fixity["last_checked_at"])
        # reading an item is a custody event, as it is through the API
        audit(session, "viewed", signed_in[0], request, evidence_id, via="console")
        identity = {
            **evidence.summary(),
            "keyid": evidence.keyid,
            "lock_mode": evidence.lock_mode,
            # times for a person: station time with the zone
            "recorded": _zone_time(request, evidence.recorded_start),
            "sealed_at": _zone_time(request, evidence.sealed_at),
            "retain_until": _zone_time(request, evidence.retain_until),
        }
    try:
        proof = proof_document(archive, evidence_id)
    except LookupError:  # not in the ledger yet
        proof = None
    playable = [c for c in copies if c["state"] == "stored" and c["key"]]
    return _render(
        request,
        "console_item.html",
        signed_in,
        item=identity,
        events=events,
        copies=copies,
        play=f"/console/item/{evidence_id}/play" if playable else None,
        cases=cases,
        fixity=fixity,
        proof=proof,
    )


@router.get("/item/{evidence_id}/play")
def play(evidence_id: str, request: Request) -> Response:
    """The newest stored playback copy, streamed with range requests (the
    store's address stays inside)."""
    signed_in = console_principal(request)
    if signed_in is None:
        return _to_login(request)
    archive = get_archive(request)
    with archive.db.session() as session:
        copies = [d for d in derivatives_of(session, evidence_id) if d.state == "stored" and d.key]
        if not copies:
            raise ApiError(404, "no_playback_copy", "the item has no stored playback copy")
        copy = copies[-1]
        key, version_id, size = copy.key, copy.version_id, copy.size or 0
        assert key is not None  # only copies with a key were kept above
        media_type = "audio/mp4" if copy.action == "audio" else "video/mp4"
        try:
            wanted = parse_range(request.headers.get("range"), size)
        except ValueError:
            return unsatisfiable(size)
        if wanted is None or wanted[0] == 0:  # one event per play, not per range request of it
            audit(
                session,
                "playback_issued",
                signed_in[0],
                request,
                evidence_id,
                via="console",
                variant="derivative",
                key=key,
                version_id=version_id,
            )
    return ranged(archive, key or "", version_id, size, wanted, media_type, web.HEADERS)


@router.get("/status")
def status(request: Request) -> Response:
    signed_in = console_principal(request)
    if signed_in is None:
        return _to_login(request)
    archive = get_archive(request)
    with archive.db.session() as session:
        jobs = job_counts(session)
        problems = recent_problems(session)
        items = evidence_counts(session)
        copies = derivative_counts(session)
        fixity = fixity_counts(session) or None
        ledger = ledger_summary(session)
    return _render(
        request,
        "console_status.html",
        signed_in,
        jobs=jobs,
        problems=problems,
        items=items,
        copies=copies,
        fixity=fixity,
        ledger=ledger,
    )


@router.get("/report")
def report(request: Request) -> Response:
    """The report grouped by unit (``strongroom report --by unit``) with bars."""
    signed_in = console_principal(request)
    if signed_in is None:
        return _to_login(request)
    archive = get_archive(request)
    with archive.db.session() as session:
        document = build_report(session, archive.settings, by="unit")
    return _render(request, "console_report.html", signed_in, report=document)
