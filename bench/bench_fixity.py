"""Fixity throughput and memory, against the plain tools in the same run.

Two questions, both answered on a fresh locked-down SeaweedFS of its own:

1. **Throughput**: ``strongroom verify`` (stream each archived version, hash,
   check the signed manifest, HEADs for lock state and current version)
   versus ``aws s3 cp s3://bucket/key - | openssl dgst -sha256`` over the
   same objects. Repetitions alternate which side goes first; the figure is
   the ratio of median throughputs (bar: >= 0.9).
2. **Memory**: peak RSS of ``strongroom verify`` on a small object and on a
   4 GiB one (bar: flat – the big one within a few MiB of the small one).

Usage: ``.venv/bin/python -m bench.bench_fixity [--objects 4] [--object-mib 256]
[--big-gib 4] [--reps 3]``. Writes ``bench/results/fixity-<date>.json`` and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from archive import localstore

STRONGROOM = [sys.executable, "-m", "frontdoors.main"]
AWS = str(Path(sys.executable).parent / "aws")
RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1024 * 1024
TIMEOUT = 3600


def write_random(path: Path, size: int) -> None:
    """Incompressible bytes, written in 64 MiB blocks (memory stays small)."""
    block = os.urandom(64 * MiB)
    with path.open("wb") as out:
        left = size
        counter = 0
        while left > 0:
            chunk = block[: min(left, len(block))]
            # vary each block so no two blocks are equal
            out.write(counter.to_bytes(8, "big") + chunk[8:])
            left -= len(chunk)
            counter += 1


def run(cmd: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(f"{cmd} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def timed_with_rss(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) of the child, and its stdout."""
    out_path = cwd / f".out-{uuid.uuid4().hex}"
    with out_path.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text()
    out_path.unlink()
    if process.returncode != 0:
        raise RuntimeError(f"{cmd} exited {process.returncode}: {text[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024, text


class Station:
    """A station config pointed at the benchmark's own store and bucket."""

    def __init__(self, root: Path, store: localstore.LocalStore) -> None:
        self.root = root
        self.bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.store = store
        self.config = root / "strongroom.toml"
        self.config.write_text(
            f"""
[station]
name = "bench"
data_dir = "var"

[store]
endpoint_url = "{store.endpoint_url}"
bucket = "{self.bucket}"

[catalog]
url = "sqlite:///var/catalog.db"

[transcode]
enabled = false
""",
            encoding="utf-8",
        )
        self.env = {**os.environ, **store.env()}
        self.cli("init")

    def cli(self, *args: str) -> str:
        return run([*STRONGROOM, *args, "--config", str(self.config)], self.env).stdout

    def aws_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.store.credentials["access_key_id"],
            AWS_SECRET_ACCESS_KEY=self.store.credentials["secret_access_key"],
            AWS_DEFAULT_REGION="us-east-1",
        )
        return env


def aws_hash(station: Station, key: str) -> str:
    """The plain tools: stream the object to openssl, as an operator would."""
    script = (
        f"set -o pipefail; {AWS} --endpoint-url {station.store.endpoint_url} "
        f"s3 cp s3://{station.bucket}/{key} - | openssl dgst -sha256"
    )
    return run(["bash", "-c", script], station.aws_env()).stdout.strip().split()[-1]


def measure_throughput(station: Station, folder: Path, count: int, size: int, reps: int) -> dict:
    for i in range(count):
        write_random(folder / f"ABC1234_012345_2026030108{i:02d}15_{i:04d}.MP4", size)
    items = json.loads(station.cli("ingest", str(folder), "--json"))["items"]
    total = sum(item["size"] for item in items)
    ours, plain = [], []
    for rep in range(reps):
        sides = ["strongroom", "aws+openssl"] if rep % 2 == 0 else ["aws+openssl", "strongroom"]
        for side in sides:
            start = time.perf_counter()
            if side == "strongroom":
                report = json.loads(station.cli("verify", "--all", "--json"))
                assert report["ok"] and report["bytes_read"] >= total, report
                ours.append(time.perf_counter() - start)
            else:
                for item in items:
                    assert aws_hash(station, item["original_key"]) == item["sha256"]
                plain.append(time.perf_counter() - start)
    ours_mbs = total / statistics.median(ours) / 1e6
    plain_mbs = total / statistics.median(plain) / 1e6
    return {
        "objects": count,
        "object_bytes": size,
        "total_bytes": total,
        "strongroom_seconds": ours,
        "plain_seconds": plain,
        "strongroom_MBps": round(ours_mbs, 1),
        "plain_MBps": round(plain_mbs, 1),
        "ratio": round(ours_mbs / plain_mbs, 3),
        "bar": ">= 0.9",
        "pass": ours_mbs / plain_mbs >= 0.9,
    }


