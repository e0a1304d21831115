"""One attempt at a playback copy: the claim a worker holds (its fencing
token), what the attempt owns, what it ended in, and the exceptions that end
it early. Shared by the queue (:mod:`ingest.playback.claims`) and the making
(:mod:`ingest.playback.making`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from config.errors import ConflictError
from ingest.transcode import Plan

#: an attempt's outcome when another worker took the row over (never stored)
LOST = "lost"
#: what a worker's late write is refused with once its claim has run out
TAKEN_OVER = (
    "another worker took this copy over (this worker's claim ran out); its work is discarded"
)


class Stopping(Exception):
    """The worker was asked to stop; the row is handed back to the queue."""


class OriginalMismatch(ConflictError):
    """The store returned bytes that do not hash to the catalog's SHA-256."""

    code = "original_mismatch"


@dataclass(frozen=True)
class Claim:
    """One row this worker holds; ``attempt`` is the fencing token."""

    id: int
    evidence_id: str
    attempt: int
    file_name: str


@dataclass(frozen=True)
class Result:
    """What one attempt ended in (returned by :meth:`PlaybackWorker.run_until_idle`)."""

    derivative_id: int
    evidence_id: str
    state: str
    action: str | None = None
    detail: str | None = None
    sha256: str | None = None
    key: str | None = None


class Observer:
    """Hooks for a front end (the CLI's progress bar); the defaults do nothing."""

    def started(self, claim: Claim, plan: Plan | None) -> None:
        """A claimed row is about to be worked on."""

    def progress(self, claim: Claim, percent: float, speed: float | None) -> None:
        """ffmpeg reported progress (called in the worker's thread, often)."""

    def finished(self, claim: Claim, result: Result) -> None:
        """The attempt ended (any state)."""


@dataclass
class _Job:
    """Everything one attempt owns; never shared between attempts."""

    claim: Claim
    work: Path
    stop: threading.Event
    announced: bool = False  # derivative_started recorded
    last_write: float = 0.0
    lost: threading.Event = field(default_factory=threading.Event)


def _reason(plan: Plan) -> str:
    return f"{plan.reason} (rule {plan.rule})" if plan.rule else plan.reason
