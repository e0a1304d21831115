"""The API against a hostile network (issue 11): bodies bounded before
routing and authentication, no query string in any log, generic 5xx bodies
with a request id, TLS and no plain HTTP beyond loopback, a clear exit 2 for a
missing tokens file, and SigV4 playback URLs at the public store address,
signed by the read-only identity when one is configured."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import ssl
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import STRONGROOM
from sqlalchemy import update

from archive.models import Evidence
from config.settings import ConfigError

ID = "ev-000000000000000000000000"


def raw_request(url: str, head: str, body: bytes, timeout: float = 10) -> bytes:
    """Send a request by hand (a client that lies about or streams its body)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_an_oversized_body_is_refused_before_routing_and_authentication(station, api):
    handle = api("max_body_bytes = 4096\n")
    path = f"/v1/cases/C-1/evidence/{ID}"
    # declared: 300 MB promised, 10 KB sent; answered at once, the rest never read
    answer = raw_request(
        handle.url,
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 300000000\r\n\r\n",
        b"x" * 10_000,
    )
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "too_large" and "4096" in body["error"]["message"]

    # streamed (chunked, no Content-Length): counted as it arrives, with or without a token
    chunk = b"4000\r\n" + b"y" * 0x4000 + b"\r\n"
    for auth in ("", f"Authorization: Bearer {handle.tokens['admin']}\r\n"):
        answer = raw_request(
            handle.url,
            f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
            "Transfer-Encoding: chunked\r\n\r\n",
            chunk * 4,  # 64 KiB so far, and the client never finishes the body
        )
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 413 " in status_line, answer[:300]
        head, _, body = rest.partition(b"\r\n\r\n")
        assert b"x-request-id" in head.lower()
        assert json.loads(body)["error"]["code"] == "too_large"

    small = handle.request("PUT", path, "admin", json={"reason": "r" * 100})
    assert small.status_code == 404, "a body within the limit goes on to the route"


def test_query_strings_never_reach_the_log(station, api, caplog):
    handle = api()
    secret = "sr_pasted-into-the-query-string"
    with caplog.at_level(logging.DEBUG):
        refused = handle.get(f"/v1/evidence?access_token={secret}&officer=012345", None)
        ok = handle.get("/v1/evidence", params={"officer": "012345", "x": secret})
    assert refused.status_code == 401 and ok.status_code == 200
    # the server's records (the test's own httpx logs the URLs it was asked for)
    text = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("strongroom", "uvicorn"))
    )
    assert "GET /v1/evidence" in text, "the access log is on"
    assert secret not in text and "access_token" not in text and "officer=" not in text
    assert ok.headers["x-request-id"] in text, "the log line names the request id"


def test_server_errors_are_generic_with_a_request_id_and_details_in_the_log(station, api, caplog):
    handle = api()
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"e" * 5000)
    with handle.archive.db.session() as session:
        session.execute(
            update(Evidence)
            .where(Evidence.evidence_id == item["evidence_id"])
            .values(sha256="f" * 64)
        )
    with caplog.at_level(logging.INFO):
        response = handle.get(f"/v1/evidence/{item['evidence_id']}/bundle", "auditor")
    assert response.status_code == 500
    error = response.json()["error"]
    rid = response.headers["x-request-id"]
    assert error["code"] == "export_failed" and error["request_id"] == rid
    assert rid in error["message"]
    for leak in (str(station.root), "/", "sha256", "f" * 64):
        assert leak not in error["message"].replace(f"request id {rid}", ""), error
    assert any(rid in r.getMessage() and "f" * 64 in r.getMessage() for r in caplog.records)
    ok = handle.get("/healthz", None)
    assert ok.headers["x-request-id"] and "request_id" not in ok.text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "api.crt", folder / "api.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def test_tls_serves_https_and_refuses_a_readable_key(station, api, tmp_path):
    cert, key = _self_signed(tmp_path)
    handle = api(f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
    assert handle.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(verify=context) as client:
        response = client.get(handle.url + "/v1/keys", headers=handle.headers("auditor"))
    assert response.status_code == 200, response.text
    with pytest.raises(httpx.TransportError):
        httpx.get(handle.url.replace("https", "http") + "/healthz", timeout=5)

    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        api(f'tls_cert = "{cert}"\ntls_key = "{key}"\n')


def test_plain_http_beyond_loopback_is_refused_unless_allowed(station, api, tmp_path):
    station.write_config()
    result = station.cli("serve", "--listen", "0.0.0.0:0", check=False, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "allow_plain_http" in result.stderr and "Traceback" not in result.stderr
    from frontdoors.api.server import ApiServer

    handle = api("allow_plain_http = true\n")
    server = ApiServer(handle.archive, "0.0.0.0:0").start()
    try:
        port = server.socket.getsockname()[1]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_missing_or_unreadable_tokens_file_exits_2_in_one_clear_line(station, tmp_path, command):
    for target in (tmp_path / "no-such-tokens.toml", tmp_path):  # missing; a folder
        station.write_config(f'tokens_file = "{target}"\n')
        result = subprocess.run(
            [*STRONGROOM, command, "--config", str(station.config)],
            cwd=station.root,
            env={**os.environ, **station.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert "api.tokens_file" in result.stderr and str(target) in result.stderr


def test_playback_urls_are_sigv4_at_the_public_address(station, api):
    port = urlsplit(station.store.endpoint_url).port
    public = f"http://localhost:{port}"
    handle = api(f'public_store_url = "{public}"\n')
    data = b"sigv4 playback" * 2000
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", data)
    issued = handle.get(
        f"/v1/evidence/{item['evidence_id']}/playback", params={"variant": "original"}
    ).json()
    url = urlsplit(issued["url"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}" == public
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "Signature" not in query
    assert query["X-Amz-Credential"][0].startswith(station.store.credentials["access_key_id"])
    fetched = httpx.get(issued["url"], timeout=30)
    assert (
        fetched.status_code == 200
        and hashlib.sha256(fetched.content).hexdigest() == (item["sha256"])
    )


def test_playback_urls_are_signed_by_the_read_only_identity(station, api, monkeypatch, tmp_path):
    identity = tmp_path / "read.json"
    identity.write_text(json.dumps({"access_key_id": "ro-player", "secret_access_key": "s" * 40}))
    identity.chmod(0o644)
    monkeypatch.setenv("STRONGROOM_STORE__READ_CREDENTIALS_FILE", str(identity))
    with pytest.raises(ConfigError, match="chmod 600"):
        api()
    identity.chmod(0o600)
    handle = api()
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"ro" * 3000)
    issued = handle.get(
        f"/v1/evidence/{item['evidence_id']}/playback", params={"variant": "original"}
    ).json()
    query = parse_qs(urlsplit(issued["url"]).query)
    assert query["X-Amz-Credential"][0].startswith("ro-player/")
    # the store does not know this identity: the URL is signed by it, not by the archive
    assert httpx.get(issued["url"], timeout=30).status_code == 403
