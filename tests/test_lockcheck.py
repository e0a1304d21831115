"""The Object Lock self-test proves a lock only while the canary's lock runs.

Against the real store: a lock the store enforces is found enforced; a store so
slow that the canary's lock ran out before the delete was tried gives an
inconclusive run, tried again with a longer lock – never "deleting a locked
version was accepted" about a version that was no longer locked.
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from archive import lockcheck
from archive.layout import CANARY


def _canaries(station) -> list[dict]:
    listing = station.s3.list_object_versions(Bucket=station.bucket, Prefix=CANARY)
    return listing.get("Versions", [])


def test_a_lock_the_store_enforces_is_found_enforced(station):
    archive = station.archive()
    try:
        check = lockcheck.check_object_lock(archive.store, lock_seconds=30)
    finally:
        archive.close()
    assert check.enforced and not check.inconclusive, check.describe()
    version = next(v for v in _canaries(station) if v["Key"] == check.canary_key)
    with pytest.raises(ClientError):  # the canary it reports is really locked
        station.s3.delete_object(
            Bucket=station.bucket, Key=check.canary_key, VersionId=version["VersionId"]
        )


def test_a_store_slower_than_the_canarys_lock_is_inconclusive_and_tried_again(station):
    archive = station.archive()
    store = archive.store
    real_delete = store.delete_version
    slowed = []

    def delete_after_the_lock_ran_out(key, version_id):
        if not slowed:
            slowed.append(key)
            time.sleep(4)  # the first canary's 3 s lock runs out meanwhile
        return real_delete(key, version_id)

    store.delete_version = delete_after_the_lock_ran_out
    before = len(_canaries(station))
    try:
        check = lockcheck.check_object_lock(store, lock_seconds=3)
    finally:
        archive.close()
    assert check.enforced and not check.inconclusive, check.describe()
    assert len(_canaries(station)) - before == 1, "the second run's canary stays (locked)"
    assert slowed and check.canary_key != slowed[0], "the test was run again with a new canary"


def test_a_store_never_fast_enough_is_not_called_enforced(station, monkeypatch):
    monkeypatch.setattr(lockcheck, "LONGER", 1)  # the second run's lock is no longer
    archive = station.archive()
    try:
        check = lockcheck.check_object_lock(archive.store, lock_seconds=1)
    finally:
        archive.close()
    assert check.inconclusive and not check.enforced
    assert check.describe().startswith("Object Lock self-test inconclusive: ")
    assert "1s lock ran out" in check.describe()
