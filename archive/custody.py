"""Custody events: the one way anything that happens to evidence is recorded.

Each call adds a row in the caller's transaction, so an event is committed
exactly when the change it describes is. The row carries its ledger leaf
(canonical JSON) from the start; the sequencer later gives it a ledger index.
"""

from __future__ import annotations

import getpass
import os
import socket
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from archive.canonical import canonical_json
from archive.db import utcnow
from archive.models import CustodyEvent

#: every kind of event; other features add theirs here so the list stays one place
EVENT_KINDS = frozenset(
    {
        "claimed",
        "stored",
        "sealed",
        "released",
        "sighted",
        "quarantined",
        "held",  # archived, dock copy kept: the recorder's hash disagrees (issue 19)
        "flagged",
        "derivative_started",
        "derivative_stored",
        "derivative_failed",
        "derivative_skipped",
        "derivative_queued",
        "derivative_requeued",
        "linked",
        "unlinked",
        "unlinked_by_admin",  # an admin removed a link someone else made (issue 15)
        "searched",  # a search: who asked for what (filters, not results)
        "unit_corrected",  # an item's unit set right after sealing
        "key_rotated",  # the signing key was replaced (strongroom keys rotate)
        "legal_hold_changed",
        "viewed",
        "playback_issued",
        "downloaded",
        "exported",
        "fixity_checked",
        "retention_changed",
        "disposition_planned",
        "disposition_approved",
        "disposed",
        "report_issued",
        "share_created",
        "share_revoked",
        "share_viewed",
        "share_played",
        "share_downloaded",
        "incidents_imported",  # dispatch incidents stored (issue 19): created/updated ids
        "link_proposed",  # an incident-window match waits for a person (confirm mode)
        "link_rejected",  # a person refused a proposed link
        "uploaded",  # a complete upload through the API, by its token (issue 19)
        "upload_refused",  # an upload whose bytes were not its declared SHA-256
    }
)


def system_actor(station: str) -> str:
    """Who the daemon acts as: ``strongroom@<station>``."""
    return f"strongroom@{station}"


def cli_actor() -> str:
    """The operator behind a CLI command: ``os:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"os:{user}@{socket.gethostname()}"


def record_event(
    session: Session,
    kind: str,
    *,
    actor: str,
    evidence_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
    insert_now: bool = False,
) -> CustodyEvent | None:
    """Add one custody event to ``session`` (committed with the caller's work).

    ``insert_now``: INSERT the row at once on the session's connection instead
    of adding an ORM object for the next flush (same row, same transaction;
    returns None). Cheaper – no ORM object, no unit-of-work flush – which
    counts in the pipeline's catalog writer (several events per small file);
    it takes the database's write lock at once, so it suits work that commits
    right away.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown custody event kind {kind!r}")
    at = at or utcnow()
    details = details or {}
    leaf = canonical_json(
        {
            "v": 1,
            "kind": kind,
            "evidence_id": evidence_id,
            "actor": actor,
            "at": at.isoformat().replace("+00:00", "Z"),
            "details": details,
        }
    )
    row = {
        "kind": kind,
        "evidence_id": evidence_id,
        "actor": actor,
        "at": at,
        "details": details,
        "leaf": leaf,
    }
    if insert_now:
        session.connection().execute(_INSERT_EVENT, row)
        return None
    event = CustodyEvent(**row)
    session.add(event)
    return event


#: built once: its compiled form is then cached by SQLAlchemy
_INSERT_EVENT = cast(Table, CustodyEvent.__table__).insert()  # a mapped class: a Table
