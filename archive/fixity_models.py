"""Catalog tables of fixity sweeps: the last verdict on each stored item and
the record of each sweep.

A failed verdict stays here (and in ``strongroom status``) until a later check
of the same item passes; the history itself is in the custody ledger, where
every check is a ``fixity_checked`` leaf.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow


class FixityRecord(Base):
    """The latest check of one evidence item (its original, manifest and derivatives)."""

    __tablename__ = "fixity_records"

    evidence_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_checked_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last pass
    result: Mapped[str] = mapped_column(String(10), index=True)  # a FixityResult
    problems: Mapped[list[Any]] = mapped_column(default=list)  # [{check, object, message}]
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)


class FixityRun(Base):
    """One sweep (scheduled, ``strongroom fixity`` or ``strongroom verify``)."""

    __tablename__ = "fixity_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20))  # schedule | fixity | verify
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    items: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
