"""What ``strongroom show``, ``find`` and ``status`` print, for a machine and for a person.

The ``--json`` documents are a contract (other systems parse them): their shape
– every key, every value's type and the form of every time – is pinned in
``fixtures/cli_documents.json``, recorded before the documents moved to
``verify/documents.py``. The human output is read as an officer at an 80-column
terminal would read it: whole evidence ids, times in station time with the
zone, no Python reprs, no raw JSON.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "fixtures" / "cli_documents.json"
ZONE = {"STRONGROOM_STATION__TIMEZONE": "Asia/Shanghai"}
FIRST = "ABC1234_012345_20260301083015_0001.MP4"
SECOND = "XYZ9876_054321_20260302090000_0001_IMP.MP4"

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(?P<zone>Z|[+-]\d\d:\d\d)?$")
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")


def shape(value: object) -> object:
    """The structure of a JSON value: keys, types, and the form of each time string."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(shape(item), sort_keys=True) for item in value})
    if isinstance(value, str):
        if match := _TIME.match(value):
            return f"time{match['zone'] or ''}"
        return "date" if _DATE.match(value) else "str"
    return type(value).__name__


@pytest.fixture(scope="module")
def archived(module_station):
    """Two items (one marked important, one linked to a case and sighted twice)."""
    station = module_station
    station.env.update(ZONE)
    first = station.ingest_bytes(FIRST, b"one" * 3000)
    second = station.ingest_bytes(SECOND, b"two" * 3000)
    station.ingest_bytes("again.MP4", b"one" * 3000)  # a re-drop: a sighting
    station.cli("link", "K-1", first["evidence_id"], "--reason", "pinned")
    return station, first["evidence_id"], second["evidence_id"]


def documents(station, first: str, second: str) -> dict[str, object]:
    def run(*args: str) -> object:
        return json.loads(station.cli(*args, "--json").stdout)

    status = run("status")
    status.pop("catalog_check", None)  # written by whichever command checked last
    return {
        "show_linked": shape(run("show", first)),
        "show_important": shape(run("show", second)),
        "find": shape(run("find")),
        "find_case": shape(run("find", "--case", "K-1")),
        "status": shape(status),
    }


def test_json_documents_keep_their_shape(archived):
    station, first, second = archived
    got = documents(station, first, second)
    if os.environ.get("STRONGROOM_PIN_DOCUMENTS"):  # recording the pin, once
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for name in want:
        assert got[name] == want[name], f"the --json document of {name} changed"


def test_show_json_keeps_its_values(archived):
    station, first, _ = archived
    shown = json.loads(station.cli("show", first, "--json").stdout)
    assert shown["recorded_start"] == "2026-03-01T00:30:15+00:00"  # 08:30:15 in Shanghai
    assert shown["officer"] == "012345" and shown["device"] == "ABC1234"
    assert [c["case_id"] for c in shown["cases"]] == ["K-1"]
    assert len(shown["sightings"]) == 1


def test_find_at_80_columns_prints_whole_ids_that_show_accepts(archived):
    station, first, second = archived
    table = station.cli("find", env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in table.splitlines()) <= 80, table
    printed = re.findall(r"\bev-[0-9a-z]+\b", table)
    assert sorted(printed) == sorted([first, second]), table
    for evidence_id in printed:  # copied from the table into `show`
        assert station.cli("show", evidence_id).returncode == 0


def test_find_shows_recording_times_in_station_time(archived):
    station, _, _ = archived
    table = station.cli("find", env={"COLUMNS": "200"}).stdout
    assert "2026-03-01 08:30:15 CST" in table, table


def test_show_reads_as_sections_in_station_time_without_reprs(archived):
    station, first, _ = archived
    text = station.cli("show", first, env={"COLUMNS": "120"}).stderr
    for repr_mark in ("{'", "['", "None", "True", "False"):
        assert repr_mark not in text, f"{repr_mark!r} printed by show:\n{text}"
    for title in ("original", "source", "retention", "case links", "playback copies", "events"):
        assert re.search(rf"^\s*{title}\b", text, re.MULTILINE), f"no {title} section:\n{text}"
    assert "2026-03-01 08:30:15 CST" in text  # the recording's start, in station time
    assert first in text and "K-1" in text


def test_status_prints_no_raw_json(archived):
    station, _, _ = archived
    text = station.cli("status", env={"COLUMNS": "120"}).stderr
    for mark in ('{"', "{'", "None", "True", "False"):
        assert mark not in text, f"{mark!r} printed by status:\n{text}"
    for title in ("jobs", "evidence", "fixity", "ledger", "derivatives", "daemon"):
        assert re.search(rf"^\s*{title}\b", text, re.MULTILINE), f"no {title}:\n{text}"
