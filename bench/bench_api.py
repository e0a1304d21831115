"""Case lookups over a large catalog: ``GET /v1/cases/{id}`` and ``find --case``.

A SQLite catalog (the one-machine default, WAL, ``synchronous=FULL``) is filled
with 1,000,000 synthetic evidence rows and 200,000 case links over 40,000
cases, plus one case of 50 items scattered across the whole table. Then:

1. ``GET /v1/cases/{id}`` against ``strongroom serve`` (uvicorn) on 127.0.0.1
   with a bearer token (keep-alive client, as a case system would hold it), and
2. ``find --case`` as the CLI runs it (``verify.documents.find_items``: the
   query plus the JSON summaries, in process; the CLI's own Python start-up is reported
   separately because no query can make it shorter),

each timed per request after a warm-up. The bar (issue 4): p99 ≤ 20 ms for
both. The query plan of the case query is recorded with the figures.

Usage: ``.venv/bin/python -m bench.bench_api [--rows 1000000] [--requests 500]``.
Writes ``bench/results/api-<date>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from archive.caselinks import filter_by_case
from archive.context import Archive
from archive.db import Database
from archive.keys import create_key
from archive.queries import EvidenceFilter, evidence_query
from archive.store import ObjectStore
from bench.machine import cpu_model
from bench.stats import at_most, median, percentile
from config.settings import load_settings
from frontdoors.api.auth import hash_token, new_token

RESULTS = Path(__file__).resolve().parent / "results"
CASE = "BENCH-2026-0050"
CASE_ITEMS = 50
BAR_MS = 20.0
_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DateTime storage format on SQLite

EVIDENCE_COLUMNS = (
    "evidence_id, sha256, size, media_type, file_name, original_key, original_version_id, "
    "original_checksum, manifest_key, manifest_version_id, keyid, station, dock, source_path, "
    "device, officer, unit, recorded_start, recorded_end, file_mtime, flags, probe, category, "
    "lock_mode, retain_until, legal_hold, state, ingested_at, sealed_at"
)


def _evidence_rows(count: int, start: datetime):
    """Synthetic rows shaped like real ones: 200 stations, 5,000 officers and
    devices, recordings over ~3 years, sealed in recording order."""
    for n in range(count):
        sha = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
        recorded = start + timedelta(seconds=n * 90)
        sealed = (recorded + timedelta(hours=2)).strftime(_TIME)
        device = f"D{n % 5000:06d}"
        officer = f"{(n * 7) % 5000:06d}"
        yield (
            f"ev-{sha[:24]}",
            sha,
            50_000_000 + n % 1000,
            "video/mp4",
            f"{device}_{officer}_{recorded:%Y%m%d%H%M%S}_0001.MP4",
            f"originals/sha256/{sha}",
            f"v{n}",
            "x" * 44,
            f"manifests/ev-{sha[:24]}.dsse.json",
            f"m{n}",
            "0123456789abcdef",
            f"dock-{n % 200:03d}",
            "dock",
            f"/dock/{device}_{officer}.MP4",
            device,
            officer,
            f"{n % 300:012d}",
            recorded.strftime(_TIME),
            (recorded + timedelta(minutes=10)).strftime(_TIME),
            recorded.strftime(_TIME),
            "[]",
            None,
            "routine",
            "COMPLIANCE",
            (recorded + timedelta(days=183)).strftime(_TIME),
            0,
            "sealed",
            sealed,
            sealed,
        )


def fill_catalog(db: Database, rows: int, links: int, cases: int, seed: int = 7) -> list[str]:
    """Bulk-insert the synthetic catalog; return the bench case's evidence ids."""
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA synchronous=OFF")  # loading only; the service runs FULL
        placeholders = ", ".join("?" * len(EVIDENCE_COLUMNS.split(", ")))
        batch: list[tuple] = []
        for row in _evidence_rows(rows, start):
            batch.append(row)
            if len(batch) == 50_000:
                cursor.executemany(
                    f"INSERT INTO evidence ({EVIDENCE_COLUMNS}) VALUES ({placeholders})",  # noqa: S608
                    batch,
                )
                batch.clear()
        if batch:
            cursor.executemany(
                f"INSERT INTO evidence ({EVIDENCE_COLUMNS}) VALUES ({placeholders})",  # noqa: S608
                batch,
            )
        ids = [f"ev-{hashlib.sha256(n.to_bytes(8, 'big')).hexdigest()[:24]}" for n in range(rows)]
        linked_at = start.strftime(_TIME)
        pairs = {(f"C-{rng.randrange(cases):06d}", rng.choice(ids)) for _ in range(links)}
        chosen = rng.sample(ids, CASE_ITEMS)
        pairs |= {(CASE, evidence_id) for evidence_id in chosen}
        cursor.executemany(
            "INSERT INTO case_links (case_id, evidence_id, linked_by, reason, linked_at) "
            "VALUES (?, ?, 'bench', 'synthetic', ?)",
            [(case, evidence_id, linked_at) for case, evidence_id in pairs],
        )
        raw.commit()
        cursor.execute(
            "UPDATE evidence SET legal_hold = 1 WHERE evidence_id IN "
            "(SELECT evidence_id FROM case_links)"
        )
        raw.commit()
    finally:
        raw.close()
    return chosen


