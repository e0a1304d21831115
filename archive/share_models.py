"""Catalog table of disclosure shares (new, additive: ``shares``).

A share is a link for an outsider – a prosecutor, a defence lawyer, a court –
holding a random secret. Only the secret's SHA-256 is kept, so the catalog
cannot give the link away; the link dies at ``expires_at`` or when revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow


class Share(Base):
    __tablename__ = "shares"

    share_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[str] = mapped_column(String(128), index=True)
    recipient: Mapped[str] = mapped_column(Text)
    allow: Mapped[str] = mapped_column(String(10))  # view | download
    evidence_ids: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    receipt_sha256: Mapped[str | None] = mapped_column(String(64))
