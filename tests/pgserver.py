"""A throw-away PostgreSQL server for the test session.

Debian's ``postgresql`` package (``make setup`` installs it when missing),
``initdb`` into a fresh temp folder owned by an unprivileged system user
(PostgreSQL refuses to run as root), listening only on 127.0.0.1 on a free
port, unix sockets off, ``fsync`` on (we test durability claims, so the
server must keep its own), password authentication (SCRAM) so a wrong
password is really refused. Each test gets a fresh database of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "strongroom"


def pg_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian's layout)."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL is not installed: run 'make setup' (apt-get install postgresql)"
        )
    return versions[-1]


def _run_as() -> list[str]:
    """Prefix that drops root to the ``postgres`` user (or ``nobody``)."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise RuntimeError("no unprivileged user (postgres/nobody) to run PostgreSQL as")


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PgServer:
    """A running server: its folder, port and superuser password."""

    folder: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def _connect(self):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def ctl(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [*_run_as(), str(pg_bindir() / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def stop(self, mode: str = "fast") -> None:
        self.ctl("stop", "-m", mode, "-w")

    def start(self) -> None:
        self.ctl("start", "-w", "-t", "60", "-l", str(self.folder / "postgres.log"))
        self._wait_ready()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._connect():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # already stopped; the folder goes anyway
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> PgServer:
    """initdb + start on a free port; the caller must :meth:`PgServer.destroy` it."""
    bindir = pg_bindir()
    # Not under pytest's tmp folders: those are 0700 root, unreachable for the
    # unprivileged server user.
    folder = Path(tempfile.mkdtemp(prefix="strongroom-pg-"))
    folder.chmod(0o755)
    owner = _owner()
    password = secrets.token_urlsafe(16)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if owner:
        os.chown(folder, *owner)
        os.chown(pwfile, *owner)
    pwfile.chmod(0o600)
    subprocess.run(
        [
            *_run_as(),
            str(bindir / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    pwfile.unlink()
    port = free_port()
    with (folder / "data" / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# strongroom tests\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            "unix_socket_directories = ''\n"
            "fsync = on\n"
            "max_connections = 200\n"
            "shared_buffers = 32MB\n"
            "timezone = 'Asia/Shanghai'\n"  # not UTC: shows any naive-time mistake
        )
    server = PgServer(folder, port, password)
    try:
        server.start()
    except BaseException:
        log = folder / "postgres.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.destroy()
        raise RuntimeError(f"PostgreSQL did not start:\n{detail}") from None
    return server
