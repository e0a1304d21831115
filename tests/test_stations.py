"""Several stations, one catalog: a station name belongs to one live daemon."""

from __future__ import annotations

import pytest
from conftest import wait_until

from archive import leases

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")


def holder(station):
    archive = station.archive()
    try:
        return leases.holder_of(archive.db, "station:dock-01")
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
