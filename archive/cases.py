"""Case links: which evidence belongs to which case in the case system (案件系统).

A link is what makes footage evidence: while an item has at least one link it
is under legal hold and in the case retention category. Unlinking removes the
row but never the history – both are custody events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow


class CaseLink(Base):
    __tablename__ = "case_links"
    __table_args__ = (Index("ix_case_links_evidence", "evidence_id"),)

    case_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.evidence_id"), primary_key=True)
    linked_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the scope of whoever linked (``{"units": [...]}`` or ``{"all_units": true}``)
    linked_scope: Mapped[dict[str, Any] | None] = mapped_column(default=None)
