"""Several stations, one catalog: a station name belongs to one live daemon."""

from __future__ import annotations

import pytest
from conftest import wait_until

from archive import leases

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def holder(station):
    archive = station.archive()
    try:
        return leases.holder_of(archive.db, f"station:{station.name}")
    finally:
        archive.close()


def live_holder(station, pid: int):
    row = holder(station)
    return row is not None and row.pid == pid and row.expires_at > leases.utcnow()


def test_a_second_daemon_with_the_same_station_name_is_refused_naming_the_first(station):
    first = station.start_daemon(log_name="first.log")
    try:
        wait_until(lambda: live_holder(station, first.process.pid), 60, message="first daemon")
        second = station.cli("run", check=False, timeout=120)
        assert second.returncode == 2, second.stderr
        assert "station name 'dock-01' is already in use" in second.stderr
        assert f"pid {first.process.pid}" in second.stderr
        assert first.process.poll() is None  # the first one runs on
    finally:
        assert first.stop() == 0, first.output()
    # stopped cleanly: the name is free at once
    again = station.start_daemon(log_name="again.log")
    try:
        wait_until(lambda: live_holder(station, again.process.pid), 60, message="next daemon")
        # killed with SIGKILL on this host: a restart does not wait for the lease to expire
        again.process.kill()
        again.process.wait()
        restarted = station.start_daemon(log_name="restarted.log")
        try:
            wait_until(lambda: live_holder(station, restarted.process.pid), 60, message="restart")
        finally:
            assert restarted.stop() == 0, restarted.output()
    finally:
        again.stop()


def second_station(station, name: str = "dock-02"):
    """Another station on the same catalog and bucket, with its own folders and
    dock, signing with the archive's one key (see docs/deploy.md)."""
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
    key = station.root / "var" / "keys" / "signing.key"
    other.write_config(f'[signing]\nkey_file = "{key}"\n')
    other.cli("init")
    return other


def test_same_bytes_docked_at_two_stations_at_once_give_one_item_and_a_sighting(station):
    import json
    import os
    import subprocess

    from conftest import STRONGROOM
    from ingest_helpers import catalog_rows

    other = second_station(station)
    data = os.urandom(3 << 20)  # several parts: both uploads overlap
    name = "ABC1234_012345_20260301083015_0001.MP4"
    for s in (station, other):
        s.dock.mkdir(exist_ok=True)
        (s.dock / name).write_bytes(data)
    runs = [
        subprocess.Popen(
            [*STRONGROOM, "ingest", str(s.dock / name), "--json", "--config", str(s.config)],
            cwd=s.root,
            env={**os.environ, **s.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (station, other)
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        results.append(json.loads(out)["items"][0])
    assert results[0]["evidence_id"] == results[1]["evidence_id"]
    assert sorted(r["state"] for r in results) == ["duplicate", "released"], results
    evidence = catalog_rows(station, "SELECT evidence_id, station FROM evidence")
    assert len(evidence) == 1
    sightings = catalog_rows(station, "SELECT actor FROM custody_events WHERE kind = 'sighted'")
    assert len(sightings) == 1
    sealer = evidence[0]["station"]
    sighter = ({"dock-01", "dock-02"} - {sealer}).pop()
    assert sightings[0]["actor"] == f"strongroom@{sighter}"  # the other station sighted it
    # one original object, one version
    key = results[0]["original_key"]
    versions = station.s3.list_object_versions(Bucket=station.bucket, Prefix=key)
    assert len(versions.get("Versions", [])) == 1
    # both dock copies released (only after the seal: the jobs say so)
    assert not (station.dock / name).exists() and not (other.dock / name).exists()
    jobs = catalog_rows(station, "SELECT station, state FROM ingest_jobs ORDER BY station")
    assert [(j["station"], j["state"]) for j in jobs] == sorted(
        [("dock-01", results[0]["state"]), ("dock-02", results[1]["state"])]
    )
