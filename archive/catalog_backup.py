"""Catalog backups: a consistent copy of the SQLite catalog, gzipped and locked in the bucket.

The catalog can be rebuilt from the bucket alone (:mod:`archive.rebuild`), but
only what the bucket holds comes back that way: pipeline jobs, fixity history,
disposition plans and approvals, and custody events not yet in a published
ledger segment are station-local. A backup keeps those too, up to its time.

SQLite's online backup API copies the database as one consistent snapshot
while the daemon keeps writing (in WAL mode a reader does not block writers).
It is copied in a single step on purpose: a stepped backup restarts whenever
another connection writes, and might never finish on a busy station. The copy
is checked (``PRAGMA quick_check``), gzipped in a stream (never the whole
database in memory) and PUT create-only to
``catalog/backups/<station>/<UTC timestamp>.sqlite.gz`` with its SHA-256
checksum and a ``[catalog] backup_retention_days`` Object Lock (GOVERNANCE by
default: a backup is not evidence, an admin may remove it early). A backup is
not a custody event; it is logged.

PostgreSQL catalogs are backed up by the database's own tools (``pg_dump``,
WAL archiving); Strongroom does not try to.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import logging
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.engine import make_url

from archive import leases
from archive.context import Archive
from archive.db import utcnow
from archive.layout import (
    BACKUP_SUFFIX,
    LayoutError,
    backup_key,
    backup_prefix,
    parse_backup_key,
)
from archive.metrics import ERRORS
from archive.store import NotFound, ObjectStore, Retention
from config.errors import BadInputError, StrongroomError
from config.settings import Settings

log = logging.getLogger("strongroom.catalog_backup")

CHUNK = 1024 * 1024
#: the scheduled job first looks this long after the daemon starts
START_DELAY = timedelta(seconds=60)


class BackupError(StrongroomError):
    """A backup or restore that cannot be made (the message says why)."""

    code = "backup_failed"


class NotSqlite(BadInputError, BackupError):
    """The catalog is not SQLite: its backups are the database's own job."""

    code = "not_sqlite"


@dataclass(frozen=True)
class BackupResult:
    """One stored backup."""

    key: str
    version_id: str | None
    at: datetime
    size: int  # compressed bytes stored
    sha256: str  # of the stored (compressed) object, hex
    catalog_bytes: int
    catalog_sha256: str
    lock_mode: str
    retain_until: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "at": _iso(self.at),
            "size": self.size,
            "sha256": self.sha256,
            "catalog_bytes": self.catalog_bytes,
            "catalog_sha256": self.catalog_sha256,
            "lock_mode": self.lock_mode,
            "retain_until": _iso(self.retain_until),
        }


@dataclass(frozen=True)
class RestoreResult:
    """A backup downloaded, verified and written as a new catalog file."""

    key: str
    version_id: str | None
    into: Path
    size: int
    sha256: str
    catalog_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "into": str(self.into),
            "size": self.size,
            "sha256": self.sha256,
            "catalog_bytes": self.catalog_bytes,
            "verified": True,
        }


