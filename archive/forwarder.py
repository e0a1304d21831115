"""A TCP forwarder that copies in the kernel: the store's single door.

Each accepted connection gets an upstream connection and two threads, one per
direction, moving bytes with ``splice(2)`` through a pipe – the bytes never
enter Python, so a 100 MB upload costs the forwarder a few system calls per
megabyte. It understands nothing of HTTP on purpose: whatever the client sends
reaches only the S3 gateway, which authenticates every request itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031
SPLICE_FLAGS = os.SPLICE_F_MOVE  # not F_MORE: it would cork the last bytes of a reply


class _Pair:
    """Both sockets of one forwarded connection, closed when both pumps end."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.sockets = (client, server)
        self.running = 2
        self.lock = threading.Lock()

    def pump_ended(self) -> None:
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            for sock in self.sockets:
                sock.close()


def _pump(source: socket.socket, target: socket.socket, pipe: tuple[int, int], pair: _Pair) -> None:
    """Copy ``source`` to ``target`` until EOF, then half-close ``target``."""
    read_end, write_end = pipe
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, F_SETPIPE_SZ, CHUNK)
        src, dst = source.fileno(), target.fileno()
        while True:
            moved = os.splice(src, write_end, CHUNK, flags=SPLICE_FLAGS)
            if moved == 0:
                break
            while moved:
                moved -= os.splice(read_end, dst, moved, flags=SPLICE_FLAGS)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
    except OSError:
        # a reset on either side ends both directions
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    finally:
        os.close(read_end)
        os.close(write_end)
        pair.pump_ended()


def forward(client: socket.socket, upstream: tuple[str, int], timeout: float = 5) -> None:
    """Connect ``client`` to ``upstream`` in both directions (in the background).

    If the upstream cannot be reached (the store is still starting) the client
    is closed at once, which S3 clients retry.
    """
    # a numeric address and a plain connect: no name lookup (and no lazy codec
    # import, which the box could not do once it runs as the store user)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.settimeout(timeout)
        server.connect(upstream)
    except OSError:
        server.close()
        client.close()
        return
    server.settimeout(None)
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pair = _Pair(client, server)
    for source, target in ((client, server), (server, client)):
        pipe: tuple[int, int] | None = None
        try:
            pipe = os.pipe()
            thread = threading.Thread(target=_pump, args=(source, target, pipe, pair))
            thread.daemon = True
            thread.start()
        except (OSError, RuntimeError):
            # out of descriptors or threads: drop this connection, keep serving
            if pipe:
                os.close(pipe[0])
                os.close(pipe[1])
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            pair.pump_ended()
