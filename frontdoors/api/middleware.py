"""What every request passes before routing and authentication.

* :class:`BodyLimit` refuses a body larger than ``[api] max_body_bytes`` –
  by its ``Content-Length`` before the application sees the request, and by
  counting the bytes of a streamed (chunked) body as they arrive – with 413
  and the one error shape. FastAPI reads a route's JSON body *before* its
  dependencies run, so without this an unauthenticated client could make the
  server hold any amount of memory.
* :class:`RequestContext` gives each request an id (``X-Request-ID`` on every
  response, and in the body of every 5xx, whose details go only to the log),
  and writes the access log line itself: client, method, *path*, status – never
  the query string (a token pasted into ``?access_token=`` must not reach a
  log) and never a header.
"""

from __future__ import annotations

import logging
import secrets
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdoors.api.errors import error_response

access_log = logging.getLogger("strongroom.api.access")

REQUEST_ID_HEADER = "X-Request-ID"


def request_id(scope: Scope) -> str:
    """The id :class:`RequestContext` gave this request ('-' outside one)."""
    return str(scope.get("state", {}).get("request_id", "-"))


class BodyLimit:
    """413 for a request body over ``limit`` bytes, read no further."""

    def __init__(
        self, app: ASGIApp, limit: int, streamed: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        #: (method, path prefix) of routes that stream their body to disk and bound
        #: it themselves, after authentication (tus PATCH: up to [uploads] max_bytes)
        self.streamed = streamed

    def _too_large(self) -> str:
        return f"the request body is larger than {self.limit} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(
            scope.get("method") == method and scope.get("path", "").startswith(prefix)
            for method, prefix in self.streamed
        ):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.limit:
                    status, code = (413, "too_large") if declared > 0 else (422, "invalid_request")
                    message = self._too_large() if status == 413 else "bad Content-Length"
                    headers = {"Connection": "close", REQUEST_ID_HEADER: request_id(scope)}
                    await error_response(status, code, message, headers)(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # raised where the body is read: the error handlers answer 413
                    raise HTTPException(413, self._too_large(), {"Connection": "close"})
            return message

        await self.app(scope, counting_receive, send)


class RequestContext:
    """A request id for every request, and an access log without query strings."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "-"
            access_log.info(
                '%s - "%s %s HTTP/%s" %d %.1fms request_id=%s',
                where,
                scope.get("method", "-"),
                scope.get("path", "-"),  # never the query string
                scope.get("http_version", "1.1"),
                status["code"],
                (time.perf_counter() - started) * 1000,
                rid,
            )
