"""Catalog backups: a consistent snapshot taken while another thread writes,
stored gzipped, checksummed and locked (a raw delete of the version is
refused); `catalog restore-backup` verifies and gives back the same rows;
a backup whose bytes do not match its recorded SHA-256 is refused; the daemon's
schedule (default 24 h, 0 = off, nothing for PostgreSQL)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import MetaData, create_engine, select

from archive.catalog_backup import (
    START_DELAY,
    backup_catalog,
    backup_due,
    backup_key,
    backup_prefix,
)
from archive.context import Archive
from archive.models import DockProblem
from config.settings import CatalogSettings
from ingest.services import build_scheduler


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a SQLite file, in a stable order."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted(connection.execute(select(table)).all(), key=repr)
                for name, table in tables.tables.items()
            }
    finally:
        engine.dispose()


class PairWriter(threading.Thread):
    """Commits two dock-problem rows per transaction until stopped, as a busy
    daemon commits several rows at once: a consistent snapshot never holds half."""

    def __init__(self, archive: Archive) -> None:
        super().__init__(daemon=True)
        self.archive = archive
        self.done = threading.Event()
        self.count = 0

    def run(self) -> None:
        while not self.done.is_set():
            with self.archive.db.session() as session:
                for half in ("a", "b"):
                    session.add(
                        DockProblem(path=f"/busy/{self.count}-{half}", dock="d", reason="x")
                    )
            self.count += 1

    def stop(self) -> None:
        self.done.set()
        self.join(30)


def test_backup_while_writing_is_consistent_locked_and_restores(station, tmp_path):
    station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"footage " * 4000)
    archive = station.archive()
    writer = PairWriter(archive)
    try:
        writer.start()
        while writer.count < 20:  # writing before the backup starts …
            writer.done.wait(0.05)
        during = writer.count
        first = json.loads(station.cli("catalog", "backup", "--json").stdout)
        assert writer.count > during, "the writer kept committing during the backup"
    finally:
        writer.stop()
    assert first["key"].startswith(backup_prefix("dock-01")) and first["key"].endswith(".sqlite.gz")

    # stored as written: gzip of a SQLite file, SHA-256 checked by the store, locked
    s3 = station.s3
    head = s3.head_object(Bucket=station.bucket, Key=first["key"], ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=29)
    body = s3.get_object(Bucket=station.bucket, Key=first["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == first["sha256"]
    assert gzip.decompress(body).startswith(b"SQLite format 3\x00")
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=station.bucket, Key=first["key"], VersionId=head["VersionId"])

    stamp = first["key"].rsplit("/", 1)[-1].removesuffix(".sqlite.gz")
    snapshot = tmp_path / "snapshot.db"
    station.cli("catalog", "restore-backup", "--into", str(snapshot), "--at", stamp)
    rows = dump(snapshot)
    busy = [r for r in rows["dock_problems"] if r[0].startswith(b"/busy/")]
    pairs = {r[0].decode().rsplit("-", 1)[0] for r in busy}
    assert len(busy) == 2 * len(pairs), "the snapshot holds whole transactions only"
    assert len(pairs) >= during

    # with the writer stopped, a backup restores to exactly the live rows
    later = datetime.now(UTC) + timedelta(hours=1)  # a later stamp than the first backup
    second = backup_catalog(archive, now=later)
    archive.close()
    assert second.key == backup_key("dock-01", later)
    restored = tmp_path / "restored.db"
    done = json.loads(
        station.cli("catalog", "restore-backup", "--into", str(restored), "--json").stdout
    )
    assert done["key"] == second.key and done["verified"] is True
    assert dump(restored) == dump(station.root / "var" / "catalog.db")
    again = station.cli("catalog", "restore-backup", "--into", str(restored), check=False)
    assert again.returncode == 1 and "exists" in again.stderr


def test_restore_refuses_a_backup_that_does_not_match_its_checksum(station, tmp_path):
    first = json.loads(station.cli("catalog", "backup", "--json").stdout)
    # a newer "backup" written behind Strongroom's back, its recorded hash not its bytes
    forged = backup_key("dock-01", datetime.now(UTC) + timedelta(days=1))
    station.s3.put_object(
        Bucket=station.bucket,
        Key=forged,
        Body=gzip.compress(b"SQLite format 3\x00 but not really"),
        Metadata={"sha256": first["sha256"]},
        ChecksumAlgorithm="SHA256",
    )
    target = tmp_path / "restored.db"
    refused = station.cli("catalog", "restore-backup", "--into", str(target), check=False)
    assert refused.returncode == 1 and "SHA-256" in refused.stderr
    assert not target.exists() and not list(tmp_path.glob(".restored.db*"))
    listed = json.loads(station.cli("catalog", "backups", "--json").stdout)["backups"]
    assert listed == [first["key"], forged]


def stored_backups(station) -> list[str]:
    listed = station.s3.list_objects_v2(Bucket=station.bucket, Prefix="catalog/backups/")
    return [entry["Key"] for entry in listed.get("Contents", [])]


def scheduled(archive: Archive):
    scheduler = build_scheduler(archive)
    return scheduler.get_job("catalog-backup")


def test_scheduler_backs_up_sqlite_only_and_catches_up_after_restarts(station, caplog):
    archive = station.archive()
    try:
        job = scheduled(archive)
        # looks hourly, soon after start; due by the newest backup in the bucket, so a
        # daemon restarted more often than every 24 h still makes its backups
        assert job.trigger.interval == timedelta(hours=1) and job.args[1] == 24
        assert job.next_run_time <= datetime.now(UTC) + START_DELAY + timedelta(seconds=5)
        assert backup_due(archive, 24)
        job.func(*job.args)
        assert len(stored_backups(station)) == 1
        assert not backup_due(archive, 24)
        assert backup_due(archive, 24, now=datetime.now(UTC) + timedelta(hours=24))
        job.func(*job.args)  # not due: nothing new
        assert len(stored_backups(station)) == 1

        settings = archive.settings
        off = settings.model_copy(
            update={"catalog": settings.catalog.model_copy(update={"backup_hours": 0})}
        )
        assert scheduled(Archive(off, archive.db, archive.store, archive.key)) is None
        postgres = settings.model_copy(
            update={"catalog": CatalogSettings(url="postgresql+psycopg://u@db.invalid/sr")}
        )
        with caplog.at_level(logging.INFO, logger="strongroom.catalog_backup"):
            assert scheduled(Archive(postgres, archive.db, archive.store, archive.key)) is None
        said = [r.getMessage() for r in caplog.records if "pg_dump" in r.getMessage()]
        assert len(said) == 1
    finally:
        archive.close()
