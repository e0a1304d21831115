"""Operations routes: ``/healthz`` (no token), ``/metrics`` and ``/openapi.json``.

``/metrics`` needs an ``auditor`` or ``admin`` token by default: counts of
evidence per state and bytes are facts about police work. Setting
``[api] metrics_unauthenticated_on_loopback = true`` lets a Prometheus on the
same machine scrape without one – off by default, because behind a local
reverse proxy every client looks like loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from archive.cases import CaseLink
from archive.db import Database
from archive.heartbeat import HeartbeatCollector
from archive.metrics import ERRORS, REGISTRY
from archive.models import Evidence
from frontdoors.api import auth
from frontdoors.api.auth import Principal
from frontdoors.api.deps import get_archive
from frontdoors.api.errors import ApiError
from frontdoors.api.schemas import HealthOut

router = APIRouter(tags=["operations"])


class CatalogCollector(Collector):
    """Gauges read from the catalog at scrape time, so every process serving
    /metrics reports the same numbers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        items = GaugeMetricFamily(
            "strongroom_evidence_items", "Evidence items in the catalog by state", labels=["state"]
        )
        size = GaugeMetricFamily(
            "strongroom_evidence_bytes", "Bytes of archived originals by state", labels=["state"]
        )
        try:
            rows, held, linked, cases = self._read()
        except DBAPIError:  # a full or damaged catalog: the fault gauges still get out
            ERRORS.labels("metrics-catalog").inc()
            return
        for state, count, total in rows:
            items.add_metric([state], count)
            size.add_metric([state], total)
        yield items
        yield size
        yield GaugeMetricFamily(
            "strongroom_legal_hold_items", "Evidence items under legal hold", value=held or 0
        )
        yield GaugeMetricFamily(
            "strongroom_case_linked_items", "Evidence items linked to a case", value=linked or 0
        )
        yield GaugeMetricFamily("strongroom_cases", "Cases with linked evidence", value=cases or 0)

    def _read(self) -> tuple[list, int | None, int | None, int | None]:
        with self.db.session() as session:
            rows = session.execute(
                select(
                    Evidence.state, func.count(), func.coalesce(func.sum(Evidence.size), 0)
                ).group_by(Evidence.state)
            ).all()
            held = session.scalar(
                select(func.count()).select_from(Evidence).where(Evidence.legal_hold.is_(True))
            )
            linked = session.scalar(select(func.count(func.distinct(CaseLink.evidence_id))))
            cases = session.scalar(select(func.count(func.distinct(CaseLink.case_id))))
        return list(rows), held, linked, cases


def catalog_registry(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(db))
    registry.register(HeartbeatCollector(db))
    return registry


@router.get("/healthz", response_model=HealthOut, summary="Liveness (no token needed)")
def healthz(request: Request) -> dict[str, str]:
    """200 when the catalog answers. Says nothing else, so it can be public."""
    with get_archive(request).db.session() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
def metrics(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(auth.bearer)],
) -> Response:
    """Items by state, bytes archived, legal holds, pipeline step and
    time-to-safe histograms, API request counts and error counters."""
    loopback_ok = (
        request.app.state.archive.settings.api.metrics_unauthenticated_on_loopback
        and auth.is_loopback(request)
    )
    if not (loopback_ok and credentials is None):
        principal = auth.authenticate(request, credentials)
        if principal.role not in auth.METRICS:
            raise ApiError(403, "forbidden", f"role {principal.role} may not read metrics")
        if not principal.scope.all_units:  # the gauges count every unit's items
            raise ApiError(403, "forbidden", "metrics cover every unit; this token is scoped")
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.catalog_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
def openapi(
    request: Request, principal: Annotated[Principal, Depends(auth.require(auth.READ))]
) -> JSONResponse:
    """The OpenAPI document, for any valid token."""
    document: dict[str, Any] = request.app.openapi()
    return JSONResponse(document)
