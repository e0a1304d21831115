"""Linking evidence to cases – the one implementation the CLI and the API share.

A link makes footage case evidence: while an item has a link it counts as the
case retention category (``retention.case_category``, permanent by default)
and the store holds every object of it under legal hold. The item's own
``Evidence.category`` is left alone – it is what the item returns to when its
last link goes; the hold is how the case category is enforced.

Both operations are idempotent (a repeated link or unlink adds no row and no
``linked``/``unlinked`` event) and both re-assert the hold in the store, so a
retry after a store outage repairs whatever the outage left behind.

Ordering is chosen so that a failure can only ever leave *too much* hold,
never too little:

* ``link``: the row, the ``linked`` event and the store's hold ON happen in
  one transaction; if the store refuses, nothing is committed; if the commit
  fails after the store said ON, the item is merely held without a link.
* ``unlink``: the row's removal and the ``unlinked`` event are committed
  first; only then is the hold re-evaluated (and turned OFF if nothing else
  requires it) in a second transaction. A crash in between leaves the hold
  ON, which the next link/unlink call on the item corrects.

Each transaction starts by writing the item's catalog row, which takes the
write lock (SQLite) or the row lock (PostgreSQL) before the link count is read,
so two concurrent calls on one item cannot interleave their store updates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, select, update
from sqlalchemy.orm import Session

from archive.cases import CaseLink
from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.holds import apply_hold
from archive.models import Evidence
from archive.scope import ALL_UNITS, Scope
from archive.states import GONE_STATES
from config.errors import BadInputError, ConflictError, RefusedError, UnknownEvidence
from config.settings import Settings

MAX_CASE_ID = 128
MAX_REASON = 2000
#: printable, no leading/trailing space, no path separator; any script (案件编号 may be Chinese)
CASE_ID_PATTERN = r"^[^\s/\\\x00-\x1f\x7f](?:[^/\\\x00-\x1f\x7f]*[^\s/\\\x00-\x1f\x7f])?$"
#: something besides white space, and no control characters but tab and newline
REASON_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$"
_CASE_ID = re.compile(CASE_ID_PATTERN)
_REASON = re.compile(REASON_PATTERN)


class LinkRefused(BadInputError, ValueError):
    """The request is malformed (case id or reason)."""


class NotLinkOwner(RefusedError, PermissionError):
    """Only who made a link (or an admin) may remove it."""

    code = "not_link_owner"


class EvidenceGone(ConflictError, LinkRefused):
    """The item was disposed of: there are no objects left to hold."""

    code = "evidence_gone"


@dataclass(frozen=True)
class LinkResult:
    """What a link or unlink call found and left behind."""

    case_id: str
    evidence_id: str
    linked: bool  # a link exists now
    changed: bool  # this call created (link) or removed (unlink) it
    legal_hold: bool  # the hold now in force
    linked_by: str | None = None
    linked_at: datetime | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "evidence_id": self.evidence_id,
            "linked": self.linked,
            "changed": self.changed,
            "legal_hold": self.legal_hold,
            "linked_by": self.linked_by,
            "linked_at": self.linked_at.isoformat() if self.linked_at else None,
            "reason": self.reason,
        }


def check_case_id(case_id: str) -> str:
    """Refuse ids the case system could not have meant (blank, control
    characters, slashes, overlong); return the id unchanged otherwise."""
    if not case_id or len(case_id) > MAX_CASE_ID or not _CASE_ID.fullmatch(case_id):
        raise LinkRefused(
            f"case id must be 1–{MAX_CASE_ID} printable characters without '/', '\\' "
            "or surrounding spaces"
        )
    return case_id


def check_reason(reason: str | None) -> str:
    """A reason is required: the custody record says *why* a link changed."""
    if reason is None or not reason.strip():
        raise LinkRefused("a reason is required")
    if len(reason) > MAX_REASON or not _REASON.fullmatch(reason):
        raise LinkRefused(f"reason must be at most {MAX_REASON} characters, no control characters")
    return reason.strip()


def _lock_item(session: Session, evidence_id: str, scope: Scope = ALL_UNITS) -> Evidence:
    """Write-lock the item's row, then load it (see the module doc). An item
    outside ``scope`` is unknown, exactly like a missing one."""
    touched = session.execute(
        update(Evidence)
        .where(Evidence.evidence_id == evidence_id)
        .values(legal_hold=Evidence.legal_hold)
        .execution_options(synchronize_session=False)
    )
    evidence = session.get(Evidence, evidence_id, populate_existing=True)
    # an UPDATE answers a CursorResult
    rows = cast(CursorResult[Any], touched).rowcount
    if rows == 0 or evidence is None or not scope.covers(evidence.unit):
        raise UnknownEvidence(evidence_id)
    return evidence


def link(
    archive: Archive,
    case_id: str,
    evidence_id: str,
    *,
    actor: str,
    reason: str | None,
    scope: Scope = ALL_UNITS,
    admin: bool = True,
    match: dict[str, Any] | None = None,
) -> LinkResult:
    """Link ``evidence_id`` to ``case_id`` and hold it. Idempotent.

    The link records ``actor`` and ``scope``: they decide who may unlink it.
    An item outside ``scope`` (another agency's) is :class:`UnknownEvidence`.
    ``match``: why a rule made the link (the incident window it found the item
    in); it goes into the ``linked`` event, so a rebuilt catalog knows it too."""
    check_case_id(case_id)
    reason = check_reason(reason)
    category = archive.settings.retention.case_category
    with archive.db.session() as session:
        evidence = _lock_item(session, evidence_id, scope)
        if evidence.state in GONE_STATES:
            raise EvidenceGone(f"{evidence_id} is {evidence.state}: its objects no longer exist")
        row = session.get(CaseLink, (case_id, evidence_id))
        created = row is None
        if row is None:
            row = CaseLink(
                case_id=case_id,
                evidence_id=evidence_id,
                linked_by=actor,
                reason=reason,
                linked_at=utcnow(),
                linked_scope=scope.to_dict(),
            )
            session.add(row)
            session.flush()
            record_event(
                session,
                "linked",
                actor=actor,
                evidence_id=evidence_id,
                details={
                    "case_id": case_id,
                    "reason": reason,
                    "category": category,
                    "scope": scope.to_dict(),
                    **({"match": match} if match is not None else {}),
                },
                at=row.linked_at,
            )
        held = apply_hold(
            session, archive, evidence, actor=actor, reason=f"linked to case {case_id}"
        )
        return LinkResult(
            case_id, evidence_id, True, created, held, row.linked_by, row.linked_at, row.reason
        )


def unlink(
    archive: Archive,
    case_id: str,
    evidence_id: str,
    *,
    actor: str,
    reason: str | None,
    scope: Scope = ALL_UNITS,
    admin: bool = True,
) -> LinkResult:
    """Remove the link; release the hold if nothing else requires it. Idempotent.

    Only the identity that made the link, or an admin, may remove it
    (:class:`NotLinkOwner` otherwise). An admin removing someone else's link
    is its own event kind, ``unlinked_by_admin``, so the override stands out."""
    check_case_id(case_id)
    reason = check_reason(reason)
    with archive.db.session() as session:
        _lock_item(session, evidence_id, scope)
        row = session.get(CaseLink, (case_id, evidence_id))
        removed = row is not None
        if row is not None:
            foreign = row.linked_by != actor
            if foreign and not admin:
                raise NotLinkOwner(
                    f"the link of {evidence_id} to case {case_id} was made by {row.linked_by}; "
                    "only that identity or an admin may remove it"
                )
            session.delete(row)
            record_event(
                session,
                "unlinked_by_admin" if foreign else "unlinked",
                actor=actor,
                evidence_id=evidence_id,
                details={
                    "case_id": case_id,
                    "reason": reason,
                    "linked_by": row.linked_by,
                    "linked_scope": row.linked_scope,
                    "linked_at": row.linked_at.isoformat(),
                    "scope": scope.to_dict(),
                },
            )
    with archive.db.session() as session:
        evidence = _lock_item(session, evidence_id)
        held = evidence.legal_hold
        if evidence.state not in GONE_STATES:
            held = apply_hold(
                session, archive, evidence, actor=actor, reason=f"unlinked from case {case_id}"
            )
    return LinkResult(case_id, evidence_id, False, removed, held)


def filter_by_case(query: Select[Any], case_id: str) -> Select[Any]:
    """Restrict an evidence SELECT to the items linked to ``case_id``."""
    return query.join(CaseLink, CaseLink.evidence_id == Evidence.evidence_id).where(
        CaseLink.case_id == case_id
    )


def links_of(session: Session, evidence_id: str) -> list[CaseLink]:
    """The item's case links, oldest first."""
    return list(
        session.scalars(
            select(CaseLink)
            .where(CaseLink.evidence_id == evidence_id)
            .order_by(CaseLink.linked_at, CaseLink.case_id)
        )
    )


def link_dict(row: CaseLink) -> dict[str, Any]:
    return {
        "case_id": row.case_id,
        "linked_by": row.linked_by,
        "reason": row.reason,
        "linked_at": row.linked_at.isoformat(),
        "linked_scope": row.linked_scope,
    }


def case_section(settings: Settings, session: Session, evidence: Evidence) -> dict[str, Any]:
    """``strongroom show`` fields: the item's links and the category in force."""
    links = links_of(session, evidence.evidence_id)
    return {
        "cases": [link_dict(row) for row in links],
        "effective_category": settings.retention.case_category if links else evidence.category,
    }


def case_status(session: Session) -> dict[str, int]:
    """``strongroom status`` section: how much is linked and held."""
    return {
        "cases": session.scalar(select(func.count(func.distinct(CaseLink.case_id)))) or 0,
        "linked_items": session.scalar(select(func.count(func.distinct(CaseLink.evidence_id))))
        or 0,
        "held_items": session.scalar(
            select(func.count()).select_from(Evidence).where(Evidence.legal_hold.is_(True))
        )
        or 0,
    }
