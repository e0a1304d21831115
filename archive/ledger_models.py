"""Catalog tables of the custody ledger's sequencer.

The leaves themselves are ``custody_events`` rows; these tables hold what the
sequencer needs to append without rehashing the log (the compact range of the
tree so far) and the record of every checkpoint it signed. Both are an index
of the bucket: ``strongroom ledger audit`` rebuilds and checks them from the
stored segments and checkpoints alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow


class LedgerState(Base):
    """The one row the sequencer locks: tree size and its compact range."""

    __tablename__ = "ledger_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    hashes: Mapped[list[Any]] = mapped_column(default=list)  # hex, largest subtree first
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerCheckpoint(Base):
    """One signed checkpoint and the leaf segment it added.

    Rows are written (``stored_at`` empty) in the sequencer's locked
    transaction, then published to the bucket; a crash in between is finished
    by the next run, which writes the very same bytes.
    """

    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(Text)
    key_name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text)
    first_index: Mapped[int] = mapped_column(BigInteger)  # leaves [first, size) are new here
    segment_key: Mapped[str] = mapped_column(String(200))
    segment_version_id: Mapped[str | None] = mapped_column(String(200))
    checkpoint_key: Mapped[str] = mapped_column(String(200))
    checkpoint_version_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
