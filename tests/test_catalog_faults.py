"""The catalog database failing: a wrong password is a configuration error
that never shows the password; the API answers 503 with its stable error body
while PostgreSQL is down, and recovers by itself when it is back."""

from __future__ import annotations

import pytest
from conftest import wait_until

pytestmark = pytest.mark.catalogs("postgresql")

WRONG = "Wr0ng-pa55word-never-printed"


def test_wrong_catalog_password_exits_2_naming_the_problem_not_the_password(station):
    good = station.catalog_url
    station.catalog_url = good.replace(good.split(":")[2].split("@")[0], WRONG)
    assert WRONG in station.catalog_url
    station.write_config()
    for command in (["status"], ["run"], ["serve"], ["ingest", "."]):
        result = station.cli(*command, check=False, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert "password authentication failed" in result.stderr, result.stderr
        assert WRONG not in result.stdout + result.stderr


def test_api_answers_503_while_postgresql_is_down_and_recovers(station, api, pg_server):
    item = station.ingest_bytes("one.bin", b"one item")
    handle = api()
    assert handle.get(f"/v1/evidence/{item['evidence_id']}").status_code == 200
    pg_server.stop("fast")
    try:
        response = handle.get(f"/v1/evidence/{item['evidence_id']}")
        assert response.status_code == 503, response.text
        assert response.json() == {
            "error": {
                "code": "catalog_unavailable",
                "message": "the catalog database did not answer; retry later",
            }
        }
    finally:
        pg_server.start()
    wait_until(
        lambda: handle.get(f"/v1/evidence/{item['evidence_id']}").status_code == 200,
        timeout=30,
        message="the API answering again without a restart",
    )


def test_a_daemon_starting_through_catalog_outages_waits_and_then_ingests(station, pg_server):
    """Down before the start (self-check, open) and again right after the station
    name was claimed (start-up, before the loop): the daemon waits both out."""
    import time

    from ingest_helpers import all_jobs_done, assert_archived
    from test_stations import live_holder

    station.dock.mkdir(exist_ok=True)
    pg_server.stop("fast")
    try:
        daemon = station.start_daemon()
        # it met the outage and waits it out (a fixed sleep would not show it met it)
        wait_until(lambda: "retrying in" in daemon.output(), 60, message="waiting for the catalog")
        assert daemon.process.poll() is None, daemon.output()[-3000:]
    finally:
        pg_server.start()
    try:
        wait_until(lambda: live_holder(station, daemon.process.pid), 120, message="claimed")
        pg_server.stop("fast")  # just after the claim: services and loop still to start
        time.sleep(3)
        assert daemon.process.poll() is None, daemon.output()[-3000:]
        pg_server.start()
        data = b"taken after two outages at start-up"
        (station.dock / "late.bin").write_bytes(data)
        wait_until(lambda: all_jobs_done(station, 1), 120, message="the file archived")
        assert_archived(station, data)
        assert daemon.process.poll() is None, daemon.output()[-3000:]
    finally:
        assert daemon.stop() == 0, daemon.output()[-3000:]


def test_postgresql_restarted_while_two_stations_ingest_loses_and_duplicates_nothing(
    station, pg_server, tmp_path
):
    import os
    import time

    from ingest_helpers import all_jobs_done, assert_archived, catalog_rows
    from test_stations import live_holder, second_station

    other = second_station(station)
    files = {}
    for n in range(8):
        for s in (station, other):
            data = os.urandom(200_000 + n)
            files[(s.name, n)] = data
    daemons = [s.start_daemon() for s in (station, other)]
    try:
        for s in (station, other):
            s.dock.mkdir(exist_ok=True)
        pairs = list(zip((station, other), daemons, strict=True))
        wait_until(
            lambda: all(live_holder(s, d.process.pid) for s, d in pairs),
            120,
            message="both daemons running",
        )
        for n in range(8):
            for s in (station, other):
                (s.dock / f"file-{n}.bin").write_bytes(files[(s.name, n)])
            if n == 3:
                time.sleep(1)
                pg_server.stop("fast")  # mid-ingest: some files settled, some not yet
                time.sleep(3)
                pg_server.start()
        wait_until(lambda: all_jobs_done(station, 16), 240, message="all 16 files archived")
        for s in (station, other):
            assert not any(s.dock.glob("*.bin")), list(s.dock.iterdir())
        for data in files.values():
            assert_archived(station, data)  # stored, sealed, locked
        evidence = catalog_rows(station, "SELECT sha256 FROM evidence")
        assert len(evidence) == len({e["sha256"] for e in evidence}) == 16
        jobs = catalog_rows(station, "SELECT state, evidence_id, released_at FROM ingest_jobs")
        assert sorted(j["state"] for j in jobs) == ["released"] * 16
        for daemon in daemons:
            assert daemon.process.poll() is None, daemon.output()[-3000:]
    finally:
        for daemon in daemons:
            daemon.stop()


def test_a_connection_the_server_dropped_is_replaced_at_checkout_without_a_ping(station):
    """No pool pre-ping (a round trip per checkout): a pooled connection the
    server ended (restart, ``pg_terminate_backend``) is seen by a poll of its
    socket and replaced, so the next transaction works, on a new backend."""
    from sqlalchemy import text

    from archive.db import Database, _hung_up
    from bench.sqlcount import CatalogCounter

    db, admin = Database(station.catalog_url), Database(station.catalog_url)
    try:
        assert not db.engine.pool._pre_ping
        with db.session() as session:
            first = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.session() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        pooled = db.engine.pool._pool.queue[0].dbapi_connection
        wait_until(lambda: _hung_up(pooled), 10, 0.05, "the server's goodbye to arrive")
        counter = CatalogCounter().attach(db.engine)
        with db.session() as session:
            second = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
        assert counter.snapshot()["statements"] == 1, "no ping, no retry: one statement"
    finally:
        db.dispose()
        admin.dispose()


def test_a_batch_whose_commit_lost_its_connection_is_not_run_again(station):
    """The catalog writer re-runs a failed batch (one change at a time) – but not
    one whose COMMIT lost its connection: the server may have committed it, and
    running it again could insert twice. Each waiting worker gets the error."""
    from sqlalchemy import event, text

    from archive.db import Database, _hung_up, lost_connection
    from archive.groupcommit import GroupCommitter

    db, admin = Database(station.catalog_url), Database(station.catalog_url)
    writer = GroupCommitter(db)
    runs = []

    def work(session):
        runs.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        session.execute(text("CREATE TABLE IF NOT EXISTS probe_rows (n int)"))
        session.execute(text("INSERT INTO probe_rows VALUES (1)"))

    @event.listens_for(db.engine, "commit", once=True)
    def cut(connection):  # right before the COMMIT goes out, the server ends the session
        with admin.session() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": runs[-1]})
        raw = connection.connection.dbapi_connection
        wait_until(lambda: _hung_up(raw), 10, 0.05, "the server's goodbye to arrive")

    try:
        with pytest.raises(Exception) as failed:
            writer.run(work)
        assert lost_connection(failed.value), failed.value
        assert len(runs) == 1, "the batch was run again after its COMMIT failed"
        writer.run(work)  # the writer carries on, on a new connection
        with admin.session() as session:
            assert session.execute(text("SELECT count(*) FROM probe_rows")).scalar_one() == 1
    finally:
        writer.close()
        db.dispose()
        admin.dispose()


def test_a_read_that_meets_a_dropped_connection_is_run_once_more(station, monkeypatch):
    """A connection can die unseen (a peer gone silently, or between the check at
    checkout and the statement): a read is safe to repeat, so ``Database.read``
    runs it once more on a new connection instead of failing."""
    from sqlalchemy import text

    import archive.db
    from archive.db import Database

    db, admin = Database(station.catalog_url), Database(station.catalog_url)
    try:
        first = db.read(lambda c: c.execute(text("SELECT pg_backend_pid()")).scalar_one())
        with admin.session() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        pooled = db.engine.pool._pool.queue[0].dbapi_connection
        wait_until(lambda: archive.db._hung_up(pooled), 10, 0.05, "the server's goodbye")
        monkeypatch.setattr(archive.db, "_hung_up", lambda _connection: False)  # unseen
        calls = []

        def backend(connection):
            calls.append(1)
            return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

        assert db.read(backend) != first
        assert len(calls) == 2
    finally:
        db.dispose()
        admin.dispose()
