"""The store as a cluster: ``strongroom local-cluster`` starts and stops cleanly,
and a station keeps every guarantee while nodes die under it.

The faults are dealt on the session's cluster (``seaweed_cluster`` in
conftest.py: 1 master, ``vol1``/``vol2`` in rackA and ``vol3`` in rackB with
replication 010, a filer, gateways ``s3a``/``s3b``) through the box's control
line; every test brings its node back before it ends, so later tests find the
cluster whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from types import SimpleNamespace

import psutil
import pytest
from conftest import STRONGROOM, raw_s3, wait_until
from ingest_helpers import all_jobs_done, assert_archived, catalog_rows, jobs, write_via_part

from archive import localcluster
from archive.lockcheck import check_object_lock
from archive.store import ObjectStore, Retention, StoreError
from config.settings import StoreSettings

pytestmark = pytest.mark.stores("cluster")
MiB = 1024 * 1024


def _store(credentials: dict[str, str], endpoints: list[str]) -> ObjectStore:
    store = ObjectStore(
        StoreSettings(
            endpoint_url=endpoints[0],
            endpoints=endpoints,
            bucket=f"t-{uuid.uuid4().hex[:16]}",
            access_key_id=credentials["access_key_id"],
            secret_access_key=credentials["secret_access_key"],
            max_attempts=2,
            connect_timeout=2,
            request_timeout=5,
        )
    )
    store.ensure_bucket(1, "COMPLIANCE")
    return store


def _drop(station, count: int, seed: int) -> list[bytes]:
    """``count`` recordings of 100 kB–1.5 MB, written whole into the dock."""
    rng = random.Random(seed)
    station.dock.mkdir(exist_ok=True)
    payloads = [rng.randbytes(rng.randint(100_000, 1_500_000)) for _ in range(count)]
    for i, data in enumerate(payloads):
        write_via_part(station.dock / f"ABC1234_012345_202603010830{i:02d}_{seed:04d}.MP4", data)
    return payloads


def _s3(station, gateway: int):
    """A plain S3 client through one gateway of the cluster."""
    store = station.store
    door = SimpleNamespace(endpoint_url=store.endpoints[gateway], credentials=store.credentials)
    return raw_s3(door)


def _released_only_when_safe(station, gateway: int = 0) -> int:
    """Every released job has its sealed evidence row and a stored original of
    its size (HEAD with checksum, through ``gateway``); returns how many are released."""
    s3 = _s3(station, gateway)
    released = [j for j in jobs(station) if j["state"] == "released"]
    for job in released:
        rows = catalog_rows(station, "SELECT * FROM evidence WHERE sha256 = :s", s=job["sha256"])
        assert rows, f"{job['display_name']}: released with no evidence row"
        head = s3.head_object(
            Bucket=station.bucket, Key=rows[0]["original_key"], ChecksumMode="ENABLED"
        )
        assert head["ContentLength"] == job["size"]
    return len(released)


def _assert_all_archived_once(station, payloads: list[bytes], gateway: int = 0) -> None:
    """Every payload: one job released, one evidence item, one stored version
    holding exactly its bytes under COMPLIANCE lock; the first two also get the
    full check (delete refused, manifest verifies) – the rest of that is the
    fixity and verify runs' job, and 50 full checks cost minutes on 2 cores."""
    rows = jobs(station)
    assert sorted({r["state"] for r in rows}) == ["released"], [r["state"] for r in rows]
    assert len(rows) == len(payloads)
    evidence = catalog_rows(station, "SELECT sha256 FROM evidence")
    assert sorted(r["sha256"] for r in evidence) == sorted(
        hashlib.sha256(p).hexdigest() for p in payloads
    )
    store = station.store
    s3 = raw_s3(
        SimpleNamespace(endpoint_url=store.endpoints[gateway], credentials=store.credentials)
    )
    for data in payloads:
        key = f"originals/sha256/{hashlib.sha256(data).hexdigest()}"
        versions = s3.list_object_versions(Bucket=station.bucket, Prefix=key).get("Versions", [])
        assert len(versions) == 1, key
        got = s3.get_object(Bucket=station.bucket, Key=key)
        assert got["ObjectLockMode"] == "COMPLIANCE", key
        assert got["Body"].read() == data, key
    if gateway == 0:  # station.s3 goes through the first gateway
        for data in payloads[:2]:
            assert_archived(station, data)  # delete refused, manifest verifies
    assert [p for p in station.dock.rglob("*") if p.is_file()] == []