def query_plan(db: Database) -> list[str]:
    query = filter_by_case(evidence_query(EvidenceFilter()), CASE)
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return [str(row[-1]) for row in rows]


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


def time_api(config: Path, token: str, requests: int) -> dict:
    """Against ``strongroom serve`` in its own process, as deployed (a server
    thread inside this process would share its GIL with the client)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "frontdoors.main",
            "--log-level",
            "WARNING",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            str(config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("strongroom serve did not start")
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for _ in range(20):
                client.get(f"/v1/cases/{CASE}").raise_for_status()
            samples = []
            for _ in range(requests):
                began = time.perf_counter()
                response = client.get(f"/v1/cases/{CASE}")
                samples.append(time.perf_counter() - began)
                response.raise_for_status()
            body = response.json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    assert body["total"] == CASE_ITEMS and body["count"] == CASE_ITEMS, body["total"]
    return _summary(samples)


def time_find(archive: Archive, requests: int) -> dict:
    from verify.documents import find_items

    def once() -> list[dict]:
        with archive.db.session() as session:
            return find_items(session, EvidenceFilter(), CASE, 1000)

    for _ in range(20):
        once()
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        items = once()
        samples.append(time.perf_counter() - began)
    assert len(items) == CASE_ITEMS
    return _summary(samples)


def time_cli(config: Path, runs: int) -> dict:
    """The whole ``strongroom find --case`` process, for scale (Python start-up)."""
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "frontdoors.main",
                "find",
                "--case",
                CASE,
                "--json",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        samples.append(time.perf_counter() - began)
        assert json.loads(result.stdout)["count"] == CASE_ITEMS
    return _summary(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--links", type=int, default=200_000)
    parser.add_argument("--cases", type=int, default=40_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        token = new_token()
        config = work / "strongroom.toml"
        config.write_text(
            f'[station]\ndata_dir = "{work}"\n[catalog]\nurl = "sqlite:///{work}/catalog.db"\n'
            f'[signing]\nkey_file = "{work}/signing.key"\n[store]\nendpoint_url = "http://127.0.0.1:9"\n'
            'access_key_id = "unused"\nsecret_access_key = "unused"\n',
            encoding="utf-8",
        )
        config.chmod(0o600)
        os.environ["STRONGROOM_API__TOKENS"] = json.dumps(
            [{"name": "bench", "role": "case-system", "sha256": hash_token(token)}]
        )
        settings = load_settings(config)
        key, _ = create_key(settings.key_file)
        db = Database(settings.catalog_url)
        began = time.perf_counter()
        fill_catalog(db, args.rows, args.links, args.cases)
        load_s = time.perf_counter() - began
        archive = Archive(settings, db, ObjectStore(settings.store), key)
        try:
            plan = query_plan(db)
            api = time_api(config, token, args.requests)
            find = time_find(archive, args.requests)
        finally:
            archive.close()
        cli = time_cli(config, args.cli_runs)
        results = {
            "benchmark": "api",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "python": sys.version.split()[0],
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            },
            "catalog": {
                "backend": "sqlite (WAL, synchronous=FULL)",
                "evidence_rows": args.rows,
                "case_links": args.links,
                "cases": args.cases,
                "bench_case_items": CASE_ITEMS,
                "load_seconds": round(load_s, 1),
                "db_mb": round((work / "catalog.db").stat().st_size / 1e6, 1),
                "case_query_plan": plan,
            },
            "get_case_http": api,
            "find_case_query": find,
            "find_case_cli_process": cli,
            "verdicts": [
                at_most(
                    "GET /v1/cases/{id} p99",
                    api["p99_ms"],
                    BAR_MS,
                    "ms",
                    f"p99 ≤ {BAR_MS} ms, {CASE_ITEMS}-item case, {args.rows:,} rows",
                ).to_dict(),
                at_most(
                    "find --case p99 (query + summaries)",
                    find["p99_ms"],
                    BAR_MS,
                    "ms",
                    f"p99 ≤ {BAR_MS} ms, {CASE_ITEMS}-item case, {args.rows:,} rows",
                ).to_dict(),
            ],
        }
    finally:
        os.environ.pop("STRONGROOM_API__TOKENS", None)
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"api-{datetime.now(UTC).date().isoformat()}.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(markdown(results))
    print(f"\nwritten to {out}")
    return 0 if all(v["passed"] for v in results["verdicts"]) else 1


def markdown(results: dict) -> str:
    lines = [
        f"catalog: {results['catalog']['evidence_rows']:,} evidence rows, "
        f"{results['catalog']['case_links']:,} links; plan: "
        + " / ".join(results["catalog"]["case_query_plan"]),
        "",
        "| measurement | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for name in ("get_case_http", "find_case_query", "find_case_cli_process"):
        s = results[name]
        lines.append(f"| {name} | {s['n']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |")
    lines.append("")
    for v in results["verdicts"]:
        mark = "PASS" if v["passed"] else "FAIL"
        lines.append(f"- {mark} {v['name']}: {v['measured']} {v['op']} {v['limit']} {v['unit']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
