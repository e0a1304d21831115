"""The scope matrix: every route × three roles × in-scope / out-of-scope / all-units.

Units: county → police → police-b1, county → city. Item A belongs to
police-b1, item B to city, item C to no unit. Tokens scoped to ``police``
(one per role) must see A, never B or C; an out-of-scope item answers exactly
like a missing one (same status, same body but for the id) and leaves no
custody event. All-unit tokens see all three. Counts and cursor paging are
scoped too.
"""

from __future__ import annotations

import base64
import json

import pytest
from conftest import API_ROLES, start_api
from sqlalchemy import func, select

from archive.models import CustodyEvent

UNITS = """
[units.county]
name = "County"
[units.police]
name = "Public security bureau"
parent = "county"
[units."police-b1"]
name = "Traffic brigade"
parent = "police"
[units.city]
name = "City management"
parent = "county"
"""
SCOPED = {f"{role}-police": (role, ["police"]) for role in API_ROLES}
ALL = set(API_ROLES)
LINKERS = {"admin", "case-system"}
AUDITORS = {"admin", "auditor"}

#: (method, path template, roles allowed, extra request arguments) for every item route
ITEM_ROUTES = [
    ("GET", "/v1/evidence/{id}", ALL, {}),
    ("GET", "/v1/evidence/{id}/playback", ALL, {"params": {"variant": "original"}}),
    ("GET", "/v1/evidence/{id}/bundle", AUDITORS, {}),
    ("GET", "/v1/evidence/{id}/custody-report", ALL, {"params": {"format": "json"}}),
    ("PUT", "/v1/cases/S-{caller}/evidence/{id}", LINKERS, {"json": {"reason": "matrix"}}),
    ("DELETE", "/v1/cases/S-{caller}/evidence/{id}", LINKERS, {"params": {"reason": "matrix"}}),
    ("GET", "/v1/ledger/proof/{id}", AUDITORS, {}),
    (
        "PUT",
        "/v1/evidence/{id}/retention",
        {"admin"},
        {"json": {"category": "important", "reason": "matrix"}},
    ),
]
#: routes about no single item, and what a scope changes about them
OTHER_ROUTES = {
    ("GET", "/v1/evidence"),
    ("GET", "/v1/cases/{case_id}"),
    ("GET", "/v1/ledger/checkpoint"),
    ("GET", "/v1/keys"),
    ("GET", "/v1/reports/summary"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    # court routes: test_case_reports_are_scoped, test_shares_are_scoped
    ("GET", "/v1/cases/{case_id}/custody-report"),
    ("POST", "/v1/cases/{case_id}/shares"),
    ("GET", "/v1/shares"),
    ("DELETE", "/v1/shares/{share_id}"),
    # incidents and proposed links: a unit's incidents and its items' proposals only
    # (test_incidents.py: test_api_incidents_are_scoped_and_proposals_decided)
    ("POST", "/v1/incidents"),
    ("GET", "/v1/incidents"),
    ("GET", "/v1/incidents/{incident_id}"),
    ("GET", "/v1/links/pending"),
    ("POST", "/v1/links/{match_id}/confirm"),
    ("POST", "/v1/links/{match_id}/reject"),
    # public by design, no token and so no scope: a signed checkpoint, aggregate
    # statistics without personal data, and a lookup by hash that names no
    # officer, unit or case unless the operator turns that on
    # (test_web_browser.py: test_lookup_answers_by_hash_only_and_guards_itself,
    # test_lookup_shows_details_only_when_the_operator_says_so)
    ("GET", "/checkpoint"),
    # resumable uploads (test_uploads.py): only case-system and admin create; a scoped
    # token must name a unit of its own (test_roles_scopes_and_limits); an upload is
    # its creator's alone, any other token gets 404; test_upload_routes_answer_by_role
    ("OPTIONS", "/v1/uploads"),
    ("POST", "/v1/uploads"),
    ("HEAD", "/v1/uploads/{upload_id}"),
    ("PATCH", "/v1/uploads/{upload_id}"),
    ("DELETE", "/v1/uploads/{upload_id}"),
    ("GET", "/public/stats.csv"),
    ("GET", "/v1/public/lookup/{sha256}"),
}
pytestmark = pytest.mark.catalogs("sqlite", "postgresql")
MISSING = "ev-0123456789abcdef01234567"


@pytest.fixture(scope="module")
def served(module_station):
    station = module_station
    station.write_config(f"\n{UNITS}")
    ids = {}
    for name, unit in (("A", "police-b1"), ("B", "city"), ("C", None)):
        item = station.ingest_bytes(
            f"ABC1234_012345_2026030108301{ord(name) % 10}_0001.MP4", f"{name} ".encode() * 5000
        )
        ids[name] = item["evidence_id"]
        if unit:
            station.cli("unit", "set", ids[name], unit, "--reason", "set-up")
    for name in "ABC":
        station.cli("link", "M-1", ids[name], "--reason", "set-up")
    station.cli("link", "M-B", ids["B"], "--reason", "set-up")
    station.cli("ledger", "checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in station.env.items():
            patch.setenv(name, value)
        handle = start_api(station, UNITS, SCOPED)
    yield handle, ids
    handle.stop()


def _last_seq(handle) -> int:
    with handle.archive.db.session() as session:
        return session.scalar(select(func.coalesce(func.max(CustodyEvent.seq), 0)))


def _events_after(handle, seq: int) -> list[CustodyEvent]:
    with handle.archive.db.session() as session:
        return list(session.scalars(select(CustodyEvent).where(CustodyEvent.seq > seq)))


def test_the_matrix_covers_every_route(served):
    handle, _ = served
    paths = handle.get("/openapi.json").json()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    covered = {(m, t.replace("{id}", "{evidence_id}")) for m, t, _, _ in ITEM_ROUTES}
    covered = {(m, p.replace("S-{caller}", "{case_id}")) for m, p in covered} | OTHER_ROUTES
    assert routes - {("GET", "/openapi.json")} <= covered, "a route the scope matrix misses"


@pytest.mark.parametrize("role", API_ROLES)
@pytest.mark.parametrize(
    ("method", "template", "allowed", "extra"),
    ITEM_ROUTES,
    ids=[f"{m} {p}" for m, p, _, _ in ITEM_ROUTES],
)
def test_out_of_scope_is_missing(served, method, template, allowed, extra, role):
    """A police token asking for B (city) or C (no unit) gets the answer an
    unknown id gets, and nothing is recorded."""
    handle, ids = served
    caller = f"{role}-police"
    missing = handle.request(method, template.format(id=MISSING, caller=caller), caller, **extra)
    for name in "BC":
        last = _last_seq(handle)
        response = handle.request(
            method, template.format(id=ids[name], caller=caller), caller, **extra
        )
        assert response.status_code == missing.status_code, response.text
        assert response.text.replace(ids[name], MISSING) == missing.text
        assert _events_after(handle, last) == [], "an out-of-scope request left an event"
    if role not in allowed:
        assert missing.status_code == 403
        return
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "evidence_not_found"


@pytest.mark.parametrize("scoped", [True, False], ids=["police", "all-units"])
@pytest.mark.parametrize("role", API_ROLES)
@pytest.mark.parametrize(
    ("method", "template", "allowed", "extra"),
    ITEM_ROUTES,
    ids=[f"{m} {p}" for m, p, _, _ in ITEM_ROUTES],
)
def test_in_scope_works(served, method, template, allowed, extra, role, scoped):
    """A (police-b1) is in scope of a police token (police's sub-unit) and of
    every all-unit token; all-unit tokens reach B and C too."""
    handle, ids = served
    caller = f"{role}-police" if scoped else role
    names = "A" if scoped else "ABC"
    for name in names:
        response = handle.request(
            method, template.format(id=ids[name], caller=caller), caller, **extra
        )
        if role in allowed:
            assert response.status_code == 200, (name, response.text)
        else:
            assert response.status_code == 403, response.text


@pytest.mark.parametrize("role", API_ROLES)
def test_search_counts_and_paging_are_scoped(served, role):
    handle, ids = served
    caller = f"{role}-police"
    everything = handle.get("/v1/evidence", caller).json()
    assert [i["evidence_id"] for i in everything["items"]] == [ids["A"]]
    assert everything["count"] == 1 and everything["next_cursor"] is None
    assert handle.get("/v1/evidence", caller, params={"unit": "city"}).json()["items"] == []
    first = handle.get("/v1/evidence", role, params={"limit": 1}).json()
    seen, cursor = [i["evidence_id"] for i in first["items"]], first["next_cursor"]
    while cursor:
        page = handle.get("/v1/evidence", role, params={"limit": 1, "cursor": cursor}).json()
        seen += [i["evidence_id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids.values())
    # the scoped token's paging: one page, nothing after it
    page = handle.get("/v1/evidence", caller, params={"limit": 1}).json()
    assert page["count"] == 1 and page["next_cursor"] is None

    case = handle.get("/v1/cases/M-1", caller).json()
    assert case["total"] == 1 and [i["evidence_id"] for i in case["items"]] == [ids["A"]]
    assert handle.get("/v1/cases/M-1", role).json()["total"] == 3
    only_b = handle.get("/v1/cases/M-B", caller)
    nothing = handle.get("/v1/cases/NO-SUCH", caller)
    assert only_b.status_code == nothing.status_code == 404
    assert only_b.text.replace("M-B", "NO-SUCH") == nothing.text


def test_reports_count_only_the_scope(served):
    handle, _ = served
    scoped = handle.get("/v1/reports/summary", "auditor-police", params={"by": "unit"}).json()
    assert scoped["totals"]["items"] == 1
    assert [g["key"] for g in scoped["groups"]] == ["police-b1"]
    assert handle.get("/v1/reports/summary", "auditor").json()["totals"]["items"] == 3
    assert handle.get("/metrics", "auditor-police").status_code == 403
    assert handle.get("/metrics", "auditor").status_code == 200


def test_a_search_is_one_custody_event_with_the_filters(served):
    handle, ids = served
    last = _last_seq(handle)
    response = handle.get("/v1/evidence", "case-system-police", params={"officer": "012345"})
    assert response.status_code == 200
    [event] = _events_after(handle, last)
    assert event.kind == "searched" and event.actor == "token:case-system-police-client"
    assert event.evidence_id is None
    assert event.details["filters"] == {"officer": "012345", "limit": 100}
    assert event.details["scope"] == {"units": ["police", "police-b1"]}
    assert ids["A"] not in json.dumps(event.details), "a search records filters, not results"


def _report_issued(handle, seq: int) -> list[CustodyEvent]:
    return [e for e in _events_after(handle, seq) if e.kind == "report_issued"]


@pytest.mark.parametrize("role", API_ROLES)
def test_case_reports_are_scoped(served, role):
    """A police token's case report holds only A; a case with nothing in scope
    answers like an unknown case and records nothing; all-unit tokens get all."""
    handle, ids = served
    caller, json_ = f"{role}-police", {"format": "json"}
    last = _last_seq(handle)
    scoped = handle.get("/v1/cases/M-1/custody-report", caller, params=json_)
    assert scoped.status_code == 200, scoped.text
    assert [i["evidence_id"] for i in scoped.json()["items"]] == [ids["A"]]
    assert [e.evidence_id for e in _report_issued(handle, last)] == [ids["A"]]
    everything = handle.get("/v1/cases/M-1/custody-report", role, params=json_)
    assert sorted(i["evidence_id"] for i in everything.json()["items"]) == sorted(ids.values())

    last = _last_seq(handle)
    only_b = handle.get("/v1/cases/M-B/custody-report", caller, params=json_)
    nothing = handle.get("/v1/cases/NO-SUCH/custody-report", caller, params=json_)
    assert only_b.status_code == nothing.status_code == 404
    assert only_b.text.replace("M-B", "NO-SUCH") == nothing.text
    assert _report_issued(handle, last) == [], "an out-of-scope report was recorded"


def _share(handle, caller, case="M-1", **body):
    return handle.request(
        "POST", f"/v1/cases/{case}/shares", caller, json={"recipient": "court", **body}
    )


@pytest.mark.parametrize("role", API_ROLES)
def test_shares_are_scoped(served, role):
    """A police token shares only A: B or C among the items is refused exactly
    like a missing id, a case with nothing in scope like an unknown case. It
    lists and revokes only shares whose items all lie in its units; a share of
    another unit answers like an unknown share and its revocation records nothing."""
    handle, ids = served
    caller = f"{role}-police"
    if role not in LINKERS:
        for who in (caller, role):
            assert _share(handle, who).status_code == 403
            assert handle.get("/v1/shares", who).status_code == 403
            assert handle.request("DELETE", "/v1/shares/sh-x", who).status_code == 403
        return
    whole = _share(handle, caller)
    assert whole.status_code == 201, whole.text
    assert whole.json()["evidence_ids"] == [ids["A"]]
    missing = _share(handle, caller, items=[ids["A"], MISSING])
    assert missing.status_code == 403
    for name in "BC":
        last = _last_seq(handle)
        refused = _share(handle, caller, items=[ids["A"], ids[name]])
        assert refused.status_code == missing.status_code
        assert refused.text.replace(ids[name], MISSING) == missing.text
        assert _events_after(handle, last) == []
    only_b = _share(handle, caller, case="M-B")
    unknown = _share(handle, caller, case="NO-SUCH")
    assert only_b.status_code == unknown.status_code == 422
    assert only_b.text.replace("M-B", "NO-SUCH") == unknown.text

    theirs = _share(handle, role, case="M-B")  # an all-unit token shares B
    mixed = _share(handle, role)  # A, B and C
    assert theirs.status_code == mixed.status_code == 201
    own, theirs, mixed = (r.json()["share_id"] for r in (whole, theirs, mixed))
    listed = {s["share_id"] for s in handle.get("/v1/shares", caller).json()["shares"]}
    assert own in listed and not listed & {theirs, mixed}
    assert all(
        s["evidence_ids"] == [ids["A"]] for s in handle.get("/v1/shares", caller).json()["shares"]
    )
    listed = {s["share_id"] for s in handle.get("/v1/shares", role).json()["shares"]}
    assert {own, theirs, mixed} <= listed

    unknown = handle.request("DELETE", "/v1/shares/sh-0000000000000000", caller)
    for share_id in (theirs, mixed):
        last = _last_seq(handle)
        hidden = handle.request("DELETE", f"/v1/shares/{share_id}", caller)
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.text.replace(share_id, "sh-0000000000000000") == unknown.text
        assert _events_after(handle, last) == [], "an out-of-scope revocation was recorded"
    assert handle.request("DELETE", f"/v1/shares/{own}", caller).json()["status"] == "revoked"
    assert handle.request("DELETE", f"/v1/shares/{theirs}", role).json()["status"] == "revoked"


def _create_upload(handle, caller, unit):
    fields = {"filename": "matrix.mp4", "sha256": "ab" * 32, **({"unit": unit} if unit else {})}
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": meta}
    return handle.request("POST", "/v1/uploads", caller, headers=headers)


@pytest.mark.parametrize("scoped", [True, False], ids=["police", "all-units"])
@pytest.mark.parametrize("role", API_ROLES)
def test_upload_routes_answer_by_role(served, role, scoped):
    """Uploads create evidence: case-system and admin only. A police token may
    upload into police-b1 (its sub-unit), never into city or without a unit;
    all-unit tokens into any unit. Each of the four upload routes answers an
    upload of another token exactly like an unknown one."""
    handle, _ = served
    caller = f"{role}-police" if scoped else role
    tus = {"Tus-Resumable": "1.0.0"}
    if role not in LINKERS:
        assert _create_upload(handle, caller, "police-b1").status_code == 403
        assert handle.request("OPTIONS", "/v1/uploads", caller).status_code == 403
        return
    city = _create_upload(handle, caller, "city")
    without = _create_upload(handle, caller, None)
    if scoped:
        assert city.status_code == 403 and city.json()["error"]["code"] == "unit_not_in_scope"
        assert without.status_code == 422
    else:
        assert city.status_code == without.status_code == 201
    own = _create_upload(handle, caller, "police-b1")
    assert own.status_code == 201, own.text
    location = own.headers["Location"]
    unknown = "/v1/uploads/" + "0" * 32
    other = f"{'admin' if role != 'admin' else 'case-system'}-police"
    patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    for method, headers in (("HEAD", tus), ("PATCH", patch), ("DELETE", tus)):
        theirs = handle.request(method, location, other, headers=headers, content=b"0123456789")
        missing = handle.request(method, unknown, other, headers=headers, content=b"0123456789")
        assert theirs.status_code == missing.status_code == 404, (method, theirs.text)
        assert theirs.text.replace(location[-32:], "0" * 32) == missing.text
    assert handle.request("HEAD", location, caller, headers=tus).status_code == 200
    for response in (own, city, without):
        if response.status_code == 201:
            gone = handle.request("DELETE", response.headers["Location"], caller, headers=tus)
            assert gone.status_code == 204
