"""The catalog cost of one file stays where the stations benchmark measured it.

A PostgreSQL catalog pays a network round trip for every statement, BEGIN
and COMMIT, so a transaction or statement added per file costs every station
of a county (``bench/results/*-stations.md``). The pipeline's own path is
run here as the daemon runs it – files registered in one commit, each job
handed to its worker as registered – one job at a time, so no group commit
hides a transaction, and every catalog call is counted
(``bench.sqlcount.CatalogCounter``). Adding a transaction or a statement per
file fails this test; lowering the cost is a reason to lower the numbers.
"""

from __future__ import annotations

import os

import pytest

from bench.sqlcount import CatalogCounter
from ingest.pipeline import Pipeline
from ingest.scan import Candidate, inspect_path

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

FILES = 12
#: per file, one at a time: CLAIMED, STORED, SEALED, RELEASED commits, and the
#: register commit shared by the batch (1/FILES); two evidence lookups and no
#: read of the job back run outside any transaction (``Database.read``)
MAX_TRANSACTIONS_PER_FILE = 4 + 1 / FILES
MAX_STATEMENTS_PER_FILE = 14.5
#: statements + BEGIN + COMMIT of each transaction (what PostgreSQL pays)
MAX_ROUND_TRIPS_PER_FILE = 23


def test_a_file_costs_at_most_the_stated_transactions_statements_and_round_trips(station):
    station.dock.mkdir(exist_ok=True)
    for n in range(FILES):
        (station.dock / f"ABC1234_012345_2026030108{n:02d}00_0001.MP4").write_bytes(
            os.urandom(50_000 + n)
        )
    archive = station.archive()
    pipeline = Pipeline(archive)
    try:
        dock = archive.settings.docks[0]
        root = archive.settings.dock_path(dock)
        candidates = [inspect_path(os.fspath(p), root, dock.ignore) for p in root.iterdir()]
        assert all(isinstance(c, Candidate) for c in candidates)
        counter = CatalogCounter().attach(archive.db.engine)
        jobs = pipeline.register_for_workers(dock, candidates)
        outcomes = [pipeline.advance(job) for job in jobs]
        counts = counter.snapshot()
    finally:
        pipeline.close()
        archive.close()
    assert [o.state for o in outcomes] == ["released"] * FILES, outcomes
    per_file = {name: value / FILES for name, value in counts.items()}
    print(f"catalog cost per file ({station.backend}): {per_file}")
    assert per_file["transactions"] <= MAX_TRANSACTIONS_PER_FILE, per_file
    assert per_file["statements"] <= MAX_STATEMENTS_PER_FILE, per_file
    assert per_file["round_trips"] <= MAX_ROUND_TRIPS_PER_FILE, per_file
    # pooled connections are reused: the check at checkout (no ping) replaces none
    # that is still good
    assert counts["connects"] <= 2, counts
