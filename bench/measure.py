"""The four measurements of issue 7, each next to its plain-tool baseline.

Every repetition runs Strongroom and the baseline back to back on the same
files and the same server, alternating which goes first, so load from
elsewhere on the machine hits both sides alike. Figures are medians of the
repetitions; the raw samples go into the JSON report.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from archive.localstore import LocalStore
from bench import data
from bench.station import (
    PLAIN_TRANSFER,
    BenchError,
    BenchStation,
    Conditions,
    RssSampler,
    plain_client,
    process_cpu,
    run_timed,
)
from bench.stats import MB, MiB, summary

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions; ``full`` is the issue's batch, ``quick`` a smoke run."""

    name: str
    clips: int
    clip_bytes: int
    big_files: int
    big_bytes: int
    repeats: int
    tts_sizes: tuple[tuple[str, int, int], ...]  # (label, bytes, repetitions)
    small_files: int
    small_bytes: int
    memory_bytes: int
    settle_seconds: float = 1.0
    #: None keeps the product default; set only to separate detection from work
    rescan_seconds: float | None = None

    @classmethod
    def full(cls) -> Plan:
        return cls(
            name="full",
            clips=40,
            clip_bytes=50 * MB,
            big_files=2,
            big_bytes=1000 * MB,
            repeats=3,
            tts_sizes=(("1 MB", 1 * MB, 5), ("100 MB", 100 * MB, 5), ("1 GB", 1000 * MB, 3)),
            small_files=2000,
            small_bytes=100 * 1000,
            memory_bytes=4096 * MiB,
        )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            name="quick",
            clips=6,
            clip_bytes=8 * MB,
            big_files=1,
            big_bytes=100 * MB,
            repeats=3,
            tts_sizes=(("1 MB", 1 * MB, 3), ("20 MB", 20 * MB, 3)),
            small_files=200,
            small_bytes=100 * 1000,
            memory_bytes=256 * MiB,
        )

    @classmethod
    def short(cls) -> Plan:
        """Issue 16's sizes (700 MB batch, 400 small files, two repetitions): a check
        that takes minutes on a loaded machine; the verdict is the full run's."""
        return cls(
            name="short",
            clips=6,
            clip_bytes=50 * MB,
            big_files=1,
            big_bytes=400 * MB,
            repeats=2,
            tts_sizes=(("1 MB", 1 * MB, 3), ("100 MB", 100 * MB, 3)),
            small_files=400,
            small_bytes=100 * 1000,
            memory_bytes=1024 * MiB,
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "batch": f"{self.clips} × {self.clip_bytes / MB:g} MB clips + "
            f"{self.big_files} × {self.big_bytes / MB:g} MB random",
            "repeats": self.repeats,
            "time_to_safe": [
                {"size": label, "bytes": size, "repeats": n} for label, size, n in self.tts_sizes
            ],
            "small_files": f"{self.small_files} × {self.small_bytes / 1000:g} KB",
            "memory_file_bytes": self.memory_bytes,
            "settle_seconds": self.settle_seconds,
            "rescan_seconds": self.rescan_seconds or "default",
        }


@dataclass
class Workspace:
    """The temp folder of one run: generated data and one folder per station."""

    root: Path
    store: LocalStore
    _stations: int = field(default=0, init=False)

    def station(self, label: str, **kwargs) -> BenchStation:
        self._stations += 1
        return BenchStation(
            self.root / "stations" / f"{self._stations:02d}-{label}", self.store, **kwargs
        ).create()


def _items(result_stdout: str) -> list[dict]:
    return json.loads(result_stdout)["items"]


def _check_all_archived(stdout: str, expected: int) -> None:
    items = _items(stdout)
    done = [i for i in items if i["state"] in ("released", "duplicate")]
    if len(items) != expected or len(done) != expected:
        raise BenchError(f"strongroom ingest archived {len(done)} of {expected} files")
    duplicates = [i for i in items if i["state"] == "duplicate"]
    if duplicates:
        raise BenchError(f"{len(duplicates)} generated files were not distinct")


# -- 1. archive throughput -------------------------------------------------


def make_batch(root: Path, plan: Plan) -> list[Path]:
    folder = root / "data" / "batch"
    template = root / "data" / "template" / f"clip-{plan.clip_bytes}.mp4"
    paths = data.clips(folder, plan.clips, plan.clip_bytes, template)
    for i in range(plan.big_files):
        paths.append(data.random_file(folder / f"big_{i}.bin", plan.big_bytes))
    return paths


