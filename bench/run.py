"""The benchmark run: make data, start a store, measure, write the report.

Each measurement group gets its own freshly started SeaweedFS whose folder is
deleted afterwards, so the disk never holds more than one group's objects
(Object Lock keeps every stored version, and the benchmark stores tens of GB).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from archive import localstore
from bench import measure
from bench.machine import describe
from bench.measure import Plan, Workspace
from bench.report import verdicts, write
from bench.station import AWS, exit_on_sigterm, others_snapshot, others_top

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("throughput", "time_to_safe", "small_files", "memory")
#: measured only when asked for (``--only stations``, ``--only cluster``): they
#: start their own PostgreSQL or SeaweedFS cluster
EXTRA_GROUPS = ("stations", "cluster")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure strongroom ingest/run against aws s3 cp and openssl on this machine.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run in under two minutes"
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="issue 16's sizes (700 MB batch, 400 small files, 2 repetitions): minutes",
    )
    parser.add_argument(
        "--only",
        choices=GROUPS + EXTRA_GROUPS,
        action="append",
        help="run only these measurements (repeatable); default all",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to put generated data and the store (default: the system temp folder)",
    )
    parser.add_argument(
        "--rescan-seconds",
        type=float,
        default=None,
        help="diagnostic: override pipeline.rescan_seconds of the time-to-safe daemon "
        "(default: the product default, which is what the bar judges)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="report folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder afterwards")
    return parser.parse_args(argv)


def _with_store(base: Path, group: str, body: Callable[[Workspace], dict]) -> dict:
    folder = base / f"seaweed-{group}"
    store = localstore.start(folder)
    try:
        return body(Workspace(base, store))
    finally:
        store.stop()
        measure.remove_tree(folder)
        measure.remove_tree(base / "stations")


def run(plan: Plan, base: Path, groups: tuple[str, ...]) -> dict:
    results: dict = {}
    if "throughput" in groups:
        log.info("generating the batch (%s)", plan.to_dict()["batch"])
        paths = measure.make_batch(base, plan)
        results["hashing"] = measure.hashing_limit(paths, plan.repeats)
        results["throughput"] = _with_store(
            base, "throughput", lambda ws: measure.throughput(ws, plan, paths)
        )
        measure.remove_tree(paths[0].parent)
    if "time_to_safe" in groups:
        results["time_to_safe"] = _with_store(
            base, "tts", lambda ws: measure.time_to_safe(ws, plan)
        )
    if "small_files" in groups:
        results["small_files"] = _with_store(
            base, "small", lambda ws: measure.small_files(ws, plan)
        )
    if "memory" in groups:
        results["memory"] = _with_store(base, "memory", lambda ws: measure.memory(ws, plan))
    if "stations" in groups:
        from bench import bench_stations

        results["stations"] = bench_stations.run(base / "stations-bench")
    if "cluster" in groups:
        from bench import bench_cluster

        results["cluster"] = bench_cluster.run(base / "cluster-bench")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    plan = Plan.quick() if args.quick else Plan.short() if args.short else Plan.full()
    if args.rescan_seconds:
        plan = dataclasses.replace(plan, rescan_seconds=args.rescan_seconds)
    groups = tuple(args.only or GROUPS)
    base = Path(tempfile.mkdtemp(prefix="strongroom-bench-", dir=args.workdir))
    started = time.monotonic()
    neighbours = others_snapshot()
    document: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": plan.to_dict(),
        "machine": {**describe(base, AWS), "load_start": _load()},
    }
    try:
        document["results"] = run(plan, base, groups)
    finally:
        if args.keep:
            log.info("kept %s", base)
        else:
            measure.remove_tree(base)
    document["machine"]["load_end"] = _load()
    document["machine"]["others"] = others_top(neighbours)
    document["elapsed_s"] = round(time.monotonic() - started, 1)
    for extra in EXTRA_GROUPS:
        if extra not in document["results"]:
            continue
        markdown = importlib.import_module(f"bench.bench_{extra}").markdown
        args.results.mkdir(parents=True, exist_ok=True)
        stem = args.results / f"{document['date']}-{extra}"
        stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        stem.with_suffix(".md").write_text(markdown(document), "utf-8")
        print(markdown(document))
    if set(groups) <= set(EXTRA_GROUPS):
        return 0
    document["verdicts"] = [v.to_dict() for v in verdicts(document["results"])]
    json_path, md_path = write(document, args.results)
    print(md_path.read_text(encoding="utf-8"))
    print(f"written: {json_path} and {md_path}")
    return 0 if all(v["passed"] for v in document["verdicts"]) else 1


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
