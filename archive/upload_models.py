"""Catalog table of resumable uploads (new, additive: ``uploads``).

One row per tus upload: who is sending it (the token's name, its role), what
it declared (length, SHA-256, file name, unit, officer, device), how far the
bytes on disk are known to be durable (``offset``, written only after an
fsync) and the SHA-256 state of exactly those bytes (``hash_state``), so a
resume neither re-reads the partial file nor trusts bytes past ``offset``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.db import Base, UTCDateTime, utcnow

#: bytes arriving; the only state a PATCH may append in
RECEIVING = "receiving"
#: every byte in and the declared SHA-256 matched: handed to the pipeline as a job
COMPLETE = "complete"
#: every byte in, but not the declared SHA-256: the partial is discarded
REFUSED = "refused"
#: ended by the client (tus termination)
ABORTED = "aborted"
#: untouched for [uploads] expire_hours: discarded by the scheduled clean-up
EXPIRED = "expired"


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_token_state", "token", "state"),)

    upload_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: the station whose folder holds the bytes (and whose daemon archives them)
    station: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(200))  # the token's configured name
    role: Mapped[str] = mapped_column(String(32))
    client: Mapped[str | None] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(Text)
    declared_sha256: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(64))
    officer: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    hash_state: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def actor(self) -> str:
        """How the custody ledger names the uploader (as the API names a token)."""
        return f"token:{self.token}"
