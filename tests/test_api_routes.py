"""The API through a real uvicorn and real SeaweedFS: search with cursor paging,
one item in full (a ``viewed`` event), playback URLs that fetch the exact
bytes and expire, keys, metrics, the one error shape, and tokens that are
re-read when their file changes."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from conftest import wait_until
from sqlalchemy import select

from archive.dsse import verify_envelope
from archive.layout import derivative_key
from archive.models import CustodyEvent
from archive.note import parse_vkey
from archive.store import Retention

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

ID = "ev-000000000000000000000000"


def events(handle, kind: str) -> list[CustodyEvent]:
    with handle.archive.db.session() as session:
        return list(
            session.scalars(
                select(CustodyEvent).where(CustodyEvent.kind == kind).order_by(CustodyEvent.seq)
            )
        )


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body


def test_search_filters_and_pages_with_a_stable_cursor(station, api):
    handle = api()
    items = [
        station.ingest_bytes(f"ABC1234_01234{n}_2026030108{n}000_000{n}.MP4", bytes([n]) * 5000)
        for n in range(1, 5)
    ]
    expected = [i["evidence_id"] for i in items]
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = handle.get("/v1/evidence", "case-system", params=params).json()
        seen += [i["evidence_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)) == 4
    full = handle.get("/v1/evidence").json()["items"]
    assert [i["evidence_id"] for i in full] == seen, "pages follow the one stable order"

    by_officer = handle.get("/v1/evidence", params={"officer": "012342"}).json()["items"]
    assert [i["evidence_id"] for i in by_officer] == [items[1]["evidence_id"]]
    by_hash = handle.get("/v1/evidence", params={"sha256": items[2]["sha256"].upper()}).json()
    assert [i["evidence_id"] for i in by_hash["items"]] == [items[2]["evidence_id"]]
    recorded = handle.get(
        "/v1/evidence", params={"since": "2026-03-01T00:20:00Z", "until": "2026-03-01T00:40:00Z"}
    ).json()["items"]  # file names are Asia/Shanghai (UTC+8) times 08:20 and 08:30
    assert sorted(i["evidence_id"] for i in recorded) == sorted(expected[1:3])

    handle.request(
        "PUT", f"/v1/cases/C-7/evidence/{items[3]['evidence_id']}", json={"reason": "r"}
    ).raise_for_status()
    in_case = handle.get("/v1/evidence", params={"case": "C-7"}).json()["items"]
    assert [i["evidence_id"] for i in in_case] == [items[3]["evidence_id"]]
    case = handle.get("/v1/cases/C-7", "auditor").json()
    assert case["total"] == 1 and case["items"][0]["link"]["reason"] == "r"
    assert case["items"][0]["legal_hold"] is True

    assert_error(handle.get("/v1/evidence", params={"cursor": "garbage!"}), 422, "invalid_cursor")
    assert_error(handle.get("/v1/evidence", params={"limit": 0}), 422, "invalid_request")
    assert_error(handle.get("/v1/evidence", params={"limit": 100000}), 422, "invalid_request")
    assert_error(handle.get("/v1/evidence", params={"sha256": "xyz"}), 422, "invalid_request")
    assert_error(handle.get("/v1/cases/none-such"), 404, "case_not_found")


def test_reading_an_item_returns_the_stored_manifest_and_is_recorded(station, api):
    handle = api()
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"read me " * 2000)
    response = handle.get(f"/v1/evidence/{item['evidence_id']}", "auditor")
    assert response.status_code == 200, response.text
    document = response.json()
    payload = verify_envelope(
        document["manifest"]["envelope"], handle.archive.key.public_keys()
    ).payload
    assert payload["original"]["sha256"] == item["sha256"] == document["sha256"]
    assert document["source"]["device"] == "ABC1234" and document["source"]["officer"] == "012345"
    assert document["retention"]["category"] == "routine"
    assert document["retention"]["effective_category"] == "routine"
    assert document["cases"] == []
    [viewed] = events(handle, "viewed")
    assert viewed.actor == "token:auditor-client" and viewed.evidence_id == item["evidence_id"]
    assert viewed.details["via"] == "api" and viewed.details["client"] == "127.0.0.1"

    assert_error(handle.get(f"/v1/evidence/{ID}"), 404, "evidence_not_found")
    assert len(events(handle, "viewed")) == 1, "a failed read is not an access"


def test_playback_url_fetches_the_exact_bytes_then_expires(station, api):
    handle = api("playback_expiry_seconds = 2\n")
    data = b"\x00\x01playback" * 3000
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", data)
    path = f"/v1/evidence/{item['evidence_id']}/playback"

    assert_error(handle.get(path, "case-system"), 404, "no_derivative")
    response = handle.get(path, "case-system", params={"variant": "original"})
    assert response.status_code == 200, response.text
    issued = response.json()
    assert issued["sha256"] == hashlib.sha256(data).hexdigest() and issued["expires_in"] == 2
    fetched = httpx.get(issued["url"], timeout=30)
    assert fetched.status_code == 200 and fetched.content == data
    [event] = events(handle, "playback_issued")
    assert event.actor == "token:case-system-client"
    assert event.details["variant"] == "original" and event.details["sha256"] == item["sha256"]
    wait_until(
        lambda: httpx.get(issued["url"], timeout=30).status_code == 403,
        30,
        message="the presigned URL to expire",
    )


def test_playback_of_the_derivative_is_its_own_exact_version(station, api):
    from archive.derivatives import Derivative

    handle = api()
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"original" * 3000)
    copy = b"a playback copy" * 1000
    sha = hashlib.sha256(copy).hexdigest()
    stored = handle.archive.store.put_bytes(
        derivative_key(sha), copy, Retention.for_days(1), content_type="video/mp4"
    )
    with handle.archive.db.session() as session:
        session.add(
            Derivative(
                evidence_id=item["evidence_id"],
                state="stored",
                action="remux",
                sha256=sha,
                size=len(copy),
                key=stored.key,
                version_id=stored.version_id,
            )
        )
    issued = handle.get(f"/v1/evidence/{item['evidence_id']}/playback", "auditor").json()
    assert issued["variant"] == "derivative" and issued["sha256"] == sha
    assert httpx.get(issued["url"], timeout=30).content == copy
    detail = handle.get(f"/v1/evidence/{item['evidence_id']}").json()
    assert [d["sha256"] for d in detail["derivatives"] if d["state"] == "stored"] == [sha]


def test_keys_healthz_metrics_and_framework_errors(station, api):
    handle = api()
    station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"m" * 12345)
    [key] = handle.get("/v1/keys", "case-system").json()["keys"]
    name, raw = parse_vkey(key["vkey"])
    assert raw.hex() == key["public_key_hex"] == handle.archive.key.public_key.hex()
    assert key["keyid"] == handle.archive.key.keyid and name == key["key_name"]
    assert key["fingerprint"] == "sha256:" + hashlib.sha256(raw).hexdigest()

    assert handle.get("/healthz", None).json() == {"status": "ok"}
    assert_error(handle.get("/metrics", None), 401, "unauthenticated")
    assert_error(handle.get("/metrics", "case-system"), 403, "forbidden")
    text = handle.get("/metrics", "auditor").text
    assert 'strongroom_evidence_items{state="sealed"} 1.0' in text
    assert 'strongroom_evidence_bytes{state="sealed"} 12345.0' in text
    assert "strongroom_pipeline_step_seconds" in text
    assert 'strongroom_api_requests_total{route="/v1/keys",status="200"}' in text

    assert_error(handle.get("/nowhere"), 404, "not_found")
    assert_error(handle.request("POST", "/v1/keys"), 405, "method_not_allowed")
    assert_error(handle.get("/openapi.json", None), 401, "unauthenticated")
    assert (
        "/v1/cases/{case_id}/evidence/{evidence_id}" in handle.get("/openapi.json").json()["paths"]
    )


def test_metrics_may_be_opened_to_loopback_scrapers(station, api):
    handle = api("metrics_unauthenticated_on_loopback = true\n")
    assert handle.get("/metrics", None).status_code == 200
    assert_error(handle.get("/v1/keys", None), 401, "unauthenticated")
    bad = handle.get("/metrics", None, headers={"Authorization": "Bearer sr_wrong"})
    assert_error(bad, 401, "unauthenticated")


def test_link_needs_a_reason_and_a_known_item(station, api):
    handle = api()
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"r" * 5000)
    path = f"/v1/cases/R-1/evidence/{item['evidence_id']}"
    assert_error(handle.request("PUT", path), 422, "invalid_request")
    for blank in ("", "   ", "bell\x07"):
        assert_error(handle.request("PUT", path, json={"reason": blank}), 422, "invalid_request")
    assert_error(handle.request("DELETE", path), 422, "invalid_request")
    assert_error(
        handle.request("PUT", f"/v1/cases/R-1/evidence/{ID}", json={"reason": "x"}),
        404,
        "evidence_not_found",
    )
    for case_id in ("%20pad", "a%5Cb", "x" * 129):
        response = handle.request(
            "PUT", f"/v1/cases/{case_id}/evidence/{item['evidence_id']}", json={"reason": "x"}
        )
        assert_error(response, 422, "invalid_request")
    first = handle.request("PUT", path, json={"reason": "x"}).json()
    again = handle.request("PUT", path, json={"reason": "y"}).json()
    assert first["changed"] is True and again["changed"] is False and again["reason"] == "x"
    assert len(events(handle, "linked")) == 1
    refused = handle.request("PATCH", path)
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["Allow"] == "DELETE, PUT"


def test_a_token_removed_from_the_file_is_refused_without_a_restart(station, api):
    handle = api()
    assert handle.get("/v1/keys", "auditor").status_code == 200
    tokens_file = station.root / "tokens.toml"
    kept = tokens_file.read_text().split("[[tokens]]")
    tokens_file.write_text("[[tokens]]".join(p for p in kept if "auditor" not in p))
    assert_error(handle.get("/v1/keys", "auditor"), 401, "unauthenticated")
    assert handle.get("/v1/keys", "admin").status_code == 200
    tokens_file.chmod(0o644)  # no longer a secret: every file token stops working
    assert_error(handle.get("/v1/keys", "admin"), 401, "unauthenticated")
