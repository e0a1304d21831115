"""The ``station_heartbeats`` table: one row per station, rewritten every
``[heartbeat] seconds`` by its daemon (see :mod:`archive.heartbeat`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime


class StationHeartbeat(Base):
    __tablename__ = "station_heartbeats"

    station: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    interval_seconds: Mapped[float] = mapped_column(Float)
    #: {dock label: {"path", "free_bytes", "size_bytes"}}
    docks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spool_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    queue_depth: Mapped[int] = mapped_column(Integer, default=0)
    #: age of the oldest dock file not yet archived (file time, else first seen); None: none
    oldest_unarchived_seconds: Mapped[float | None] = mapped_column(Float)
    #: one small store call's round trip; None: the store did not answer
    store_latency_seconds: Mapped[float | None] = mapped_column(Float)
    #: this host's clock minus the store's HTTP ``Date`` (±0.5 s resolution); None: unknown
    clock_offset_seconds: Mapped[float | None] = mapped_column(Float)
    store_error: Mapped[str | None] = mapped_column(String(500))
