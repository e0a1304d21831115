"""The API as operators start it: ``strongroom serve`` alone, and inside
``strongroom run``; tokens from ``strongroom token create`` via the
environment; no token ever in the log, even at DEBUG."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import httpx
import pytest
from conftest import STRONGROOM, wait_until

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_accepts_env_tokens_and_never_logs_them(station, tmp_path):
    created = json.loads(
        station.cli(
            "token", "create", "cms", "--role", "case-system", "--all-units", "--json"
        ).stdout
    )
    token = created["token"]
    assert created["sha256"] and token not in created["tokens_file_entry"]
    bad = "sr_this-token-was-never-issued-to-anyone"
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        **station.env,
        "STRONGROOM_API__TOKENS": json.dumps(
            [{k: created[k] for k in ("name", "role", "sha256", "all_units")}]
        ),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *STRONGROOM,
                "--log-level",
                "DEBUG",
                "serve",
                "--listen",
                url[7:],
                "--config",
                str(station.config),
            ],
            cwd=station.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: answers(url), 60, message="strongroom serve to answer")
        good = httpx.get(url + "/v1/evidence", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and good.json()["items"] == []
        refused = httpx.get(url + "/v1/evidence", headers={"Authorization": f"Bearer {bad}"})
        assert refused.status_code == 401
        forbidden = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
        assert forbidden.status_code == 403
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    assert code == 0
    output = log_path.read_text(errors="replace")
    assert "GET /v1/evidence" in output, "the access log is on"
    assert token not in output and bad not in output
    assert created["sha256"] not in output


def test_run_serves_the_api_next_to_the_daemon(station, tmp_path):
    from frontdoors.api.auth import hash_token

    token = "sr_daemon-test-token"
    port = free_port()
    entry = [{"name": "ops", "role": "admin", "sha256": hash_token(token)}]
    daemon = station.start_daemon(
        env={
            "STRONGROOM_API__LISTEN": f"127.0.0.1:{port}",
            "STRONGROOM_API__TOKENS": json.dumps(entry),
        }
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url), 60, message="the daemon's API to answer")
        station.dock.mkdir(exist_ok=True)
        (station.dock / "ABC1234_012345_20260301083015_0001.MP4").write_bytes(b"dock" * 5000)
        headers = {"Authorization": f"Bearer {token}"}
        wait_until(
            lambda: httpx.get(url + "/v1/evidence", headers=headers).json()["items"],
            60,
            message="the dropped file to be searchable",
        )
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()[-3000:]
    assert not answers(url), "the API stops with the daemon"
    assert token not in daemon.output()


def test_server_connections_have_nagle_off(station, api):
    """Without TCP_NODELAY each keep-alive response waits ~40 ms for the
    client's delayed ACK; asyncio sets it only on sockets made with IPPROTO_TCP."""
    handle = api()
    with httpx.Client(base_url=handle.url) as client:
        assert client.get("/healthz").status_code == 200
        connections = handle.server.server.server_state.connections
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
