"""Correcting an item's unit after it was sealed.

The manifest keeps the unit the item was sealed with; a correction is a
``unit_corrected`` custody event (old, new, reason) and the catalog row
follows it. ``catalog rebuild`` replays the event, so the correction survives
a lost catalog.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from archive.caselinks import check_reason
from archive.custody import record_event
from archive.models import Evidence
from config.errors import BadInputError, UnknownEvidence
from config.settings import UNIT_PATTERN, Settings


class UnitRefused(BadInputError, ValueError):
    """The new unit is not a unit code (or not one of the configured tree)."""


def correct_unit(
    session: Session, settings: Settings, evidence_id: str, unit: str, *, actor: str, reason: str
) -> tuple[str | None, bool]:
    """Set the item's unit; returns (the old unit, whether anything changed)."""
    reason = check_reason(reason)
    if len(unit) > 64 or not re.fullmatch(UNIT_PATTERN, unit):
        raise UnitRefused(f"{unit!r} is not a unit code")
    if settings.units and unit not in settings.units:
        raise UnitRefused(f"{unit!r} is not one of the configured [units]")
    evidence = session.get(Evidence, evidence_id) if len(evidence_id) <= 40 else None
    if evidence is None:
        raise UnknownEvidence(evidence_id)
    old = evidence.unit
    if old == unit:
        return old, False
    evidence.unit = unit
    record_event(
        session,
        "unit_corrected",
        actor=actor,
        evidence_id=evidence_id,
        details={"old": old, "new": unit, "reason": reason},
    )
    return old, True
