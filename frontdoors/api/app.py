"""The ASGI application: routes, token book, error shape and request metrics.

``create_app(archive)`` is all a server needs; ``strongroom serve`` and
``strongroom run`` both go through :mod:`frontdoors.api.server`.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from archive.context import Archive
from archive.metrics import API_REQUESTS, API_SECONDS, ERRORS
from archive.uploads import UploadArea
from frontdoors.api import (
    routes_cases,
    routes_console,
    routes_court,
    routes_evidence,
    routes_incidents,
    routes_ledger,
    routes_ops,
    routes_public,
    routes_reports,
    routes_retention,
    routes_share,
    routes_uploads,
)
from frontdoors.api.auth import TokenBook
from frontdoors.api.errors import install_error_handlers
from frontdoors.api.middleware import BodyLimit, RequestContext
from frontdoors.api.presign import Presigner
from frontdoors.api.schemas import ErrorResponse

log = logging.getLogger("strongroom.api")

#: documented on every route: the one error shape
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "missing, unknown or revoked token"),
        (403, "the token's role may not do this"),
        (404, "no such item, case, derivative or checkpoint"),
        (409, "the item was disposed of"),
        (422, "bad parameters"),
        (413, "the request body is larger than [api] max_body_bytes"),
        (500, "unexpected server error (the body names a request id; details in the log)"),
        (503, "the object store (or an optional feature) is unavailable"),
    )
}


class RequestMetrics:
    """Counts and times every request by route *template* (bounded labels: an
    id never becomes a label)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            API_REQUESTS.labels(route=template, status=str(status["code"])).inc()
            API_SECONDS.labels(route=template).observe(time.perf_counter() - started)
            if status["code"] >= 500:
                ERRORS.labels(where="api").inc()


def _version() -> str:
    try:
        return metadata.version("strongroom")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(
    archive: Archive, tokens: TokenBook | None = None, uploads: UploadArea | None = None
) -> FastAPI:
    """The API over an opened archive. Raises ConfigError for a bad tokens file.

    ``uploads``: the station's upload area (``/v1/uploads`` answers 503 without one)."""
    app = FastAPI(
        title="Strongroom evidence archive",
        version=_version(),
        description="Case-system and auditor API: evidence search, case links "
        "(legal hold), playback URLs, export bundles, custody-ledger proofs. "
        'Every error is {"error": {"code", "message"}}.',
        openapi_url=None,  # served by routes_ops behind a token
        docs_url=None,
        redoc_url=None,
        responses=_ERRORS,
    )
    app.state.archive = archive
    app.state.tokens = tokens or TokenBook(archive.settings)
    app.state.presigner = Presigner(archive.settings)
    app.state.uploads = uploads
    app.state.catalog_metrics = routes_ops.catalog_registry(archive.db)
    if app.state.tokens.count() == 0:
        log.warning("no API tokens configured: every request except /healthz will get 401")
    install_error_handlers(app)
    app.state.route_methods = []  # for the Allow header of a 405
    for module in (
        routes_evidence,
        routes_cases,
        routes_incidents,
        routes_ledger,
        routes_ops,
        routes_reports,
        routes_retention,
        routes_court,
        routes_share,
        routes_public,
        routes_console,
        routes_uploads,
    ):
        app.include_router(module.router)
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                app.state.route_methods.append((route.path_regex, set(route.methods or ())))
    app.add_middleware(RequestMetrics)
    # outermost last: every request gets an id, then its body is bounded – both
    # before routing, so before a route reads a body or authenticates anyone
    app.add_middleware(
        BodyLimit,
        limit=archive.settings.api.max_body_bytes,
        streamed=(("PATCH", routes_uploads.PREFIX + "/"),),
    )
    app.add_middleware(RequestContext)
    return app
