"""Dispatch incidents link the footage recorded inside their windows to their cases.

Real store, real catalogs (SQLite and PostgreSQL): the links hold the objects
in the store like any link, matching runs whether the incident or the footage
arrives first, recorder clocks may be off by the configured slack and no more,
an incident links only its own unit's items, proposals wait for a person when
configured, a CSV import is all-or-nothing and idempotent.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import wait_until
from sqlalchemy import func, select
from test_caselinks import events, hold_of

from archive.cases import CaseLink
from archive.incident_models import IncidentMatch
from archive.incidents import IncidentRefused, read_csv
from archive.models import CustodyEvent, Evidence
from config.settings import Settings

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

UNITS = """
[units.county]
[units.police]
parent = "county"
[units.city]
parent = "county"
"""
HEADER = "incident_id,case_id,officer_ids,unit,start,end\n"


def configure(station, extra: str = "") -> None:
    """Two docks: one of the police, one of the city (items take the dock's unit)."""
    for name in ("dock-police", "dock-city"):
        (station.root / name).mkdir(exist_ok=True)
    station.write_config(
        f"{extra}\n{UNITS}\n"
        '[[docks]]\npath = "dock-police"\nunit = "police"\nsettle_seconds = 0.5\n'
        '[[docks]]\npath = "dock-city"\nunit = "city"\nsettle_seconds = 0.5\n'
    )


def ingest(station, dock: str, files: dict[str, bytes]) -> dict[str, str]:
    """Archive ``files`` through the dock (one command); returns name → evidence id."""
    folder = station.root / dock / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    items = json.loads(station.cli("ingest", str(folder), "--json").stdout)["items"]
    return {item["file_name"]: item["evidence_id"] for item in items}


def clip(officer: str, hhmmss: str, tag: str) -> tuple[str, bytes]:
    """A recording by ``officer`` started at 2026-03-01 ``hhmmss`` (recorder local time)."""
    return (
        f"ABC1234_{officer}_20260301{hhmmss}_0001.MP4",
        f"{tag} {officer} {hhmmss} ".encode() * 3000,
    )


def write_csv(station, name: str, rows: list[str]) -> str:
    path = station.root / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return str(path)


def links(station) -> set[tuple[str, str, str]]:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return {
                (row.case_id, row.evidence_id, row.linked_by)
                for row in session.scalars(select(CaseLink))
            }
    finally:
        archive.close()


def count(station, model, *where) -> int:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    finally:
        archive.close()


def legal_hold(station, evidence_id: str) -> bool:
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return session.get(Evidence, evidence_id).legal_hold
    finally:
        archive.close()


def test_incidents_imported_after_the_footage_link_it_within_window_slack_and_unit(station):
    """Overlapping incidents and an officer on two of them: the clip goes to both
    cases. A clock 4 min off (slack 5) still matches, 7 min off does not;
    another officer, another time, and the same officer's clip in the city's
    dock (out of the police incident's scope) are left alone."""
    configure(station, "[incidents]\nslack_minutes = 5\n")
    files = dict(
        [
            clip("012345", "083015", "both"),  # in INC-1 and INC-2
            clip("012345", "111000", "later"),  # outside every window
            clip("099999", "083100", "other"),  # not an officer of either
            clip("012345", "103400", "drift-in"),  # 4 min after INC-3 ends
            clip("012345", "095300", "drift-out"),  # 7 min before INC-3 starts
        ]
    )
    ids = ingest(station, "dock-police", files)
    city = ingest(station, "dock-city", dict([clip("012345", "083020", "city")]))
    by_tag = {data.split(b" ")[0].decode(): ids[name] for name, data in files.items()}
    assert not links(station)

    path = write_csv(
        station,
        "cad.csv",
        [
            "INC-1,K-1,012345;077777,police,2026-03-01T08:00:00+08:00,2026-03-01T09:00:00+08:00",
            "INC-2,K-2,012345,police,2026-03-01T08:20:00+08:00,2026-03-01T08:40:00+08:00",
            "INC-3,K-3,012345,police,2026-03-01T10:00:00+08:00,2026-03-01T10:30:00+08:00",
            "INC-4,,012345,police,2026-03-01T08:00:00+08:00,2026-03-01T12:00:00+08:00",
        ],
    )
    done = json.loads(station.cli("incidents", "import", path, "--json").stdout)
    assert done["created"] == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert done["matching_deferred"] is None
    rule = "rule:incident-window"
    assert links(station) == {
        ("K-1", by_tag["both"], rule),
        ("K-2", by_tag["both"], rule),
        ("K-3", by_tag["drift-in"], rule),
    }
    assert next(iter(city.values())) not in {e for _, e, _ in links(station)}

    # the link holds the original in the store, and the ledger says who and why
    archive = station.archive()
    try:
        with archive.db.session() as session:
            item = session.get(Evidence, by_tag["both"])
            key, version = item.original_key, item.original_version_id
    finally:
        archive.close()
    assert hold_of(station, key, version) == "ON"
    linked = events(station, "linked", by_tag["both"])
    assert {e.details["case_id"] for e in linked} == {"K-1", "K-2"}
    assert all(e.actor == rule and "incident INC-" in e.details["reason"] for e in linked)
    assert not legal_hold(station, by_tag["later"])

    # the same file again: nothing new, nothing recorded twice
    before = count(station, CustodyEvent)
    again = json.loads(station.cli("incidents", "import", path, "--json").stdout)
    assert (again["created"], again["updated"], again["matches"]) == ([], [], [])
    assert sorted(again["unchanged"]) == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert count(station, CustodyEvent) == before

    # a person's unlink is not undone by the rule when the incident changes
    station.cli("unlink", "K-3", by_tag["drift-in"], "--reason", "not this call")
    widened = path.replace("cad.csv", "cad2.csv")
    write_csv(
        station,
        "cad2.csv",
        ["INC-3,K-3,012345,police,2026-03-01T09:50:00+08:00,2026-03-01T10:30:00+08:00"],
    )
    result = json.loads(station.cli("incidents", "import", widened, "--json").stdout)
    assert result["updated"] == ["INC-3"]
    assert [m["evidence_id"] for m in result["matches"]] == [by_tag["drift-out"]]
    assert ("K-3", by_tag["drift-in"], rule) not in links(station)
    assert ("K-3", by_tag["drift-out"], rule) in links(station)


def test_footage_sealed_after_the_incident_is_proposed_then_confirmed_or_rejected(station):
    """With confirm = true the rule only proposes; a person confirms (the link is
    theirs, the hold follows) or rejects (never proposed again)."""
    configure(station, "[incidents]\nconfirm = true\nslack_minutes = 2\n")
    path = write_csv(
        station,
        "cad.csv",
        ["INC-9,K-9,012345,police,2026-03-01T08:00:00+08:00,2026-03-01T09:00:00+08:00"],
    )
    done = json.loads(station.cli("incidents", "import", path, "--json").stdout)
    assert done["created"] == ["INC-9"] and done["matches"] == []

    ids = ingest(
        station,
        "dock-police",
        dict([clip("012345", "081000", "one"), clip("012345", "084500", "two")]),
    )
    pending = json.loads(station.cli("links", "pending", "--json").stdout)["pending"]
    assert sorted(p["evidence_id"] for p in pending) == sorted(ids.values())
    assert not links(station) and not any(legal_hold(station, e) for e in ids.values())
    proposed = [e for i in ids.values() for e in events(station, "link_proposed", i)]
    assert len(proposed) == 2 and all(e.actor == "rule:incident-window" for e in proposed)

    first, second = pending
    confirmed = json.loads(station.cli("links", "confirm", str(first["id"]), "--json").stdout)
    assert confirmed["state"] == "confirmed" and confirmed["decided_by"].startswith("os:")
    [(case, evidence, by)] = links(station)
    assert (case, evidence) == ("K-9", first["evidence_id"]) and by.startswith("os:")
    assert legal_hold(station, first["evidence_id"])

    station.cli("links", "reject", str(second["id"]), "--reason", "a different call")
    [rejected] = events(station, "link_rejected", second["evidence_id"])
    assert rejected.details["reason"] == "a different call"
    assert json.loads(station.cli("links", "pending", "--json").stdout)["pending"] == []
    refused = station.cli("links", "confirm", str(second["id"]), check=False)
    assert refused.returncode == 1 and "rejected" in refused.stderr
    unknown = station.cli("links", "confirm", "99999", check=False)
    assert unknown.returncode == 1 and "no match 99999" in unknown.stderr

    # the incident changes: the rejected pair is not proposed again
    write_csv(
        station,
        "cad.csv",
        ["INC-9,K-9,012345;054321,police,2026-03-01T08:00:00+08:00,2026-03-01T09:00:00+08:00"],
    )
    again = json.loads(station.cli("incidents", "import", path, "--json").stdout)
    assert again["updated"] == ["INC-9"] and again["matches"] == []
    assert count(station, IncidentMatch) == 2
    assert not legal_hold(station, second["evidence_id"])


def test_a_bad_line_refuses_the_whole_file_and_names_the_line(station):
    configure(station)
    good = "INC-1,K-1,012345,police,2026-03-01T08:00:00+08:00,2026-03-01T09:00:00+08:00"
    path = write_csv(station, "bad.csv", [good, "INC-2,K-2,012345,police,yesterday,today"])
    refused = station.cli("incidents", "import", path, check=False)
    assert refused.returncode == 1
    assert "line 3" in refused.stderr and "start 'yesterday'" in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert json.loads(station.cli("incidents", "list", "--json").stdout)["incidents"] == []

    # a conflict found inside the transaction (a case id replaced) undoes the rows before it
    station.cli("incidents", "import", write_csv(station, "one.csv", [good]))
    conflict = write_csv(
        station,
        "two.csv",
        [
            "INC-5,K-5,012345,police,2026-03-01T10:00:00+08:00,2026-03-01T11:00:00+08:00",
            good.replace("K-1", "K-OTHER"),
        ],
    )
    refused = station.cli("incidents", "import", conflict, check=False)
    assert refused.returncode == 1 and "line 3" in refused.stderr and "K-1" in refused.stderr
    listed = json.loads(station.cli("incidents", "list", "--json").stdout)["incidents"]
    assert [(i["incident_id"], i["case_id"]) for i in listed] == [("INC-1", "K-1")]
    assert count(station, CustodyEvent, CustodyEvent.kind == "incidents_imported") == 1


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("INC-1,K-1,,police,2026-03-01T08:00,2026-03-01T09:00", "officer_ids is empty"),
        ("INC-1,K-1,0123/45,police,2026-03-01T08:00,2026-03-01T09:00", "officer id '0123/45'"),
        ("INC-1,K-1,012345,nowhere,2026-03-01T08:00,2026-03-01T09:00", "configured [units]"),
        ("INC-1,K-1,012345,police,2026-03-01T09:00,2026-03-01T08:00", "before start"),
        ("INC-1,K-1,012345,police,2026-03-01T08:00,2026-03-09T08:00", "longer than 72 hours"),
        ("IN/C,K-1,012345,police,2026-03-01T08:00,2026-03-01T09:00", "incident_id 'IN/C'"),
        ("INC-1,K-1,012345,police,2026-03-01T08:00", "columns where the header has 6"),
        ("INC-1,K-1,012345,police,0001-01-01T00:00,0001-01-01T01:00", "between 2000 and 2200"),
    ],
)
def test_malformed_rows_are_named(tmp_path, row, says, catalog_backend):
    if catalog_backend != "sqlite":
        pytest.skip("reading a CSV does not touch the catalog")
    settings = Settings(units={"police": {}})
    path = tmp_path / "cad.csv"
    ok = "INC-0,K-0,012345,police,2026-03-01T08:00,2026-03-01T09:00"
    path.write_text(HEADER + ok + "\n" + row + "\n", encoding="utf-8")
    with pytest.raises(IncidentRefused) as refused:
        read_csv(settings, path)
    assert str(refused.value).startswith("line 3: ") and says in str(refused.value)