def test_local_cluster_command_serves_s3_on_two_doors_and_stops_leaving_nothing(tmp_path):
    """``strongroom local-cluster``: both gateways serve S3 with enforced Object
    Lock, every node runs in the box, and SIGTERM leaves no process behind."""
    base = localcluster.find_base(47000, 48990)
    config = tmp_path / "strongroom.toml"
    config.write_text('[station]\ndata_dir = "var"\n')
    folder = ["--folder", str(tmp_path / "c"), "--base-port", str(base)]
    process = subprocess.Popen(
        [*STRONGROOM, "local-cluster", *folder, "--json", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    started: list[psutil.Process] = []
    try:
        line = process.stdout.readline()
        assert line, process.stderr.read()
        endpoints = json.loads(line)["endpoints"]
        assert endpoints == [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
        started = psutil.Process(process.pid).children(recursive=True)
        weeds = [p for p in started if p.name() == "weed"]
        assert len(weeds) == len(localcluster.START_ORDER)
        credentials = json.loads((tmp_path / "c" / "credentials.json").read_text())
        for endpoint in endpoints:
            store = _store(credentials, [endpoint])
            check = check_object_lock(store, lock_seconds=30)
            assert check.enforced, check.describe()
            store.close()
        # the master, filer and volume ports are nobody's on the host
        for port in (base + 2, base + 3, base + 4, base + 10002):
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 2):
                pass
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(90)
    assert code == 0, process.stderr.read()
    alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], alive


def test_a_dead_gateway_fails_over_to_the_next_endpoint(seaweed_cluster):
    """``[store] endpoints``: with s3a killed, every call goes to s3b; with only
    s3a configured, the same call fails (the control)."""
    both = _store(seaweed_cluster.credentials, seaweed_cluster.endpoints)
    only_first = ObjectStore(both.settings.model_copy(update={"endpoints": []}))
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    (path := seaweed_cluster.folder.parent / f"{digest}.bin").write_bytes(data)
    try:
        seaweed_cluster.kill("s3a")
        stored = both.put_file(f"k/{digest}", path, digest, len(data), Retention.for_days(1))
        assert both.head(stored.key).size == len(data)
        assert hashlib.sha256(both.get_bytes(stored.key)).hexdigest() == digest
        assert both.client.endpoint == seaweed_cluster.endpoints[1]
        with pytest.raises(StoreError):
            only_first.head(stored.key)
    finally:
        seaweed_cluster.start_node("s3a")
        path.unlink()
        both.close()
        only_first.close()


def test_a_station_loses_nothing_when_a_gateway_dies_under_load(station, seaweed_cluster):
    daemon = station.start_daemon()
    try:
        payloads = _drop(station, 20, seed=21)
        wait_until(lambda: _released_only_when_safe(station) >= 3, 120, message="first releases")
        seaweed_cluster.kill("s3a")
        wait_until(
            lambda: (
                _released_only_when_safe(station, gateway=1) >= 0 and all_jobs_done(station, 20)
            ),
            240,
            interval=1,
            message="all 20 archived through the second gateway",
        )
        # checked while s3a is still dead: every original reads through s3b
        _assert_all_archived_once(station, payloads, gateway=1)
    finally:
        stopped = daemon.stop()
        seaweed_cluster.start_node("s3a")
    assert stopped == 0, daemon.output()
    assert "trying the next" in daemon.output()
    for data in payloads[:2]:
        assert_archived(station, data)


def _nodes_holding(cluster, bucket: str) -> set[str]:
    """The volume servers that hold a volume of ``bucket`` (its collection)."""
    ports = {cluster.inside_port(node): node for node in localcluster.VOLUMES}
    listing = cluster.shell("volume.list\n")
    holders, node = set(), None
    for line in listing.splitlines():
        if "DataNode 127.0.0.1:" in line:
            node = ports.get(int(line.split("127.0.0.1:")[1].split()[0]))
        elif f"Collection:{bucket}," in line and node:
            holders.add(node)
    return holders


def test_a_volume_server_killed_under_load_loses_nothing_and_fixity_passes(
    station, seaweed_cluster
):
    """SIGKILL a volume server of rackA while 50 files are archived: 0 lost, 0
    duplicated, 0 released early; every original reads back (from its rackB
    replica) while the node is down; after it returns and
    ``volume.fix.replication`` runs, fixity passes on every item."""
    daemon = station.start_daemon()
    victim = None
    try:
        # 25 in flight when the node dies, 25 more dropped while it is dead
        payloads = _drop(station, 25, seed=3)
        wait_until(lambda: _released_only_when_safe(station) >= 3, 120, message="first releases")
        in_rack_a = _nodes_holding(seaweed_cluster, station.bucket) - {"vol3"}
        victim = sorted(in_rack_a or {"vol1"})[0]
        seaweed_cluster.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        released_before = _released_only_when_safe(station)
        payloads += _drop(station, 25, seed=4)
        # nothing is released unless safe, at every look while the node is down
        wait_until(
            lambda: _released_only_when_safe(station) >= 0 and all_jobs_done(station, 50),
            300,
            interval=1,
            message="all 50 archived with a volume server down",
        )
        done_after = time.monotonic() - killed_at
        assert released_before <= 25
        stopped = daemon.stop()
        assert stopped == 0, daemon.output()
        # with the node still down: every original reads back from its other replica
        _assert_all_archived_once(station, payloads)
        verify = station.cli("verify", "--all", "--json", check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        daemon.stop()
        if victim:
            seaweed_cluster.start_node(victim)
    seaweed_cluster.shell("lock\nvolume.fix.replication -apply\nunlock\n")
    fixity = station.cli("fixity", "--json", check=False)
    assert fixity.returncode == 0, fixity.stdout + fixity.stderr
    verify = station.cli("verify", "--all", "--json", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(
        f"50 files: {50 - released_before} archived after {victim} was killed, "
        f"the last {done_after:.1f}s after it"
    )


def test_uploads_wait_for_a_restarted_master_and_resume(station, seaweed_cluster):
    """With the master down no file id can be assigned: uploads fail and wait
    (nothing released unsafely, nothing quarantined); after the master is back
    every file is archived exactly once."""
    daemon = station.start_daemon()
    try:
        # started (its Object Lock self-test done) before the master goes
        wait_until(lambda: "watching" in daemon.output(), 120, message="the daemon watching")
        seaweed_cluster.kill("master", signal.SIGKILL)
        try:
            payloads = _drop(station, 10, seed=7)
            # the files are claimed and hashed but cannot all be stored yet
            wait_until(lambda: len(jobs(station)) == 10, 60, message="10 jobs registered")
            time.sleep(3)  # a few retry rounds against the dead master
            # no file id can be assigned: nothing is stored, so nothing is released
            assert _released_only_when_safe(station) == 0
            assert not [j for j in jobs(station) if j["state"] in ("quarantined", "failed")]
        finally:
            seaweed_cluster.start_node("master")
        wait_until(lambda: all_jobs_done(station, 10), 240, message="all archived after restart")
    finally:
        stopped = daemon.stop()
    assert stopped == 0, daemon.output()
    _assert_all_archived_once(station, payloads)
    s3 = raw_s3(seaweed_cluster)
    assert s3.head_bucket(Bucket=station.bucket)
