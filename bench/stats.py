"""Small statistics and the performance bar, kept pure so tests can pin them down.

A benchmark figure is only worth reading next to the number it is judged
against, so the bar lives here as data (:data:`BARS`) and each check returns
the measured value, the limit and the verdict together.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

MB = 1_000_000
MiB = 1024 * 1024

#: the tools of each race: key → how the report names it
TOOLS = {
    "aws": "`aws s3 cp`",
    "aws_sha256": "`aws s3 cp --checksum-algorithm SHA256`",
    "equal_work": "boto3 equal-work loop (8 threads)",
    "strongroom": "`strongroom ingest`",
}


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100), as numpy's default does.

    With three samples p95 lies between the two slowest: a reader sees the
    tail without a single outlier becoming the figure.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summary(values: Sequence[float]) -> dict[str, float | list[float]]:
    """Median, p95, min, max and the raw samples (rounded for the report)."""
    return {
        "median": round(median(values), 4),
        "p95": round(percentile(values, 95), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "samples": [round(v, 4) for v in values],
    }


@dataclass(frozen=True)
class Verdict:
    """One line of the bar: what was measured, what it must reach, and whether it did."""

    name: str
    measured: float
    op: str  # "≥" or "≤": how measured must compare with limit
    limit: float
    unit: str
    passed: bool
    rule: str

    def to_dict(self) -> dict:
        return asdict(self)


def at_least(name: str, measured: float, limit: float, unit: str, rule: str) -> Verdict:
    return Verdict(name, round(measured, 3), "≥", round(limit, 3), unit, measured >= limit, rule)


def at_most(name: str, measured: float, limit: float, unit: str, rule: str) -> Verdict:
    return Verdict(name, round(measured, 3), "≤", round(limit, 3), unit, measured <= limit, rule)


#: the bar of issue 16 (issue 7's, judged on equal work): the batch against
#: ``aws s3 cp --checksum-algorithm SHA256``, small files against the boto3 loop
#: doing a Strongroom item's requests (bench/equalwork.py), which signs, catalogs
#: and ledgers nothing – hence 0.8, not 1.0
THROUGHPUT_RATIO = 1.0
SMALL_FILES_RATIO = 0.8
TIME_TO_SAFE_FACTOR = 1.2
TIME_TO_SAFE_SLACK_S = 1.5
PEAK_RSS_MB = 200.0


def throughput_verdict(strongroom_mbps: float, aws_sha256_mbps: float) -> Verdict:
    return at_least(
        "archive throughput",
        strongroom_mbps / aws_sha256_mbps,
        THROUGHPUT_RATIO,
        "× aws s3 cp --checksum-algorithm SHA256",
        f"strongroom ingest MB/s ≥ {THROUGHPUT_RATIO} × aws s3 cp --checksum-algorithm "
        "SHA256 MB/s (medians)",
    )


def small_files_verdict(strongroom_fps: float, equal_work_fps: float) -> Verdict:
    return at_least(
        "small files",
        strongroom_fps / equal_work_fps,
        SMALL_FILES_RATIO,
        "× equal-work boto3 loop",
        f"strongroom ingest files/s ≥ {SMALL_FILES_RATIO} × the equal-work boto3 loop's "
        "files/s (medians)",
    )


def time_to_safe_verdict(label: str, safe_s: float, upload_s: float) -> Verdict:
    return at_most(
        f"time-to-safe {label}",
        safe_s,
        TIME_TO_SAFE_FACTOR * upload_s + TIME_TO_SAFE_SLACK_S,
        "s",
        f"median ≤ {TIME_TO_SAFE_FACTOR} × median pure upload + {TIME_TO_SAFE_SLACK_S} s",
    )


def memory_verdict(label: str, peak_rss_bytes: int) -> Verdict:
    return at_most(
        f"peak RSS {label}",
        peak_rss_bytes / MB,
        PEAK_RSS_MB,
        "MB",
        f"peak RSS ≤ {PEAK_RSS_MB:.0f} MB",
    )
