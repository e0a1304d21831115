"""The claim walks and renames through folder handles (ingest/dockfs.py): a folder
inside the dock swapped for a symbolic link to a folder outside, between
inspection and claim, leads nowhere – nothing outside is archived or deleted,
and the job is quarantined with the reason. Resumed jobs are checked the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import Station, wait_until
from ingest_helpers import catalog_rows, events, jobs, sha256

from archive.models import JobState
from ingest import dockfs
from ingest.pipeline import Pipeline
from ingest.scan import Candidate, scan_dock

INSIDE = b"recorded in the dock " * 100
OUTSIDE = b"a file outside the dock that must stay where it is " * 100
NAME = "ABC1234_012345_20260301083015_0001.MP4"


def setup_swap(station: Station, tmp_path: Path) -> tuple[Path, Path, Candidate]:
    """dock/cam/NAME inspected; an outside/cam/NAME waiting to be swapped in."""
    inside = station.dock / "cam" / NAME
    inside.parent.mkdir(parents=True)
    inside.write_bytes(INSIDE)
    outside = tmp_path / "outside" / NAME
    outside.parent.mkdir()
    outside.write_bytes(OUTSIDE)
    (candidate,) = list(scan_dock(station.dock, [".*"]))
    assert isinstance(candidate, Candidate) and candidate.identity
    return inside, outside, candidate


def swap_parent(station: Station, tmp_path: Path) -> None:
    """The attack: the dock's folder leaves, a link to the outside folder takes its name."""
    os.rename(station.dock / "cam", tmp_path / "cam-moved-away")
    os.symlink(tmp_path / "outside", station.dock / "cam")


def assert_outside_untouched(station: Station, outside: Path) -> None:
    assert outside.read_bytes() == OUTSIDE
    found = catalog_rows(station, "SELECT * FROM evidence WHERE sha256 = :s", s=sha256(OUTSIDE))
    assert found == [], "a file outside the dock was archived"


def test_parent_swapped_for_a_link_after_inspection_is_refused(
    station: Station, tmp_path: Path
) -> None:
    _, outside, candidate = setup_swap(station, tmp_path)
    swap_parent(station, tmp_path)
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        job_id = pipeline.claim(archive.settings.docks[0], candidate)
        pipeline.advance(job_id)
        pipeline.close()
    finally:
        archive.close()
    assert_outside_untouched(station, outside)
    (job,) = jobs(station)
    assert job["state"] == "quarantined"
    assert "symbolic link" in job["last_error"] and "'cam'" in job["last_error"]
    (event,) = events(station, "quarantined")
    assert "symbolic link" in event.details["reason"]


