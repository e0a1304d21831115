"""One error shape for every failure: ``{"error": {"code", "message"}}``.

The case system branches on ``code``, so codes are stable names, never the
text of an exception. Strongroom's own errors (:mod:`config.errors`) answer
with their ``code`` and the status of their kind (:data:`KIND_STATUS`), so a
route lets them through instead of catching each. FastAPI's own 404/405/422
and unexpected exceptions are turned into the same shape here, so no response
ever carries a framework's default body or a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from archive.metrics import ERRORS
from archive.store import StoreError
from config.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    RefusedError,
    StrongroomError,
    UnavailableError,
)

log = logging.getLogger("strongroom.api")

#: framework status codes and the codes we answer them with
_STATUS_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


#: the status each kind of error answers with; an error of no kind is a fault (500)
KIND_STATUS: dict[type[StrongroomError], int] = {
    NotFoundError: 404,
    ConflictError: 409,
    RefusedError: 403,
    UnavailableError: 503,
    BadInputError: 422,
}


def status_and_code(exc: StrongroomError) -> tuple[int, str]:
    """What a client sees for ``exc``: the status of its first kind (in method
    resolution order, so a subclass's own kind wins) and its stable code."""
    for kind in type(exc).__mro__:
        if kind in KIND_STATUS:
            return KIND_STATUS[kind], exc.code
    return 500, exc.code


class ApiError(Exception):
    """An answer the API gives on purpose: status, stable code, readable message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    error = {"code": code, "message": message}
    if request_id is not None:
        error["request_id"] = request_id
        headers = {**(headers or {}), "X-Request-ID": request_id}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def server_error(request: Request, status: int, code: str, message: str) -> JSONResponse:
    """A 5xx: a generic message and the request id; the details are in the log only."""
    rid = _request_id(request)
    return error_response(
        status, code, f"{message} (request id {rid}; the server log has the details)", None, rid
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _allowed(app: FastAPI, path: str) -> str:
    """Every method of every route on this path: Starlette's own ``Allow`` names
    only the first route it found, though PUT and DELETE share a path."""
    methods: set[str] = set()
    for regex, route_methods in getattr(app.state, "route_methods", ()):
        if regex.match(path):
            methods |= route_methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            log.error(
                "%s %s failed (request id %s): %s %s",
                request.method,
                request.url.path,
                _request_id(request),
                exc.code,
                exc.message,
            )
            # our own words (never an exception's text, which may name paths or keys)
            return server_error(request, exc.status, exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        headers = exc.headers
        if status == 405:
            headers = {**(headers or {}), "Allow": _allowed(app, request.url.path)}
        if status == 400:  # an unparseable body: bad input, answered like any other (422)
            status = 422
        code = _STATUS_CODES.get(status, f"http_{status}")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if status == 404:
            message = "no such route"
        return error_response(status, code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StrongroomError)
    async def _ours(request: Request, exc: StrongroomError) -> JSONResponse:
        status, code = status_and_code(exc)
        if status >= 500:
            ERRORS.labels(where="api").inc()
            log.error(
                "%s %s failed (request id %s): %s %s",
                request.method,
                request.url.path,
                _request_id(request),
                code,
                exc,
                exc_info=exc if status == 500 else None,
            )
            # the error's text may name paths or hosts: the log has it, the client our words
            return server_error(request, status, code, code.replace("_", " "))
        return error_response(status, code, str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        ERRORS.labels(where="api-store").inc()
        log.warning("object store error (request id %s): %s", _request_id(request), exc)
        return server_error(
            request, 503, "store_unavailable", "the object store did not answer; retry later"
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _catalog(_request: Request, exc: Exception) -> JSONResponse:
        # the catalog is down, restarting or unreachable: the pool reconnects
        # on a later request (archive/db.py replaces dropped connections at
        # checkout), so this is "retry later", not a bug
        ERRORS.labels(where="api-catalog").inc()
        log.warning("catalog unavailable: %s", str(exc).splitlines()[0])
        return error_response(
            503, "catalog_unavailable", "the catalog database did not answer; retry later"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ERRORS.labels(where="api").inc()
        # the path only: headers (Authorization) and query values are never logged
        log.error(
            "unexpected error in %s %s (request id %s)",
            request.method,
            request.url.path,
            _request_id(request),
            exc_info=exc,
        )
        return server_error(request, 500, "internal_error", "unexpected server error")
