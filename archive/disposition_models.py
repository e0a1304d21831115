"""Catalog tables of disposition: plans made by retention sweeps, and their approvals.

A plan row keeps the exact plan document and its SHA-256, so an approval is
an approval of *those bytes*, and ``apply`` refuses a document that changed.
Approvals are keyed by (plan, approver name): the same person approving twice
still counts once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow
from archive.states import PlanState


class DispositionPlan(Base):
    """One sweep's list of items whose retention has ended."""

    __tablename__ = "disposition_plans"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    #: planned → applied (or superseded by nothing: plans are never edited)
    state: Mapped[str] = mapped_column(String(20), index=True, default=PlanState.PLANNED)
    content_sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column()
    items: Mapped[int] = mapped_column(default=0)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_by: Mapped[str | None] = mapped_column(String(200))
    #: what apply did (disposed / skipped / failed), the certificate's body
    result: Mapped[dict[str, Any] | None] = mapped_column()
    certificate_key: Mapped[str | None] = mapped_column(String(200))
    certificate_version_id: Mapped[str | None] = mapped_column(String(200))


class DispositionApproval(Base):
    """One named person's approval of one plan's exact content."""

    __tablename__ = "disposition_approvals"

    plan_id: Mapped[str] = mapped_column(ForeignKey("disposition_plans.plan_id"), primary_key=True)
    approver: Mapped[str] = mapped_column(String(200), primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))  # who ran the command (OS user / token)
    content_sha256: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
