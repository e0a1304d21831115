"""Stations sharing one PostgreSQL catalog split a fixity sweep: each due item
is checked by exactly one of them (``verify.fixity._claim``: FOR UPDATE SKIP
LOCKED while checking, and the last check compared with the plan)."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from datetime import timedelta

import pytest
from ingest_helpers import catalog_rows

from verify.fixity import sweep

pytestmark = pytest.mark.catalogs("postgresql")

ITEMS = 9


def test_three_stations_split_one_sweep_each_item_checked_once(station, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(ITEMS):
        (folder / f"item-{n}.bin").write_bytes(os.urandom(1 << 20))  # a check takes a while
    ingested = json.loads(station.cli("ingest", str(folder), "--json").stdout)["items"]
    ids = {item["evidence_id"] for item in ingested}
    assert len(ids) == ITEMS

    nodes = [station.archive() for _ in range(3)]
    barrier = threading.Barrier(len(nodes))
    runs: list = [None] * len(nodes)

    def node(index: int) -> None:
        barrier.wait()
        # as the daemons' scheduled job runs it (scheduled_sweep): half an interval
        runs[index] = sweep(nodes[index], trigger="schedule", fresh_within=timedelta(minutes=30))

    threads = [threading.Thread(target=node, args=(i,)) for i in range(len(nodes))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        for archive in nodes:
            archive.close()

    query = "SELECT evidence_id FROM custody_events WHERE kind = :k"
    checked = Counter(r["evidence_id"] for r in catalog_rows(station, query, k="fixity_checked"))
    assert checked == dict.fromkeys(ids, 1), checked
    assert sum(len(run.items) for run in runs) == ITEMS
    assert not any(run.failed for run in runs)
    # the work was shared, not done by one node while the others waited
    assert sum(1 for run in runs if run.items) >= 2, [len(run.items) for run in runs]
