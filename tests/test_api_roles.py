"""The role matrix: every route × every role × no token × a bad token.

case-system: read, link/unlink, playback. auditor: read, playback, bundles,
proofs. admin: everything. No or an unknown token → 401 (with a Bearer
challenge), a role without the right → 403, and a refused request leaves no
custody event behind.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from conftest import API_ROLES, start_api
from sqlalchemy import func, select

from archive.models import CustodyEvent

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

ALL = set(API_ROLES)
LINKERS = {"admin", "case-system"}
AUDITORS = {"admin", "auditor"}

#: (method, path template, roles allowed, extra request arguments)
ROUTES = [
    ("GET", "/v1/evidence", ALL, {}),
    ("GET", "/v1/evidence/{id}", ALL, {}),
    ("GET", "/v1/evidence/{id}/playback", ALL, {"params": {"variant": "original"}}),
    ("GET", "/v1/evidence/{id}/bundle", AUDITORS, {}),
    ("PUT", "/v1/cases/M-2/evidence/{id}", LINKERS, {"json": {"reason": "matrix"}}),
    ("DELETE", "/v1/cases/M-2/evidence/{id}", LINKERS, {"params": {"reason": "matrix"}}),
    ("GET", "/v1/cases/M-1", ALL, {}),
    ("GET", "/v1/ledger/checkpoint", AUDITORS, {}),
    ("GET", "/v1/ledger/proof/{id}", AUDITORS, {}),
    ("GET", "/v1/keys", ALL, {}),
    ("GET", "/metrics", AUDITORS, {}),
    ("GET", "/openapi.json", ALL, {}),
    ("GET", "/v1/evidence/{id}/custody-report", ALL, {"params": {"format": "json"}}),
    ("GET", "/v1/cases/M-1/custody-report", ALL, {"params": {"format": "csv"}}),
    ("GET", "/v1/shares", LINKERS, {}),
    ("GET", "/v1/incidents", ALL, {}),
    ("GET", "/v1/links/pending", LINKERS, {}),
]
CALLERS = [*API_ROLES, "no-token", "bad-token", "basic-auth"]


@pytest.fixture(scope="module")
def served(module_station):
    station = module_station
    source = station.root / "ABC1234_012345_20260301083015_0001.MP4"
    source.write_bytes(b"matrix footage " * 4000)
    item = json.loads(station.cli("ingest", str(source), "--json").stdout)["items"][0]
    station.cli("link", "M-1", item["evidence_id"], "--reason", "set-up")
    station.cli("ledger", "checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in station.env.items():
            patch.setenv(name, value)
        handle = start_api(station)
    yield handle, item["evidence_id"]
    handle.stop()


#: routes whose every successful call is a custody event naming the token
AUDITED = {
    "/v1/evidence/{id}": "viewed",
    "/v1/evidence/{id}/playback": "playback_issued",
    "/v1/evidence/{id}/bundle": "exported",
    "/v1/ledger/proof/{id}": "downloaded",
    "/v1/evidence/{id}/custody-report": "report_issued",
    "/v1/cases/M-1/custody-report": "report_issued",
}


def _event_count(handle) -> int:
    with handle.archive.db.session() as session:
        return session.scalar(select(func.count()).select_from(CustodyEvent))


def _events_after(handle, seq: int) -> list[CustodyEvent]:
    with handle.archive.db.session() as session:
        return list(session.scalars(select(CustodyEvent).where(CustodyEvent.seq > seq)))


def _last_seq(handle) -> int:
    with handle.archive.db.session() as session:
        return session.scalar(select(func.coalesce(func.max(CustodyEvent.seq), 0)))


def _headers(handle, caller: str) -> dict[str, str]:
    if caller == "no-token":
        return {}
    if caller == "bad-token":
        return {"Authorization": "Bearer sr_not-a-token-anyone-was-given"}
    if caller == "basic-auth":
        return {"Authorization": "Basic YWRtaW46YWRtaW4="}
    return handle.headers(caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "template", "allowed", "extra"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_role_matrix(served, method, template, allowed, extra, caller):
    handle, evidence_id = served
    path = template.format(id=evidence_id)
    before, last = _event_count(handle), _last_seq(handle)
    response = handle.request(method, path, None, headers=_headers(handle, caller), **extra)
    if caller in allowed:
        assert response.status_code == 200, response.text
        if template.endswith("/bundle"):
            names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
            assert any(name.endswith("bagit.txt") for name in names)
        if template in AUDITED:
            recorded = [(e.kind, e.actor, e.evidence_id) for e in _events_after(handle, last)]
            assert (AUDITED[template], f"token:{caller}-client", evidence_id) in recorded
        return
    expected = 403 if caller in API_ROLES else 401
    assert response.status_code == expected, response.text
    error = response.json()["error"]
    assert error["code"] == ("forbidden" if expected == 403 else "unauthenticated")
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _event_count(handle) == before, "a refused request must leave no custody event"


@pytest.mark.parametrize("caller", CALLERS)
def test_healthz_needs_no_token(served, caller):
    handle, _ = served
    response = handle.request("GET", "/healthz", None, headers=_headers(handle, caller))
    assert response.status_code == 200 and response.json() == {"status": "ok"}
