"""Legal hold: the one rule deciding whether an item's objects are held.

An item is held while it has at least one case link, or while its own
retention category is permanent. The rule is evaluated here and applied to
every stored object of the item (original, manifest, derivatives and their
manifests), so linking, unlinking and retention changes cannot disagree.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.cases import CaseLink
from archive.context import Archive
from archive.custody import record_event
from archive.derivatives import evidence_objects
from archive.models import Evidence


def hold_required(session: Session, archive: Archive, evidence: Evidence) -> tuple[bool, str]:
    """Whether the item must be held, and why (for the custody event)."""
    links = session.scalar(
        select(func.count())
        .select_from(CaseLink)
        .where(CaseLink.evidence_id == evidence.evidence_id)
    )
    if links:
        return True, f"linked to {links} case(s)"
    if archive.settings.category(evidence.category).permanent:
        return True, f"category {evidence.category} is permanent"
    return False, "no case link and a dated category"


def apply_hold(
    session: Session, archive: Archive, evidence: Evidence, *, actor: str, reason: str
) -> bool:
    """Bring the store's legal hold in line with :func:`hold_required`.

    Sets the hold on every object version of the item (idempotent: the store
    accepts ON twice), updates the catalog and records ``legal_hold_changed``
    when the state changes. Returns the hold state now in force. Store errors
    propagate, so the caller's transaction is rolled back and nothing claims a
    hold the store does not have.
    """
    required, why = hold_required(session, archive, evidence)
    for key, version_id in evidence_objects(session, evidence):
        archive.store.set_legal_hold(key, version_id, required)
    if evidence.legal_hold != required:
        evidence.legal_hold = required
        record_event(
            session,
            "legal_hold_changed",
            actor=actor,
            evidence_id=evidence.evidence_id,
            details={"legal_hold": required, "because": why, "reason": reason},
        )
    return required
