"""What the figures were measured on: CPU, cores, memory, disk, tool versions.

A benchmark table without its machine cannot be compared with anything, so the
report always carries this block, read from the system at run time.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

from archive.localstore import weed_binary


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def disk_of(path: Path) -> dict[str, str | float]:
    """The file system holding ``path``: device, type, size, and rotational or not."""
    best = None
    for part in psutil.disk_partitions(all=True):
        if str(path.resolve()).startswith(part.mountpoint) and (
            best is None or len(part.mountpoint) > len(best.mountpoint)
        ):
            best = part
    usage = shutil.disk_usage(path)
    device = best.device if best else "unknown"
    rotational = "unknown"
    name = Path(device).name
    flag = Path(f"/sys/block/{name}/queue/rotational")
    if flag.exists():
        rotational = "HDD" if flag.read_text().strip() == "1" else "SSD/virtual"
    return {
        "device": device,
        "fstype": best.fstype if best else "unknown",
        "kind": rotational,
        "size_gb": round(usage.total / 1e9, 1),
        "free_gb": round(usage.free / 1e9, 1),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(work_dir: Path, aws: str) -> dict:
    """The machine and the versions of everything that takes part in a figure."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "disk": disk_of(work_dir),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            "strongroom": _version("strongroom"),
            "boto3": _version("boto3"),
            "botocore": _version("botocore"),
            "awscli": _first_line([aws, "--version"]),
            "seaweedfs": _first_line([weed_binary(), "version"]),
            "ffmpeg": _first_line(["ffmpeg", "-version"]),
            "openssl": _first_line(["openssl", "version"]),
        },
    }
