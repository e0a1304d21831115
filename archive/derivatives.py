"""Playback copies (derivatives) in the catalog, and the list of every stored
object that belongs to one evidence item.

A derivative is a new object with its own hash and its own signed manifest
naming the original; the original is never touched (invariant 3).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from archive.db import Base, UTCDateTime, utcnow
from archive.models import Evidence


class Derivative(Base):
    """One playback copy, or one attempt at making it (state says which)."""

    __tablename__ = "derivatives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.evidence_id"), index=True)
    state: Mapped[str] = mapped_column(
        String(20), index=True
    )  # queued|running|stored|failed|skipped
    action: Mapped[str | None] = mapped_column(String(20))  # remux|transcode|audio|none
    reason: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(String(200))
    version_id: Mapped[str | None] = mapped_column(String(200))
    checksum: Mapped[str | None] = mapped_column(String(100))
    manifest_key: Mapped[str | None] = mapped_column(String(200))
    manifest_version_id: Mapped[str | None] = mapped_column(String(200))
    probe: Mapped[dict | None] = mapped_column()
    ffmpeg_version: Mapped[str | None] = mapped_column(Text)
    ffmpeg_args: Mapped[list | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    progress: Mapped[float | None] = mapped_column()
    speed: Mapped[float | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def evidence_objects(session: Session, evidence: Evidence) -> list[tuple[str, str | None]]:
    """Every stored object version of an item: original, manifest, derivatives
    and their manifests. Retention and legal hold apply to all of them alike."""
    objects = [
        (evidence.original_key, evidence.original_version_id),
        (evidence.manifest_key, evidence.manifest_version_id),
    ]
    for derivative in session.scalars(
        select(Derivative).where(
            Derivative.evidence_id == evidence.evidence_id, Derivative.state == "stored"
        )
    ):
        if derivative.key:
            objects.append((derivative.key, derivative.version_id))
        if derivative.manifest_key:
            objects.append((derivative.manifest_key, derivative.manifest_version_id))
    return objects
