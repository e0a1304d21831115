"""Where a 1 KB manifest PUT's wall time goes while the store takes large uploads.

``python -m bench.manifest_put [--workdir DIR] [--rounds N]`` (issue 16). One
boxed ``weed mini``, one bucket made by ``strongroom init``, one
:class:`~archive.store.ObjectStore` as the pipeline uses it. Measured twice:
with the store idle, and while four threads upload what the batch uploads
(6 × 50 MB single PUTs and 1 × 400 MB in 16 MiB parts, again and again)
through the same store object. Each round times, one after the other:

* ``put_bytes`` – the manifest PUT exactly as the seal sends it (create-only,
  locked, ``ChecksumSHA256``);
* the same PUT without the Object Lock headers, and without ``If-None-Match``
  (which part of the latency is the store's lock/conditional path);
* a HEAD of the new object (a small call the store answers without writing).

Per call: wall time, the part of it spent on the wire (botocore's
``before-send`` to the answer: connection, request, store, response), botocore's
retries (``RetryAttempts``), and how many new connections the data client had to
open (urllib3 never queues for a connection: a full pool opens another one).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from urllib3.connectionpool import HTTPConnectionPool

from archive import localstore
from archive.store import ObjectStore, Retention
from bench import data
from bench.station import BenchStation
from config.settings import load_settings

MB = 1_000_000
MANIFEST_BYTES = 1100


class _Wire:
    """Wall time between botocore's ``before-send`` and the parsed answer, per thread."""

    def __init__(self, client: Any) -> None:
        self.sent = threading.local()
        client.meta.events.register("before-send.s3.*", self._before_send)

    def _before_send(self, **_: Any) -> None:
        self.sent.at = time.perf_counter()

    def since_send(self) -> float:
        return time.perf_counter() - getattr(self.sent, "at", time.perf_counter())


_new_connections = 0
_real_new_conn = HTTPConnectionPool._new_conn


def _counting_new_conn(self: HTTPConnectionPool) -> Any:
    global _new_connections
    if threading.current_thread() is threading.main_thread():  # the measured calls only
        _new_connections += 1
    return _real_new_conn(self)


def _load(paths: list[Path], store: ObjectStore, stop: threading.Event) -> list[threading.Thread]:
    """Four threads uploading the batch's files until ``stop`` (keys made unique)."""
    retention = Retention.for_days(1, "GOVERNANCE")

    def upload(path: Path) -> None:
        size = path.stat().st_size
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        sha = digest.hexdigest()
        while not stop.is_set():
            store.put_file(f"load/{uuid.uuid4().hex}", path, sha, size, retention)

    threads = [threading.Thread(target=upload, args=(p,), daemon=True) for p in paths]
    for thread in threads:
        thread.start()
    return threads


def _round(store: ObjectStore, wire: _Wire, own_pool: Any) -> dict[str, tuple[float, float, int]]:
    """One call of each kind: name → (wall s, wire s, botocore retries)."""
    body = os.urandom(MANIFEST_BYTES)
    retention = Retention.for_days(1, "GOVERNANCE")
    client = store.client
    out: dict[str, tuple[float, float, int]] = {}

    def timed(name: str, call: Callable[[], Any]) -> None:
        started = time.perf_counter()
        response = call()
        wall = time.perf_counter() - started
        meta = response.get("ResponseMetadata", {}) if isinstance(response, dict) else {}
        out[name] = (wall, wire.since_send(), int(meta.get("RetryAttempts", 0)))

    key = f"manifests/{uuid.uuid4().hex}"
    started = time.perf_counter()
    store.put_bytes(key, body, retention, content_type="application/json")
    out["manifest PUT (put_bytes: create-only, locked)"] = (
        time.perf_counter() - started,
        wire.since_send(),
        0,
    )
    timed(
        "PUT without lock headers",
        lambda: client.put_object(
            Bucket=store.bucket,
            Key=f"plain/{uuid.uuid4().hex}",
            Body=body,
            IfNoneMatch="*",
            ContentType="application/json",
        ),
    )
    timed(
        "PUT locked, without If-None-Match",
        lambda: client.put_object(
            Bucket=store.bucket,
            Key=f"nocond/{uuid.uuid4().hex}",
            Body=body,
            ContentType="application/json",
            ObjectLockMode=retention.mode,
            ObjectLockRetainUntilDate=retention.retain_until,
        ),
    )
    timed(
        "manifest PUT on a client of its own (own pool)",
        lambda: own_pool.put_object(
            Bucket=store.bucket,
            Key=f"own/{uuid.uuid4().hex}",
            Body=body,
            IfNoneMatch="*",
            ContentType="application/json",
            ObjectLockMode=retention.mode,
            ObjectLockRetainUntilDate=retention.retain_until,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
        ),
    )
    timed("HEAD (data client)", lambda: client.head_object(Bucket=store.bucket, Key=key))
    return out


def measure(store: ObjectStore, own_pool: Any, rounds: int) -> dict[str, dict[str, float]]:
    wire = _Wire(store.client)
    _Wire.__init__(wire, own_pool)  # the same per-thread mark, set by either client
    samples: dict[str, list[tuple[float, float, int]]] = {}
    for _ in range(rounds):
        for name, sample in _round(store, wire, own_pool).items():
            samples.setdefault(name, []).append(sample)
    return {
        name: {
            "wall_ms": statistics.median(s[0] for s in got) * 1000,
            "wall_p90_ms": sorted(s[0] for s in got)[int(len(got) * 0.9)] * 1000,
            "wire_ms": statistics.median(s[1] for s in got) * 1000,
            "retries": sum(s[2] for s in got),
        }
        for name, got in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.manifest_put")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    HTTPConnectionPool._new_conn = _counting_new_conn  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="manifest-put-") as tmp:
        base = Path(tmp)
        store_proc = localstore.start(base / "seaweed")
        try:
            station = BenchStation(base / "station", store_proc).create()
            os.environ.update(store_proc.env())
            settings = load_settings(station.config)
            store = ObjectStore(settings.store)
            own_pool = ObjectStore._make_client(
                settings.store, settings.store.request_timeout, pool=2
            )
            paths = [data.random_file(base / f"f{i}.bin", 50 * MB) for i in range(3)]
            paths.append(data.random_file(base / "big.bin", 400 * MB))
            global _new_connections
            _new_connections = 0
            idle = measure(store, own_pool, args.rounds)
            idle_conns = _new_connections
            stop = threading.Event()
            uploads = _load(paths, store, stop)
            time.sleep(2)  # the uploads under way
            _new_connections = 0
            busy = measure(store, own_pool, args.rounds)
            busy_conns = _new_connections
            stop.set()
            for thread in uploads:  # each finishes the upload it is in
                thread.join()
            store.close()
        finally:
            store_proc.stop()
    print(f"load average at end: {os.getloadavg()}")
    for label, got, conns in (("idle", idle, idle_conns), ("uploading", busy, busy_conns)):
        print(f"\n{label} store ({args.rounds} rounds; new connections opened: {conns})")
        for name, figures in got.items():
            wall, p90 = figures["wall_ms"], figures["wall_p90_ms"]
            print(
                f"  {name:48s} wall {wall:7.1f} ms (p90 {p90:7.1f})"
                f"  wire {figures['wire_ms']:7.1f} ms  retries {figures['retries']:.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