def test_swap_at_the_rename_itself_moves_only_the_inspected_file(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder handle is the checked folder: a swap after it was opened is harmless."""
    _, outside, candidate = setup_swap(station, tmp_path)
    real = dockfs._renameat

    def swap_then_rename(src_fd: int, name: str, dst_fd: int, target: str) -> None:
        swap_parent(station, tmp_path)
        real(src_fd, name, dst_fd, target)

    monkeypatch.setattr(dockfs, "_renameat", swap_then_rename)
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        pipeline.advance(pipeline.claim(archive.settings.docks[0], candidate))
        pipeline.close()
    finally:
        archive.close()
    assert_outside_untouched(station, outside)
    (job,) = jobs(station)
    assert job["state"] == "released"
    assert job["sha256"] == sha256(INSIDE)
    assert not (tmp_path / "cam-moved-away" / NAME).exists()  # claimed from the held folder


def test_a_file_swapped_at_the_rename_is_set_aside_not_archived(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hard link to an outside file slipped in after the identity check: it reaches
    the spool, the identity after the rename differs, it is quarantined unarchived."""
    inside, outside, candidate = setup_swap(station, tmp_path)
    real = dockfs._renameat

    def link_then_rename(src_fd: int, name: str, dst_fd: int, target: str) -> None:
        inside.unlink()
        os.link(outside, inside)
        real(src_fd, name, dst_fd, target)

    monkeypatch.setattr(dockfs, "_renameat", link_then_rename)
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        pipeline.advance(pipeline.claim(archive.settings.docks[0], candidate))
        pipeline.close()
    finally:
        archive.close()
    assert_outside_untouched(station, outside)
    (job,) = jobs(station)
    assert job["state"] == "quarantined"
    assert "another file took its place" in job["last_error"]


def test_a_resumed_job_whose_path_now_crosses_a_link_is_refused(
    station: Station, tmp_path: Path
) -> None:
    """Registered (CLAIMING) before a crash; the folder is swapped; the real daemon
    resumes the job at start and refuses it – also for a row without an identity."""
    _, outside, candidate = setup_swap(station, tmp_path)
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        pipeline.register_jobs(archive.settings.docks[0], [candidate])
        pipeline.close()
    finally:
        archive.close()
    with station.archive().db.session() as session:  # as an older version registered it
        session.execute(
            __import__("sqlalchemy").text("UPDATE ingest_jobs SET source_identity = NULL")
        )
    swap_parent(station, tmp_path)
    daemon = station.start_daemon()
    try:
        wait_until(
            lambda: [j["state"] for j in jobs(station)] == ["quarantined"],
            timeout=60,
            message="the resumed job refused",
        )
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert_outside_untouched(station, outside)
    assert "symbolic link" in jobs(station)[0]["last_error"]
    assert "quarantined" in daemon.output()
    shutil.rmtree(tmp_path / "cam-moved-away")


def test_claim_refuses_paths_that_leave_the_dock(tmp_path: Path) -> None:
    root = tmp_path / "dock"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"x")
    for source in (tmp_path / "elsewhere", root / "a" / ".." / ".." / "f"):
        with pytest.raises(dockfs.Escape):
            dockfs.claim(root, source, root / ".strongroom" / "spool" / "1", None)
    os.symlink(tmp_path, root / ".strongroom")  # the spool folder itself swapped
    with pytest.raises(dockfs.Escape, match="symbolic link"):
        dockfs.claim(root, root / "a" / "f", root / ".strongroom" / "spool" / "1", None)
    assert (root / "a" / "f").read_bytes() == b"x"


def swap_work_folder(station: Station, tmp_path: Path, job_id: int) -> Path:
    """``.strongroom`` sits in the dock too: swapped for a link to a folder outside that
    holds a file where the spool copy would be."""
    decoy = tmp_path / "outside-work" / "spool" / str(job_id)
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(OUTSIDE)
    os.rename(station.dock / ".strongroom", tmp_path / "work-moved-away")
    os.symlink(tmp_path / "outside-work", station.dock / ".strongroom")
    return decoy


@pytest.mark.parametrize("swap_before", ["claimed", "sealed"])
def test_work_folder_swapped_after_the_claim_reaches_nothing_outside(
    station: Station, tmp_path: Path, swap_before: str
) -> None:
    """Swapped before the hash: the outside file is not archived. Swapped before the
    release: the outside file is not deleted. Either way the job waits, loudly."""
    _, outside, candidate = setup_swap(station, tmp_path)
    archive = station.archive()
    try:
        pipeline = Pipeline(archive)
        job_id = pipeline.claim(archive.settings.docks[0], candidate)
        assert job_id is not None
        if swap_before == "sealed":
            pipeline.advance(job_id, stop_after=JobState.SEALED)
        decoy = swap_work_folder(station, tmp_path, job_id)
        outcome = pipeline.advance(job_id)
        pipeline.close()
    finally:
        archive.close()
    assert decoy.read_bytes() == OUTSIDE
    assert_outside_untouched(station, outside)
    (job,) = jobs(station)
    assert job["state"] == swap_before  # kept, to be retried; never released
    reason = "not the claimed file" if swap_before == "claimed" else "symbolic link"
    assert reason in (outcome.error or "")
    if swap_before == "sealed":  # the real claimed file is archived and still kept
        assert job["sha256"] == sha256(INSIDE)
        assert (tmp_path / "work-moved-away" / "spool" / str(job_id)).read_bytes() == INSIDE