def sqlite_path(url: str) -> Path | None:
    """The catalog's file if it is a SQLite file, else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


# -- backup ----------------------------------------------------------------------------


def backup_catalog(
    archive: Archive, *, now: datetime | None = None, lease: leases.Lease | None = None
) -> BackupResult:
    """Snapshot, check, gzip and store the catalog once. Raises on any failure."""
    settings = archive.settings
    source = sqlite_path(settings.catalog_url)
    if source is None:
        raise NotSqlite(
            "the catalog is not SQLite: back it up with the database's own tools (pg_dump)"
        )
    at = (now or utcnow()).replace(microsecond=0)
    key = backup_key(settings.station.name, at)
    work = settings.data_dir / "work" / "catalog-backup"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as folder:
        snapshot = Path(folder) / "catalog.sqlite"
        _snapshot(source, snapshot)
        packed = Path(folder) / ("catalog" + BACKUP_SUFFIX)
        raw_sha, raw_size, sha, size = _gzip(snapshot, packed)
        retention = Retention.for_days(
            settings.catalog.backup_retention_days, settings.catalog.backup_lock_mode
        )
        if lease is not None:  # still ours? (a paused node must not write late)
            leases.renew(archive.db, lease)
        stored = archive.store.put_file(
            key,
            packed,
            sha,
            size,
            retention,
            content_type="application/gzip",
            metadata={"sha256": sha, "catalog-sha256": raw_sha, "catalog-bytes": str(raw_size)},
        )
    log.info(
        "catalog backed up to %s (%d bytes, %d compressed, locked %s until %s)",
        key,
        raw_size,
        size,
        retention.mode,
        _iso(retention.retain_until),
    )
    return BackupResult(
        key,
        stored.version_id,
        at,
        size,
        sha,
        raw_size,
        raw_sha,
        retention.mode,
        retention.retain_until,
    )


def _snapshot(source: Path, target: Path) -> None:
    """One consistent copy of the live database, checked before it is trusted."""
    if not source.is_file():
        raise BackupError(f"catalog {source} does not exist")
    src = sqlite3.connect(str(source), timeout=60)
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)  # pages=-1: all pages in one step, one snapshot
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if verdict != "ok":
        raise BackupError(f"the catalog snapshot failed its integrity check: {verdict}")


class _HashingWriter(io.RawIOBase):
    """Writes through to ``handle`` while hashing and counting what passes."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.handle.write(view)
        self.sha.update(view)
        self.size += len(view)
        return len(view)


def _gzip(source: Path, target: Path) -> tuple[str, int, str, int]:
    """Stream ``source`` into gzip ``target``: (raw sha, raw size, gz sha, gz size)."""
    raw = hashlib.sha256()
    raw_size = 0
    with source.open("rb") as reader, target.open("wb") as handle:
        counted = _HashingWriter(handle)
        with gzip.GzipFile(fileobj=counted, mode="wb", compresslevel=6, mtime=0) as packer:
            while chunk := reader.read(CHUNK):
                raw.update(chunk)
                raw_size += len(chunk)
                packer.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return raw.hexdigest(), raw_size, counted.sha.hexdigest(), counted.size


# -- the schedule ----------------------------------------------------------------------


def backup_interval_hours(settings: Settings) -> float | None:
    """Hours between scheduled backups, or None: off, or not SQLite (said once, here)."""
    hours = settings.catalog.backup_hours
    if not hours:
        log.info("catalog backups are off ([catalog] backup_hours = 0)")
        return None
    if sqlite_path(settings.catalog_url) is None:
        log.info(
            "the catalog is not SQLite: its backups are the database's own job (pg_dump); "
            "no catalog backup is scheduled"
        )
        return None
    return hours


def backup_check_minutes(hours: float) -> float:
    """How often the scheduled job looks whether a backup is due: hourly (or at
    the interval itself if shorter). Looking costs one LIST; deciding by the
    newest backup in the bucket – not by the daemon's uptime – keeps backups
    coming when the daemon is restarted more often than the interval."""
    return min(60.0, hours * 60.0)


def backup_due(archive: Archive, hours: float, *, now: datetime | None = None) -> bool:
    """True when this station's newest backup in the bucket is ``hours`` old, or none exists."""
    newest = latest_backup_time(archive.store, archive.settings.station.name)
    now = now or utcnow()
    # the stamp is cut to the second, the job's clock is not
    return newest is None or now - newest >= timedelta(hours=hours) - timedelta(seconds=5)


#: how long one node may hold the backup job before another takes it over
BACKUP_LEASE = timedelta(minutes=30)


def scheduled_backup(archive: Archive, hours: float) -> None:
    """The APScheduler job: a backup when one is due, by one process at a time
    (the ``catalog-backup`` lease: a second daemon on the same catalog skips
    it). A failure (store down, disk full) is counted and raised to the
    scheduler's guard (one log line, a fault in ``status`` until a later run
    succeeds); the next look retries."""

    def job(lease: leases.Lease) -> None:
        if backup_due(archive, hours):
            backup_catalog(archive, lease=lease)

    try:
        leases.run_once(archive.db, "catalog-backup", archive.station, BACKUP_LEASE, job)
    except Exception:
        ERRORS.labels(where="catalog_backup").inc()
        raise


# -- listing and restore ---------------------------------------------------------------


