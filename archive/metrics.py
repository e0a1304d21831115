"""Prometheus metrics of the station, in one registry every feature adds to.

Served at ``GET /metrics``. Counters and histograms are process-local; gauges
that describe the catalog (items by state, bytes archived) are computed at
scrape time from the catalog, so every process serving /metrics agrees.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

PIPELINE_SECONDS = Histogram(
    "strongroom_pipeline_step_seconds",
    "Time spent in one pipeline step",
    ["step"],
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TIME_TO_SAFE_SECONDS = Histogram(
    "strongroom_time_to_safe_seconds",
    "From a dock file being claimed to its dock copy being released",
    registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)
ERRORS = Counter(
    "strongroom_errors_total",
    "Errors by where they happened",
    ["where"],
    registry=REGISTRY,
)
ARCHIVED_BYTES = Counter(
    "strongroom_archived_bytes_total",
    "Bytes of originals stored by this process",
    registry=REGISTRY,
)
