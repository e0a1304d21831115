"""What `strongroom ingest` leaves in the catalog: custody events in the order
things happened, and job rows equal to what the pipeline reported.

The pipeline writes its catalog rows with Core statements and keeps each job
in memory between steps; these tests pin that the rows and events are those
the ORM path wrote (with one fix: an item's "sealed" comes before its
"released")."""

from __future__ import annotations

import json

import pytest
from ingest_helpers import as_json, catalog_rows, jobs

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def _kinds_by_item(station) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for row in catalog_rows(station, "SELECT kind, details FROM custody_events ORDER BY seq"):
        path = as_json(row["details"]).get("path")
        kinds.setdefault(path, []).append(row["kind"])
    return kinds


def test_events_in_order_and_jobs_as_reported(station, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"first" * 3000)
    (folder / "b.bin").write_bytes(b"second" * 3000)
    (folder / "c.bin").write_bytes(b"second" * 3000)  # the same bytes: a sighting
    (folder / "empty.bin").write_bytes(b"")
    result = station.cli("ingest", str(folder), "--json")
    items = {item["file"]: item for item in json.loads(result.stdout)["items"]}
    assert sorted(i["state"] for i in items.values()) == [
        "duplicate",
        "released",
        "released",
        "released",
    ]

    events = catalog_rows(
        station, "SELECT kind, evidence_id, details FROM custody_events ORDER BY seq"
    )
    for item in items.values():
        if item["state"] != "released":
            continue
        # the item's seal and its release are one commit: "sealed", then "released"
        at = next(
            i
            for i, e in enumerate(events)
            if e["kind"] == "sealed" and e["evidence_id"] == item["evidence_id"]
        )
        after = events[at + 1]
        assert after["kind"] == "released", (item["file"], after)
        assert as_json(after["details"])["path"] == item["file"]
        stored = [e for e in events[:at] if e["kind"] == "stored"]
        assert any(e["evidence_id"] == item["evidence_id"] for e in stored)
    kinds = _kinds_by_item(station)
    (duplicate,) = [name for name, item in items.items() if item["state"] == "duplicate"]
    assert kinds[duplicate] == ["claimed", "sighted", "released"], kinds
    assert all(k[0] == "claimed" for path, k in kinds.items() if path), kinds

    rows = {row["display_name"]: row for row in jobs(station)}
    assert set(rows) == set(items)
    for name, row in rows.items():
        assert row["state"] == items[name]["state"]
        assert row["id"] == items[name]["job"]
        assert row["evidence_id"] == items[name]["evidence_id"]
        assert row["last_error"] is None and row["next_attempt_at"] is None
        assert row["released_at"] is not None and row["attempts"] == 0
        # a single PUT has no part digests: SQL NULL, not the JSON text 'null'
        assert row["part_digests"] is None and row["part_size"] is None
    assert "empty" in as_json(rows["empty.bin"]["flags"])
    assert len(catalog_rows(station, "SELECT * FROM evidence")) == 3
