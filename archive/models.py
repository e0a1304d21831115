"""Catalog tables for the ingest path: evidence items, pipeline jobs, custody events.

The catalog is an index, not the truth: every evidence row can be rebuilt from
its signed manifest in the bucket, and every custody event is also a ledger
leaf. Other features add their own tables in their own modules (listed in
``archive.db.MODEL_MODULES``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, FsPath, UTCDateTime, utcnow
from archive.instants import iso

# the job states live with every other state; imported from here by older code
from archive.states import ACTIVE_STATES as ACTIVE_STATES
from archive.states import EvidenceState
from archive.states import JobState as JobState


class Evidence(Base):
    """One archived original, identified by its bytes."""

    __tablename__ = "evidence"
    #: ``find --near``: a box of latitudes and longitudes is one index range
    __table_args__ = (Index("ix_evidence_lat_lon", "latitude", "longitude"),)

    evidence_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(Text)
    original_key: Mapped[str] = mapped_column(String(200))
    original_version_id: Mapped[str | None] = mapped_column(String(200))
    original_checksum: Mapped[str] = mapped_column(String(100))
    manifest_key: Mapped[str] = mapped_column(String(200))
    manifest_version_id: Mapped[str | None] = mapped_column(String(200))
    keyid: Mapped[str] = mapped_column(String(16))
    station: Mapped[str] = mapped_column(String(64), index=True)
    dock: Mapped[str] = mapped_column(String(200))
    source_path: Mapped[str] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(String(64), index=True)
    officer: Mapped[str | None] = mapped_column(String(64), index=True)
    unit: Mapped[str | None] = mapped_column(String(64), index=True)
    recorded_start: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    recorded_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    file_mtime: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the media's own creation_time (ffprobe), when plausible (archive.recorded_time)
    media_created: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: why the time in the file name was refused (the item is flagged bad_timestamp)
    time_problem: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    #: the recorder's own hash of the file compared at hash time: "match" or "mismatch"
    #: (None: the dock held none); from the manifest's ``source.recorder_hashes``
    recorder_hash: Mapped[str | None] = mapped_column(String(16))
    probe: Mapped[dict[str, Any] | None] = mapped_column()
    category: Mapped[str] = mapped_column(String(64))
    lock_mode: Mapped[str] = mapped_column(String(16))
    retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    legal_hold: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(20), default=EvidenceState.SEALED, index=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: what the recording says about itself: the manifest's ``media`` section
    #: (``ingest.metadata``), and its searchable parts as columns
    media: Mapped[dict[str, Any] | None] = mapped_column()
    #: the recording's start by its own clock (a media tag), when plausible
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)

    def summary(self) -> dict[str, Any]:
        """The fields ``ingest --json`` and ``find --json`` promise."""
        return {
            "evidence_id": self.evidence_id,
            "sha256": self.sha256,
            "size": self.size,
            "state": self.state,
            "original_key": self.original_key,
            "manifest_key": self.manifest_key,
            "file_name": self.file_name,
            "station": self.station,
            "device": self.device,
            "officer": self.officer,
            "unit": self.unit,
            "recorded_start": iso(self.recorded_start),
            "category": self.category,
            "retain_until": iso(self.retain_until),
            "legal_hold": self.legal_hold,
            "flags": list(self.flags or []),
            "sealed_at": iso(self.sealed_at),
        }


class IngestJob(Base):
    """One dock file's journey. Never deleted: it is the station's own record."""

    __tablename__ = "ingest_jobs"
    __table_args__ = (Index("ix_jobs_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    dock: Mapped[str] = mapped_column(String(200))
    dock_root: Mapped[str] = mapped_column(FsPath)
    source_path: Mapped[str] = mapped_column(FsPath)  # where the dock wrote it
    spool_path: Mapped[str] = mapped_column(FsPath)  # where we moved it (same if in place)
    after_archive: Mapped[str] = mapped_column(String(300))  # policy fixed at claim time
    display_name: Mapped[str] = mapped_column(Text)  # relative path, printable
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    #: "device:inode" when inspected; the claim moves only that file (ingest/dockfs.py)
    source_identity: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    #: upload parts hashed with the file (see archive.hashing); the store checks each
    part_size: Mapped[int | None] = mapped_column(BigInteger)
    part_digests: Mapped[list[Any] | None] = mapped_column()
    expected_checksum: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), index=True)
    evidence_id: Mapped[str | None] = mapped_column(ForeignKey("evidence.evidence_id"))
    original_version_id: Mapped[str | None] = mapped_column(String(200))
    original_checksum: Mapped[str | None] = mapped_column(String(100))
    original_lock_mode: Mapped[str | None] = mapped_column(String(16))
    original_retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    #: the recorder's integrity values read beside the file at claim
    #: (``ingest/recorder_hashes.py``), each with how it compared once hashed
    recorder_hashes: Mapped[list[Any] | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustodyEvent(Base):
    """One thing that happened to evidence, in the order it was recorded.

    ``leaf`` is the canonical JSON that becomes the ledger leaf; it is fixed at
    insert time so the ledger hashes exactly what was recorded. ``ledger_index``
    is assigned later by the sequencer, in ``seq`` order, without gaps.
    """

    __tablename__ = "custody_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    evidence_id: Mapped[str | None] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class DockProblem(Base):
    """Something in a dock we will not take (a symlink, a pipe, an unlistable
    folder), kept so ``strongroom status`` can show it until it is gone."""

    __tablename__ = "dock_problems"

    path: Mapped[str] = mapped_column(FsPath, primary_key=True)
    dock: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    count: Mapped[int] = mapped_column(default=1)