def test_csv_header_duplicates_and_local_times(tmp_path, catalog_backend):
    if catalog_backend != "sqlite":
        pytest.skip("reading a CSV does not touch the catalog")
    settings = Settings()
    path = tmp_path / "cad.csv"
    path.write_text("incident_id,unit\nINC-1,police\n", encoding="utf-8")
    with pytest.raises(IncidentRefused, match=r"line 1: missing column\(s\) case_id, officer_ids"):
        read_csv(settings, path)
    row = "INC-1,,012345 054321,police,2026-03-01T08:00,2026-03-01T09:00"
    path.write_text("\ufeff" + HEADER + row + "\n\n" + row + "\n", encoding="utf-8")
    with pytest.raises(
        IncidentRefused, match=r"line 4: incident INC-1 appears again \(first on line 2\)"
    ):
        read_csv(settings, path)
    path.write_text(HEADER + row + "\n", encoding="utf-8")
    [record], digest = read_csv(settings, path)
    assert record.officers == ("012345", "054321") and record.case_id is None
    assert record.start.isoformat() == "2026-03-01T08:00:00+08:00"  # the station's zone
    assert len(digest) == 64


def test_api_incidents_are_scoped_and_proposals_decided(station, api):
    """A police system posts police incidents only; lists and reads only its
    units'; confirms and rejects only its items' proposals."""
    configure(station, "[incidents]\nconfirm = true\n")
    ids = ingest(station, "dock-police", dict([clip("012345", "083015", "api")]))
    [evidence_id] = ids.values()
    handle = api(
        f"\n[incidents]\nconfirm = true\n{UNITS}\n"
        '[[docks]]\npath = "dock-police"\nunit = "police"\n'
        '[[docks]]\npath = "dock-city"\nunit = "city"\n',
        {"cms-police": ("case-system", ["police"]), "cms-city": ("case-system", ["city"])},
    )
    body = {
        "incident_id": "INC-A",
        "case_id": "K-A",
        "officer_ids": ["012345"],
        "unit": "police",
        "start": "2026-03-01T08:00:00+08:00",
        "end": "2026-03-01T09:00:00+08:00",
    }
    assert handle.request("POST", "/v1/incidents", "auditor", json=body).status_code == 403
    refused = handle.request("POST", "/v1/incidents", "cms-city", json=body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "out_of_scope"
    created = handle.request("POST", "/v1/incidents", "cms-police", json=body)
    assert created.status_code == 201, created.text
    [match] = created.json()["matches"]
    assert (match["evidence_id"], match["state"]) == (evidence_id, "pending")
    same = handle.request("POST", "/v1/incidents", "cms-police", json=body)
    assert same.status_code == 200 and same.json()["status"] == "unchanged"
    bad = handle.request("POST", "/v1/incidents", "cms-police", json={**body, "end": "soon"})
    assert bad.status_code == 422 and "end 'soon'" in bad.json()["error"]["message"]
    taken = handle.request("POST", "/v1/incidents", "cms-city", json={**body, "unit": "city"})
    assert taken.status_code == 403  # another unit's incident id: not the city's to change

    assert [
        i["incident_id"] for i in handle.get("/v1/incidents", "cms-police").json()["incidents"]
    ] == ["INC-A"]
    assert handle.get("/v1/incidents", "cms-city").json()["incidents"] == []
    after = handle.get("/v1/incidents", "cms-police", params={"since": "2026-03-01T02:00:00Z"})
    assert after.status_code == 200 and after.json()["incidents"] == []
    assert (
        handle.get("/v1/incidents", params={"since": "2026-03-01T00:30:00Z"}).json()["count"] == 1
    )
    assert handle.get("/v1/incidents", params={"since": "yesterday"}).status_code == 422
    assert handle.get("/v1/incidents/INC-A", "cms-city").status_code == 404
    one = handle.get("/v1/incidents/INC-A", "auditor").json()
    assert one["officer_ids"] == ["012345"] and one["matches"][0]["id"] == match["id"]

    assert handle.get("/v1/links/pending", "cms-city").json()["pending"] == []
    assert handle.get("/v1/links/pending", "auditor").status_code == 403
    path = f"/v1/links/{match['id']}/confirm"
    assert handle.request("POST", path, "cms-city").status_code == 404
    assert not links(station)
    done = handle.request("POST", path, "cms-police", json={"reason": "seen it"})
    assert done.status_code == 200 and done.json()["state"] == "confirmed"
    assert links(station) == {("K-A", evidence_id, "token:cms-police-client")}
    rejected = handle.request("POST", f"/v1/links/{match['id']}/reject", "cms-police")
    assert rejected.status_code == 409 and rejected.json()["error"]["code"] == "match_decided"


def test_the_daemon_links_what_it_seals_and_a_broken_matcher_never_stops_archiving(station):
    """The seal wakes the matcher; with its tables broken (a real catalog error)
    the files are still archived and released, and the fault is on the board."""
    configure(station, "[incidents]\nslack_minutes = 1\n")
    path = write_csv(
        station,
        "cad.csv",
        ["INC-D,K-D,012345,police,2026-03-01T08:00:00+08:00,2026-03-01T09:00:00+08:00"],
    )
    station.cli("incidents", "import", path)
    dock = station.root / "dock-police"
    name, data = clip("012345", "083015", "daemon")
    daemon = station.start_daemon()
    try:
        (dock / name).write_bytes(data)
        wait_until(lambda: links(station), timeout=90, message="the rule's link")
        [(case, _, by)] = links(station)
        assert (case, by) == ("K-D", "rule:incident-window")
        assert not (dock / name).exists()
        if station.backend == "sqlite":
            with sqlite3.connect(station.root / "var" / "catalog.db") as raw:
                raw.execute("DROP TABLE incident_checks")
            name, data = clip("012345", "084015", "unmatched")
            (dock / name).write_bytes(data)
            wait_until(lambda: not (dock / name).exists(), timeout=90, message="the release")
            status = wait_until(
                lambda: [
                    f
                    for f in json.loads(station.cli("status", "--json", check=False).stdout)[
                        "faults"
                    ]
                    if f["where"] == "incident matcher"
                ],
                timeout=60,
                message="the matcher's fault in status",
            )
            assert "incident_checks" in status[0]["message"]
            assert count(station, Evidence) == 2
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_a_rebuilt_catalog_has_the_incidents_and_every_decision(station, tmp_path, monkeypatch):
    """Incidents come from outside, so the bucket holds them only in the ledger:
    `catalog rebuild` restores them with every match – the rule's link a person
    undid, a confirmed, a rejected and a pending proposal – and the matcher run
    over the rebuilt catalog neither re-links the one nor re-proposes the other."""
    from test_catalog_rebuild import rebuild, table

    from archive.incident_models import Incident, IncidentOfficer
    from archive.incidents import run_owed

    configure(station)  # the rule links at once
    ruled = ingest(station, "dock-police", dict([clip("012345", "101000", "ruled")]))
    path = write_csv(
        station,
        "cad.csv",
        ["INC-1,K-1,012345,police,2026-03-01T10:00:00+08:00,2026-03-01T11:00:00+08:00"],
    )
    station.cli("incidents", "import", path)
    [ruled_id] = ruled.values()
    station.cli("unlink", "K-1", ruled_id, "--reason", "not this call")

    configure(station, "[incidents]\nconfirm = true\n")  # from now on a person decides
    path = write_csv(
        station,
        "cad2.csv",
        ["INC-2,K-2,012345;054321,police,2026-03-01T08:00:00+08:00,2026-03-01T09:00:00+08:00"],
    )
    station.cli("incidents", "import", path)
    ids = ingest(
        station,
        "dock-police",
        dict(
            [
                clip("012345", "081000", "a"),
                clip("012345", "082000", "b"),
                clip("054321", "083000", "c"),
            ]
        ),
    )
    pending = json.loads(station.cli("links", "pending", "--json").stdout)["pending"]
    assert len(pending) == 3
    first, second, _third = sorted(pending, key=lambda p: p["evidence_id"])
    station.cli("links", "confirm", str(first["id"]), "--reason", "seen on the video")
    station.cli("links", "reject", str(second["id"]), "--reason", "a different call")
    station.cli("ledger", "checkpoint")

    live = station.absolute_catalog_url
    target = tmp_path / "rebuilt" / "catalog.db"
    _, summary = rebuild(station, target)
    assert summary["ok"] is True, summary["problems"]
    assert summary["incidents"] == 2

    fields = ("incident_id", "case_id", "unit", "start", "end", "created_by")
    assert [{f: r[f] for f in fields} for r in table(target, Incident, Incident.incident_id)] == [
        {f: r[f] for f in fields} for r in table(live, Incident, Incident.incident_id)
    ]
    order = (IncidentOfficer.incident_id, IncidentOfficer.officer)
    assert table(target, IncidentOfficer, *order) == table(live, IncidentOfficer, *order)
    decided = ("incident_id", "evidence_id", "case_id", "state", "decided_by", "decision_reason")

    def matches(where):
        rows = table(where, IncidentMatch, IncidentMatch.incident_id, IncidentMatch.evidence_id)
        return [{f: r[f] for f in decided} for r in rows]

    before = matches(live)
    assert sorted(m["state"] for m in before) == ["confirmed", "linked", "pending", "rejected"]
    assert matches(target) == before

    monkeypatch.setenv("STRONGROOM_CATALOG__URL", f"sqlite:///{target}")
    archive = station.archive()
    try:
        run_owed(archive)  # what the matcher still owes on the rebuilt catalog
    finally:
        archive.close()
    assert matches(target) == before, "nothing re-proposed, nothing re-linked"
    rebuilt_links = {(r["case_id"], r["evidence_id"]) for r in table(target, CaseLink)}
    assert rebuilt_links == {("K-2", first["evidence_id"])}
    assert set(ids.values()) >= {first["evidence_id"], second["evidence_id"]}
