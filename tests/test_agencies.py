"""Agencies: an item's unit (dock, file name, correction), who may unlink a
link, and searches as custody events."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select
from test_caselinks import events

from archive.cases import CaseLink
from archive.db import Database
from archive.models import CustodyEvent, Evidence

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

UNITS = """
[units.county]
name = "County"
[units.police]
parent = "county"
[units.city]
parent = "county"
"""
TWO_POLICE_SYSTEMS = {
    "cms-a": ("case-system", ["police"]),
    "cms-b": ("case-system", ["police"]),
    "cms-city": ("case-system", ["city"]),
}


def test_only_the_linker_or_an_admin_unlinks(station, api):
    handle = api(UNITS, TWO_POLICE_SYSTEMS)
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"owned " * 4000)
    evidence_id = item["evidence_id"]
    station.cli("unit", "set", evidence_id, "police", "--reason", "recorder of the police")
    path = f"/v1/cases/P-1/evidence/{evidence_id}"

    assert handle.request("PUT", path, "cms-city", json={"reason": "not ours"}).status_code == 404
    linked = handle.request("PUT", path, "cms-a", json={"reason": "complaint"})
    assert linked.status_code == 200 and linked.json()["legal_hold"] is True
    [link] = handle.get("/v1/cases/P-1", "cms-b").json()["items"]
    assert link["link"]["linked_by"] == "token:cms-a-client"
    assert link["link"]["linked_scope"] == {"units": ["police"]}

    # another case system of the same agency sees the link but may not undo it
    refused = handle.request("DELETE", path, "cms-b", params={"reason": "mine now"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_link_owner"
    assert events(station, "unlinked", evidence_id) == []
    assert handle.get("/v1/cases/P-1", "cms-a").json()["total"] == 1

    # an admin may, and the override is its own kind of event
    done = handle.request("DELETE", path, "admin", params={"reason": "linked in error"})
    assert done.status_code == 200 and done.json()["changed"] is True
    [override] = events(station, "unlinked_by_admin", evidence_id)
    assert override.actor == "token:admin-client"
    assert override.details["linked_by"] == "token:cms-a-client"
    assert override.details["reason"] == "linked in error"
    assert events(station, "unlinked", evidence_id) == []

    # the linker itself unlinks with a plain "unlinked"; the CLI acts as admin
    handle.request("PUT", path, "cms-a", json={"reason": "again"})
    mine = handle.request("DELETE", path, "cms-a", params={"reason": "closed"})
    assert mine.status_code == 200 and len(events(station, "unlinked", evidence_id)) == 1
    handle.request("PUT", path, "cms-a", json={"reason": "once more"})
    station.cli("unlink", "P-1", evidence_id, "--reason", "operator override")
    assert len(events(station, "unlinked_by_admin", evidence_id)) == 2


def test_dock_unit_and_a_correction_survive_a_rebuild(station, tmp_path):
    dock = station.root / "dock-police"
    dock.mkdir()
    station.write_config(
        f'{UNITS}\n[[docks]]\npath = "dock-police"\nunit = "police"\nname_profile = "day_folder"\n'
    )
    # the folder layout names a unit; the dock's own unit wins, the name's is kept
    source = dock / "000000000042" / "012345" / "20260301" / "DEV1_083015.MP4"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"dock unit " * 4000)
    [item] = json.loads(station.cli("ingest", str(source), "--json").stdout)["items"]
    evidence_id = item["evidence_id"]
    assert item["unit"] == "police"
    raw = station.s3.get_object(Bucket=station.bucket, Key=item["manifest_key"])["Body"].read()
    signed = json.loads(base64.b64decode(json.loads(raw)["payload"]))["source"]
    assert (signed["unit"], signed["unit_source"], signed["name_unit"]) == (
        "police",
        "dock",
        "000000000042",
    )

    refused = station.cli("unit", "set", evidence_id, "nowhere", "--reason", "x", check=False)
    assert refused.returncode != 0 and "configured" in refused.stdout + refused.stderr
    station.cli("unit", "set", evidence_id, "city", "--reason", "brought by city inspectors")
    [event] = events(station, "unit_corrected", evidence_id)
    assert event.details == {"old": "police", "new": "city", "reason": "brought by city inspectors"}

    station.cli("ledger", "checkpoint")
    target = tmp_path / "rebuilt.db"
    summary = json.loads(station.cli("catalog", "rebuild", "--into", str(target), "--json").stdout)
    assert summary["ok"] is True, summary["problems"]
    db = Database(f"sqlite:///{target}")
    try:
        with db.session() as session:
            assert session.get(Evidence, evidence_id).unit == "city"
            assert session.scalars(select(CaseLink)).all() == []
    finally:
        db.dispose()


def test_cli_find_is_one_search_event(station):
    station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"find me " * 3000)
    station.cli("find", "--officer", "012345", "--unit", "police", "--json")
    archive = station.archive()
    try:
        with archive.db.session() as session:
            searches = list(
                session.scalars(select(CustodyEvent).where(CustodyEvent.kind == "searched"))
            )
    finally:
        archive.close()
    [search] = searches
    assert search.actor.startswith("os:") and search.evidence_id is None
    assert search.details["filters"] == {"officer": "012345", "unit": "police", "limit": 1000}
    assert search.details["via"] == "cli"


def test_a_token_naming_an_unknown_unit_is_a_configuration_error():
    from config.settings import ConfigError, Settings
    from frontdoors.api.auth import TokenBook, hash_token

    def book(units: list[str]) -> TokenBook:
        token = {"name": "cms", "role": "case-system", "sha256": hash_token("x"), "units": units}
        return TokenBook(
            Settings(units={"police": {}, "city": {}}, api={"tokens": [token]})  # type: ignore[arg-type]
        )

    assert book(["police"]).lookup("x").scope.units == frozenset({"police"})
    with pytest.raises(ConfigError, match="polcie"):
        book(["polcie"])
