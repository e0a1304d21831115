"""Run-once jobs: a lease with expiry and a fencing token (``archive.leases``),
on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from conftest import wait_until
from sqlalchemy import func, select

from archive import leases, ledger
from archive.db import utcnow
from archive.ledger_models import LedgerCheckpoint

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

HOLD = """
import sys, time
from datetime import timedelta
from archive import leases
from archive.db import Database
db = Database(sys.argv[1])
lease = leases.acquire(db, "ledger-checkpoint", "dock-01", timedelta(seconds=float(sys.argv[2])))
print(lease.token, flush=True)
time.sleep(3600)  # "working" until killed
"""


def checkpoints(archive) -> int:
    with archive.db.session() as session:
        return session.scalar(select(func.count()).select_from(LedgerCheckpoint))


def test_one_holder_until_expiry_then_a_new_token_fences_the_old_one_out(station):
    a, b = station.archive(), station.archive()
    try:
        first = leases.acquire(a.db, "ledger-checkpoint", "dock-01", timedelta(seconds=2))
        assert first is not None and first.token == 1
        # another node (same name would be another process; use another station)
        assert leases.acquire(b.db, "ledger-checkpoint", "dock-02", timedelta(seconds=60)) is None
        time.sleep(2.2)
        second = leases.acquire(b.db, "ledger-checkpoint", "dock-02", timedelta(seconds=60))
        assert second is not None and second.token == 2

        # the fenced-out node wakes up and tries its write: refused, nothing written
        station.ingest_bytes("late.bin", b"a late write must not be sequenced")
        before = checkpoints(a)
        with pytest.raises(leases.LeaseLost, match="token 1 is no longer valid"):
            ledger.checkpoint(a, first)
        assert checkpoints(a) == before
        with pytest.raises(leases.LeaseLost):
            leases.renew(a.db, first)
        # the holder's own write goes through
        assert ledger.checkpoint(b, second) is not None
        assert checkpoints(b) == before + 1
        # releasing lets the next node in at once
        leases.release(b.db, second)
        third = leases.acquire(a.db, "ledger-checkpoint", "dock-01", timedelta(seconds=60))
        assert third is not None and third.token == 3
    finally:
        a.close()
        b.close()


def test_a_killed_holder_is_taken_over_after_expiry_and_not_before(station):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, station.absolute_catalog_url, "4"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    archive = station.archive()
    try:
        assert holder.stdout.readline().strip() == "1"
        with archive.db.session() as session:
            expires = session.get(leases.JobLease, "ledger-checkpoint").expires_at
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # the holder is dead, but its lease is not over: nobody else runs the job yet
        minute = timedelta(seconds=60)
        assert leases.acquire(archive.db, "ledger-checkpoint", "dock-01", minute) is None
        taken = wait_until(
            lambda: leases.acquire(
                archive.db, "ledger-checkpoint", "dock-01", timedelta(seconds=60)
            ),
            timeout=30,
            interval=0.2,
            message="a takeover after the killed holder's lease expired",
        )
        # measured on the lease's own clock: the holder took it before it said so
        assert utcnow() >= expires
        assert taken.token == 2
    finally:
        if holder.poll() is None:
            holder.kill()
        archive.close()


def test_scheduled_jobs_skip_while_another_node_holds_the_lease(station):
    archive, other = station.archive(), station.archive()
    try:
        station.ingest_bytes("one.bin", b"one item")
        held = leases.acquire(other.db, "ledger-checkpoint", "dock-02", timedelta(seconds=60))
        assert held is not None
        before = checkpoints(archive)
        ledger.scheduled_checkpoint(archive)
        assert checkpoints(archive) == before  # skipped: dock-02 holds it
        leases.release(other.db, held)
        ledger.scheduled_checkpoint(archive)
        assert checkpoints(archive) == before + 1
    finally:
        archive.close()
        other.close()
