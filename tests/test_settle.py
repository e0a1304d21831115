"""When is a dock file complete? Still for settle_seconds, and nobody holds it open."""

from __future__ import annotations

import os

import ingest.settle as settle
from ingest.scan import Candidate
from ingest.settle import Settler, open_by_others


class Clocks:
    def __init__(self, wall: float) -> None:
        self.mono, self.wall = 1000.0, wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def _candidate(path) -> Candidate:
    st = os.stat(path)
    return Candidate(str(path), st.st_size, st.st_mtime_ns)


def test_kernel_lease_tells_open_from_closed(tmp_path):
    path = tmp_path / "clip.MP4"
    path.write_bytes(b"x")
    assert open_by_others(str(path)) is False
    with path.open("ab"):
        assert open_by_others(str(path)) is True
    assert open_by_others(str(path)) is False


def test_closed_file_written_long_ago_is_ready_at_first_sight(tmp_path):
    path = tmp_path / "old.MP4"
    path.write_bytes(b"recorded yesterday")
    os.utime(path, (1_000_000, 1_000_000))
    clocks = Clocks(wall=2_000_000)
    settler = Settler(5, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall)
    assert settler.observe(_candidate(path))


def test_fresh_file_waits_for_settle_seconds(tmp_path):
    path = tmp_path / "new.MP4"
    path.write_bytes(b"just written")
    clocks = Clocks(wall=os.stat(path).st_mtime)
    settler = Settler(5, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall)
    assert not settler.observe(_candidate(path))
    clocks.advance(4)
    assert not settler.observe(_candidate(path))
    clocks.advance(1.5)
    assert settler.observe(_candidate(path))


def test_file_held_open_is_never_ready(tmp_path):
    path = tmp_path / "copying.MP4"
    path.write_bytes(b"partial")
    os.utime(path, (1_000_000, 1_000_000))
    clocks = Clocks(wall=2_000_000)
    settler = Settler(1, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall)
    with path.open("ab"):
        for _ in range(5):
            assert not settler.observe(_candidate(path))
            clocks.advance(10)
    assert settler.observe(_candidate(path))


def test_growing_file_restarts_the_wait(tmp_path):
    path = tmp_path / "growing.MP4"
    path.write_bytes(b"a")
    clocks = Clocks(wall=os.stat(path).st_mtime)
    settler = Settler(2, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall)
    assert not settler.observe(_candidate(path))
    clocks.advance(1.5)
    with path.open("ab") as handle:
        handle.write(b"more")
    clocks.wall = os.stat(path).st_mtime
    assert not settler.observe(_candidate(path))
    clocks.advance(1.5)
    assert not settler.observe(_candidate(path))
    clocks.advance(1)
    assert settler.observe(_candidate(path))


def test_without_leases_only_our_own_observation_counts(tmp_path, monkeypatch):
    """On NFS/SMB the kernel cannot say who has a file open: an old mtime (which
    may come from another machine's clock) is then not enough."""
    monkeypatch.setattr(settle, "open_by_others", lambda _path: None)
    path = tmp_path / "on-nfs.MP4"
    path.write_bytes(b"remote")
    os.utime(path, (1_000_000, 1_000_000))
    clocks = Clocks(wall=2_000_000)
    settler = Settler(3, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall)
    assert not settler.observe(_candidate(path))
    clocks.advance(3)
    assert settler.observe(_candidate(path))


def test_our_own_read_is_not_taken_for_a_dock_writer(tmp_path):
    """While the daemon's own pre-hash has the file open, the kernel refuses the
    lease because of us: that must neither make the file ready nor restart its
    wait. (The file's mtime is in the future – a dock with a fast clock – so
    only our own observation of stillness counts.)"""
    path = tmp_path / "clip.MP4"
    path.write_bytes(b"recorded")
    clocks = Clocks(wall=os.stat(path).st_mtime)
    future = int((clocks.wall + 3600) * 1e9)
    os.utime(path, ns=(future, future))
    reading: set[str] = set()
    settler = Settler(
        5, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall, ours=reading.__contains__
    )
    assert not settler.observe(_candidate(path))
    clocks.advance(6)
    with path.open("rb"):  # the pre-hash reads it
        reading.add(str(path))
        assert not settler.observe(_candidate(path))
        reading.discard(str(path))
    assert settler.observe(_candidate(path)), "ready once our read ends, no second wait"
