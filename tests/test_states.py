"""The states the catalog stores keep their words, and each rule about them is one
function: "is a hold needed?", "may this item be disposed of?", "locks only grow",
"is this share alive?". The rules are tested here on their own; the features that
use them (case links, retention, disposition, playback) test them in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ingest_helpers import SHORT_RETENTION

from archive.cases import CaseLink
from archive.derivatives import Derivative
from archive.holds import disposal_refusal, hold_required
from archive.models import Evidence
from archive.share_models import Share
from archive.shares import status_of
from archive.states import (
    ACTIVE_STATES,
    GONE_STATES,
    PENDING_COPY_STATES,
    STORE_STEP_STATES,
    CopyState,
    EvidenceState,
    FixityResult,
    ItemOutcome,
    JobState,
    PlanState,
    ShareStatus,
)
from archive.store import grown_lock

pytestmark = pytest.mark.catalogs("sqlite", "postgresql")

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)


def test_stored_states_keep_the_words_already_in_catalogs() -> None:
    """A renamed value would strand every row written before it (a data migration)."""
    assert [s.value for s in JobState] == [
        "claiming",
        "claimed",
        "hashed",
        "stored",
        "sealed",
        "sighted",
        "released",
        "duplicate",
        "quarantined",
        "vanished",
        "held",  # added: a recorder hash mismatch keeps the dock copy (issue 19)
    ]
    assert [s.value for s in EvidenceState] == ["sealed", "disposed"]
    assert [s.value for s in CopyState] == [
        "queued",
        "running",
        "retrying",
        "stored",
        "skipped",
        "failed",
        "disposed",
    ]
    assert [s.value for s in PlanState] == ["planned", "applied"]
    assert [s.value for s in ItemOutcome] == ["disposed", "skipped", "failed"]
    assert [s.value for s in FixityResult] == ["ok", "failed"]
    assert [s.value for s in ShareStatus] == ["active", "expired", "revoked"]
    # a member is its word: equal to what the catalog hands back, and printed as it
    assert CopyState.RETRYING == "retrying" and f"{CopyState.RETRYING}" == "retrying"
    assert set(GONE_STATES) == {EvidenceState.DISPOSED}
    assert set(PENDING_COPY_STATES) == {CopyState.QUEUED, CopyState.RUNNING, CopyState.RETRYING}
    assert STORE_STEP_STATES.issubset(ACTIVE_STATES)


def test_locks_only_grow() -> None:
    """The later date and the stronger mode; nothing to do when the lock already lasts."""
    assert grown_lock("GOVERNANCE", T0, "GOVERNANCE", LATER) == ("GOVERNANCE", LATER)
    assert grown_lock("GOVERNANCE", T0, "COMPLIANCE", LATER) == ("COMPLIANCE", LATER)
    assert grown_lock("COMPLIANCE", T0, "GOVERNANCE", LATER) == ("COMPLIANCE", LATER)
    assert grown_lock(None, None, "GOVERNANCE", T0) == ("GOVERNANCE", T0)
    assert grown_lock("COMPLIANCE", LATER, "COMPLIANCE", T0) is None  # never shorter
    assert grown_lock("GOVERNANCE", LATER, "COMPLIANCE", LATER) is None  # as long already


def test_share_status_revoked_beats_expired() -> None:
    def share(expires_at: datetime, revoked_at: datetime | None = None) -> Share:
        return Share(expires_at=expires_at, revoked_at=revoked_at)

    assert status_of(share(LATER), T0) is ShareStatus.ACTIVE
    assert status_of(share(T0), T0) is ShareStatus.EXPIRED  # dies at expires_at
    assert status_of(share(LATER, revoked_at=T0), T0) is ShareStatus.REVOKED
    assert status_of(share(T0, revoked_at=T0), LATER) is ShareStatus.REVOKED


def test_hold_needed_and_may_be_disposed_of(station) -> None:
    """Each condition alone keeps an item; only an expired, unlinked, unheld, dated
    item with no copy pending may be disposed of (the catalog's part of the rule)."""
    station.write_config(SHORT_RETENTION + "[transcode]\nenabled = false\n")
    item = station.ingest_bytes("ABC1234_012345_20261129080000_0001.MP4", b"rule " * 2000)
    now = datetime.now(UTC)
    archive = station.archive()
    try:
        with archive.db.session() as session:
            evidence = session.get(Evidence, item["evidence_id"])
            evidence.retain_until = now - timedelta(days=1)

            def refusal() -> str | None:
                session.flush()
                found = disposal_refusal(session, archive, evidence, now)
                return None if found is None else found.why

            def hold() -> tuple[bool, str]:
                session.flush()
                return hold_required(session, archive, evidence)

            assert refusal() is None
            assert hold() == (False, "no case link and a dated category")

            evidence.retain_until = now + timedelta(hours=1)
            assert refusal().startswith("retained until ")
            evidence.retain_until = None
            assert refusal() == "retained without an end date"
            evidence.retain_until = now - timedelta(days=1)

            evidence.legal_hold = True
            assert refusal() == "under legal hold"
            assert hold()[0] is False  # the catalog's flag records a hold; it is not the rule
            evidence.legal_hold = False

            evidence.category = "evidence"
            assert hold() == (True, "category evidence is permanent")
            assert refusal() == "category evidence is permanent"
            evidence.category = "since-removed"  # no longer configured: not permanent
            assert hold()[0] is False and refusal() is None
            evidence.category = "routine"

            link = CaseLink(
                case_id="C-1", evidence_id=evidence.evidence_id, linked_by="t", reason="r"
            )
            session.add(link)
            assert hold() == (True, "linked to 1 case(s)")
            assert refusal() == "linked to 1 case(s)"
            session.delete(link)
            assert refusal() is None

            for state in CopyState:
                copy = Derivative(evidence_id=evidence.evidence_id, state=state)
                session.add(copy)
                session.flush()
                found = disposal_refusal(session, archive, evidence, now)
                if state in (CopyState.QUEUED, CopyState.RUNNING, CopyState.RETRYING):
                    assert found is not None and found.passing, state
                    assert found.why == "a playback copy is still being made"
                else:
                    assert found is None, state
                session.delete(copy)

            evidence.state = EvidenceState.DISPOSED
            assert refusal() == "already disposed"
            session.rollback()
    finally:
        archive.close()
