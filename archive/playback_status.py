"""What ``strongroom status`` and ``strongroom show`` print about playback copies:
catalog reads only (moved from ``ingest/playback.py``, which makes the copies)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from archive.queries import (
    derivative_counts,
    derivative_summary,
    derivatives_in,
    derivatives_of,
)
from archive.states import CopyState


def status_section(session: Session) -> dict[str, Any]:
    """``strongroom status``: copies by state, the running ones with percent and speed,
    and the latest failures with ffmpeg's reason."""
    running = [
        {
            "evidence_id": d.evidence_id,
            "action": d.action,
            "percent": round(d.progress or 0.0, 1),
            "speed": f"{d.speed:g}x" if d.speed is not None else None,
            "attempt": d.attempts,
        }
        for d in derivatives_in(session, [CopyState.RUNNING])
    ]
    failed = [
        {
            "evidence_id": d.evidence_id,
            "state": d.state,
            "attempts": d.attempts,
            "error": d.last_error,
        }
        for d in derivatives_in(session, [CopyState.FAILED, CopyState.RETRYING], limit=10)
    ]
    return {"counts": derivative_counts(session), "running": running, "failed": failed}


def item_section(session: Session, evidence_id: str) -> list[dict[str, Any]]:
    """``strongroom show``: every playback copy of the item (or attempt at one)."""
    return [derivative_summary(d) for d in derivatives_of(session, evidence_id)]
