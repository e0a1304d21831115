"""Several S3 endpoints of one store, used one at a time, the next when one is gone.

A SeaweedFS cluster has several S3 gateways in front of one filer: any of them
serves the whole bucket. ``[store] endpoints`` lists them; this wrapper looks
like one boto3 client and sends each call to the current endpoint. When the
call cannot *reach* it – refused, reset, closed before an answer, a connect or
read timeout – the same call goes to the next endpoint, and that endpoint stays
current for the calls after it. An answer from the store (412, 403, a checksum
refusal, a 500) is the store's word and is never retried elsewhere.

Retrying a write on another gateway is safe because every write is create-only
and content-addressed (:mod:`archive.store`): if the first gateway stored the
bytes before it died, the retry gets 412 and the pipeline adopts the object.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

log = logging.getLogger(__name__)

#: what "could not reach this endpoint" looks like from botocore
UNREACHABLE = (BotoConnectionError, HTTPClientError)


class FailoverClient:
    """A boto3 S3 client over several endpoints (same bucket, same keys)."""

    def __init__(self, clients: Sequence[Any], endpoints: Sequence[str]) -> None:
        if not clients or len(clients) != len(endpoints):
            raise ValueError("one client per endpoint")
        self.clients = list(clients)
        self.endpoints = list(endpoints)
        self._current = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> Any:
        return self.clients[self._current]

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._current]

    def __getattr__(self, name: str) -> Any:
        first = self.clients[0]
        if name in first.meta.method_to_api_mapping:
            return self._operation(name)
        # meta, exceptions, get_paginator, generate_presigned_url: the current endpoint's
        return getattr(self.current, name)

    def _operation(self, name: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            with self._lock:
                start = self._current
            body = kwargs.get("Body")
            position = (
                body.tell()
                if body is not None and hasattr(body, "seek") and hasattr(body, "tell")
                else None
            )
            last: Exception | None = None
            for step in range(len(self.clients)):
                index = (start + step) % len(self.clients)
                if step and position is not None and body is not None:
                    body.seek(position)  # botocore read part of it before the endpoint failed
                try:
                    result = getattr(self.clients[index], name)(**kwargs)
                except UNREACHABLE as exc:
                    last = exc
                    log.warning(
                        "store endpoint %s unreachable (%s: %s); trying the next",
                        self.endpoints[index],
                        name,
                        exc,
                    )
                    continue
                if index != start:
                    with self._lock:
                        self._current = index
                    log.warning("store: now using endpoint %s", self.endpoints[index])
                return result
            assert last is not None
            raise last

        return call
