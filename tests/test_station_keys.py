"""Stations that sign with their own keys, one catalog and one bucket.

Each station publishes its key under ``keys/`` and every node lists the other
stations' keys in ``[[signing.trusted]]`` (``keys show`` prints the entry);
the ledger's checkpoints are signed by whichever station holds the checkpoint
lease, with its own key, under the archive's shared ``[ledger] key_name``.
Then an item sealed at one station verifies from the other, and the ledger
audits clean from both – and not before the keys are configured.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.catalogs("postgresql")

LEDGER = '[ledger]\nkey_name = "county-ledger"\n'


def _other_station(station, name: str = "dock-02"):
    """A second station on the same catalog and bucket with its *own* key file."""
    from conftest import Station

    root = station.root / name
    root.mkdir()
    other = Station(
        root,
        root / "strongroom.toml",
        station.bucket,
        station.store,
        root / "dock",
        station.env,
        catalog_url=station.absolute_catalog_url,
        name=name,
    )
    other.write_config(LEDGER)
    other.cli("init")
    return other


def _ok(station, *args: str) -> None:
    result = station.cli(*args, check=False)
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])


def test_two_stations_with_their_own_keys_verify_each_others_items(station, tmp_path):
    station.write_config(LEDGER)
    other = _other_station(station)
    shown = {s.name: json.loads(s.cli("keys", "show", "--json").stdout) for s in (station, other)}
    assert shown[station.name]["keyid"] != shown[other.name]["keyid"]
    listed = station.s3.list_objects_v2(Bucket=station.bucket, Prefix="keys/")
    published = {o["Key"] for o in listed["Contents"]}
    assert {shown[s]["published"] for s in shown} <= published

    first = station.ingest_bytes("first.bin", b"sealed at dock-01 " * 3000)
    station.cli("ledger", "checkpoint")  # signed with dock-01's key
    second = other.ingest_bytes("second.bin", b"sealed at dock-02 " * 3000)
    other.cli("ledger", "checkpoint")  # signed with dock-02's key

    # not yet trusted: each station refuses what the other signed
    refused = other.cli("verify", first["evidence_id"], "--json", check=False)
    assert refused.returncode != 0, "dock-02 trusted dock-01's key without being told"
    audit = json.loads(station.cli("ledger", "audit", "--json", check=False).stdout)
    assert audit["ok"] is False, "dock-01 accepted a checkpoint signed by an unlisted key"

    station.write_config(LEDGER + "\n" + shown[other.name]["trusted_entry"])
    other.write_config(LEDGER + "\n" + shown[station.name]["trusted_entry"])
    again = json.loads(other.cli("keys", "show", "--json").stdout)
    assert again["trusted_keyids"] == [shown[station.name]["keyid"]]

    # the latest checkpoint is dock-02's: dock-01's custody reports open it with dock-02's key
    from verify.custody_report import _Ledger

    archive = station.archive()
    try:
        ledger = _Ledger(archive)
    finally:
        archive.close()
    assert ledger.problem is None and ledger.info.signature == "verified", ledger.problem

    ids = [first["evidence_id"], second["evidence_id"]]
    for node in (station, other):
        # first, while the latest checkpoint is the other station's (its fixity
        # sweep below checkpoints with its own key)
        report = tmp_path / f"custody-{node.name}.json"
        _ok(node, "custody-report", first["evidence_id"], "--format", "json", "-o", str(report))
        written = report.read_text(encoding="utf-8")
        assert "FAILED" not in written and '"verified"' in written, written[-3000:]
        _ok(node, "verify", *ids, "--json")
        _ok(node, "fixity", "--json")
        audit = json.loads(node.cli("ledger", "audit", "--json").stdout)
        assert audit["ok"] is True, audit
        rebuilt = node.cli(
            "catalog", "rebuild", "--into", str(tmp_path / f"{node.name}.db"), "--json", check=False
        )
        summary = json.loads(rebuilt.stdout)
        assert summary["ok"] is True, summary["problems"]
        assert set(summary["keys"]) == {shown[s]["keyid"] for s in shown}
        bundle = tmp_path / f"bundle-{node.name}"
        _ok(node, "export", *ids, "-o", str(bundle), "--json")
        exported = {p.stem for p in (bundle / "data" / "keys").glob("*.json")}
        assert exported == {shown[s]["keyid"] for s in shown}
