"""The archive's parts, opened once per process and passed around together."""

from __future__ import annotations

from dataclasses import dataclass

from archive.db import Database
from archive.keys import StationKey, load_station_key
from archive.store import ObjectStore, Retention
from config.settings import RetentionCategory, Settings


@dataclass
class Archive:
    """Settings, catalog, object store and signing key of one station."""

    settings: Settings
    db: Database
    store: ObjectStore
    key: StationKey

    @classmethod
    def open(cls, settings: Settings) -> Archive:
        return cls(
            settings=settings,
            db=Database(settings.catalog_url),
            store=ObjectStore(settings.store),
            key=load_station_key(settings),
        )

    def close(self) -> None:
        self.store.close()
        self.db.dispose()

    @property
    def station(self) -> str:
        return self.settings.station.name

    def retention_for(self, category_name: str) -> Retention:
        """The Object Lock an item of this category is written with.

        Permanent categories get a legal hold (which has no end) on top of the
        default category's dated lock, so the object is protected either way.
        """
        category: RetentionCategory = self.settings.category(category_name)
        if category.permanent:
            base = self.settings.category(self.settings.retention.default_category)
            days = base.days or 183
            return Retention.for_days(days, category.lock_mode, legal_hold=True)
        assert category.days is not None
        return Retention.for_days(category.days, category.lock_mode)
