"""Profile ``strongroom ingest`` with py-spy and say where the wall-clock time goes.

``python -m bench.profile [--quick]`` makes the batch and the small files,
starts a store, and records each ingest with ``py-spy record --idle`` (idle
samples included: an ingest worker waiting on the network or on SQLite is
exactly what we want to see). It writes the raw collapsed stacks and a
flame graph per workload, and a summary of the worker threads' time by
pipeline step and by the calls inside them.

py-spy is not a project dependency: ``pip install py-spy``.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from archive import localstore
from bench import data, measure
from bench.measure import Plan, Workspace
from bench.run import RESULTS
from bench.station import COMMAND_TIMEOUT, exit_on_sigterm

log = logging.getLogger("bench")

#: frames that mark time spent in a named part of the work (function, file suffix)
INTERESTING = (
    ("_claim", "ingest/pipeline.py"),
    ("_hash", "ingest/pipeline.py"),
    ("_store", "ingest/pipeline.py"),
    ("_seal", "ingest/pipeline.py"),
    ("_release", "ingest/pipeline.py"),
    ("_commit", "ingest/pipeline.py"),
    ("_load", "ingest/pipeline.py"),
    ("_evidence_by_sha", "ingest/pipeline.py"),
    ("_probe", "ingest/pipeline.py"),
    ("_confirm", "ingest/pipeline.py"),
    ("_log_step", "ingest/pipeline.py"),
    ("claim", "ingest/pipeline.py"),
    ("put_file", "archive/store.py"),
    ("put_bytes", "archive/store.py"),
    ("head", "archive/store.py"),
    ("get_bytes", "archive/store.py"),
    ("_upload_part", "archive/store.py"),
    ("seal_evidence", "archive/seal.py"),
    ("store_manifest", "archive/seal.py"),
    ("record_event", "archive/custody.py"),
    ("commit", "sqlalchemy/orm/session.py"),
    ("flush", "sqlalchemy/orm/session.py"),
    ("run", "subprocess.py"),
    ("_make_api_call", "botocore/client.py"),
    ("openssl_sha256", ""),
    ("update", ""),
    ("_fsync_dir", "ingest/pipeline.py"),
)
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def record(command: list[str], out: Path, env: dict, cwd: Path, rate: int = 100) -> None:
    """``py-spy record`` a command into raw collapsed stacks and an SVG flame graph."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    base = [spy, "record", "--idle", "--threads", "--rate", str(rate), "--nonblocking"]
    subprocess.run(
        [*base, "--format", "raw", "--output", str(out), "--", *command],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
    )


def summarize(raw: Path, top: int = 25) -> dict:
    """Worker-thread samples by pipeline step and call, from collapsed stacks.

    A worker thread is one whose stack passes through ``Pipeline.advance`` or
    ``claim``; the main thread waiting on the pool and idle pool threads are
    left out, so the shares add up to the time the workers were busy.
    """
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    everything = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        everything += count
        frames = [_frame(f) for f in stack.split(";")]
        names = {f for f in frames if f}
        if not any(n.startswith(("Pipeline.advance ", "Pipeline.claim ")) for n in names):
            continue
        total += count
        for name in names:
            if _interesting(name):
                inclusive[name] += count
        if frames and frames[-1]:
            leaf[frames[-1]] += count
    return {
        "worker_samples": total,
        "all_samples": everything,
        "by_call": [
            {"frame": name, "share": round(n / total, 3)} for name, n in inclusive.most_common()
        ]
        if total
        else [],
        "leaf": [{"frame": name, "share": round(n / total, 3)} for name, n in leaf.most_common(top)]
        if total
        else [],
    }


def _frame(text: str) -> str:
    match = FRAME.match(text.strip())
    if not match:
        return ""
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def _interesting(name: str) -> bool:
    func, _, rest = name.partition(" (")
    short = func.rsplit(".", 1)[-1]
    path = rest.rstrip(")")
    return any(short == f and path.endswith(suffix) for f, suffix in INTERESTING) or short in (
        "advance",
        "claim",
    )


def markdown(label: str, seconds: float, summary: dict) -> str:
    lines = [
        f"### {label} ({seconds:.1f} s under py-spy)",
        "",
        f"{summary['worker_samples']} worker-thread samples of {summary['all_samples']}.",
        "",
        "| where (inclusive) | share of worker time |",
        "|---|---|",
    ]
    lines += [f"| `{row['frame']}` | {row['share']:.1%} |" for row in summary["by_call"]]
    lines += ["", "| leaf frame (self) | share |", "|---|---|"]
    lines += [f"| `{row['frame']}` | {row['share']:.1%} |" for row in summary["leaf"][:15]]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    plan = Plan.quick() if args.quick else Plan.full()
    base = Path(tempfile.mkdtemp(prefix="strongroom-profile-", dir=args.workdir))
    stem = datetime.now(UTC).strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    args.results.mkdir(parents=True, exist_ok=True)
    sections = [f"# Where `strongroom ingest` spends its time – {stem}", ""]
    store = localstore.start(base / "seaweed")
    try:
        ws = Workspace(base, store)
        workloads = {
            "batch": measure.make_batch(base, plan)[0].parent,
            "small": data.random_files(
                base / "data" / "small", plan.small_files, plan.small_bytes, "small"
            )[0].parent,
        }
        for label, folder in workloads.items():
            station = ws.station(f"profile-{label}")
            raw = args.results / f"{stem}-profile-{label}.txt"
            started = datetime.now(UTC)
            record(
                station.command("ingest", str(folder), "--json"),
                raw,
                station.env,
                station.root,
            )
            seconds = (datetime.now(UTC) - started).total_seconds()
            summary = summarize(raw)
            sections.append(markdown(f"{label}: {folder.name}", seconds, summary))
            log.info("profiled %s in %.1fs → %s", label, seconds, raw)
    finally:
        store.stop()
        measure.remove_tree(base)
    out = args.results / f"{stem}-profile.md"
    out.write_text("\n".join(sections), encoding="utf-8")
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
