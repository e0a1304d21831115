"""Disclosure shares through the CLI, the API and the share pages (real uvicorn,
real SeaweedFS): a signed receipt; the page lists the items with their hashes;
downloads stream the exact original (ranges too); every view and download is
a custody event naming the share and the client; malformed or unknown secrets
404 and expired or revoked shares 410, without detail; items outside the case
or the sharer's scope are refused. Also the custody-report API routes."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import zipfile
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from archive.db import utcnow
from archive.dsse import verify_envelope
from archive.models import CustodyEvent
from archive.share_models import Share
from archive.shares import ShareRefused, create_share

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

CASE = "刑案-2026-0099"
RECIPIENT = "某某律师事务所 / defence"


def events(handle, kind: str) -> list[CustodyEvent]:
    with handle.archive.db.session() as s:
        return list(
            s.scalars(
                select(CustodyEvent).where(CustodyEvent.kind == kind).order_by(CustodyEvent.seq)
            )
        )


@pytest.fixture
def shared(station, api, tmp_path):
    handle = api()
    items = [
        station.ingest_bytes(f"ABC1234_012345_2026030108{n}000_000{n}.MP4", bytes([n + 1]) * 70_000)
        for n in range(3)
    ]
    for item in items[:2]:
        station.cli("link", CASE, item["evidence_id"], "--reason", "移送审查起诉")
    return handle, items


def create(station, handle, tmp_path, *args: str) -> tuple[str, dict]:
    receipt = tmp_path / "receipt.pdf"
    out = station.cli(
        "share",
        "create",
        "--case",
        CASE,
        "--to",
        RECIPIENT,
        "--receipt",
        str(receipt),
        "--base-url",
        handle.url,
        "--json",
        *args,
    )
    document = json.loads(out.stdout)
    return urlsplit(document["url"]).path, document


def test_share_page_downloads_events_and_revocation(station, shared, tmp_path):
    handle, items = shared
    path, document = create(station, handle, tmp_path, "--expires", "14d", "--allow", "download")
    assert sorted(document["evidence_ids"]) == sorted(i["evidence_id"] for i in items[:2])
    secret = path.rsplit("/", 1)[1]
    with handle.archive.db.session() as s:
        row = s.get(Share, document["share_id"])
        assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in json.dumps(
            {c.name: str(getattr(row, c.name)) for c in Share.__table__.columns}
        )

    # the receipt: a PDF naming recipient and hashes, and a signature over its SHA-256
    receipt = tmp_path / "receipt.pdf"
    text = subprocess.run(
        ["pdftotext", str(receipt), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = "".join(text.split())
    assert "".join(RECIPIENT.split()) in flat and CASE in flat
    assert all(i["sha256"] in flat for i in items[:2]) and items[2]["sha256"] not in flat
    envelope = (tmp_path / "receipt.pdf.dsse.json").read_bytes()
    payload = verify_envelope(envelope, handle.archive.key.public_keys()).payload
    assert payload["receipt_sha256"] == hashlib.sha256(receipt.read_bytes()).hexdigest()
    assert payload["share_id"] == document["share_id"] and payload["recipient"] == RECIPIENT

    page = handle.get(path, role=None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'name="viewport"' in page.text
    for item in items[:2]:
        assert item["sha256"] in page.text
    assert items[2]["evidence_id"] not in page.text
    viewed = events(handle, "share_viewed")
    assert {e.evidence_id for e in viewed} == {i["evidence_id"] for i in items[:2]}
    assert all(
        e.details["share"] == document["share_id"] and e.details["client"] == "127.0.0.1"
        for e in viewed
    )

    first = items[0]
    got = handle.get(f"{path}/download/{first['evidence_id']}", role=None)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == first["sha256"]
    part = handle.get(
        f"{path}/download/{first['evidence_id']}", role=None, headers={"Range": "bytes=100-199"}
    )
    assert part.status_code == 206 and part.content == got.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{first['size']}"
    tail = handle.get(
        f"{path}/download/{first['evidence_id']}", role=None, headers={"Range": "bytes=-10"}
    )
    assert tail.status_code == 206 and tail.content == got.content[-10:]
    beyond = handle.get(
        f"{path}/download/{first['evidence_id']}",
        role=None,
        headers={"Range": f"bytes={first['size']}-"},
    )
    assert beyond.status_code == 416
    downloaded = events(handle, "share_downloaded")
    assert len(downloaded) == 1 and downloaded[0].details["client"] == "127.0.0.1"
    assert page.headers["x-frame-options"] == "DENY"
    assert downloaded[0].actor == f"share:{document['share_id']}"
    bag = handle.get(f"{path}/bundle", role=None)
    assert bag.status_code == 200 and bag.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(bag.content)).namelist()
    assert any(n.endswith("bagit.txt") for n in names)
    manifest = next(n for n in names if n.endswith("manifest-sha256.txt"))
    listed = zipfile.ZipFile(io.BytesIO(bag.content)).read(manifest).decode()
    assert all(i["sha256"] in listed for i in items[:2]) and items[2]["sha256"] not in listed
    assert len(events(handle, "share_downloaded")) == 3  # the original, then the bundle's two
    # an item of the case that was not shared, and no playback copy: 404
    assert handle.get(f"{path}/download/{items[2]['evidence_id']}", role=None).status_code == 404
    assert handle.get(f"{path}/play/{first['evidence_id']}", role=None).status_code == 404

    listed = json.loads(station.cli("share", "list", "--json").stdout)["shares"]
    assert [(s["share_id"], s["status"]) for s in listed] == [(document["share_id"], "active")]
    station.cli("share", "revoke", document["share_id"])
    for url in (
        path,
        f"{path}/download/{first['evidence_id']}",
        f"{path}/play/x",
        f"{path}/bundle",
    ):
        gone = handle.get(url, role=None)
        assert gone.status_code == 410, url
        assert first["sha256"] not in gone.text and "share" not in gone.text.lower()
    assert len(events(handle, "share_revoked")) == 2
    listed = json.loads(station.cli("share", "list", "--json").stdout)["shares"]
    assert listed[0]["status"] == "revoked"


def test_bad_secrets_404_expired_410_and_view_only(station, shared, tmp_path):
    handle, items = shared
    path, document = create(station, handle, tmp_path, "--items", items[0]["evidence_id"])
    for bad in ("/share/short", "/share/" + "A" * 43, "/share/" + "!" * 43, "/share/%00"):
        answer = handle.get(bad, role=None)
        assert answer.status_code == 404 and len(answer.text) < 120, bad
    # view only: the original cannot be downloaded
    assert handle.get(f"{path}/download/{items[0]['evidence_id']}", role=None).status_code == 404
    assert handle.get(f"{path}/bundle", role=None).status_code == 404
    assert handle.get(path, role=None).status_code == 200
    with handle.archive.db.session() as s:
        s.execute(
            update(Share)
            .where(Share.share_id == document["share_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for url in (path, f"{path}/download/{items[0]['evidence_id']}", f"{path}/bundle"):
        assert handle.get(url, role=None).status_code == 410, url
    listed = json.loads(station.cli("share", "list", "--json").stdout)["shares"]
    assert listed[0]["status"] == "expired"


def test_refused_shares(station, shared, tmp_path):
    handle, items = shared
    outside = station.cli(
        "share",
        "create",
        "--case",
        CASE,
        "--to",
        "x",
        "--items",
        f"{items[0]['evidence_id']}, {items[2]['evidence_id']}",
        check=False,
    )
    assert outside.returncode == 1 and items[2]["evidence_id"] in outside.stderr
    assert items[0]["evidence_id"] not in outside.stderr  # the one in the case is not named
    bad_expiry = station.cli(
        "share", "create", "--case", CASE, "--to", "x", "--expires", "soon", check=False
    )
    assert bad_expiry.returncode == 1 and "expiry" in bad_expiry.stderr
    # the one scope hook: a sharer whose scope excludes the item is refused
    with pytest.raises(ShareRefused, match=items[0]["evidence_id"]):
        create_share(
            handle.archive,
            case_id=CASE,
            recipient="x",
            expires_in=timedelta(days=1),
            actor="token:other-agency",
            scope=lambda actor, evidence: evidence.evidence_id != items[0]["evidence_id"],
        )
    assert events(handle, "share_created") == []

    api = f"/v1/cases/{CASE}/shares"
    assert handle.request("POST", api, "auditor", json={"recipient": "x"}).status_code == 403
    refused = handle.request(
        "POST", api, "case-system", json={"recipient": "x", "items": [items[2]["evidence_id"]]}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "share_refused"
    made = handle.request(
        "POST",
        api,
        "case-system",
        json={"recipient": RECIPIENT, "expires": "2d", "allow": "download"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    path = urlsplit(body["url"]).path
    assert handle.get(path, role=None).status_code == 200
    assert (
        handle.get("/v1/shares", "case-system").json()["shares"][0]["share_id"] == body["share_id"]
    )
    assert (
        handle.request("DELETE", f"/v1/shares/{body['share_id']}", "case-system").status_code == 200
    )
    assert handle.get(path, role=None).status_code == 410


def test_access_log_never_holds_a_secret():
    from frontdoors.api.routes_share import _RedactShares

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/share/" + "s" * 43 + "/play/ev-1", "1.1", 200),
        None,
    )
    _RedactShares().filter(record)
    assert "s" * 43 not in record.getMessage() and "/share/…/play/ev-1" in record.getMessage()


def test_custody_report_api(station, shared):
    handle, items = shared
    first = items[0]["evidence_id"]
    answer = handle.get(
        f"/v1/evidence/{first}/custody-report", "case-system", params={"format": "json"}
    )
    assert answer.status_code == 200, answer.text
    digest = hashlib.sha256(answer.content).hexdigest()
    assert answer.headers["x-report-sha256"] == digest
    assert answer.json()["items"][0]["sha256"] == items[0]["sha256"]
    issued = events(handle, "report_issued")
    assert [(e.evidence_id, e.details["report_sha256"]) for e in issued] == [(first, digest)]
    assert issued[0].details["via"] == "api" and issued[0].actor == "token:case-system-client"

    pdf = handle.get(f"/v1/cases/{CASE}/custody-report", "auditor")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    missing = handle.get("/v1/evidence/ev-nope/custody-report", "auditor")
    assert missing.status_code == 404 and "ev-nope" in missing.json()["error"]["message"]
    assert handle.get("/v1/cases/no-such-case/custody-report", "auditor").status_code == 404
    assert handle.get(f"/v1/evidence/{first}/custody-report", None).status_code == 401
