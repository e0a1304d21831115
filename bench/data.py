"""Test data the benchmark makes for itself: recorder-like clips and random files.

Every file has distinct bytes, because Strongroom stores content-addressed
originals: two identical files would make one upload and one sighting, and
the comparison with ``aws s3 cp`` (which uploads both) would be unfair.

One clip is encoded with ffmpeg (``testsrc2`` video + ``sine`` audio, H.264 at
a body-worn camera's bitrate); the others are stream copies of it that differ
in a metadata tag – real MP4s that ffprobe reads, made at remux speed rather
than encode speed. Large and small files are random bytes, which neither the
store nor anything in between can compress.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench.stats import MiB

RANDOM_BLOCK = 16 * MiB


def recorder_name(serial: int, seq: int, ext: str = "MP4") -> str:
    """A GA/T 947-style name (device, police number, start time, sequence)."""
    minute = seq % 60
    hour = 8 + (seq // 60) % 12
    return f"BWC{serial:04d}_{100000 + serial:06d}_20260301{hour:02d}{minute:02d}00_{seq:04d}.{ext}"


def encode_clip(path: Path, size_bytes: int, timeout: float = 600) -> Path:
    """Encode one H.264/AAC MP4 of about ``size_bytes`` (ffmpeg stops at ``-fs``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "40M",
            "-c:a",
            "aac",
            "-t",
            "600",
            "-fs",
            str(size_bytes),
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=timeout,
    )
    return path


def variant(source: Path, target: Path, tag: str, timeout: float = 120) -> Path:
    """A stream copy of ``source`` whose bytes differ by a comment tag."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-c",
            "copy",
            "-map",
            "0",
            "-metadata",
            f"comment=strongroom-bench {tag}",
            str(target),
        ],
        check=True,
        timeout=timeout,
    )
    return target


def clips(folder: Path, count: int, size_bytes: int, template: Path) -> list[Path]:
    """``count`` distinct clips of about ``size_bytes`` in ``folder``."""
    if not template.exists():
        encode_clip(template, size_bytes)
    return [
        variant(template, folder / recorder_name(1 + i % 25, i), f"{folder.name}-{i}")
        for i in range(count)
    ]


def random_file(path: Path, size_bytes: int) -> Path:
    """``size_bytes`` of random bytes, written in blocks (bounded memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        left = size_bytes
        while left > 0:
            block = os.urandom(min(RANDOM_BLOCK, left))
            handle.write(block)
            left -= len(block)
    return path


def random_files(folder: Path, count: int, size_bytes: int, prefix: str) -> list[Path]:
    """Many small random files in one folder (one ``os.urandom`` call each)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}_{i:05d}.bin"
        path.write_bytes(os.urandom(size_bytes))
        paths.append(path)
    return paths


def total_size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)
