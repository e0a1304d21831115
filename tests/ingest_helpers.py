"""Helpers for the daemon tests: writing files the way docking stations do,
and reading the catalog and the bucket to check the invariants."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

from archive.dsse import verify_envelope
from archive.models import CustodyEvent

TERMINAL = {"released", "duplicate", "quarantined", "vanished", "held"}

#: items expire ~4 s after ingest; the case category stays permanent
SHORT_RETENTION = """
[retention.categories.routine]
days = 0.00005
[retention.categories.important]
days = 0.00005
[retention.categories.evidence]
permanent = true
"""


def write_slowly(
    path: Path, chunks: list[bytes], pause: float, *, keep_open: bool = True
) -> threading.Thread:
    """Write ``chunks`` with pauses, like a recorder copying over USB.

    ``keep_open`` holds one descriptor for the whole copy (most docks do):
    only the "is anyone still writing?" check can then tell the file is not
    complete while a pause outlasts ``settle_seconds``.
    """

    def run() -> None:
        if keep_open:
            with path.open("wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    handle.flush()
                    time.sleep(pause)
        else:
            for chunk in chunks:
                with path.open("ab") as handle:
                    handle.write(chunk)
                time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def write_via_part(path: Path, data: bytes) -> None:
    """Write ``name.part`` then rename it, as many docks do."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.rename(part, path)


def catalog_rows(station, sql: str, **params) -> list[dict]:
    engine = create_engine(station.absolute_catalog_url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def as_json(value):
    """A JSON column from a raw ``catalog_rows`` query: SQLite gives its text,
    PostgreSQL the decoded value."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def jobs(station) -> list[dict]:
    return catalog_rows(station, "SELECT * FROM ingest_jobs ORDER BY id")


def all_jobs_done(station, expected: int):
    """The job rows once ``expected`` of them are terminal, else None."""
    try:
        rows = jobs(station)
    except Exception:  # the catalog may not exist yet while the daemon starts
        return None
    done = [r for r in rows if r["state"] in TERMINAL]
    return rows if len(done) >= expected and len(done) == len(rows) else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_stored_copy(
    station, evidence_id: str, data: bytes, *, days: float | None = None
) -> tuple[str, str]:
    """A stored playback copy: a real locked object and its catalog row, as the
    playback worker leaves it (made without ffmpeg: these tests need bytes only).

    Locked like the original, or for ``days`` when given. Returns (key, version).
    """
    from archive.derivatives import Derivative
    from archive.layout import derivative_key
    from archive.models import Evidence
    from archive.store import Retention

    archive = station.archive()
    try:
        with archive.db.session() as session:
            evidence = session.get(Evidence, evidence_id)
            retention = (
                Retention(evidence.lock_mode, evidence.retain_until)
                if days is None
                else Retention.for_days(days, evidence.lock_mode)
            )
            stored = archive.store.put_bytes(derivative_key(sha256(data)), data, retention)
            session.add(
                Derivative(
                    evidence_id=evidence_id,
                    state="stored",
                    action="remux",
                    sha256=sha256(data),
                    size=len(data),
                    key=stored.key,
                    version_id=stored.version_id,
                    checksum=stored.checksum_sha256,
                )
            )
        return stored.key, stored.version_id
    finally:
        archive.close()


def assert_archived(station, data: bytes) -> dict:
    """The invariants for one original: stored at its hash key, exact bytes,
    one version, locked (its version cannot be deleted), manifest verifies."""
    from botocore.exceptions import ClientError

    digest = sha256(data)
    key = f"originals/sha256/{digest}"
    s3 = station.s3
    versions = s3.list_object_versions(Bucket=station.bucket, Prefix=key).get("Versions", [])
    assert len(versions) == 1, f"{key}: expected exactly one stored version, found {len(versions)}"
    body = s3.get_object(Bucket=station.bucket, Key=key)["Body"].read()
    assert body == data, f"{key}: stored bytes differ from the dock file"
    head = s3.head_object(Bucket=station.bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    try:
        s3.delete_object(Bucket=station.bucket, Key=key, VersionId=head["VersionId"])
    except ClientError:
        pass
    else:
        raise AssertionError(f"{key}: deleting the locked version was accepted")
    rows = catalog_rows(station, "SELECT * FROM evidence WHERE sha256 = :sha", sha=digest)
    assert len(rows) == 1, f"expected one evidence row for {digest}, found {len(rows)}"
    envelope = s3.get_object(Bucket=station.bucket, Key=rows[0]["manifest_key"])["Body"].read()
    archive = station.archive()
    try:
        payload = verify_envelope(envelope, archive.key.public_keys()).payload
    finally:
        archive.close()
    assert payload["original"]["sha256"] == digest
    assert payload["original"]["size"] == len(data)
    return rows[0]


def events(station, kind: str) -> list[CustodyEvent]:
    """The custody events of one kind, in ledger order."""
    archive = station.archive()
    try:
        with archive.db.session() as session:
            return list(
                session.scalars(
                    select(CustodyEvent).where(CustodyEvent.kind == kind).order_by(CustodyEvent.seq)
                )
            )
    finally:
        archive.close()


def dock_scans(station, label: str = "dock") -> int:
    """How many full scans of the dock the running daemon has finished: the
    count ``status`` shows, read from the daemon's board as ``status`` reads it,
    but in this process (a ``strongroom status`` per poll cost a second of CPU,
    taken from the daemon being watched on a 2-core machine)."""
    from archive.health import daemon_section

    try:
        return int(daemon_section(station.settings().data_dir)["docks"][label]["scans"])
    except (ValueError, KeyError, TypeError):
        return 0


def wait_for_rescans(station, count: int = 2, label: str = "dock", timeout: float = 60) -> None:
    """Block until the daemon has scanned the dock ``count`` more times in full.

    A negative check ("the daemon did not take X") means something only after the
    daemon had its chances to take X; counting its rescans says so, a fixed sleep
    only hopes so (on a loaded machine a rescan can take longer than the sleep)."""
    from conftest import wait_until

    target = dock_scans(station, label) + count
    wait_until(
        lambda: dock_scans(station, label) >= target,
        timeout=timeout,
        interval=0.5,
        message=f"{count} more full scans of dock {label}",
    )
