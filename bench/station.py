"""The parts a measurement runs against: a station, the plain tools, the clock.

Each measurement gets a fresh :class:`BenchStation` – its own config, data
folder, catalog and bucket, made by ``strongroom init`` exactly as an operator
would – so content-addressed originals from an earlier repetition can never
turn an upload into a cheap sighting. The plain tools (``aws s3 cp``, a plain
boto3 upload) write into that same bucket, so both sides pay for the same
versioned, Object-Lock-enabled bucket on the same server.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
import psutil
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from archive.localstore import LocalStore

STRONGROOM = [sys.executable, "-m", "frontdoors.main"]
AWS = str(Path(sys.executable).parent / "aws")
#: per-command ceiling; a hung run must end the benchmark, not stall it
COMMAND_TIMEOUT = 1800


class BenchError(RuntimeError):
    pass


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop the stores we started."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int = 0  # bytes, largest resident set seen (process and its children)
    cpu_seconds: float = 0.0  # user + system of the command and its children


def run_timed(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float = COMMAND_TIMEOUT,
    sample_rss: bool = False,
) -> Timed:
    """Run ``command`` to the end; wall-clock and CPU seconds, output, optionally peak RSS.

    CPU comes from the kernel's account of reaped children, so the bench must
    not reap another child meanwhile (it runs one command at a time).
    """
    cpu_before = _children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(process.pid) if sample_rss else None
    if sampler:
        sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise BenchError(f"{' '.join(command[:4])}… timed out after {timeout}s") from None
    finally:
        if sampler:
            sampler.stop()
    elapsed = time.perf_counter() - started
    return Timed(
        elapsed,
        process.returncode,
        stdout,
        stderr,
        sampler.peak if sampler else 0,
        _children_cpu() - cpu_before,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by a running process and its children (the store)."""
    try:
        process = psutil.Process(pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(child.cpu_times()[:2])
    except psutil.NoSuchProcess:
        return 0.0
    return total


class RssSampler(threading.Thread):
    """Samples the resident set of a process (largest of it and any child) every 20 ms.

    Sampling can miss a spike shorter than the interval; the memory a
    streaming upload holds (parts in flight, buffers) lasts far longer.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            process = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            try:
                rss = process.memory_info().rss
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rss = max(rss, child.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, rss)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@dataclass
class Conditions:
    """The load a measurement ran under: what else used the two cores meanwhile.

    The machine is shared, so a figure is only honest beside the CPU other
    processes took while it was measured: system-wide busy CPU (kernel
    accounting, psutil) minus that of the tool, the store and the bench itself,
    and the load average at start and end. ``steal`` is CPU the hypervisor gave
    to other guests.
    """

    started: float = 0.0
    busy: float = 0.0
    steal: float = 0.0
    own: float = 0.0
    load_start: tuple[float, ...] = ()

    @staticmethod
    def _busy() -> tuple[float, float]:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        steal = getattr(t, "steal", 0.0)
        return sum(t) - idle - steal - getattr(t, "guest", 0.0) - getattr(
            t, "guest_nice", 0.0
        ), steal

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    @classmethod
    def begin(cls) -> Conditions:
        busy, steal = cls._busy()
        return cls(time.monotonic(), busy, steal, cls._own(), os.getloadavg())

    def end(self, accounted_cpu: float) -> dict:
        """``accounted_cpu``: CPU seconds of the tool and the store in this interval."""
        busy, steal = self._busy()
        wall = max(time.monotonic() - self.started, 1e-9)
        own = self._own() - self.own
        others = max(0.0, busy - self.busy - accounted_cpu - own)
        return {
            "wall_s": round(wall, 3),
            "others_cpu_s": round(others, 3),
            "others_cores": round(others / wall, 3),
            "steal_cores": round((steal - self.steal) / wall, 3),
            "load_start": [round(x, 2) for x in self.load_start],
            "load_end": [round(x, 2) for x in os.getloadavg()],
        }


def others_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process not ours (pid → name, CPU)."""
    mine = {os.getpid()} | {c.pid for c in psutil.Process().children(recursive=True)}
    found: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if proc.pid in mine or times is None:
            continue
        found[proc.pid] = (proc.info.get("name") or "?", times.user + times.system)
    return found


def others_top(before: dict[int, tuple[str, float]], limit: int = 6) -> list[dict]:
    """Which other processes used the CPU since ``before`` (by name, largest first).

    Processes that started after ``before`` count in full, those that ended
    before now are missed, so this names the neighbours; the per-measurement
    :class:`Conditions` gives the exact total.
    """
    totals: dict[str, float] = {}
    for pid, (name, cpu) in others_snapshot().items():
        used = cpu - before[pid][1] if pid in before and before[pid][0] == name else cpu
        totals[name] = totals.get(name, 0.0) + max(0.0, used)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
    return [{"name": name, "cpu_s": round(cpu, 1)} for name, cpu in ranked if cpu >= 0.1]


def aws_env(store: LocalStore) -> dict[str, str]:
    """The aws CLI's environment: the store's keys, no user config, no CA bundle.

    This machine sets ``AWS_CA_BUNDLE``; for a plain-HTTP endpoint the aws CLI
    must not see it.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "AWS_PROFILE")}
    env.update(
        AWS_ACCESS_KEY_ID=store.credentials["access_key_id"],
        AWS_SECRET_ACCESS_KEY=store.credentials["secret_access_key"],
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def plain_client(store: LocalStore):
    """A boto3 client at its defaults (what a plain script would use), with timeouts."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=store.endpoint_url,
        aws_access_key_id=store.credentials["access_key_id"],
        aws_secret_access_key=store.credentials["secret_access_key"],
        region_name="us-east-1",
        config=Config(
            connect_timeout=5,
            read_timeout=120,
            s3={"addressing_style": "path"},
            max_pool_connections=20,
        ),
    )


