"""The box a local SeaweedFS *cluster* runs in: one network and mount namespace,
two doors (the S3 gateways), and a supervisor that can stop and start nodes.

The same lockdown as :mod:`archive.storebox` (read its docstring for why a box
and not per-port guards), for eight ``weed`` processes instead of one: a
master, three volume servers in two racks, a filer and two S3 gateways. This
process, started by :func:`archive.localcluster.start` as ``python -m
archive.clusterbox``:

1. receives the two listening sockets already bound on the host's 127.0.0.1
   (the S3 ports) and one end of a socket pair (the control line);
2. enters a new network and mount namespace (:func:`archive.storebox.enter_box`);
3. starts the nodes in order, each waiting for its port, as the store user
   when run as root;
4. forwards each host S3 port to its gateway inside the box (a dead gateway's
   door closes every connection at once, as a load balancer with a dead
   backend would), and answers the control line.

The control line is how the tests and the benchmark take the cluster apart
without entering the box: one JSON object per line, one answer per line –
``{"op": "pids"}``, ``{"op": "kill", "node": "vol1", "signal": 9}``,
``{"op": "start", "node": "vol1"}``, ``{"op": "shell", "script": "…"}`` (a
``weed shell`` inside, e.g. ``volume.fix.replication -apply``). Only the
launcher holds the other end of the pair; nothing on the host can connect to it.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from archive import forwarder, localcluster, localstore, storebox

INSIDE = storebox.INSIDE


class Nodes:
    """The cluster's ``weed`` processes by node name, started from their commands."""

    def __init__(self, layout: localcluster.Layout, env: dict[str, str], user: str | None) -> None:
        self.layout = layout
        self.env = env
        self.user = user
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()

    def start(self, node: str, wait: float = 60) -> int:
        """Start ``node`` (if it is not running) and wait until its port answers."""
        with self.lock:
            running = self.processes.get(node)
            if running is not None and running.poll() is None:
                return running.pid
            command, cwd = localcluster.node_command(
                self.layout, node, INSIDE, storebox.WEED_INSIDE
            )
            log = (cwd / f"{node}.log").open("ab")
            extra: dict[str, Any] = {}
            if self.user and os.geteuid() == 0:
                entry = pwd.getpwnam(self.user)
                extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
                # the box restarts nodes as the store user later: it must reopen this
                os.fchown(log.fileno(), entry.pw_uid, entry.pw_gid)
            try:
                process = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                    **extra,
                )
            finally:
                log.close()
            self.processes[node] = process
        _wait_port(self.layout.port(node), process, wait)
        return process.pid

    def kill(self, node: str, signum: int, grace: float = 30) -> int | None:
        """Signal ``node``; after SIGTERM or SIGKILL wait until it is gone
        (SIGKILL after ``grace`` seconds)."""
        with self.lock:
            process = self.processes.get(node)
            if process is None or process.poll() is not None:
                return None
            process.send_signal(signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.pid

    def pids(self) -> dict[str, int | None]:
        with self.lock:
            return {
                name: (p.pid if p.poll() is None else None) for name, p in self.processes.items()
            }

    def stop_all(self) -> None:
        """Gateways first, the master last: nothing is left writing to a dead peer."""
        # the filer alone takes ~15 s to stop on SIGTERM (measured, 4.48); its
        # leveldb store and the volumes' files survive a SIGKILL (the fault tests)
        for node in reversed(localcluster.START_ORDER):
            self.kill(node, signal.SIGTERM, grace=3)


def _die_with_parent() -> None:
    storebox._die_with_parent()


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a weed node exited with {process.returncode} (port {port})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open in {timeout}s")


def _shell(layout: localcluster.Layout, env: dict[str, str], script: str) -> str:
    result = subprocess.run(
        [
            str(storebox.WEED_INSIDE),
            "shell",
            f"-master=127.0.0.1:{layout.port('master')}",
            f"-filer=127.0.0.1:{layout.port('filer')}",
        ],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return result.stdout + result.stderr


def _answer(control: socket.socket, nodes: Nodes, line: bytes) -> None:
    """Carry out one control request and write its answer."""
    try:
        request = json.loads(line)
        op = request["op"]
        if op == "pids":
            reply: dict[str, Any] = {"ok": True, "pids": nodes.pids()}
        elif op == "kill":
            pid = nodes.kill(request["node"], int(request.get("signal", signal.SIGKILL)))
            reply = {"ok": True, "pid": pid}
        elif op == "start":
            reply = {"ok": True, "pid": nodes.start(request["node"])}
        elif op == "shell":
            reply = {"ok": True, "output": _shell(nodes.layout, nodes.env, request["script"])}
        else:
            reply = {"ok": False, "error": f"unknown op {op!r}"}
    except Exception as exc:  # the answer carries it; the box keeps serving
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    control.sendall(json.dumps(reply).encode() + b"\n")


def serve(doors: dict[socket.socket, tuple[str, int]], control: socket.socket, nodes: Nodes) -> int:
    """Forward connections and answer the control line until told to stop."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for listener in doors:
        listener.setblocking(False)
    # one long-lived thread answers every request in turn: a node started from a
    # short-lived thread would get its PDEATHSIG when that *thread* ends
    requests: queue.Queue[bytes] = queue.Queue()

    def answer_all() -> None:
        while True:
            _answer(control, nodes, requests.get())

    threading.Thread(target=answer_all, name="control", daemon=True).start()
    pending = b""
    watched: list[socket.socket] = [*doors, control]
    while not stopping:
        ready, _, _ = select.select(watched, [], [], 0.5)
        for sock in ready:
            if sock is control:
                data = control.recv(65536)
                if not data:  # the launcher is gone: stop
                    stopping = True
                    break
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    requests.put(line)
                continue
            try:
                client, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            client.setblocking(True)
            forwarder.forward(client, doors[sock])
    for listener in doors:
        listener.close()
    nodes.stop_all()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--listen-fds", required=True, help="comma-separated, one per gateway")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--weed", type=Path, required=True)
    parser.add_argument("--user", default=None, help="run weed as this OS user (root only)")
    args = parser.parse_args(argv)
    layout = localcluster.Layout(args.base_port)
    listeners = [socket.socket(fileno=int(fd)) for fd in args.listen_fds.split(",")]
    control = socket.socket(fileno=args.control_fd)
    try:
        storebox.enter_box(args.folder, args.weed)
    except OSError as exc:
        print(f"strongroom cluster box: cannot isolate the store: {exc}", file=sys.stderr)
        return 3
    # read while still root: jwt.json stays unreadable to the store user
    env = localstore.environment(INSIDE)
    if args.user:
        env["HOME"] = str(INSIDE / "data")
    nodes = Nodes(layout, env, args.user)
    try:
        for node in localcluster.START_ORDER:
            nodes.start(node)
    except Exception as exc:
        print(f"strongroom cluster box: {exc}", file=sys.stderr)
        nodes.stop_all()
        return 4
    if args.user:
        storebox.drop_to(args.user)
    doors = {
        sock: ("127.0.0.1", layout.port(gateway))
        for sock, gateway in zip(listeners, localcluster.GATEWAYS, strict=True)
    }
    return serve(doors, control, nodes)


if __name__ == "__main__":
    sys.exit(main())