def hashing_limit(paths: list[Path], repeats: int) -> dict:
    """``openssl dgst -sha256`` over the batch: the ceiling of any hash-first archiver."""
    size = data.total_size(paths)
    times = []
    for _ in range(repeats):
        result = run_timed(
            ["openssl", "dgst", "-sha256", *map(str, paths)], env={}, cwd=paths[0].parent
        )
        if result.returncode != 0:
            raise BenchError(f"openssl failed: {result.stderr[-500:]}")
        times.append(result.seconds)
    return {"seconds": summary(times), "mb_per_s": round(size / MB / min(times), 1)}


@dataclass
class Race:
    """Seconds, CPU and load of each tool over the repetitions of one workload."""

    tools: tuple[str, ...]
    seconds: dict[str, list[float]] = field(default_factory=dict)
    client_cpu: dict[str, list[float]] = field(default_factory=dict)
    store_cpu: dict[str, list[float]] = field(default_factory=dict)
    conditions: dict[str, list[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for table in (self.seconds, self.client_cpu, self.store_cpu, self.conditions):
            for tool in self.tools:
                table.setdefault(tool, [])

    def cpu_per_file_ms(self, count: int) -> dict:
        """Median CPU per file, of the tool and of the store serving it.

        Both run on the same cores, so their sum bounds files per second:
        a tool whose requests cost the store more cannot win by being light itself.
        """
        return {
            tool: {
                "client": round(1000 * statistics.median(self.client_cpu[tool]) / count, 2),
                "store": round(1000 * statistics.median(self.store_cpu[tool]) / count, 2),
            }
            for tool in self.tools
        }

    def load(self) -> dict:
        """Per tool: the median CPU other processes took meanwhile (cores), and the worst."""
        return {
            tool: {
                "others_cores_median": round(
                    statistics.median(c["others_cores"] for c in self.conditions[tool]), 3
                ),
                "others_cores_max": max(c["others_cores"] for c in self.conditions[tool]),
                "steal_cores_max": max(c["steal_cores"] for c in self.conditions[tool]),
                "samples": self.conditions[tool],
            }
            for tool in self.tools
        }

    def ratio(self, tool: str, baseline: str) -> float:
        """``tool``'s rate as a multiple of ``baseline``'s (same work: inverse median times)."""
        return round(
            statistics.median(self.seconds[baseline]) / statistics.median(self.seconds[tool]), 3
        )

    def figures(self, count: int, amount: float, unit: str) -> dict:
        """Seconds, rate (``amount`` per second, e.g. MB or files), CPU and load per tool."""
        rates = {
            tool: round(amount / summary(self.seconds[tool])["median"], 1) for tool in self.tools
        }
        return {
            "tools": list(self.tools),
            "seconds": {tool: summary(self.seconds[tool]) for tool in self.tools},
            "rate_unit": unit,
            "rates": rates,
            "cpu_per_file_ms": self.cpu_per_file_ms(count),
            "load": self.load(),
        }


def _race(
    ws: Workspace, plan: Plan, folder: Path, count: int, label: str, tools: tuple[str, ...]
) -> Race:
    """Each tool on ``folder``, on a fresh station per repetition, the order
    rotating between repetitions so load from elsewhere hits every tool alike."""
    race = Race(tools)
    for rep in range(plan.repeats):
        station = ws.station(f"{label}-{rep}")
        shift = rep % len(tools)
        order = tools[shift:] + tools[:shift]
        if rep % 2:
            order = tuple(reversed(order))
        for tool in order:
            store_before = process_cpu(ws.store.process.pid)
            conditions = Conditions.begin()
            if tool == "aws":
                result = station.aws_cp(folder, f"plain/{rep}")
            elif tool == "aws_sha256":
                result = station.aws_cp(folder, f"sha256/{rep}", sha256=True)
            elif tool == "equal_work":
                result = station.equal_work(folder, f"equal/{rep}")
            else:
                result = station.ingest(folder)
                _check_all_archived(result.stdout, count)
            store_cpu = process_cpu(ws.store.process.pid) - store_before
            race.conditions[tool].append(conditions.end(result.cpu_seconds + store_cpu))
            race.store_cpu[tool].append(store_cpu)
            race.seconds[tool].append(result.seconds)
            race.client_cpu[tool].append(result.cpu_seconds)
        log.info(
            "%s rep %d: %s",
            label,
            rep,
            ", ".join(f"{tool} {race.seconds[tool][-1]:.1f}s" for tool in tools),
        )
    return race


def throughput(ws: Workspace, plan: Plan, paths: list[Path]) -> dict:
    folder = paths[0].parent
    size = data.total_size(paths)
    race = _race(ws, plan, folder, len(paths), "batch", ("aws", "aws_sha256", "strongroom"))
    return {
        "files": len(paths),
        "bytes": size,
        **race.figures(len(paths), size / MB, "MB/s"),
        # the bar is against aws with SHA-256 (equal work); the plain ratio stays beside it
        "ratio": race.ratio("strongroom", "aws_sha256"),
        "ratio_plain": race.ratio("strongroom", "aws"),
    }


# -- 2. time-to-safe -------------------------------------------------------


def _wait_released(station: BenchStation, daemon, name: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        released = station.released_at(name)
        if released is not None:
            return released.timestamp()
        if not daemon.alive():
            raise BenchError(f"the daemon exited:\n{daemon.tail()}")
        time.sleep(0.02)
    raise BenchError(f"{name} not released after {timeout:.0f}s:\n{daemon.tail()}")


def _drop(source: Path, dock_file: Path) -> float:
    """Copy ``source`` into the dock as a recorder would; the wall-clock time of close."""
    with source.open("rb") as src, dock_file.open("wb") as dst:
        shutil.copyfileobj(src, dst, 8 * MiB)
    return time.time()


def time_to_safe(ws: Workspace, plan: Plan) -> dict:
    results = {}
    sources = ws.root / "data" / "tts"
    client = plain_client(ws.store)
    for label, size, repeats in plan.tts_sizes:
        station = ws.station(
            f"tts-{size}", settle_seconds=plan.settle_seconds, rescan_seconds=plan.rescan_seconds
        )
        # a first file, present at start, warms up the daemon (taken by the start rescan)
        warm = data.random_file(station.dock / f"warm-{size}.bin", 1000)
        daemon = station.start_daemon()
        try:
            _wait_released(station, daemon, warm.name, 120)
            safe, upload = [], []
            for rep in range(repeats):
                source = data.random_file(sources / f"tts-{size}-{rep}.bin", size)
                name = data.recorder_name(7, rep, "bin")
                closed = _drop(source, station.dock / name)
                released = _wait_released(station, daemon, name, 120 + size / (5 * MB))
                if (station.dock / name).exists():
                    raise BenchError(f"{name} released but still in the dock")
                safe.append(released - closed)
                started = time.perf_counter()
                client.upload_file(
                    str(source),
                    station.bucket,
                    f"plain/tts/{size}/{rep}",
                    Config=PLAIN_TRANSFER,
                )
                upload.append(time.perf_counter() - started)
                source.unlink()
                log.info(
                    "time-to-safe %s rep %d: %.2fs (upload %.2fs)", label, rep, safe[-1], upload[-1]
                )
        finally:
            daemon.stop()
        results[label] = {
            "bytes": size,
            "time_to_safe_s": summary(safe),
            "pure_upload_s": summary(upload),
            "settle_s": plan.settle_seconds,
        }
    return results


# -- 3. many small files ---------------------------------------------------


def small_files(ws: Workspace, plan: Plan) -> dict:
    folder = ws.root / "data" / "small"
    paths = data.random_files(folder, plan.small_files, plan.small_bytes, "small")
    race = _race(ws, plan, folder, len(paths), "small", ("aws", "equal_work", "strongroom"))
    return {
        "files": len(paths),
        "bytes_each": plan.small_bytes,
        **race.figures(len(paths), len(paths), "files/s"),
        # the bar is against the equal-work loop; the plain aws ratio stays beside it
        "ratio": race.ratio("strongroom", "equal_work"),
        "ratio_plain": race.ratio("strongroom", "aws"),
    }


# -- 4. memory -------------------------------------------------------------


def memory(ws: Workspace, plan: Plan) -> dict:
    """Peak RSS while archiving one large file (sampled every 20 ms).

    The bar is the daemon's: the file is copied into a watched dock, so the
    daemon hashes it while it settles and then uploads it, with its API server
    and scheduler running. ``strongroom ingest`` of the same file is measured too.
    """
    path = data.random_file(ws.root / "data" / "memory" / "large.bin", plan.memory_bytes)
    try:
        station = ws.station("memory", settle_seconds=plan.settle_seconds)
        daemon = station.start_daemon()
        sampler = RssSampler(daemon.process.pid)
        sampler.start()
        try:
            name = data.recorder_name(9, 0, "bin")
            closed = _drop(path, station.dock / name)
            released = _wait_released(station, daemon, name, 120 + plan.memory_bytes / (5 * MB))
        finally:
            sampler.stop()
            daemon.stop()
        ingest = ws.station("memory-ingest").ingest(path, sample_rss=True)
        _check_all_archived(ingest.stdout, 1)
    finally:
        path.unlink(missing_ok=True)
    return {
        "bytes": plan.memory_bytes,
        "seconds": round(released - closed, 2),
        "peak_rss_bytes": sampler.peak,
        "peak_rss_mb": round(sampler.peak / MB, 1),
        "ingest_seconds": round(ingest.seconds, 2),
        "ingest_peak_rss_mb": round(ingest.peak_rss / MB, 1),
    }


def remove_tree(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=False, timeout=600)
