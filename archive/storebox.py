"""The box the local store runs in: its own network and mount namespaces, one door.

``weed mini`` opens a dozen doors besides S3: master, volume, filer and admin
HTTP ports, a gRPC port for each (HTTP + 10000), and unix sockets for every
gRPC service and for the filer hard-coded under ``/tmp``. Measured on SeaweedFS
4.48, the master's ``POST /col/delete`` and ``weed shell`` ``fs.rm`` over gRPC
delete COMPLIANCE-locked versions without any key, and binding to 127.0.0.1
keeps out only other machines. Guarding each door (mutual-TLS gRPC, admin
guards, read keys) depends on getting every one right in a server that grows
new ones each release; ``-whiteList`` even breaks S3 in ``mini``.

So the store gets a machine of its own instead. This process, started by
:func:`archive.localstore.start` as ``python -m archive.storebox``:

1. receives a listening TCP socket already bound on the host's 127.0.0.1 (the
   S3 port) – a socket keeps the network namespace it was created in;
2. ``unshare``\\ s a new network namespace (only ``lo``, which it brings up)
   and a new mount namespace with a private ``/tmp`` (so the hard-coded unix
   sockets are invisible from the host), binding the store folder to
   ``/tmp/strongroom-store`` inside – as root directly, otherwise inside a new
   user namespace that maps only the caller's own uid;
3. starts ``weed mini`` in there – as the dedicated store user when run as
   root, so the daemon's user can read neither its secrets nor its data;
4. forwards each connection on the host socket to S3 inside the box
   (:mod:`archive.forwarder`), and nothing else – as the store user too.

No port of the master, volume, filer or admin servers, and none of their gRPC
ports or unix sockets, exists in the host's namespaces: a process on the host
that is not root cannot reach them at all (``tests/test_store_doors.py`` tries
every known destructive call on every port ``weed`` listens on). Root can enter
any namespace; that limit is stated in the README.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import pwd
import select
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from archive import forwarder, localstore
from config.errors import UnavailableError

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
#: where the store folder appears inside the box (on the box's private /tmp)
INSIDE = Path("/tmp/strongroom-store")  # noqa: S108 - a private tmpfs, see enter_box
#: where the ``weed`` binary appears inside the box (it may live under the host's /tmp)
WEED_INSIDE = Path("/tmp/strongroom-bin/weed")  # noqa: S108

_libc = ctypes.CDLL(None, use_errno=True)


class BoxError(UnavailableError, OSError):
    code = "store_box_failed"


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise BoxError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _map_own_ids() -> None:
    """In a fresh user namespace, be root there as (and only as) our own uid/gid."""
    uid, gid = os.getuid(), os.getgid()
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def loopback_up() -> None:
    """``ip link set lo up`` without needing ``ip``: SIOCSIFFLAGS on ``lo``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _bind(handle: int, target: Path) -> None:
    _mount(f"/proc/self/fd/{handle}", str(target), None, MS_BIND, None)
    os.close(handle)


def enter_box(folder: Path, weed: Path) -> None:
    """Move this (still single-threaded) process into new network and mount
    namespaces; afterwards the store folder is at :data:`INSIDE` and the
    ``weed`` binary at :data:`WEED_INSIDE`."""
    flags = CLONE_NEWNET | CLONE_NEWNS
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    _unshare(flags)
    if flags & CLONE_NEWUSER:
        _map_own_ids()
    # nothing mounted here may leak back to the host
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # opened in the new mount namespace (a bind source must be in it), before
    # the private /tmp hides a folder that lives under /tmp
    folder_handle = os.open(folder, os.O_PATH | os.O_DIRECTORY)
    weed_handle = os.open(weed, os.O_PATH)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")  # noqa: S108
    # explicit modes: the CLI's umask (027) would keep the store user out
    for mount_point in (INSIDE, WEED_INSIDE.parent):
        mount_point.mkdir()
        mount_point.chmod(0o755)
    _bind(folder_handle, INSIDE)
    WEED_INSIDE.touch()
    _bind(weed_handle, WEED_INSIDE)
    loopback_up()
    _ephemeral_ports_above_ours()


#: the box's own outgoing connections take their source ports from here: above
#: every port a node listens on (the cluster's 40000–48999 and their gRPC twins
#: at +10000), so a node connecting out can never take the port another node is
#: about to bind (seen once: "bind: address already in use" for a gRPC port)
EPHEMERAL_PORTS = (60000, 65535)


def _ephemeral_ports_above_ours() -> None:
    """Set this network namespace's ephemeral port range (a per-namespace sysctl);
    where the kernel refuses, the host's range stays and the ports are still
    checked free before the box starts."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as sysctl:
            sysctl.write(f"{EPHEMERAL_PORTS[0]} {EPHEMERAL_PORTS[1]}\n")
    except OSError:
        pass


def _die_with_parent() -> None:
    """In the child before exec (after the uid change): weed dies with this box."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_weed(s3_port: int, user: str | None) -> subprocess.Popen[bytes]:
    """``weed mini`` inside the box (call after :func:`enter_box`)."""
    env = localstore.environment(INSIDE)
    log = (INSIDE / "weed.log").open("ab")
    extra: dict[str, Any] = {}
    if user:
        entry = pwd.getpwnam(user)
        extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        env["HOME"] = str(INSIDE)
    try:
        return subprocess.Popen(
            localstore.command(INSIDE, s3_port, weed=str(WEED_INSIDE)),
            cwd=INSIDE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # no threads exist yet
            **extra,
        )
    finally:
        log.close()


def drop_to(user: str) -> None:
    """Forward as the store user too: once weed runs, the box needs no root."""
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def serve(listener: socket.socket, weed: subprocess.Popen[bytes], upstream: tuple[str, int]) -> int:
    """Forward connections until weed exits or we are told to stop; weed's code."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    listener.setblocking(False)
    while not stopping and weed.poll() is None:
        ready, _, _ = select.select([listener], [], [], 0.5)
        if not ready:
            continue
        try:
            client, _addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        client.setblocking(True)
        forwarder.forward(client, upstream)
    listener.close()
    if weed.poll() is None:
        weed.terminate()
        try:
            return weed.wait(20)
        except subprocess.TimeoutExpired:
            weed.kill()
    return weed.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--s3-port", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--weed", type=Path, required=True, help="the weed binary")
    parser.add_argument("--user", default=None, help="run weed as this OS user (root only)")
    args = parser.parse_args(argv)
    listener = socket.socket(fileno=args.listen_fd)
    try:
        enter_box(args.folder, args.weed)
    except OSError as exc:
        print(f"strongroom store box: cannot isolate the store: {exc}", file=sys.stderr)
        return 3
    weed = start_weed(args.s3_port, args.user)
    if args.user:
        drop_to(args.user)
    return serve(listener, weed, ("127.0.0.1", localstore.inside_ports(args.s3_port)["s3"]))


if __name__ == "__main__":
    sys.exit(main())
