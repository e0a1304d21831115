"""The store as a cluster: ``python -m bench --only cluster``.

The same files are archived three times by one station (SQLite catalog), each
into a fresh bucket: on ``weed mini``, on the local cluster
(:mod:`archive.localcluster`: 1 master, 3 volume servers in two racks with
replication 010, a filer, two S3 gateways), and on the cluster again with a
volume server of rack A killed (SIGKILL) once a third of the files are
released – what a node failure costs while it happens. Per run: MB/s and
files/s (first drop to last release), p50/p95 time-to-safe, the store's CPU
per file, and the bytes the store's data folder grew by (replication doubles
them). Everything runs on the same machine as the station.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from pathlib import Path

import psutil

from archive import localcluster, localstore
from bench import bench_stations

log = logging.getLogger("bench.cluster")
MB = 1_000_000
FILES = 150
FILE_BYTES = 2 * MB
VICTIM = "vol1"


def _folder_bytes(folder: Path) -> int:
    """Bytes allocated on disk under ``folder`` (volume files are sparse)."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total += path.stat().st_blocks * 512
    return total


class _Killer(threading.Thread):
    """Kills ``node`` once ``after`` jobs of the run's catalog are released."""

    def __init__(self, cluster: localcluster.LocalCluster, catalog: Path, after: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.catalog, self.after = cluster, catalog, after
        self.killed_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            if not self.catalog.exists():
                continue
            try:
                with sqlite3.connect(f"file:{self.catalog}?mode=ro", uri=True) as db:
                    done = db.execute(
                        "SELECT count(*) FROM ingest_jobs WHERE state = 'released'"
                    ).fetchone()[0]
            except sqlite3.Error:
                continue
            if done >= self.after:
                self.cluster.kill(VICTIM, signal.SIGKILL)
                self.killed_at = time.time()
                log.info("cluster: %s killed after %d releases", VICTIM, done)
                return


def _after_kill(killer: _Killer) -> dict:
    """How many files were released after the kill, and how long the rest took."""
    if killer.killed_at is None:
        return {"node_killed": False}
    with sqlite3.connect(f"file:{killer.catalog}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT released_at FROM ingest_jobs").fetchall()
    released = [bench_stations._epoch(r[0]) for r in rows if r[0]]
    after = [t for t in released if t > killer.killed_at]
    return {
        "node_killed": True,
        "released_after_kill": len(after),
        "kill_to_last_release_s": round(max(after) - killer.killed_at, 2) if after else 0.0,
    }


def _one(base: Path, label: str, store, files: list[Path], killer=None) -> dict:
    data = store.folder / "data"
    before = _folder_bytes(data)
    result = bench_stations.one_run(base / label, store, None, "sqlite", 1, files)
    if killer is not None:
        killer.stop.set()
        result.update(_after_kill(killer))
    catalog = base / label / "sqlite-1" / "catalog.db"
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
        items = db.execute("SELECT count(*) FROM evidence").fetchone()[0]
    if items != len(files):
        raise RuntimeError(f"{label}: {items} evidence items for {len(files)} files")
    result["label"] = label
    result["stored_mb"] = round((_folder_bytes(data) - before) / MB, 1)
    return result


def run(base: Path, count: int = FILES, size: int = FILE_BYTES) -> dict:
    files = bench_stations.make_files(base / "files", count, size)
    runs = []
    mini = localstore.start(base / "seaweed-mini")
    try:
        log.info("cluster bench: weed mini, %d files", count)
        runs.append(_one(base, "mini", mini, files))
    finally:
        mini.stop()
    cluster = localcluster.start(base / "seaweed-cluster")
    try:
        log.info("cluster bench: cluster, %d files", count)
        runs.append(_one(base, "cluster", cluster, files))
        log.info("cluster bench: cluster, %s killed after a third", VICTIM)
        catalog = base / "cluster-node-killed" / "sqlite-1" / "catalog.db"
        killer = _Killer(cluster, catalog, count // 3)
        killer.start()
        runs.append(_one(base, "cluster-node-killed", cluster, files, killer))
        cluster.start_node(VICTIM)
        started = time.monotonic()
        repair = cluster.shell("lock\nvolume.fix.replication -apply\nunlock\n")
        repair_s = round(time.monotonic() - started, 1)
    finally:
        cluster.stop()
    by = {r["label"]: r for r in runs}
    return {
        "runs": runs,
        "cpu_count": psutil.cpu_count(),
        "cluster_vs_mini_throughput": round(by["cluster"]["mb_per_s"] / by["mini"]["mb_per_s"], 2),
        "node_killed_vs_cluster_throughput": round(
            by["cluster-node-killed"]["mb_per_s"] / by["cluster"]["mb_per_s"], 2
        ),
        "fix_replication_s": repair_s,
        "fix_replication_output": repair[-2000:],
    }


def markdown(document: dict) -> str:
    result = document["results"]["cluster"]
    lines = [
        f"# Cluster benchmark {document['date']}",
        "",
        f"`python -m bench --only cluster`; machine: {document['machine'].get('cpu', '')} "
        f"{result['cpu_count']} cores, shared; load {document['machine']['load_start']} → "
        f"{document['machine']['load_end']}. One station, SQLite catalog, the store on the "
        "same machine. Cluster: 1 master, 3 volume servers (2 racks, replication 010), "
        "1 filer (leveldb2), 2 S3 gateways, boxed.",
        "",
        "| store | files | MB/s | files/s | p50 / p95 time-to-safe s "
        "| daemon CPU ms/file | store CPU ms/file | MB on the store's disk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['label']} | {r['files']} × {r['bytes'] / r['files'] / MB:g} MB "
            f"| {r['mb_per_s']} | {r['files_per_s']} "
            f"| {r['time_to_safe_p50_s']} / {r['time_to_safe_p95_s']} "
            f"| {r['daemon_cpu_ms_per_file']} | {r['store_cpu_ms_per_file']} "
            f"| {r['stored_mb']} |"
        )
    killed = next(r for r in result["runs"] if r["label"] == "cluster-node-killed")
    lines += [
        "",
        f"Cluster vs weed mini: throughput × {result['cluster_vs_mini_throughput']}. "
        f"With {VICTIM} SIGKILLed after a third of the files were released: "
        f"throughput × {result['node_killed_vs_cluster_throughput']} of the whole cluster's; "
        f"the {killed.get('released_after_kill')} files released after the kill took "
        f"{killed.get('kill_to_last_release_s')} s; every run: one evidence item per file. "
        "`volume.fix.replication -apply` after the node returned: "
        f"{result['fix_replication_s']} s.",
        "",
    ]
    return "\n".join(lines)
