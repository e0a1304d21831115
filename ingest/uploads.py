"""Uploads enter the pipeline: a complete upload becomes an ingest job like a dock file.

The upload folder is laid out as a dock (``partial/<id>`` is the "dock file",
``.strongroom/spool/<job>`` its spool, on the same file system), so the job
takes the same steps as a docked file: the claim renames the partial into the
spool through folder handles (:mod:`ingest.dockfs`, device and inode checked),
then hash, store, seal, and – only from the sealed state – release, which
deletes the spool copy. The station's daemon advances the job like any other;
a crash at any step resumes there.

What the upload adds to the item: the unit, officer and device the uploader
declared (the unit checked against the token's scope when the upload was
created) win over what the file name says, and the uploader's identity
(``token:<name>``) and the upload id are in the manifest's ``source`` and in
the ``claimed``, ``sealed`` and ``sighted`` custody events; the API records
``uploaded`` under the token itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.db import utcnow
from archive.models import IngestJob, JobState
from archive.upload_models import Upload
from archive.uploads import PARTIAL, SPOOL, UPLOAD_DOCK, UploadArea
from ingest import dockfs
from ingest.identify import identify_with

#: released like a dock file set to "delete": the bytes go once the item is sealed
AFTER_ARCHIVE = "delete"


@dataclass(frozen=True)
class UploadOrigin:
    """What a job that came from an upload carries into its item."""

    upload_id: str
    actor: str
    unit: str | None
    officer: str | None
    device: str | None
    declared_sha256: str

    def details(self) -> dict:
        """Added to the job's custody events."""
        return {"uploaded_by": self.actor, "upload_id": self.upload_id}


def upload_area(archive: Archive) -> UploadArea | None:
    """The station's upload area, or None when ``[uploads] enabled`` is false."""
    if not archive.settings.uploads.enabled:
        return None

    def registered(session: Session, row: Upload, root: Path, st: os.stat_result) -> int:
        return hand_off(archive, session, row, root, st)

    return UploadArea(archive, registered)


def hand_off(
    archive: Archive, session: Session, upload: Upload, root: Path, st: os.stat_result
) -> int:
    """Register the complete upload as a CLAIMING job in the caller's transaction.

    The job is the station's own (the daemon picks it up within a tick, and
    again after a restart); the claim checks the partial's device and inode
    recorded here before it renames it into the spool.
    """
    source = root / PARTIAL / upload.upload_id
    flags = list(identify_with(archive.settings.name_rule(None), upload.file_name).flags)
    now = utcnow()
    job = IngestJob(
        station=archive.station,
        dock=UPLOAD_DOCK,
        dock_root=str(root),
        source_path=str(source),
        spool_path=str(source),  # set below, once the job has its id
        after_archive=AFTER_ARCHIVE,
        display_name=upload.file_name,
        size=upload.length,
        mtime_ns=st.st_mtime_ns,
        source_identity=dockfs.identity(st),
        state=JobState.CLAIMING,
        flags=flags,
        attempts=0,
        first_seen_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    job.spool_path = str(root.joinpath(*SPOOL, str(job.id)))
    return job.id


def upload_origin(session: Session, job: IngestJob) -> UploadOrigin | None:
    """The upload a job came from (None for dock files)."""
    if job.dock != UPLOAD_DOCK:
        return None
    row = session.scalar(select(Upload).where(Upload.job_id == job.id))
    if row is None:
        return None
    return UploadOrigin(
        row.upload_id, row.actor, row.unit, row.officer, row.device, row.declared_sha256
    )


def expire_uploads(archive: Archive) -> int:
    """The scheduled clean-up of stale partial uploads (see :meth:`UploadArea.expire`)."""
    area = upload_area(archive)
    return area.expire() if area is not None else 0
