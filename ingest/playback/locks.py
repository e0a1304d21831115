"""A playback copy's lock, aligned with its original's: the copy is written
with the original's lock as the store has it, and brought up to it again once
recorded (a hold or retention change may have come in between). Locks only
grow: :func:`archive.store.grown_lock`."""

from __future__ import annotations

import logging

from archive.context import Archive
from archive.db import utcnow
from archive.metrics import ERRORS
from archive.models import Evidence
from archive.store import (
    Retention,
    StoredObject,
    StoreError,
)

log = logging.getLogger("strongroom.playback")


class LockAligner:
    """The copy's lock like the original's (part of :class:`ingest.playback.PlaybackWorker`)."""

    archive: Archive

    def _retention_like_original(self, evidence: Evidence) -> Retention | None:
        """The original's own lock (mode and date, read from the store), and its hold."""
        info = self.archive.store.head(evidence.original_key, evidence.original_version_id)
        held = info.legal_hold or evidence.legal_hold
        if info.lock_mode and info.retain_until and info.retain_until > utcnow():
            return Retention(info.lock_mode, info.retain_until, held)
        if info.lock_mode is None and self.archive.settings.store.allow_unlocked:
            return None  # development store without Object Lock
        fallback = self.archive.retention_for(evidence.category)
        return Retention(fallback.mode, fallback.retain_until, fallback.legal_hold or held)

    def _align_locks(
        self, evidence_id: str, objects: list[StoredObject], retention: Retention | None
    ) -> None:
        """Bring the copy's objects up to the original's lock as it is *now*.

        Holds and retention changes are applied to every *stored* copy of an
        item; a copy stored meanwhile read its lock before such a change, and a
        copy adopted from identical bytes (content-addressed) kept the lock it
        was first written with, for another item. Both only ever go up here:
        the later date, and the stronger mode.
        """
        if retention is None:
            return  # a development store without Object Lock
        try:
            with self.archive.db.session() as session:
                evidence = session.get(Evidence, evidence_id)
            if evidence is None:
                return
            info = self.archive.store.head(evidence.original_key, evidence.original_version_id)
            held = evidence.legal_hold or info.legal_hold
            until = max(filter(None, (info.retain_until, retention.retain_until)))
            mode = info.lock_mode or retention.mode
            for obj in objects:
                if held:
                    self.archive.store.set_legal_hold(obj.key, obj.version_id, True)
                # only grows (archive.store.grown_lock): a copy shared with another
                # item that is COMPLIANCE already stays so and gets the longer date
                self.archive.store.extend_retention(obj.key, obj.version_id, mode, until)
        except StoreError as exc:
            # the copy is stored and recorded; the next hold or retention change re-applies
            # to all of the item's objects, so this is logged loudly and counted, not lost
            ERRORS.labels("playback-align-locks").inc()
            log.error("%s: could not align the playback copy's lock: %s", evidence_id, exc)
