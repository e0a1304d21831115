"""The local store's only door is S3: every other port of ``weed`` is tried as
an attacker on the same machine would, and a COMPLIANCE-locked original must
survive all of it.

The ports are not taken from a list: every TCP socket and unix socket that a
``weed`` process of the store listens on is read from ``/proc/<pid>/net`` (that
is, in the store's own namespace), then attacked from the host's. Each probe
is first shown to work from *inside* the store's namespace (so a refusal
outside means the door is closed, not that the probe is wrong).

Every probe runs twice: against ``weed mini`` and against the local cluster
(``archive.localcluster``: master, three volume servers, filer, two S3
gateways – eight processes in one box, two doors).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import pwd
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import STRONGROOM, raw_s3

from archive import localcluster, localstore

BUCKET = "doors-bucket"
LISTEN = "0A"
#: another OS user, as the daemon's user would be
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@dataclass
class Target:
    store: localstore.LocalStore | localcluster.LocalCluster
    key: str
    version: str
    checksum: str
    data: bytes

    @property
    def weed(self) -> list[psutil.Process]:
        return weed_processes(self.store)

    def versions_path(self) -> str:
        return f"/buckets/{BUCKET}/{self.key}.versions"

    @property
    def doors(self) -> set[int]:
        """The S3 ports: the only ones the host may reach."""
        return set(getattr(self.store, "s3_ports", [self.store.s3_port]))

    @property
    def volume_ports(self) -> list[int]:
        if isinstance(self.store, localcluster.LocalCluster):
            return [self.store.inside_port(node) for node in localcluster.VOLUMES]
        return [self.store.inside_port("volume")]


def weed_processes(store: localstore.LocalStore) -> list[psutil.Process]:
    """Every ``weed`` process of the store (the box's child, or the store itself)."""
    root = psutil.Process(store.process.pid)
    found = [p for p in [root, *root.children(recursive=True)] if p.name() == "weed"]
    assert found, "no weed process found"
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for entry in os.scandir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(entry.path)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def tcp_listeners(net: str) -> dict[int, int]:
    """``{inode: port}`` of every listening TCP socket in a ``/proc/…/net`` folder."""
    found = {}
    for name in ("tcp", "tcp6"):
        for line in Path(net, name).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def unix_listeners(net: str) -> dict[int, str]:
    """``{inode: path}`` of every listening unix socket with a name in the filesystem."""
    found = {}
    for line in Path(net, "unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Flags 00010000 is __SO_ACCEPTCON: a listening socket
        if len(fields) >= 8 and fields[3] == "00010000" and fields[7].startswith("/"):
            found[int(fields[6])] = fields[7]
    return found


def weed_ports(target: Target) -> tuple[set[int], set[str]]:
    """Every TCP port and unix socket path a weed process of the store listens on."""
    ports: set[int] = set()
    paths: set[str] = set()
    for process in target.weed:
        mine = socket_inodes(process.pid)
        net = f"/proc/{process.pid}/net"
        ports |= {port for inode, port in tcp_listeners(net).items() if inode in mine}
        paths |= {path for inode, path in unix_listeners(net).items() if inode in mine}
    return ports, paths


def host_addresses() -> list[str]:
    """127.0.0.1 and every IPv4 address of this host's interfaces."""
    found = ["127.0.0.1"]
    for addresses in psutil.net_if_addrs().values():
        found += [a.address for a in addresses if a.family == socket.AF_INET]
    return sorted(set(found))


def inside(target: Target, *command: str, stdin: str = "", timeout: float = 60) -> str:
    """Run a command in the store's network namespace (the positive control)."""
    ns = f"/proc/{target.weed[0].pid}/ns/net"
    result = subprocess.run(
        ["nsenter", f"--net={ns}", *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


def file_id(target: Target) -> str:
    """The volume file id of the locked original, asked from inside the box."""
    master, filer = target.store.inside_port("master"), target.store.inside_port("filer")
    out = inside(
        target,
        localstore.weed_binary(),
        "shell",
        f"-master=127.0.0.1:{master}",
        f"-filer=127.0.0.1:{filer}",
        stdin=f"fs.meta.cat {target.versions_path()}/v_{target.version}\n",
    )
    document = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return document["chunks"][0]["fileId"]


def assert_original_intact(target: Target) -> None:
    """The locked version is still there, whole, with its SHA-256."""
    s3 = raw_s3(target.store)
    head = s3.head_object(
        Bucket=BUCKET, Key=target.key, VersionId=target.version, ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == target.checksum
    assert head["ContentLength"] == len(target.data)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=target.key)["Versions"]
    assert [v["VersionId"] for v in versions] == [target.version]
    body = s3.get_object(Bucket=BUCKET, Key=target.key, VersionId=target.version)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(target.data).digest()


@pytest.fixture(scope="module", params=["mini", "cluster"])
def target(tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[Target]:
    """A store of this module's own (a failing probe must not harm other tests)
    holding one COMPLIANCE-locked original: ``weed mini``, then the cluster."""
    folder = tmp_path_factory.mktemp("doors") / "seaweedfs"
    start = localcluster.start if request.param == "cluster" else localstore.start
    store = start(folder)
    try:
        s3 = raw_s3(store)
        s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        data = os.urandom(200_000)
        digest = hashlib.sha256(data)
        checksum = base64.b64encode(digest.digest()).decode()
        key = f"originals/sha256/{digest.hexdigest()}"
        put = s3.put_object(
            Bucket=BUCKET,
            Key=key,
            Body=data,
            ChecksumSHA256=checksum,
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=datetime.datetime.now(datetime.UTC)
            + datetime.timedelta(days=1),
        )
        yield Target(store, key, put["VersionId"], checksum, data)
    finally:
        store.stop()


def test_weed_listens_only_inside_its_own_network_namespace(target):
    ports, _paths = weed_ports(target)
    # master, filer, volume(s), s3 gateway(s) and their gRPC twins at least
    assert len(ports) >= (14 if len(target.doors) > 1 else 8), ports
    host = tcp_listeners("/proc/self/net")
    for process in target.weed:
        assert os.readlink(f"/proc/{process.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        exposed = socket_inodes(process.pid) & set(host)
        assert not exposed, (
            f"weed listens in the host namespace on {sorted(host[i] for i in exposed)}"
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="nsenter into the box's namespace needs root")
def test_the_boxs_own_connections_never_take_a_port_a_node_binds(target):
    """Inside the box the ephemeral ports (what a node's outgoing connection takes)
    lie above every port a node listens on: else a volume server connecting to the
    master could hold the gRPC port another volume server is about to bind."""
    ports, _paths = weed_ports(target)
    process = target.weed[0]
    answer = subprocess.run(
        [
            "nsenter",
            f"--net=/proc/{process.pid}/ns/net",
            "cat",
            "/proc/sys/net/ipv4/ip_local_port_range",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    low, high = map(int, answer.stdout.split())
    assert max(ports) < low <= high, (sorted(ports)[-3:], low, high)


def test_no_weed_port_can_be_reached_from_the_host(target):
    """Every port weed listens on: a TCP connect from the host is refused on
    every host address – except the S3 port, which reaches the forwarder."""
    ports, _paths = weed_ports(target)
    reached = []
    for address in host_addresses():
        for port in sorted(ports):
            if address == "127.0.0.1" and port in target.doors:
                continue  # the door(s), tried in the S3 tests below
            try:
                with socket.create_connection((address, port), timeout=2):
                    reached.append(f"{address}:{port}")
            except OSError:
                pass
    assert reached == [], f"weed ports reachable from the host: {reached}"


def test_no_weed_unix_socket_can_be_reached_from_the_host(target):
    """weed opens unix sockets for every gRPC service and the filer under /tmp;
    the box's /tmp is its own, so from the host they are absent or someone else's."""
    _ports, paths = weed_ports(target)
    # the probe sees them inside: gRPC ones in mini, the filer's and gateways' in both
    assert any("grpc" in p for p in paths) or len(target.doors) > 1, paths
    assert any("/tmp/seaweedfs-" in p for p in paths), paths
    ours = {p.pid for p in target.weed}
    reached = []
    for path in sorted(paths):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(path)
            except OSError:
                continue
            pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
            if pid in ours:
                reached.append(path)
    assert reached == [], f"weed unix sockets reachable from the host: {reached}"


def _http_probes(target: Target, fid: str) -> list[tuple[str, str]]:
    volume_path = "/" + fid
    filer_path = f"{target.versions_path()}/v_{target.version}"
    return [
        ("POST", f"/col/delete?collection={BUCKET}"),
        ("POST", "/vol/vacuum?garbageThreshold=0"),
        ("GET", "/dir/status"),
        ("GET", "/status"),
        ("GET", volume_path),
        ("DELETE", volume_path),
        ("DELETE", filer_path),
        ("DELETE", f"/buckets/{BUCKET}?recursive=true"),
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="the inside control (nsenter) needs root")
def test_destructive_http_calls_refused_on_every_port(target):
    """Master /col/delete and /vol/vacuum, /dir/status, volume GET and DELETE of
    the original's file id, filer DELETE: on every weed port, from the host."""
    fid = file_id(target)
    # the positive control: inside the box a volume read needs no key at all
    # (on the cluster, from a volume server that holds a replica)
    reads = []
    for volume in target.volume_ports:
        with contextlib.suppress(subprocess.CalledProcessError):
            reads.append(inside(target, "python3", "-c", _GET, f"http://127.0.0.1:{volume}/{fid}"))
    assert hashlib.sha256(target.data).hexdigest() in [r.strip() for r in reads]
    ports, _paths = weed_ports(target)
    answered = []
    with httpx.Client(timeout=5) as client:
        for port in sorted(ports):
            for method, path in _http_probes(target, fid):
                try:
                    response = client.request(method, f"http://127.0.0.1:{port}{path}")
                except httpx.TransportError:
                    continue
                # only the S3 port may answer: with a refusal, or the S3
                # gateway's own empty health answer (GET /status)
                refused = response.status_code >= 400 or (method, response.content) == ("GET", b"")
                if port not in target.doors or not refused:
                    answered.append(f"{method} :{port}{path} -> {response.status_code}")
    assert answered == [], answered
    assert_original_intact(target)


_GET = (
    "import hashlib, sys, urllib.request;"
    "print(hashlib.sha256(urllib.request.urlopen(sys.argv[1], timeout=10).read()).hexdigest())"
)


def test_weed_shell_from_the_host_cannot_remove_or_drop(target):
    """``weed shell`` ``fs.rm`` and ``collection.delete`` against the master and
    filer addresses (gRPC, no client certificate) reach nothing."""
    master, filer = target.store.inside_port("master"), target.store.inside_port("filer")
    script = (
        f"fs.rm -r {target.versions_path()}\n"
        f"collection.delete -collection {BUCKET} -force\n"
        "fs.ls /buckets\n"
    )
    filer_option = [f"-filer=127.0.0.1:{filer}"]
    with contextlib.suppress(subprocess.TimeoutExpired):
        result = subprocess.run(
            [localstore.weed_binary(), "shell", f"-master=127.0.0.1:{master}", *filer_option],
            input=script,
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert BUCKET not in result.stdout, result.stdout
    assert_original_intact(target)


def test_the_s3_port_works_and_cannot_delete_a_locked_original(target):
    s3 = raw_s3(target.store)
    assert_original_intact(target)
    with pytest.raises(s3.exceptions.ClientError):
        s3.delete_object(Bucket=BUCKET, Key=target.key, VersionId=target.version)
    with pytest.raises(s3.exceptions.ClientError):
        s3.delete_bucket(Bucket=BUCKET)
    with httpx.Client(timeout=5) as client:
        url = f"http://127.0.0.1:{target.store.s3_port}/{BUCKET}/{target.key}"
        assert client.delete(url, params={"versionId": target.version}).status_code >= 400
        assert client.get(url).status_code >= 400  # no key, no bytes
    assert_original_intact(target)


def _readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether the mode bits let ``uid``/``gid`` read ``path`` (root aside)."""
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & 0o400)
    if info.st_gid == gid:
        return bool(info.st_mode & 0o040)
    return bool(info.st_mode & 0o004)


@pytest.mark.skipif(os.geteuid() != 0, reason="separate OS users need root")
def test_store_secrets_and_data_unreadable_by_other_users(target):
    """weed runs as the dedicated store user; another user (the daemon's, when
    it is not root) can read neither the JWT secrets, the S3 identities, the
    daemon's credentials nor the data – judged by owner and mode, since the
    test's temporary folder would keep another user out anyway."""
    store = pwd.getpwnam(localstore.STORE_USER)
    for process in [psutil.Process(target.store.process.pid), *target.weed]:
        assert set(process.uids()) == {store.pw_uid}, process
    folder = target.store.folder
    daemon = (65534, 65534)  # any other user
    for name in ("jwt.json", "s3.json", "credentials.json", "data"):
        assert not _readable_by(folder / name, *daemon), name
    # weed reads its identities and data, and nothing of the daemon's or the JWT file
    assert _readable_by(folder / "s3.json", store.pw_uid, store.pw_gid)
    assert _readable_by(folder / "data", store.pw_uid, store.pw_gid)
    assert not _readable_by(folder / "jwt.json", store.pw_uid, store.pw_gid)
    assert not _readable_by(folder / "credentials.json", store.pw_uid, store.pw_gid)
    # the folder can be passed through, not listed
    assert folder.stat().st_mode & 0o777 == 0o711
    # nor can another user step into the box: not by its root, not by setns
    for process in [psutil.Process(target.store.process.pid), *target.weed]:
        for command in (
            ["ls", f"/proc/{process.pid}/root/tmp"],
            ["nsenter", f"--net=/proc/{process.pid}/ns/net", "true"],
        ):
            entered = subprocess.run([*AS_NOBODY, *command], capture_output=True, timeout=10)
            assert entered.returncode != 0, command


_UNPRIVILEGED = """
import json, os, socket, sys, time, urllib.request
from pathlib import Path
from archive import localstore

def wait_ready(store, timeout):  # no boto3 here: the S3 gateway's health answer
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.process.poll() is not None:
            sys.exit((store.folder / "weed.log").read_text()[-2000:])
        try:
            urllib.request.urlopen(store.endpoint_url + "/status", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    sys.exit("not ready")

localstore.wait_ready = wait_ready
store = localstore.start(Path(sys.argv[1]))
try:
    children = open(f"/proc/{store.process.pid}/task/{store.process.pid}/children").read()
    weed = int(children.split()[0])
    reached = []
    for port in list(localstore.inside_ports(store.s3_port).values())[1:]:
        for offset in (0, 10000):
            try:
                socket.create_connection(("127.0.0.1", port + offset), timeout=2).close()
                reached.append(port + offset)
            except OSError:
                pass
    print(json.dumps({
        "uid": os.getuid(),
        "own_netns": os.readlink(f"/proc/{weed}/ns/net") != os.readlink("/proc/self/ns/net"),
        "reached": reached,
    }))
finally:
    store.stop()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user for the test")
def test_unprivileged_store_is_boxed_too():
    """Started by an ordinary user, the store still gets its own namespaces
    (inside a user namespace that maps only that user), and only S3 answers."""
    python = Path("/usr/bin/python3")
    weed = Path(localstore.weed_binary())
    if not python.exists():
        pytest.skip("no system python3 that another user may run")
    work = Path(tempfile.mkdtemp(prefix="strongroom-unpriv-"))
    try:
        os.chown(work, 65534, 65534)
        result = subprocess.run(
            [*AS_NOBODY, str(python), "-c", _UNPRIVILEGED, str(work / "store")],
            env={
                "PATH": f"{weed.parent}:/usr/bin:/bin",
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                "HOME": str(work),
            },
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.splitlines()[-1])
        assert report == {"uid": 65534, "own_netns": True, "reached": []}
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False, timeout=60)


def test_local_store_command_serves_s3_only(tmp_path):
    """``strongroom local-store`` (what ``make run`` starts, with the CLI's
    umask) serves S3 with the credentials it writes, boxed, and stops on SIGTERM."""
    port = localstore.find_port_base()
    folder = tmp_path / "seaweedfs"
    config = tmp_path / "strongroom.toml"
    config.write_text(f'[store]\nendpoint_url = "http://127.0.0.1:{port}"\n')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    process = subprocess.Popen(
        [*STRONGROOM, "local-store", "--folder", str(folder), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
    )
    try:
        line = process.stdout.readline()
        assert f"127.0.0.1:{port}" in line, line + process.stdout.read()
        assert notify.recv(100) == b"READY=1"  # systemd's Type=notify
        credentials = json.loads((folder / localstore.CREDENTIALS_JSON).read_text())
        store = localstore.LocalStore(folder, port, process, credentials)
        assert raw_s3(store).list_buckets()["Buckets"] == []
        ports, _paths = weed_ports(Target(store, "", "", "", b""))
        assert len(ports) >= 8
        for other in sorted(ports - {port}):
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", other), 2):
                pass
    finally:
        notify.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


def test_the_door_lets_go_of_connections(target):
    """Connections that come and go – idle, half-sent, reset, or a whole S3
    call – leave no thread or descriptor behind in the forwarder."""
    box = psutil.Process(target.store.process.pid)

    def load() -> tuple[int, int]:
        return box.num_threads(), box.num_fds()

    s3 = raw_s3(target.store)
    s3.list_buckets()  # the client's own pooled connection stays open throughout
    before = load()
    clients = [socket.create_connection(("127.0.0.1", target.store.s3_port)) for _ in range(60)]
    for i, sock in enumerate(clients):
        if i % 3 == 1:
            sock.sendall(b"PUT /doors-bucket/x HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
        if i % 3 == 2:  # reset instead of a clean close
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert s3.head_bucket(Bucket=BUCKET)  # S3 is not blocked by them
    # the forwarder accepts in its own time: wait until every connection has its
    # pumps (two per connection), so the release below is measured from a full load
    deadline = time.monotonic() + 30
    while load()[0] < before[0] + 60 and time.monotonic() < deadline:
        time.sleep(0.1)
    busy = load()
    assert busy[0] >= before[0] + 60, (before, busy)
    for sock in clients:
        sock.close()
    deadline = time.monotonic() + 30
    while not _at_most(load(), before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _at_most(load(), before), (before, load())


def _at_most(now: tuple[int, int], before: tuple[int, int]) -> bool:
    return now[0] <= before[0] and now[1] <= before[1]
