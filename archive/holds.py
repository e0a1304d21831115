"""Legal hold and disposal: the rules deciding what keeps an item.

:func:`hold_required` is the one answer to "is a hold needed?", and
:func:`disposal_refusal` the one answer to "may this item be disposed of?"
(asked by the retention sweep when it plans, and by apply just before it
deletes); the second builds on the first.

An item is held while it has at least one case link, or while its own
retention category is permanent. The rule is evaluated here and applied to
every stored object of the item (original, manifest, derivatives and their
manifests), so linking, unlinking and retention changes cannot disagree.

An object is held while *any* item using it must be held: a playback copy
shared by two items (identical bytes, one content-addressed object) keeps its
hold when one item is unlinked while the other is still linked or permanent.
The other items' rows are write-locked before their links are read, so a link
of one and an unlink of the other cannot both act on stale counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from archive.cases import CaseLink
from archive.context import Archive
from archive.custody import record_event
from archive.derivatives import Derivative, evidence_objects, items_sharing
from archive.models import Evidence
from archive.states import GONE_STATES, PENDING_COPY_STATES


def hold_required(session: Session, archive: Archive, evidence: Evidence) -> tuple[bool, str]:
    """Whether the item must be held, and why (for the custody event).

    Held while it has a case link or its category is permanent. A category no
    longer in the configuration is not permanent (as the retention sweep has
    always treated it); its objects' locks in the store still count.
    """
    links = session.scalar(
        select(func.count())
        .select_from(CaseLink)
        .where(CaseLink.evidence_id == evidence.evidence_id)
    )
    if links:
        return True, f"linked to {links} case(s)"
    category = archive.settings.retention.categories.get(evidence.category)
    if category is not None and category.permanent:
        return True, f"category {evidence.category} is permanent"
    return False, "no case link and a dated category"


@dataclass(frozen=True)
class DisposalRefusal:
    """Why an item may not be disposed of now."""

    why: str
    #: the reason passes by itself (a playback copy is being made): the retention
    #: sweep lists such an item as deferred instead of leaving it out silently
    passing: bool = False


def disposal_refusal(
    session: Session, archive: Archive, evidence: Evidence, now: datetime
) -> DisposalRefusal | None:
    """May this item be disposed of at ``now``? None if the catalog says yes, else why not.

    Yes only when it is not gone already, no hold is needed
    (:func:`hold_required`: no case link, a dated category), the catalog has no
    legal hold on it, its retention date has passed, and no playback copy is
    pending – a worker still queued, running or retrying could store a copy of
    an item whose other objects are being deleted. The store's own view of each
    version to delete is asked separately (:func:`archive.disposition.store_refusal`).
    """
    if evidence.state in GONE_STATES:
        return DisposalRefusal(f"already {evidence.state}")
    held, why = hold_required(session, archive, evidence)
    if held:
        return DisposalRefusal(why)
    if evidence.legal_hold:
        return DisposalRefusal("under legal hold")
    if evidence.retain_until is None:
        return DisposalRefusal("retained without an end date")
    if evidence.retain_until > now:
        until = evidence.retain_until.isoformat().replace("+00:00", "Z")
        return DisposalRefusal(f"retained until {until}")
    pending = session.scalar(
        select(func.count())
        .select_from(Derivative)
        .where(
            Derivative.evidence_id == evidence.evidence_id,
            Derivative.state.in_(PENDING_COPY_STATES),
        )
    )
    if pending:
        return DisposalRefusal("a playback copy is still being made", passing=True)
    return None


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
    kept: list[dict[str, Any]] = []
    for key, version_id in evidence_objects(session, evidence):
        held = required
        if not required:
            holders = _other_holders(session, archive, evidence, key, version_id)
            if holders:
                held = True
                kept.append({"key": key, "version_id": version_id, "held_for": holders})
        archive.store.set_legal_hold(key, version_id, held)
    if evidence.legal_hold != required:
        evidence.legal_hold = required
        details: dict[str, Any] = {"legal_hold": required, "because": why, "reason": reason}
        if kept:
            details["objects_still_held"] = kept
        record_event(
            session,
            "legal_hold_changed",
            actor=actor,
            evidence_id=evidence.evidence_id,
            details=details,
        )
    return required


def _other_holders(
    session: Session, archive: Archive, evidence: Evidence, key: str, version_id: str | None
) -> list[str]:
    """Ids of the other items sharing this object version that must be held."""
    others = items_sharing(session, key, version_id, but=evidence.evidence_id)
    if not others:
        return []
    session.execute(  # their row locks, as the caller holds this item's (see the module doc)
        update(Evidence)
        .where(Evidence.evidence_id.in_([o.evidence_id for o in others]))
        .values(legal_hold=Evidence.legal_hold)
        .execution_options(synchronize_session=False)
    )
    return [o.evidence_id for o in others if hold_required(session, archive, o)[0]]
