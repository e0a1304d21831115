"""The Object Lock self-test run before any evidence is accepted.

A store that only *says* it supports Object Lock is worse than one that does
not: originals would look protected and not be. So before ingesting we write a
canary with a short COMPLIANCE lock and demand that deleting that exact
version, and shortening its lock, are both refused.

A refusal only proves something while the canary's lock still runs: on a store
slow enough that the lock has run out before we try, a delete that succeeds
says nothing. Such a run is *inconclusive*, not a failure, and the test is run
again once with a lock five times as long.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from archive.db import utcnow
from archive.layout import canary_key
from archive.store import ObjectStore, Retention, StoreError

#: a refusal counts only if it came this long before the canary's lock ran out
MARGIN = timedelta(seconds=2)
#: a second run's lock, after an inconclusive first run, is this many times longer
LONGER = 5


@dataclass
class LockCheck:
    enforced: bool
    problems: list[str] = field(default_factory=list)
    canary_key: str = ""
    #: the canary's lock ran out before the test was done: it proves nothing either way
    inconclusive: bool = False

    def describe(self) -> str:
        if self.inconclusive:
            return "Object Lock self-test inconclusive: " + "; ".join(self.problems)
        if self.enforced:
            return (
                f"Object Lock enforced (canary {self.canary_key} could not be deleted or unlocked)"
            )
        return "Object Lock NOT enforced: " + "; ".join(self.problems)


def check_object_lock(store: ObjectStore, lock_seconds: int = 60) -> LockCheck:
    """Write a canary locked for ``lock_seconds`` and try to undo the lock; once
    more with a longer lock if the store was too slow for the first."""
    result = _check_once(store, lock_seconds)
    if result.inconclusive:
        result = _check_once(store, lock_seconds * LONGER)
        if result.inconclusive:  # not proven: treat the store as not enforcing
            result.enforced = False
    return result


def _check_once(store: ObjectStore, lock_seconds: int) -> LockCheck:
    key = canary_key(uuid.uuid4().hex)
    result = LockCheck(enforced=True, canary_key=key)
    if not store.bucket_lock_enabled():
        result.enforced = False
        result.problems.append(
            f"bucket {store.bucket} has no Object Lock configuration or versioning"
        )
    retention = Retention.for_days(lock_seconds / 86400, "COMPLIANCE")
    stored = store.put_bytes(key, b"strongroom lock canary\n", retention, content_type="text/plain")
    if not stored.version_id:
        result.enforced = False
        result.problems.append("the store returned no version id (versioning is off)")
        return result
    info = store.head(key, stored.version_id)
    if info.lock_mode != "COMPLIANCE" or info.retain_until is None:
        result.enforced = False
        result.problems.append(f"the canary came back without its lock (mode={info.lock_mode})")
    try:
        store.extend_retention(key, stored.version_id, "COMPLIANCE", retention.retain_until)
        store.client.put_object_retention(
            Bucket=store.bucket,
            Key=key,
            VersionId=stored.version_id,
            Retention={
                "Mode": "COMPLIANCE",
                "RetainUntilDate": retention.retain_until - timedelta(seconds=30),
            },
        )
        result.enforced = False
        result.problems.append("shortening a COMPLIANCE lock was accepted")
    except Exception:  # noqa: S110 - any refusal is the success we want
        pass
    if utcnow() > retention.retain_until - MARGIN:
        return _ran_out(result, lock_seconds)
    try:
        store.delete_version(key, stored.version_id)
    except StoreError:
        return result
    if utcnow() > retention.retain_until - MARGIN:  # the lock may have run out meanwhile
        return _ran_out(result, lock_seconds)
    result.enforced = False
    result.problems.append("deleting a locked version was accepted")
    return result


def _ran_out(result: LockCheck, lock_seconds: int) -> LockCheck:
    result.inconclusive = True
    result.problems.append(
        f"the canary's {lock_seconds}s lock ran out before the store answered the test"
    )
    return result
