"""Bringing a station up: ``strongroom init`` and the checks before ingesting.

``init`` only ever adds: data folders, the signing key, the bucket. It writes
nothing that exists already, so running it twice, or on a second station
sharing the bucket, is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from archive.db import Database
from archive.keys import StationKey, create_key
from archive.lockcheck import LockCheck, check_object_lock
from archive.seal import publish_public_key
from archive.store import ObjectStore, Retention
from config.settings import ConfigError, Settings

log = logging.getLogger("strongroom.init")


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    lock: LockCheck | None = None
    keyid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "existing": self.existing,
            "keyid": self.keyid,
            "object_lock_enforced": self.lock.enforced if self.lock else None,
            "object_lock": self.lock.describe() if self.lock else None,
        }


def initialize(settings: Settings, store: ObjectStore) -> InitReport:
    report = InitReport()
    for folder in [settings.data_dir, *(settings.dock_path(d) for d in settings.docks)]:
        (report.existing if folder.exists() else report.created).append(str(folder))
        folder.mkdir(parents=True, exist_ok=True)
    Database(
        settings.catalog_url
    ).dispose()  # the catalog's tables, before any command races for them
    key, created = create_key(settings.key_file)
    (report.created if created else report.existing).append(f"signing key {settings.key_file}")
    report.keyid = key.keyid
    default = settings.category(settings.retention.default_category)
    made = store.ensure_bucket(default.days, default.lock_mode)
    (report.created if made else report.existing).append(f"bucket {store.bucket}")
    report.lock = require_object_lock(settings, store)
    publish_public_key(store, key, Retention.for_days(default.days or 183, default.lock_mode))
    return report


def require_object_lock(settings: Settings, store: ObjectStore) -> LockCheck:
    """Run the lock self-test; refuse an unlocked store unless explicitly allowed."""
    check = check_object_lock(store)
    if check.enforced:
        log.info("%s", check.describe())
    elif settings.store.allow_unlocked:
        log.warning(
            "DEVELOPMENT ONLY: %s. store.allow_unlocked = true, so originals are NOT protected "
            "against deletion. Never run like this with real evidence.",
            check.describe(),
        )
    else:
        raise ConfigError(
            f"{check.describe()}. Strongroom refuses a store that does not enforce Object Lock "
            "(set store.allow_unlocked = true only for development)."
        )
    return check


def station_ready(settings: Settings, store: ObjectStore, key: StationKey) -> LockCheck:
    """What ``run`` and ``ingest`` check before taking any file."""
    if not store.bucket_lock_enabled() and not settings.store.allow_unlocked:
        raise ConfigError(
            f"bucket {store.bucket} does not exist or has no Object Lock; run `strongroom init`"
        )
    return require_object_lock(settings, store)
