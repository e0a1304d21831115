"""Many stations, one catalog, one store: ``python -m bench --only stations``.

The same files are archived three times, each time into a fresh bucket and
catalog on the same SeaweedFS: by 1 station on SQLite, by 1 station on
PostgreSQL and by 3 station processes sharing one PostgreSQL database (the
files dealt round-robin to their docks). Each daemon runs under
:mod:`bench.sqlcount`, which counts its catalog statements and round-trips.

Per run: aggregate MB/s and files/s (first file into a dock to the last one
released), p95 time-to-safe (file renamed into the dock to its job released,
i.e. stored, sealed, locked and the dock copy gone), catalog statements and
round-trips per file, and where the CPU went (daemons, PostgreSQL, SeaweedFS).
PostgreSQL is started as ``tests/pgserver.py`` does (initdb in a temp folder,
127.0.0.1, fsync on).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text

from archive import localstore
from bench.station import STRONGROOM, process_cpu

log = logging.getLogger("bench.stations")
ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
#: default sizes: three runs of 200 files of 2 MB stay well under five minutes
FILES = 200
FILE_BYTES = 2 * MB
RUNS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 3))


def _pgserver():
    spec = importlib.util.spec_from_file_location("pgserver", ROOT / "tests" / "pgserver.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pgserver"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"clip-{n:04d}.MP4"
        with path.open("wb") as handle:
            left = size
            while left:
                chunk = min(left, 1 << 20)
                handle.write(os.urandom(chunk))
                left -= chunk
        paths.append(path)
    return paths


def _config(root: Path, name: str, endpoint: str, bucket: str, catalog: str) -> Path:
    config = root / "strongroom.toml"
    config.write_text(
        f"""[station]
name = "{name}"
data_dir = "var"

[[docks]]
path = "dock"
settle_seconds = 1.0
after_archive = "delete"

[store]
endpoint_url = "{endpoint}"
bucket = "{bucket}"

[catalog]
url = "{catalog}"

[ledger]
key_name = "bench-ledger"

[api]
listen = ""  # no API: the bench measures ingest, and must not take a port

