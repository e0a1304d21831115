"""Station health: every daemon writes a heartbeat row, `status --stations`
renders them and flags a silent station, /metrics exports them, and the
Prometheus alert rules in deploy/prometheus are tested with promtool against
the metric names a running API really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import wait_until
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from archive.context import Archive
from archive.db import utcnow
from archive.fixity_models import FixityRecord
from archive.heartbeat import record
from archive.heartbeat_models import StationHeartbeat
from archive.models import IngestJob
from ingest.heartbeat import measure

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES_FILE = RULES / "strongroom-rules.yml"
RULES_TEST = RULES / "strongroom-rules.test.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not found: it comes with Debian's `prometheus` package, which "
            "`make setup` installs (apt-get install prometheus)"
        )
    return path


def rule_metric_names(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        if line.strip().startswith("expr:"):
            names |= set(re.findall(r"\bstrongroom_[a-z0-9_]+", line))
    return names


def test_every_alert_rule_passes_its_promtool_test():
    result = subprocess.run(
        [promtool(), "test", "rules", RULES_TEST.name],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_rule_is_needed_by_its_test(tmp_path):
    """Without any one of the rules the promtool tests fail: each rule is tested."""
    text = RULES_FILE.read_text(encoding="utf-8")
    head, *rules = re.split(r"(?m)^(?=      - alert: )", text)
    assert len(rules) == 6
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    for n, rule in enumerate(rules):
        name = re.search(r"alert: (\w+)", rule).group(1)
        (tmp_path / RULES_FILE.name).write_text(
            head + "".join(r for i, r in enumerate(rules) if i != n), encoding="utf-8"
        )
        result = subprocess.run(
            [promtool(), "test", "rules", RULES_TEST.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0, f"the tests pass without {name}"
        assert name in result.stdout + result.stderr


@pytest.mark.catalogs("sqlite", "postgresql")
def test_the_daemon_writes_heartbeats_and_a_silent_station_is_flagged(station):
    station.write_config("\n[heartbeat]\nseconds = 1\nsilent_after_seconds = 120\n")
    daemon = station.start_daemon()
    try:
        first = wait_until(
            lambda: json.loads(station.cli("status", "--stations", "--json").stdout)["stations"],
            timeout=90,
            message="the first heartbeat",
        )
        wait_until(
            lambda: (
                json.loads(station.cli("status", "--stations", "--json").stdout)["stations"][0][
                    "last_seen"
                ]
                != first[0]["last_seen"]
            ),
            timeout=60,
            message="a second heartbeat",
        )
    finally:
        assert daemon.stop() == 0, daemon.output()
    document = json.loads(station.cli("status", "--stations", "--json").stdout)
    [beat] = document["stations"]
    assert beat["station"] == station.name and beat["silent"] is False
    assert beat["version"] and beat["pid"] == daemon.process.pid
    [(label, dock)] = beat["docks"].items()
    assert label == "dock"
    assert dock["path"] == str(station.dock) and 0 < dock["free_bytes"] <= dock["size_bytes"]
    assert beat["queue_depth"] == 0 and beat["oldest_unarchived_seconds"] is None
    assert 0 < beat["store_latency_seconds"] < 10
    assert abs(beat["clock_offset_seconds"]) < 5  # the store runs on this machine's clock
    assert document["troubled"] == []

    # the daemon is gone: once its last heartbeat is older than silent_after_seconds, say so
    archive = station.archive()
    try:
        with archive.db.session() as session:
            session.execute(update(StationHeartbeat).values(at=utcnow() - timedelta(minutes=11)))
    finally:
        archive.close()
    shown = station.cli("status", "--stations", check=False)
    assert shown.returncode == 1
    assert "SILENT" in shown.stderr and station.name in shown.stderr
    silent = json.loads(station.cli("status", "--stations", "--json", check=False).stdout)
    assert silent["troubled"] == [station.name]
    assert silent["stations"][0]["problems"][0].startswith("silent for 6")


@pytest.mark.catalogs("sqlite", "postgresql")
def test_oldest_waiting_file_counts_from_its_file_time(station):
    """A job still before its seal counts in the queue and as the oldest waiting."""
    archive = station.archive()
    try:
        hours_ago = utcnow() - timedelta(hours=21)
        with archive.db.session() as session:
            session.add(
                IngestJob(
                    station=station.name,
                    dock="dock",
                    dock_root=str(station.dock),
                    source_path=str(station.dock / "a.MP4"),
                    spool_path=str(station.dock / ".strongroom" / "spool" / "1"),
                    after_archive="delete",
                    display_name="a.MP4",
                    state="claimed",
                    mtime_ns=int(hours_ago.timestamp() * 1e9),
                    first_seen_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        spool = station.dock / ".strongroom" / "spool"
        spool.mkdir(parents=True)
        (spool / "1").write_bytes(b"x" * 4096)
        beat = measure(archive)
        record(archive.db, beat)
    finally:
        archive.close()
    assert beat.queue_depth == 1 and beat.spool_bytes == 4096
    assert 21 * 3600 - 60 < beat.oldest_unarchived_seconds < 21 * 3600 + 60
    shown = json.loads(station.cli("status", "--stations", "--json", check=False).stdout)
    assert any("deadline 24 h" in p for p in shown["stations"][0]["problems"])


@pytest.mark.catalogs("sqlite", "postgresql")
def test_metrics_export_every_name_the_alert_rules_read(station, api):
    """Scrape a running API after a real heartbeat (measured against the real
    store) and a failed fixity record: every metric an alert reads is there."""
    handle = api()
    archive = station.archive()
    try:
        record(archive.db, measure(archive))
        with archive.db.session() as session:
            session.add(
                FixityRecord(
                    evidence_id="ev-none",
                    last_checked_at=utcnow(),
                    result="failed",
                    problems=[],
                    bytes_read=0,
                )
            )
    finally:
        archive.close()
    scraped = handle.get("/metrics", "auditor")
    assert scraped.status_code == 200, scraped.text
    families = list(text_string_to_metric_families(scraped.text))
    exported = {f.name for f in families} | {
        f.name + "_total" for f in families if f.type == "counter"
    }
    samples = {s.name: s for f in families for s in f.samples}
    wanted = rule_metric_names(RULES_FILE.read_text(encoding="utf-8"))
    assert len(wanted) >= 6
    assert wanted <= exported, f"rules read metrics /metrics lacks: {wanted - exported}"
    for name in wanted - {"strongroom_fixity_failures_total"}:  # a process-local counter
        assert name in samples, f"{name} has no sample"
    assert samples["strongroom_fixity_failed_items"].value == 1
    stamp = samples["strongroom_station_heartbeat_timestamp_seconds"]
    assert stamp.labels == {"station": station.name}
    assert abs(samples["strongroom_station_clock_offset_seconds"].value) < 5
    assert samples["strongroom_dock_free_bytes"].labels == {"station": station.name, "dock": "dock"}


@pytest.mark.catalogs("sqlite", "postgresql")
def test_a_store_that_does_not_answer_is_in_the_heartbeat_not_a_missing_one(station):
    settings = station.settings()
    dead = settings.model_copy(
        update={"store": settings.store.model_copy(update={"endpoint_url": "http://127.0.0.1:9"})}
    )
    archive = Archive.open(dead)
    try:
        beat = measure(archive)
        record(archive.db, beat)
    finally:
        archive.close()
    assert beat.store_latency_seconds is None and beat.clock_offset_seconds is None
    assert beat.store_error
    shown = json.loads(station.cli("status", "--stations", "--json", check=False).stdout)
    [row] = shown["stations"]
    assert row["silent"] is False and row["store_error"] == beat.store_error[:500]
    assert any(p.startswith("store: ") for p in row["problems"])
