"""Every state the catalog stores, as enums, with the groups the rules ask about.

Each enum is a :class:`enum.StrEnum`, so a member *is* its string: the
catalog stores, and the JSON documents carry, exactly the words they carried
before these enums existed (no schema change, no data migration), and a value
read back from the catalog compares equal to its member.

The groups below are the only definitions of "which states mean X": a rule
that asks "is there still work on this copy?" or "is this item gone?" imports
the group from here instead of spelling the states out again.
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """Where a dock file is in the pipeline (``ingest_jobs.state``). Each state is
    committed before the next step starts, so a restart resumes from the last one."""

    CLAIMING = "claiming"  # row written, rename into the spool not yet confirmed
    CLAIMED = "claimed"  # the file is in the spool; nobody else will touch it
    HASHED = "hashed"  # SHA-256 and size known
    STORED = "stored"  # original confirmed in the store (HEAD: size + checksum)
    SEALED = "sealed"  # manifest stored, evidence row + events committed
    SIGHTED = "sighted"  # same bytes as existing evidence: sighting recorded
    RELEASED = "released"  # spool copy deleted / moved / kept per after_archive: done
    DUPLICATE = "duplicate"  # same bytes as existing evidence: sighting recorded, released
    QUARANTINED = "quarantined"  # could not be read; moved aside with a reason
    VANISHED = "vanished"  # the dock removed the file before we claimed it
    #: archived and sealed, but the dock copy is not released: the recorder's own
    #: hash disagrees with the bytes (kept in the dock's ``.strongroom/held/``)
    HELD = "held"


#: job states in which a job still has work to do
ACTIVE_STATES = (
    JobState.CLAIMING,
    JobState.CLAIMED,
    JobState.HASHED,
    JobState.STORED,
    JobState.SEALED,
    JobState.SIGHTED,
)
#: active job states whose next step calls the store (they wait while it does not
#: answer); the other active states run while the store is down
STORE_STEP_STATES = frozenset({JobState.CLAIMED, JobState.HASHED, JobState.STORED})


class EvidenceState(enum.StrEnum):
    """An archived item (``evidence.state``)."""

    SEALED = "sealed"  # original, manifest and catalog row committed
    DISPOSED = "disposed"  # its originals and playback copies deleted by an applied plan


#: item states whose objects no longer exist in the store (nothing to check, link or hold)
GONE_STATES = (EvidenceState.DISPOSED,)


class CopyState(enum.StrEnum):
    """A playback copy, or an attempt at one (``derivatives.state``)."""

    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker holds the lease (``next_attempt_at``) and makes it
    RETRYING = "retrying"  # an attempt failed in a way worth retrying; due again later
    STORED = "stored"  # copy and lineage manifest in the store
    SKIPPED = "skipped"  # the policy says no copy (e.g. a still)
    FAILED = "failed"  # given up; ffmpeg's or ffprobe's last words in ``last_error``
    DISPOSED = "disposed"  # deleted with its item by an applied disposition plan


#: copy states with work still to do: a worker may still store a copy of the item,
#: so the item may not be disposed of and the queue is not idle
PENDING_COPY_STATES = (CopyState.QUEUED, CopyState.RETRYING, CopyState.RUNNING)


class PlanState(enum.StrEnum):
    """A disposition plan (``disposition_plans.state``): planned → applied, never edited."""

    PLANNED = "planned"  # waiting for its approvers
    APPLIED = "applied"  # apply ran; the result and certificate are final


class ItemOutcome(enum.StrEnum):
    """What applying a plan did to one planned item (the certificate's groups)."""

    DISPOSED = "disposed"
    SKIPPED = "skipped"  # re-checked just before deleting and refused, with the reason
    FAILED = "failed"  # the store refused a deletion; the item stays as it was


class FixityResult(enum.StrEnum):
    """The latest fixity verdict on an item (``fixity_records.result``)."""

    OK = "ok"
    FAILED = "failed"


class ShareStatus(enum.StrEnum):
    """A disclosure share, as ``share list`` shows it (derived, not stored:
    :func:`archive.shares.status_of` decides it from the share's dates)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