[transcode]
enabled = false  # random bytes are no video; playback copies are another bench
""",
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config


def _postmaster_pid(pg) -> int:
    return int((pg.data / "postmaster.pid").read_text().splitlines()[0])


def one_run(base: Path, store, pg, backend: str, stations: int, files: list[Path]) -> dict:
    """Archive ``files`` with ``stations`` daemons on ``backend``; the measured figures."""
    label = f"{backend}-{stations}"
    folder = base / label
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    catalog = pg.create_database() if backend == "postgresql" else f"sqlite:///{folder}/catalog.db"
    env = {**os.environ, **store.env()}
    roots, daemons, counts = [], [], []
    for n in range(stations):
        root = folder / f"station-{n + 1}"
        (root / "dock").mkdir(parents=True)
        config = _config(root, f"station-{n + 1}", store.endpoint_url, bucket, catalog)
        subprocess.run(
            [*STRONGROOM, "init", "--config", str(config)],
            env=env,
            cwd=root,
            check=True,
            capture_output=True,
            timeout=300,
        )
        roots.append(root)
    engine = create_engine(catalog)
    pg_cpu = process_cpu(_postmaster_pid(pg)) if backend == "postgresql" else 0.0
    store_cpu = process_cpu(store.process.pid)
    try:
        for root in roots:
            out = root / "sqlcount.json"
            counts.append(out)
            log_file = (root / "daemon.log").open("ab")
            daemons.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.sqlcount",
                        str(out),
                        "run",
                        "--config",
                        str(root / "strongroom.toml"),
                    ],
                    env={**env, "PYTHONPATH": str(ROOT)},
                    cwd=root,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
            log_file.close()
        deadline = time.monotonic() + 120
        while not all("watching" in (r / "daemon.log").read_text(errors="replace") for r in roots):
            if time.monotonic() > deadline or any(d.poll() is not None for d in daemons):
                raise RuntimeError(f"{label}: a daemon did not start")
            time.sleep(0.2)
        staging = [r / "staging" for r in roots]
        for folder_ in staging:
            folder_.mkdir()
        for n, path in enumerate(files):  # copied first, so the drop is only a rename
            (staging[n % stations] / path.name).write_bytes(path.read_bytes())
        daemon_cpu = [process_cpu(d.pid) for d in daemons]
        dropped: dict[str, float] = {}
        for n, path in enumerate(files):
            where = roots[n % stations]
            os.rename(where / "staging" / path.name, where / "dock" / path.name)
            dropped[path.name] = time.time()
        first = min(dropped.values())
        deadline = time.monotonic() + 60 + len(files) * 5
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT display_name, state, released_at FROM ingest_jobs")
                ).all()
            if sum(1 for r in rows if r.state == "released") >= len(files):
                break
            if time.monotonic() > deadline or any(d.poll() is not None for d in daemons):
                raise RuntimeError(f"{label}: {len(rows)} job(s), not all released in time")
            time.sleep(0.2)
        released = {r.display_name: _epoch(r.released_at) for r in rows}
        daemon_cpu = [
            process_cpu(d.pid) - before for d, before in zip(daemons, daemon_cpu, strict=True)
        ]
        pg_cpu = (process_cpu(_postmaster_pid(pg)) - pg_cpu) if backend == "postgresql" else 0.0
        store_cpu = process_cpu(store.process.pid) - store_cpu
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        engine.dispose()
    totals: dict[str, float] = {}
    for out in counts:
        for key, value in json.loads(out.read_text()).items():
            totals[key] = totals.get(key, 0) + value
    safe = sorted(released[name] - dropped[name] for name in dropped)
    elapsed = max(released.values()) - first
    count = len(files)
    size = sum(p.stat().st_size for p in files)
    trips = totals["round_trips"]  # statements + BEGIN + COMMIT/ROLLBACK (bench/sqlcount.py)
    return {
        "backend": backend,
        "stations": stations,
        "files": count,
        "bytes": size,
        "elapsed_s": round(elapsed, 2),
        "mb_per_s": round(size / MB / elapsed, 2),
        "files_per_s": round(count / elapsed, 2),
        "time_to_safe_p50_s": round(statistics.median(safe), 2),
        "time_to_safe_p95_s": round(safe[min(len(safe) - 1, int(0.95 * len(safe)))], 2),
        "statements_per_file": round(totals["statements"] / count, 1),
        "round_trips_per_file": round(trips / count, 1),
        "transactions_per_file": round(totals["transactions"] / count, 1),
        "commits_per_file": round(totals["commits"] / count, 1),
        "checkouts_per_file": round(totals["checkouts"] / count, 1),
        "catalog_call_ms_per_file": round(1000 * totals["statement_seconds"] / count, 1),
        # the catalog's CPU: the daemon's threads while they hold a catalog connection
        # (statements, ORM, COMMIT; bench/sqlcount.py), plus the PostgreSQL server's
        "catalog_cpu_ms_per_file": round(1000 * (totals["held_cpu_seconds"] + pg_cpu) / count, 1),
        "statement_cpu_ms_per_file": round(1000 * totals["statement_cpu_seconds"] / count, 1),
        "daemon_cpu_ms_per_file": round(1000 * sum(daemon_cpu) / count, 1),
        "postgresql_cpu_ms_per_file": round(1000 * pg_cpu / count, 1),
        "store_cpu_ms_per_file": round(1000 * store_cpu / count, 1),
        "daemon_process_cpu_s": round(totals["cpu_seconds"], 1),
    }


def _epoch(value) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def run(base: Path, count: int = FILES, size: int = FILE_BYTES) -> dict:
    """All three runs on one SeaweedFS and one PostgreSQL server."""
    files = make_files(base / "files", count, size)
    pgserver = _pgserver()
    pg = pgserver.start_server()
    store = localstore.start(base / "seaweed-stations")
    try:
        runs = []
        for backend, stations in RUNS:
            log.info("stations: %d station(s) on %s, %d files", stations, backend, count)
            runs.append(one_run(base, store, pg, backend, stations, files))
            log.info("stations: %s", runs[-1])
    finally:
        store.stop()
        pg.destroy()
    one = next(r for r in runs if r["backend"] == "postgresql" and r["stations"] == 1)
    three = next(r for r in runs if r["stations"] == 3)
    sqlite = next(r for r in runs if r["backend"] == "sqlite")
    return {
        "runs": runs,
        "cpu_count": psutil.cpu_count(),
        "three_vs_one_throughput": round(three["mb_per_s"] / one["mb_per_s"], 2),
        "efficiency_per_station": round(three["mb_per_s"] / one["mb_per_s"] / 3, 2),
        # hashing and upload cost the same on both; the difference is the catalog's
        "pg_vs_sqlite_catalog_cpu_per_file": round(
            one["catalog_cpu_ms_per_file"] / max(sqlite["catalog_cpu_ms_per_file"], 0.001), 2
        ),
        "pg_vs_sqlite_cpu_per_file": round(
            (one["daemon_cpu_ms_per_file"] + one["postgresql_cpu_ms_per_file"])
            / max(sqlite["daemon_cpu_ms_per_file"], 0.001),
            2,
        ),
    }


def markdown(document: dict) -> str:
    result = document["results"]["stations"]
    lines = [
        f"# Stations benchmark {document['date']}",
        "",
        f"`python -m bench --only stations`; machine: {document['machine'].get('cpu', '')} "
        f"{result['cpu_count']} cores; load {document['machine']['load_start']} → "
        f"{document['machine']['load_end']}.",
        "",
        "| catalog | stations | files | MB/s | files/s | p50 / p95 time-to-safe s "
        "| statements/file | transactions/file | round-trips/file | catalog call ms/file "
        "| catalog CPU ms/file | daemon CPU ms/file | PostgreSQL CPU ms/file "
        "| SeaweedFS CPU ms/file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['backend']} | {r['stations']} "
            f"| {r['files']} × {r['bytes'] / r['files'] / MB:g} MB "
            f"| {r['mb_per_s']} | {r['files_per_s']} "
            f"| {r['time_to_safe_p50_s']} / {r['time_to_safe_p95_s']} "
            f"| {r['statements_per_file']} | {r['transactions_per_file']} "
            f"| {r['round_trips_per_file']} "
            f"| {r['catalog_call_ms_per_file']} | {r['catalog_cpu_ms_per_file']} "
            f"| {r['daemon_cpu_ms_per_file']} "
            f"| {r['postgresql_cpu_ms_per_file']} | {r['store_cpu_ms_per_file']} |"
        )
    lines += [
        "",
        f"3 stations vs 1 (PostgreSQL): throughput × {result['three_vs_one_throughput']} "
        f"(efficiency per station {result['efficiency_per_station']}).",
        "CPU per file, 1 station, PostgreSQL (daemon + PostgreSQL server) vs SQLite "
        f"(daemon, the catalog in-process): × {result['pg_vs_sqlite_cpu_per_file']}.",
        "Catalog CPU per file, 1 station (the daemon's threads while they hold a catalog "
        "connection, plus the PostgreSQL server), PostgreSQL vs SQLite: "
        f"× {result['pg_vs_sqlite_catalog_cpu_per_file']}.",
        "",
    ]
    return "\n".join(lines)
