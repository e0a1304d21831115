"""Prometheus metrics of the station, in one registry every feature adds to.

Served at ``GET /metrics``. Counters and histograms are process-local; gauges
that describe the catalog (items by state, bytes archived) are computed at
scrape time from the catalog, so every process serving /metrics agrees.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
FIXITY_FAILURES = Counter(
    "strongroom_fixity_failures_total",
    "Failed fixity checks, by the check that failed",
    ["check"],
    registry=REGISTRY,
)
FIXITY_ITEMS = Counter(
    "strongroom_fixity_items_total",
    "Evidence items checked by fixity sweeps and verify, by result",
    ["result"],
    registry=REGISTRY,
)
FIXITY_BYTES = Counter(
    "strongroom_fixity_bytes_total",
    "Bytes re-read from the store and re-hashed by fixity checks",
    registry=REGISTRY,
)
FIXITY_UNRESOLVED = Gauge(
    "strongroom_fixity_unresolved_items",
    "Evidence items whose latest fixity check failed (as of this process's last sweep)",
    registry=REGISTRY,
)
LEDGER_SIZE = Gauge(
    "strongroom_ledger_checkpoint_size",
    "Tree size of the latest checkpoint this process signed",
    registry=REGISTRY,
)
DERIVATIVES = Counter(
    "strongroom_derivatives_total",
    "Playback-copy attempts finished by this process, by result",
    ["result"],
    registry=REGISTRY,
)
DERIVATIVE_SECONDS = Histogram(
    "strongroom_derivative_seconds",
    "Wall time of one playback copy (download, verify, ffmpeg, store, seal), by action",
    ["action"],
    registry=REGISTRY,
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600),
)
API_REQUESTS = Counter(
    "strongroom_api_requests_total",
    "HTTP API requests by route template and status code",
    ["route", "status"],
    registry=REGISTRY,
)
API_SECONDS = Histogram(
    "strongroom_api_request_seconds",
    "HTTP API request duration by route template",
    ["route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
)
RETENTION_CHANGES = Counter(
    "strongroom_retention_changes_total",
    "Retention category changes made by this process, by new category",
    ["category"],
    registry=REGISTRY,
)
DISPOSITION_PLANS = Counter(
    "strongroom_disposition_plans_total",
    "Disposition plans written by retention sweeps of this process",
    registry=REGISTRY,
)
DISPOSED = Counter(
    "strongroom_disposed_total",
    "Disposition results of this process: items disposed, skipped or failed, and objects deleted",
    ["result"],
    registry=REGISTRY,
)
FAULT_ACTIVE = Gauge(
    "strongroom_fault_active",
    "1 while a fault from outside the code (disk full, store, catalog, I/O) stops a loop",
    ["kind", "where"],
    registry=REGISTRY,
)
FAULTS = Counter(
    "strongroom_faults_total",
    "Occurrences of faults from outside the code, by kind",
    ["kind"],
    registry=REGISTRY,
)
STORE_ANSWERING = Gauge(
    "strongroom_store_answering",
    "1 while the store answers the daemon's health probe, 0 while it does not",
    registry=REGISTRY,
)
CLAIMING_PAUSED = Gauge(
    "strongroom_claiming_paused",
    "1 while a dock's new files wait because free space is below its floor",
    ["dock"],
    registry=REGISTRY,
)
IGNORED_FILES = Gauge(
    "strongroom_dock_ignored_files",
    "Names in a dock matching its ignore patterns at the last full scan",
    ["dock"],
    registry=REGISTRY,
)
