"""The store's door (archive/forwarder.py) on its own: bytes both ways with
half-close, and a connection it cannot serve is dropped without leaking."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from archive import forwarder


@pytest.fixture
def upstream():
    """An echo server that reads to EOF, then answers with the SHA of the size."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                total = 0
                while chunk := conn.recv(1 << 16):
                    total += len(chunk)
                conn.sendall(f"got {total}".encode())

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()
    server.close()


def _connected_pair() -> tuple[socket.socket, socket.socket]:
    """(what a client holds, what the forwarder accepted)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    return client, accepted


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_bytes_go_both_ways_and_eof_is_passed_on(upstream):
    client, accepted = _connected_pair()
    forwarder.forward(accepted, upstream)
    payload = os.urandom(5 * 1024 * 1024)
    client.sendall(payload)
    client.shutdown(socket.SHUT_WR)  # the upstream answers only after EOF
    client.settimeout(10)
    answer = b""
    while chunk := client.recv(1024):
        answer += chunk
    assert answer == f"got {len(payload)}".encode()
    client.close()


def test_a_connection_without_threads_is_dropped_and_nothing_leaks(upstream, monkeypatch):
    started = []
    real_start = threading.Thread.start

    def second_fails(self: threading.Thread) -> None:
        started.append(self)
        if len(started) == 2:
            raise RuntimeError("can't start new thread")
        real_start(self)

    client, accepted = _connected_pair()
    before = _fds()
    monkeypatch.setattr(threading.Thread, "start", second_fails)
    forwarder.forward(accepted, upstream)
    monkeypatch.undo()
    client.settimeout(10)
    assert client.recv(100) == b""  # dropped, not hanging
    client.close()
    deadline = time.monotonic() + 10
    # the accepted socket and its upstream are closed, both pipes too
    while _fds() > before - 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fds() <= before - 2


def test_an_unreachable_upstream_closes_the_client():
    with socket.create_server(("127.0.0.1", 0)) as gone:
        address = gone.getsockname()
    client, accepted = _connected_pair()
    forwarder.forward(accepted, address, timeout=2)
    client.settimeout(10)
    assert client.recv(100) == b""
    client.close()
