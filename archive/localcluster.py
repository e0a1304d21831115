"""A SeaweedFS cluster on one machine, boxed like the local store: S3 only.

The design's way up from ``weed mini`` is a cluster: masters, replicated volume
servers, filers, S3 gateways. This module starts a small one so that the tests
and the benchmark can prove Strongroom's guarantees on it and measure what a
dead node costs:

* 1 master, replication ``010`` by default: every volume has one copy in each
  of two racks (``001`` – another server in the *same* rack – would leave the
  lone server of the second rack unused and a whole rack a single point of
  failure);
* 3 volume servers, ``vol1`` and ``vol2`` in rack ``rackA``, ``vol3`` in
  ``rackB``, small (64 MB volumes, two volume pairs per bucket);
* 1 filer on its default leveldb2 metadata store (one machine; a shared
  PostgreSQL store is what several filers would need);
* 2 S3 gateways on that filer, Object Lock included.

All eight processes run in one network and mount namespace
(:mod:`archive.clusterbox`), as the store user when started by root, so from
the host only the two S3 ports on 127.0.0.1 answer – the same lockdown as
:mod:`archive.localstore` (``tests/test_store_doors.py`` probes every port of
every node). :class:`LocalCluster` can kill and restart single nodes through
the box's control line, for the fault tests and the benchmark.

Used by ``strongroom local-cluster``, the ``cluster`` test parameter and
``python -m bench --only cluster``.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive import localstore

#: node names, in the order they start (the box stops them in reverse)
START_ORDER = ("master", "vol1", "vol2", "vol3", "filer", "s3a", "s3b")
GATEWAYS = ("s3a", "s3b")
VOLUMES = {"vol1": "rackA", "vol2": "rackA", "vol3": "rackB"}
#: offsets from the base port; every node also listens on port + 10000 (gRPC)
PORT_OFFSETS = {"s3a": 0, "s3b": 1, "master": 2, "filer": 3, "vol1": 4, "vol2": 5, "vol3": 6}
REPLICATION = "010"
VOLUME_SIZE_MB = 64
#: volume slots per server: every bucket is a collection with volumes of its own
VOLUME_MAX = 200

#: ``master.toml`` (read from the master's working folder): grow two volume
#: pairs at a time, not six, and let the master repair replication itself
MASTER_TOML = """\
[master.volume_growth]
copy_1 = 2
copy_2 = 2
copy_3 = 1
copy_other = 1

[master.maintenance]
scripts = \"\"\"
  lock
  volume.fix.replication -apply
  s3.clean.uploads -timeAgo=24h
  unlock
