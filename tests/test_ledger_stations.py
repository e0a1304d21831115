"""One custody ledger for the whole archive: four station processes record 500
custody events each at once on one PostgreSQL catalog, checkpointing as they
go; the ledger has every event exactly once, at gap-free indices, and every
checkpoint, inclusion and consistency proof verifies."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from archive import ledger
from archive.ledger_models import LedgerCheckpoint
from archive.merkle import consistency_proof, leaf_hash, verify_consistency
from archive.models import CustodyEvent

pytestmark = pytest.mark.catalogs("postgresql")

STATIONS = 4
EVENTS = 500

WRITER = """
import sys
from pathlib import Path
from archive import ledger
from archive.context import Archive
from archive.custody import record_event
from config.settings import load_settings

config, evidence_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
archive = Archive.open(load_settings(Path(config)))
for n in range(count):
    with archive.db.session() as session:
        record_event(
            session, "viewed", actor=f"station:{archive.station}", evidence_id=evidence_id,
            details={"n": n, "station": archive.station},
        )
    if n % 100 == 99:
        ledger.checkpoint(archive)  # sequencers of four stations race each other
archive.close()
print("done", flush=True)
"""


def test_four_stations_500_events_each_one_gap_free_ledger(station, tmp_path):
    # one archive-wide ledger key name, whichever station's sequencer signs
    station.write_config('[ledger]\nkey_name = "strongroom-county"\n')
    folder = tmp_path / "items"
    folder.mkdir()
    for n in range(STATIONS):
        (folder / f"item-{n}.bin").write_bytes(f"item {n}".encode())
    items = json.loads(station.cli("ingest", str(folder), "--json").stdout)["items"]
    ids = sorted(item["evidence_id"] for item in items)

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(station.config), ids[n], str(EVENTS)],
            cwd=station.root,
            env={**os.environ, **station.env, "STRONGROOM_STATION__NAME": f"dock-{n + 1:02d}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(STATIONS)
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=600)
        assert writer.returncode == 0 and "done" in out, err[-3000:]

    station.cli("ledger", "checkpoint")
    audit = json.loads(station.cli("ledger", "audit", "--json").stdout)
    assert audit["ok"], audit

    archive = station.archive()
    try:
        with archive.db.session() as session:
            rows = session.execute(
                select(CustodyEvent.ledger_index, CustodyEvent.leaf, CustodyEvent.details).where(
                    CustodyEvent.kind == "viewed"
                )
            ).all()
            indices = [
                index
                for index in session.scalars(
                    select(CustodyEvent.ledger_index).order_by(CustodyEvent.ledger_index)
                )
            ]
            leaves = list(
                session.scalars(select(CustodyEvent.leaf).order_by(CustodyEvent.ledger_index))
            )
            signed = list(
                session.execute(
                    select(LedgerCheckpoint.size, LedgerCheckpoint.root_hash).order_by(
                        LedgerCheckpoint.size
                    )
                )
            )
        # every event once, every index once, none skipped
        assert len(rows) == STATIONS * EVENTS
        per_station = {(r.details["station"], r.details["n"]) for r in rows}
        assert len(per_station) == STATIONS * EVENTS
        assert indices == list(range(len(indices)))

        # inclusion: every item's leaves against the latest checkpoint
        for evidence_id in ids:
            proof = ledger.proof_document(archive, evidence_id)  # verifies each proof
            assert len(proof["leaves"]) >= EVENTS

        # consistency: each signed checkpoint extends the one before
        hashes = [leaf_hash(leaf) for leaf in leaves]
        assert len(signed) >= STATIONS  # the stations' sequencers all took turns
        for (old_size, old_root), (new_size, new_root) in itertools.pairwise(signed):
            verify_consistency(
                old_size,
                new_size,
                bytes.fromhex(old_root),
                bytes.fromhex(new_root),
                consistency_proof(hashes, old_size, new_size=new_size),
            )
    finally:
        archive.close()