#: boto3's own defaults, spelled out: the "pure upload" is what plain boto3 does
PLAIN_TRANSFER = TransferConfig()


@dataclass
class BenchStation:
    """One fresh Strongroom station: config, data folder, catalog, bucket."""

    root: Path
    store: LocalStore
    settle_seconds: float = 1.0
    workers: int | None = None
    rescan_seconds: float | None = None  # None: the product default
    extra_toml: str = ""
    bucket: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:12]}")

    @property
    def config(self) -> Path:
        return self.root / "strongroom.toml"

    @property
    def dock(self) -> Path:
        return self.root / "dock"

    @property
    def catalog(self) -> Path:
        return self.root / "var" / "catalog.db"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.store.env()}

    def create(self) -> BenchStation:
        """Write the config and run ``strongroom init`` (bucket, key, lock self-test)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.dock.mkdir(exist_ok=True)
        pipeline = f"workers = {self.workers}\n" if self.workers else ""
        if self.rescan_seconds:
            pipeline += f"rescan_seconds = {self.rescan_seconds}\n"
        self.config.write_text(
            f"""[station]
name = "bench"
data_dir = "var"

[[docks]]
path = "dock"
settle_seconds = {self.settle_seconds}
after_archive = "delete"

[store]
endpoint_url = "{self.store.endpoint_url}"
bucket = "{self.bucket}"

[catalog]
url = "sqlite:///var/catalog.db"

[pipeline]
{pipeline}
[transcode]
# playback copies are queued work that never delays the original; the
# benchmark measures the ingest path alone
enabled = false

[api]
listen = "127.0.0.1:0"
{self.extra_toml}
""",
            encoding="utf-8",
        )
        result = self.cli("init", "--json")
        if result.returncode != 0:
            raise BenchError(f"strongroom init failed:\n{result.stderr[-2000:]}")
        return self

    def command(self, *args: str) -> list[str]:
        return [*STRONGROOM, *args, "--config", str(self.config)]

    def cli(self, *args: str, sample_rss: bool = False) -> Timed:
        return run_timed(self.command(*args), env=self.env, cwd=self.root, sample_rss=sample_rss)

    def ingest(self, *paths: Path, sample_rss: bool = False) -> Timed:
        """``strongroom ingest PATH… --json``: files outside docks are archived in place."""
        result = self.cli("ingest", *map(str, paths), "--json", sample_rss=sample_rss)
        if result.returncode != 0:
            raise BenchError(
                f"strongroom ingest exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result

    def aws_cp(self, folder: Path, prefix: str, *, sha256: bool = False) -> Timed:
        """``aws s3 cp --recursive`` of ``folder`` into this station's bucket;
        ``sha256``: with ``--checksum-algorithm SHA256`` (the server checks a
        SHA-256 of every object or part, as it does for Strongroom's)."""
        checksum = ["--checksum-algorithm", "SHA256"] if sha256 else []
        result = run_timed(
            [
                AWS,
                "s3",
                "cp",
                "--recursive",
                "--only-show-errors",
                *checksum,
                "--endpoint-url",
                self.store.endpoint_url,
                str(folder),
                f"s3://{self.bucket}/{prefix}/",
            ],
            env=aws_env(self.store),
            cwd=self.root,
        )
        if result.returncode != 0:
            raise BenchError(f"aws s3 cp exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result

    def equal_work(self, folder: Path, prefix: str) -> Timed:
        """The raw boto3 loop doing a Strongroom item's store requests (bench/equalwork.py)."""
        result = run_timed(
            [
                sys.executable,
                "-m",
                "bench.equalwork",
                str(folder),
                "--endpoint-url",
                self.store.endpoint_url,
                "--bucket",
                self.bucket,
                "--prefix",
                prefix,
            ],
            env={**aws_env(self.store), "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            cwd=self.root,
        )
        if result.returncode != 0:
            raise BenchError(
                f"the equal-work loop exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result

    def start_daemon(self, log_name: str = "daemon.log") -> Daemon:
        log = (self.root / log_name).open("ab")
        process = subprocess.Popen(
            self.command("run"), cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return Daemon(process, self.root / log_name)

    def released_at(self, name: str) -> datetime | None:
        """When the job of dock file ``name`` was released, from the catalog (read-only)."""
        if not self.catalog.exists():
            return None
        uri = f"file:{self.catalog}?mode=ro"
        try:
            with sqlite3.connect(uri, uri=True, timeout=5) as db:
                row = db.execute(
                    "SELECT released_at, state, last_error FROM ingest_jobs "
                    "WHERE display_name = ? ORDER BY id DESC LIMIT 1",
                    (name,),
                ).fetchone()
        except sqlite3.OperationalError:
            return None  # the daemon has not created its tables yet
        if row is None or row[0] is None:
            return None
        return datetime.fromisoformat(str(row[0])).replace(tzinfo=UTC)


@dataclass
class Daemon:
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]