\"\"\"
sleep_minutes = 17
"""


class ClusterError(localstore.LocalStoreError):
    """The local cluster could not be started, or its box refused a request."""

    code = "local_cluster_failed"


@dataclass(frozen=True)
class Layout:
    """Where each node listens inside the box (the gateways' numbers are also
    the host's door ports)."""

    base: int

    def port(self, node: str) -> int:
        return self.base + PORT_OFFSETS[node]

    def ports(self) -> list[int]:
        """Every port number of the cluster, HTTP and gRPC."""
        http = [self.port(node) for node in START_ORDER]
        return http + [p + 10000 for p in http]


def find_base(start: int = 40000, stop: int = 49000, step: int = 10) -> int:
    """A base where every node's port and its gRPC twin are free on the host."""
    for base in range(start, stop, step):
        if all(localstore.port_is_free(p) for p in Layout(base).ports()):
            return base
    raise ClusterError("no free port range for the SeaweedFS cluster on 127.0.0.1")


def node_command(layout: Layout, node: str, inside: Path, weed: Path) -> tuple[list[str], Path]:
    """The command line of one node and its working folder (paths inside the box)."""
    data = inside / "data"
    port = layout.port(node)
    master = f"127.0.0.1:{layout.port('master')}"
    common = [f"-port={port}", f"-port.grpc={port + 10000}", "-ip.bind=127.0.0.1"]
    if node == "master":
        return [
            str(weed),
            "master",
            "-ip=127.0.0.1",
            *common,
            f"-mdir={data / 'master'}",
            f"-defaultReplication={REPLICATION}",
            f"-volumeSizeLimitMB={VOLUME_SIZE_MB}",
            "-volumePreallocate=false",
            "-telemetry=false",
        ], data / "master"
    if node in VOLUMES:
        return [
            str(weed),
            "volume",
            "-ip=127.0.0.1",
            *common,
            f"-dir={data / node}",
            f"-max={VOLUME_MAX}",
            f"-master={master}",
            "-dataCenter=dc1",
            f"-rack={VOLUMES[node]}",
            "-preStopSeconds=0",
            "-minFreeSpace=1",
        ], data / node
    if node == "filer":
        return [
            str(weed),
            "filer",
            "-ip=127.0.0.1",
            *common,
            f"-master={master}",
            f"-defaultStoreDir={data / 'filer'}",
            "-webdav=false",
            "-s3=false",
        ], data / "filer"
    if node in GATEWAYS:
        return [
            str(weed),
            "s3",
            "-ip=127.0.0.1",
            *common,
            f"-filer=127.0.0.1:{layout.port('filer')}",
            f"-config={inside / localstore.S3_JSON}",
            "-iam=false",
            "-port.iceberg=0",
            "-port.lance=0",
        ], data / node
    raise ClusterError(f"unknown node {node!r}")


def prepare(folder: Path, user: str | None, credentials_owner: str | None) -> dict[str, str]:
    """Keys, identities and secrets as for the local store, plus a folder per node."""
    credentials = localstore.prepare(folder, user, credentials_owner)
    data = folder / "data"
    owner = pwd.getpwnam(user) if user else None
    for node in START_ORDER:
        (data / node).mkdir(exist_ok=True, mode=0o700)
        if owner:
            os.chown(data / node, owner.pw_uid, owner.pw_gid)
    toml = data / "master" / "master.toml"
    toml.write_text(MASTER_TOML)
    if owner:
        os.chown(toml, owner.pw_uid, owner.pw_gid)
    return credentials


@dataclass
class LocalCluster:
    """A running boxed cluster; stop it with :meth:`stop` (or use ``with``)."""

    folder: Path
    layout: Layout
    process: subprocess.Popen[bytes]
    credentials: dict[str, str]
    control: socket.socket
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def s3_ports(self) -> list[int]:
        return [self.layout.port(g) for g in GATEWAYS]

    @property
    def s3_port(self) -> int:
        return self.s3_ports[0]

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.s3_ports]

    @property
    def endpoint_url(self) -> str:
        return self.endpoints[0]

    def inside_port(self, node: str) -> int:
        """A node's port inside the box: not reachable from the host."""
        return self.layout.port(node)

    def env(self) -> dict[str, str]:
        """``STRONGROOM_STORE__*`` variables pointing Strongroom at this cluster."""
        return {
            "STRONGROOM_STORE__ENDPOINT_URL": self.endpoint_url,
            "STRONGROOM_STORE__ACCESS_KEY_ID": self.credentials["access_key_id"],
            "STRONGROOM_STORE__SECRET_ACCESS_KEY": self.credentials["secret_access_key"],
        }

    # -- the control line ------------------------------------------------------

    def request(self, timeout: float = 330, **request: object) -> dict[str, Any]:
        """One request to the box; raises :class:`ClusterError` on a refusal."""
        with self._lock:
            self.control.settimeout(timeout)
            self.control.sendall(json.dumps(request).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = self.control.recv(65536)
                if not chunk:
                    raise ClusterError("the cluster box closed its control line")
                answer += chunk
        reply: dict[str, Any] = json.loads(answer)
        if not reply.get("ok"):
            raise ClusterError(reply.get("error", "refused"))
        return reply

    def pids(self) -> dict[str, int | None]:
        """Each node's process id (host view), ``None`` for a stopped node."""
        pids: dict[str, int | None] = self.request(op="pids")["pids"]
        return pids

    def kill(self, node: str, signum: int = signal.SIGKILL) -> None:
        self.request(op="kill", node=node, signal=int(signum))

    def start_node(self, node: str, ready_timeout: float = 60) -> None:
        """Start a stopped node again and wait until its port answers (inside);
        a gateway, until it serves S3 through its door."""
        self.request(op="start", node=node)
        if node in GATEWAYS:
            endpoint = self.endpoints[GATEWAYS.index(node)]
            localstore.wait_ready(_Probe(self, endpoint), ready_timeout)  # type: ignore[arg-type]

    def shell(self, script: str) -> str:
        """Run a ``weed shell`` script inside the box; its output."""
        return str(self.request(op="shell", script=script)["output"])

    # -- life ---------------------------------------------------------------------

    def stop(self, timeout: float = 60) -> None:
        """Stop every node and the box; nothing of the cluster is left running."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        # weed nodes die with the box (PDEATHSIG); make sure none lingers
        _kill_group_leftovers(self.process.pid)
        self.control.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _kill_group_leftovers(pgid: int) -> None:
    """SIGKILL whatever is still in the box's process group (a stuck node)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


def start(
    folder: Path,
    base: int | None = None,
    *,
    ready_timeout: float = 120,
    user: str | None = None,
    credentials_owner: str | None = None,
) -> LocalCluster:
    """Start the boxed cluster in its own process group; wait until both gateways
    serve S3 with Object Lock (a bucket can be made locked)."""
    folder = folder.resolve()
    if os.geteuid() == 0:
        user = localstore.ensure_user(user or localstore.STORE_USER)
    elif user or credentials_owner:
        raise ClusterError("only root can run the store as another user or give files away")
    credentials = prepare(folder, user, credentials_owner)
    layout = Layout(base or find_base())
    listeners = [localstore.listen(layout.port(g), timeout=120) for g in GATEWAYS]
    ours, theirs = socket.socketpair()
    try:
        process = localstore.spawn_box(
            "archive.clusterbox",
            folder,
            [
                f"--base-port={layout.base}",
                f"--listen-fds={','.join(str(s.fileno()) for s in listeners)}",
                f"--control-fd={theirs.fileno()}",
            ],
            user=user,
            pass_fds=(*(s.fileno() for s in listeners), theirs.fileno()),
        )
    finally:
        theirs.close()
        for sock in listeners:
            sock.close()
    cluster = LocalCluster(folder, layout, process, credentials, ours)
    try:
        for endpoint in cluster.endpoints:
            localstore.wait_ready(_Probe(cluster, endpoint), ready_timeout)  # type: ignore[arg-type]
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass
class _Probe:
    """What :func:`localstore.wait_ready` reads of a store, for one gateway."""

    cluster: LocalCluster
    endpoint_url: str

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.cluster.process

    @property
    def credentials(self) -> dict[str, str]:
        return self.cluster.credentials

    @property
    def folder(self) -> Path:
        return self.cluster.folder
