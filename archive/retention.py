"""Retention categories applied to stored evidence: retention only ever grows.

An item's retention counts from its ingest (``ingested_at``), because that is
when its objects were first locked: ``retain_until = ingested_at + days`` of
its category. Changing the category to a longer one extends the Object Lock
``RetainUntilDate`` of every object of the item (original, manifest,
derivatives and their manifests); a permanent category puts them under legal
hold instead (the hold rule is :mod:`archive.holds`). A shorter category is
refused before anything is sent to the store: Strongroom never even asks the
store to shorten a lock (and the store would refuse, see the tests).

While an item has case links it is also in ``retention.case_category``; that
is enforced by the hold, not by this module, and does not change
``Evidence.category`` (what the item returns to after its last unlink).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.custody import record_event
from archive.derivatives import evidence_objects
from archive.holds import apply_hold
from archive.instants import iso_z
from archive.metrics import RETENTION_CHANGES
from archive.models import Evidence
from archive.states import GONE_STATES
from archive.store import grown_lock
from config.errors import BadInputError, ConflictError, UnknownEvidence
from config.settings import RetentionCategory, Settings


class RetentionError(BadInputError):
    """A retention change that cannot be made (a reason or category missing or unknown)."""

    code = "bad_retention_request"


class RetentionRefused(ConflictError, RetentionError):
    """The change would shorten retention, or the item no longer exists in the store."""

    code = "retention_refused"


@dataclass(frozen=True)
class Term:
    """How long a category keeps an item: a date, or forever (``until`` None)."""

    permanent: bool
    until: datetime | None

    def longer_than(self, other: Term) -> bool:
        if self.permanent or other.permanent:
            return self.permanent and not other.permanent
        assert self.until is not None and other.until is not None
        return self.until > other.until


def category_term(settings: Settings, category_name: str, ingested_at: datetime) -> Term:
    """The retention a category gives an item ingested at ``ingested_at``."""
    category = _category(settings, category_name)
    if category.permanent:
        return Term(True, None)
    assert category.days is not None
    return Term(False, ingested_at + timedelta(days=category.days))


@dataclass
class RetentionChange:
    """What :func:`set_category` did."""

    evidence_id: str
    old_category: str
    new_category: str
    old_retain_until: datetime | None
    new_retain_until: datetime | None
    lock_mode: str
    legal_hold: bool
    extended: list[dict[str, Any]] = field(default_factory=list)  # objects whose lock grew
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence_id": self.evidence_id,
            "old_category": self.old_category,
            "new_category": self.new_category,
            "old_retain_until": iso_z(self.old_retain_until),
            "new_retain_until": iso_z(self.new_retain_until),
            "lock_mode": self.lock_mode,
            "legal_hold": self.legal_hold,
            "extended": self.extended,
            "changed": self.changed,
        }


def set_category(
    archive: Archive, evidence_id: str, category: str, *, actor: str, reason: str
) -> RetentionChange:
    """Move an item to ``category``, which must keep it at least as long.

    Store first, catalog after, in one transaction: the locks are extended
    (and the hold applied) before the catalog says so; if the store refuses,
    nothing is committed. A crash after the store call leaves a lock longer
    than the catalog says, never shorter.
    """
    settings = archive.settings
    if not reason or not reason.strip():
        raise RetentionError("a reason is required")
    _category(settings, category)
    with archive.db.session() as session:
        evidence = _lock_item(session, evidence_id)
        if evidence.state in GONE_STATES:
            raise RetentionRefused(f"{evidence_id} was disposed of: its objects no longer exist")
        old_category, old_until = evidence.category, evidence.retain_until
        try:
            current = category_term(settings, old_category, evidence.ingested_at)
        except RetentionError:  # a category since removed from the config: its lock counts
            current = Term(old_until is None, old_until)
        wanted = category_term(settings, category, evidence.ingested_at)
        if current.longer_than(wanted):
            raise RetentionRefused(
                f"{evidence_id} is in {old_category} ({_describe(current)}); {category} "
                f"({_describe(wanted)}) would shorten it, and retention only grows"
            )
        if category == old_category:
            return RetentionChange(
                evidence_id,
                old_category,
                category,
                old_until,
                old_until,
                evidence.lock_mode,
                evidence.legal_hold,
                changed=False,
            )
        extended: list[dict[str, Any]] = []
        new_until = old_until
        grown = None
        if wanted.until is not None:
            asked = _category(settings, category).lock_mode
            grown = grown_lock(evidence.lock_mode, old_until, asked, wanted.until)
        if grown is not None:
            mode, new_until = grown
            for key, version_id in evidence_objects(session, evidence):
                if archive.store.extend_retention(key, version_id, mode, new_until):
                    extended.append({"key": key, "version_id": version_id})
            evidence.lock_mode = mode
        evidence.category = category
        evidence.retain_until = new_until
        session.flush()
        held = apply_hold(session, archive, evidence, actor=actor, reason=reason)
        record_event(
            session,
            "retention_changed",
            actor=actor,
            evidence_id=evidence_id,
            details={
                "old": {"category": old_category, "retain_until": iso_z(old_until)},
                "new": {"category": category, "retain_until": iso_z(new_until)},
                "permanent": wanted.permanent,
                "lock_mode": evidence.lock_mode,
                "objects_extended": len(extended),
                "reason": reason.strip(),
            },
        )
        RETENTION_CHANGES.labels(category=category).inc()
        return RetentionChange(
            evidence_id,
            old_category,
            category,
            old_until,
            new_until,
            evidence.lock_mode,
            held,
            extended,
        )


def _lock_item(session: Session, evidence_id: str) -> Evidence:
    """Take the item's row lock (a no-op write) before reading it, so a link,
    unlink or disposition of the same item cannot interleave with this change."""
    touched = session.execute(
        update(Evidence)
        .where(Evidence.evidence_id == evidence_id)
        .values(category=Evidence.category)
        .execution_options(synchronize_session=False)
    )
    evidence = session.get(Evidence, evidence_id, populate_existing=True)
    # an UPDATE answers a CursorResult
    if cast(CursorResult[Any], touched).rowcount == 0 or evidence is None:
        raise UnknownEvidence(evidence_id)
    return evidence


def _category(settings: Settings, name: str) -> RetentionCategory:
    try:
        return settings.category(name)
    except KeyError:
        raise RetentionError(
            f"unknown category {name!r}; configured: {sorted(settings.retention.categories)}"
        ) from None


def _describe(term: Term) -> str:
    return "permanent" if term.permanent else f"until {iso_z(term.until)}"
