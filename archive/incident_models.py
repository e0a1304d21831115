"""Catalog tables of dispatch incidents (警情/CAD) and the matches they made.

An incident is a window of time, a unit and the officers sent to it, perhaps
with the case it became. A *match* is one item found inside one incident's
window: the link it made, or the proposal waiting for a person. A match row is
written once and never re-made, so re-importing the same incidents, or a
person unlinking what the rule linked, is never undone by the rule.
``incident_checks`` says which items were already matched against the
incidents known when they were sealed (what the matcher still owes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow


class Incident(Base):
    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(128), index=True)
    unit: Mapped[str] = mapped_column(String(64), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: when matching last finished for this incident; NULL or older than updated_at: owed
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IncidentOfficer(Base):
    __tablename__ = "incident_officers"
    __table_args__ = (Index("ix_incident_officers_officer", "officer"),)

    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"), primary_key=True)
    officer: Mapped[str] = mapped_column(String(64), primary_key=True)


class IncidentMatch(Base):
    __tablename__ = "incident_matches"
    __table_args__ = (
        UniqueConstraint("incident_id", "evidence_id", name="uq_incident_matches_pair"),
        Index("ix_incident_matches_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.incident_id"))
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.evidence_id"), index=True)
    case_id: Mapped[str] = mapped_column(String(128))
    #: linked (by the rule) | pending | confirmed | rejected
    state: Mapped[str] = mapped_column(String(16))
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: why it matched: officer, the item's time, the window with its slack
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)


class IncidentCheck(Base):
    """An item the matcher has compared with every incident known at that time."""

    __tablename__ = "incident_checks"

    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.evidence_id"), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