def measure_memory(station: Station, folder: Path, big: int) -> dict:
    small_file = folder / "ABC1234_012345_20260301090015_0001.MP4"
    big_file = folder / "ABC1234_012345_20260301100015_0002.MP4"
    write_random(small_file, 16 * MiB)
    write_random(big_file, big)
    items = {}
    for path in (small_file, big_file):
        (item,) = json.loads(station.cli("ingest", str(path), "--json"))["items"]
        items[path] = item
        path.unlink()
    figures = {}
    for label, path in (("small", small_file), ("big", big_file)):
        item = items[path]
        cmd = [
            *STRONGROOM,
            "verify",
            item["evidence_id"],
            "--json",
            "--config",
            str(station.config),
        ]
        seconds, rss, out = timed_with_rss(cmd, station.env, station.root)
        assert json.loads(out)["ok"]
        figures[label] = {
            "bytes": item["size"],
            "seconds": round(seconds, 2),
            "MBps": round(item["size"] / seconds / 1e6, 1),
            "peak_rss_bytes": rss,
        }
    growth = figures["big"]["peak_rss_bytes"] - figures["small"]["peak_rss_bytes"]
    return {
        **figures,
        "rss_growth_bytes": growth,
        "bar": "peak RSS flat: the big object adds < 32 MiB",
        "pass": growth < 32 * MiB,
    }


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    python = sys.version.split()[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "openssl": openssl, "python": python}


def _size(n: int) -> str:
    return f"{n / 1024**3:.2g} GiB" if n >= 1024**3 else f"{n / MiB:.0f} MiB"


def markdown(results: dict) -> str:
    t, m = results["throughput"], results["memory"]
    rows = [
        "| measure | strongroom | plain tools | figure | bar | pass |",
        "|---|---|---|---|---|---|",
        f"| fixity throughput ({t['objects']} × {t['object_bytes'] // MiB} MiB) "
        f"| {t['strongroom_MBps']} MB/s | {t['plain_MBps']} MB/s (aws s3 cp \\| openssl) "
        f"| ratio {t['ratio']} | {t['bar']} | {'yes' if t['pass'] else 'NO'} |",
        f"| peak RSS, verify of {_size(m['small']['bytes'])} "
        f"| {m['small']['peak_rss_bytes'] / MiB:.0f} MiB | | | | |",
        f"| peak RSS, verify of {_size(m['big']['bytes'])} "
        f"| {m['big']['peak_rss_bytes'] / MiB:.0f} MiB | | "
        f"+{m['rss_growth_bytes'] / MiB:.1f} MiB | {m['bar']} | {'yes' if m['pass'] else 'NO'} |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--object-mib", type=int, default=256)
    parser.add_argument("--big-gib", type=float, default=4.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-fixity-"))
    store = localstore.start(work / "seaweedfs")
    try:
        station_root = work / "station"
        station_root.mkdir()
        station = Station(station_root, store)
        (work / "throughput").mkdir()
        (work / "memory").mkdir()
        results = {
            "benchmark": "fixity",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "throughput": measure_throughput(
                station, work / "throughput", args.objects, args.object_mib * MiB, args.reps
            ),
            "memory": measure_memory(station, work / "memory", int(args.big_gib * 1024**3)),
        }
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"fixity-{datetime.now(UTC).date().isoformat()}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    print(f"\nresults: {out}")
    ok = results["throughput"]["pass"] and results["memory"]["pass"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
