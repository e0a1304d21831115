"""Serving the API with uvicorn in a background thread.

The listening socket is bound here, before uvicorn starts, so a taken port is
an immediate, clear error in the caller (not a thread that quietly died) and
``listen = "127.0.0.1:0"`` yields a known port.

HTTPS when ``[api] tls_cert`` and ``tls_key`` are set. Plain HTTP is served
only on a loopback address, unless ``allow_plain_http = true`` says a TLS
proxy stands in front: bearer tokens must not cross a network in clear text.

uvicorn's own access log is off: :mod:`frontdoors.api.middleware` writes it
without the query string and without headers, so neither an ``Authorization``
token nor one pasted into ``?access_token=`` can reach the log. Tokens are only
accepted in that header, never in the query string.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import stat
import threading
import time

import uvicorn

from archive.context import Archive
from archive.uploads import UploadArea
from config.settings import ConfigError, Settings
from frontdoors.api.app import create_app

log = logging.getLogger("strongroom.api")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ConfigError(f"api.listen {listen!r} is not host:port")
    return host.strip("[]"), int(port)


def bind(listen: str) -> socket.socket:
    """The listening socket, created with ``proto=IPPROTO_TCP``: asyncio turns
    Nagle off (TCP_NODELAY) only on connections whose socket says so, and
    without it every keep-alive response stalls ~40 ms on the client's delayed
    ACK (measured: 45 ms per request instead of 2 ms)."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"api.listen {listen}: cannot listen: {exc.strerror or exc}") from exc
    return sock


def is_loopback(host: str) -> bool:
    """Only a literal loopback address (or ``localhost``) counts: a name may
    resolve anywhere, and ``0.0.0.0`` is every interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_files(settings: Settings) -> tuple[str, str] | None:
    """(certificate, key) paths when TLS is configured; the key must be 0600."""
    api = settings.api
    if api.tls_cert is None or api.tls_key is None:
        return None
    cert, key = settings.resolve(api.tls_cert), settings.resolve(api.tls_key)
    for what, path in (("tls_cert", cert), ("tls_key", key)):
        if not path.is_file():
            raise ConfigError(f"api.{what} {path} does not exist")
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"api.tls_key {key} has mode {mode:o}; run chmod 600 {key}")
    try:  # loaded once here so a bad pair is a clear error, not a thread that died
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"api.tls_cert/tls_key {cert}, {key}: cannot be used: {exc}") from None
    return str(cert), str(key)


def check_transport(settings: Settings, listen: str) -> tuple[str, str] | None:
    """Refuse plain HTTP beyond loopback unless the operator said a proxy does TLS."""
    tls = tls_files(settings)
    host, _ = parse_listen(listen)
    if tls is None and not is_loopback(host) and not settings.api.allow_plain_http:
        raise ConfigError(
            f"api.listen {listen} is not a loopback address and api.tls_cert/tls_key are not "
            "set: bearer tokens would cross the network in clear text; configure TLS, or set "
            "api.allow_plain_http = true if a TLS proxy stands in front"
        )
    return tls


class ApiServer:
    """uvicorn serving :func:`create_app` on one bound socket, in a thread."""

    def __init__(
        self, archive: Archive, listen: str | None = None, uploads: UploadArea | None = None
    ) -> None:
        listen = listen or archive.settings.api.listen
        if not listen:
            raise ConfigError("api.listen is not set")
        tls = check_transport(archive.settings, listen)
        self.app = create_app(archive, uploads=uploads)
        self.socket = bind(listen)
        host, port = self.socket.getsockname()[:2]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
        config = uvicorn.Config(
            self.app,
            log_config=None,  # our logging set-up (text or JSON) applies
            access_log=False,  # frontdoors.api.middleware logs requests without query strings
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
            lifespan="off",
            proxy_headers=False,  # the client address is the socket's peer
            server_header=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="api", daemon=True
        )

    def start(self, timeout: float = 15.0) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.socket.close()
                raise ConfigError(f"the API server did not start on {self.url}")
            time.sleep(0.02)
        log.info("API listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)
        self.socket.close()
