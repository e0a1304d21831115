"""Cursor paging over evidence in its stable order (sealed time, then id).

The cursor is the last item's sort key, base64url-encoded: opaque to the
client, and keyset-based, so a page never repeats or skips an item while new
evidence arrives (new items seal later and sort after every existing page).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Row, Select, and_, or_
from sqlalchemy.orm import Session

from archive.models import Evidence
from frontdoors.api.errors import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(evidence: Evidence) -> str:
    raw = json.dumps([evidence.sealed_at.isoformat(), evidence.evidence_id]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sealed, evidence_id = json.loads(raw)
        when = datetime.fromisoformat(sealed)
        if when.tzinfo is None or not isinstance(evidence_id, str):
            raise ValueError("bad cursor fields")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "cursor is not one this API issued") from None
    return when, evidence_id


def page(
    session: Session,
    query: Select,
    cursor: str | None,
    limit: int,
    keeps: Callable[[Evidence], bool] | None = None,
) -> tuple[list[Row], str | None]:
    """One page of ``query`` (already in stable order, Evidence first in each
    row) after ``cursor``. ``keeps``: a test SQL could not make (the exact
    distance of ``near``); rows are read on in batches until the page is full,
    and the cursor is the last row kept, so no kept row is skipped or repeated."""
    after = decode_cursor(cursor) if cursor else None
    kept: list[Row] = []
    while len(kept) <= limit:
        batch = list(session.execute(_after(query, after).limit(limit + 1)).all())
        kept.extend(row for row in batch if keeps is None or keeps(row[0]))
        if len(batch) <= limit:
            break
        after = (batch[-1][0].sealed_at, batch[-1][0].evidence_id)
    more = len(kept) > limit
    rows = kept[:limit]
    return rows, encode_cursor(rows[-1][0]) if more and rows else None


def _after(query: Select, after: tuple[datetime, str] | None) -> Select:
    if after is None:
        return query
    sealed, evidence_id = after
    return query.where(
        or_(
            Evidence.sealed_at > sealed,
            and_(Evidence.sealed_at == sealed, Evidence.evidence_id > evidence_id),
        )
    )