def list_backups(store: ObjectStore, station: str) -> list[str]:
    """Backup keys of ``station``, oldest first."""
    try:
        prefix = backup_prefix(station)
    except LayoutError as exc:  # e.g. --station ../x: no backups can be named by it
        raise BackupError(f"no station's backups can be named {station!r}: {exc}") from exc
    return sorted(key for key in store.list_keys(prefix) if _key_time(key))


def latest_backup_time(store: ObjectStore, station: str) -> datetime | None:
    keys = list_backups(store, station)
    return _key_time(keys[-1]) if keys else None


def _key_time(key: str) -> datetime | None:
    parsed = parse_backup_key(key)
    return parsed[1] if parsed else None


def _stamp(key: str) -> str:
    """The UTC timestamp a backup key is named by (what ``--at`` takes)."""
    return key.rsplit("/", 1)[-1].removesuffix(BACKUP_SUFFIX)


def _choose(store: ObjectStore, station: str, at: str | None) -> str:
    keys = list_backups(store, station)
    if not keys:
        raise BackupError(f"no catalog backups of station {station} in bucket {store.bucket}")
    if at is None:
        return keys[-1]
    stamp = _stamp(at)
    for key in keys:
        if _stamp(key) == stamp:
            return key
    recent = ", ".join(_stamp(k) for k in keys[-5:])
    raise BackupError(f"no backup {stamp!r} of station {station}; the latest: {recent}")


def restore_backup(
    store: ObjectStore, station: str, into: Path, at: str | None = None
) -> RestoreResult:
    """Download the latest (or the named) backup, verify it, write it to ``into``.

    The download is hashed and must match the SHA-256 recorded at upload (and
    the store's own checksum when it is a whole-object one) before it is
    decompressed; the decompressed catalog must match its recorded SHA-256 and
    pass ``PRAGMA quick_check``. ``into`` must not exist; it appears only when
    everything checked out.
    """
    into = Path(os.path.abspath(into))
    if os.path.lexists(into):
        raise BackupError(f"{into} exists; restore writes a new file only")
    key = _choose(store, station, at)
    try:
        info = store.head(key)
    except NotFound:
        raise BackupError(f"{key} disappeared before it could be read") from None
    expected = info.metadata.get("sha256")
    expected_raw = info.metadata.get("catalog-sha256")
    whole = (
        info.checksum_sha256 if info.checksum_sha256 and "-" not in info.checksum_sha256 else None
    )
    if not expected and not whole:
        raise BackupError(f"{key} carries no SHA-256 to verify it against")
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent, prefix=f".{into.name}.") as folder:
        packed = Path(folder) / ("catalog" + BACKUP_SUFFIX)
        sha, size = _download(store, key, info.version_id, packed)
        if expected and sha != expected:
            raise BackupError(f"{key}: downloaded SHA-256 {sha}, recorded {expected}")
        if whole and base64.b64encode(bytes.fromhex(sha)).decode("ascii") != whole:
            raise BackupError(f"{key}: downloaded bytes differ from the store's checksum {whole}")
        restored = Path(folder) / "catalog.sqlite"
        raw_sha, raw_size = _gunzip(packed, restored)
        if expected_raw and raw_sha != expected_raw:
            raise BackupError(
                f"{key}: the catalog inside has SHA-256 {raw_sha}, recorded {expected_raw}"
            )
        _check_database(restored)
        try:
            os.link(restored, into)
        except FileExistsError:
            raise BackupError(f"{into} appeared while restoring; left untouched") from None
    log.info("catalog backup %s restored to %s (%d bytes, verified)", key, into, raw_size)
    return RestoreResult(key, info.version_id, into, size, sha, raw_size)


def _download(
    store: ObjectStore, key: str, version_id: str | None, target: Path
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as handle:
        for chunk in store.iter_chunks(key, version_id):
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    return digest.hexdigest(), size


def _gunzip(source: Path, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with gzip.open(source, "rb") as reader, target.open("wb") as handle:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, EOFError) as exc:
        raise BackupError(f"the backup does not decompress: {exc}") from exc
    return digest.hexdigest(), size


def _check_database(path: Path) -> None:
    try:
        connection = sqlite3.connect(str(path))
        try:
            verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the restored file is not a SQLite database: {exc}") from exc
    if verdict != "ok":
        raise BackupError(f"the restored catalog failed its integrity check: {verdict}")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
