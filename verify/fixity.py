"""Fixity: re-read what the store holds for each evidence item and judge it
against its signed manifest and the catalog.

For every item, each stored object (the original, its manifest, each stored
playback copy and its manifest) is checked by the exact version id recorded
at upload:

* the manifest version is fetched from the store (never from the catalog) and
  its signature verified with the station's keys;
* the original (and each derivative) is streamed and re-hashed in constant
  memory, and its SHA-256 and size compared with what the manifest signs;
* the catalog row's hash and size must equal the manifest's (a catalog edit
  shows up here);
* the key's *current* version must still be the archived one: a raw client
  with keys can push a new version or a delete marker on top, which plain
  readers would then get;
* Object Lock mode, retain-until and legal hold must be what the catalog says.

Each item's verdict is a ``fixity_checked`` custody event, is kept in
``fixity_records`` until a later check passes, and every failed check is an
ERROR log line naming the item and the check, plus a metric. Sweeps take the
items checked longest ago first, within a byte budget, but never skip an item
whose last check is older than ``fixity.cycle_days``. This module only reads
the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from archive.context import Archive
from archive.custody import record_event, system_actor
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.dsse import EnvelopeError, key_id, verify_envelope
from archive.fixity_models import FixityRecord, FixityRun
from archive.layout import KEYS, MANIFESTS, is_public_key_name, parse_manifest_key
from archive.metrics import FIXITY_BYTES, FIXITY_FAILURES, FIXITY_ITEMS, FIXITY_UNRESOLVED
from archive.models import Evidence
from archive.payloads import derivative_sha256
from archive.states import GONE_STATES, CopyState, FixityResult
from archive.store import NotFound, ObjectStore

log = logging.getLogger("strongroom.fixity")

READ_SIZE = 8 * 1024 * 1024
"""Bytes per read of a streamed object: the memory a check holds, whatever the size."""

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    """One failed check of one object."""

    check: str
    object: str
    message: str


@dataclass
class ItemResult:
    """The verdict on one evidence item."""

    evidence_id: str
    problems: list[Problem] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> FixityResult:
        """The verdict as the catalog, the metrics and the JSON output word it."""
        return FixityResult.OK if self.ok else FixityResult.FAILED

    def fail(self, check: str, obj: str, message: str) -> None:
        self.problems.append(Problem(check, obj, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence_id": self.evidence_id,
            "result": self.verdict,
            "bytes_read": self.bytes_read,
            "objects": self.objects,
            "problems": [asdict(p) for p in self.problems],
        }


@dataclass
class RunResult:
    """What one sweep or ``verify`` did."""

    trigger: str
    items: list[ItemResult] = field(default_factory=list)
    #: problems of the bucket as a whole: keys and manifests no configured key vouches for
    bucket_problems: list[Problem] = field(default_factory=list)

    @property
    def failed(self) -> list[ItemResult]:
        return [item for item in self.items if not item.ok]

    @property
    def bytes_read(self) -> int:
        return sum(item.bytes_read for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "ok": not self.failed and not self.bucket_problems,
            "checked": len(self.items),
            "failed": len(self.failed),
            "bytes_read": self.bytes_read,
            "items": [item.to_dict() for item in self.items],
            "bucket_problems": [asdict(p) for p in self.bucket_problems],
        }


# --- reading -------------------------------------------------------------------


def hash_version(
    store: ObjectStore, key: str, version_id: str | None, on_bytes: ProgressFn | None = None
) -> tuple[str, int]:
    """SHA-256 hex and size of one object version, streamed in ``READ_SIZE`` reads."""
    digest = hashlib.sha256()
    size = 0
    body = store.open(key, version_id)
    try:
        while chunk := body.read(READ_SIZE):
            digest.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    finally:
        body.close()
    return digest.hexdigest(), size


@dataclass(frozen=True)
class _Expected:
    """The lock state the catalog says an item's objects carry."""

    lock_mode: str
    retain_until: datetime | None
    legal_hold: bool


class _Checker:
    """Checks one item's objects; collects problems instead of stopping at the first."""

    def __init__(self, archive: Archive, result: ItemResult, on_bytes: ProgressFn | None):
        self.store = archive.store
        self.keys = archive.key.public_keys()
        self.key_window = archive.key.window_problem
        self.result = result
        self.on_bytes = on_bytes

    def current_version(self, check: str, key: str, version_id: str | None) -> str | None:
        """The key's newest version must be the archived one; returns the newer
        version's id when it is not."""
        try:
            latest = self.store.head(key)
        except NotFound:
            self.result.fail(
                check, key, "is deleted: a delete marker hides the archived version from readers"
            )
            return None
        if version_id is not None and latest.version_id != version_id:
            self.result.fail(
                check,
                key,
                f"a newer version {latest.version_id} ({latest.size} bytes) was written over "
                f"the archived version {version_id}",
            )
            return latest.version_id
        return None

    def locks(self, prefix: str, key: str, version_id: str | None, expected: _Expected) -> bool:
        """Lock mode, retain-until and legal hold of one version vs the catalog.

        Returns False when the version itself is gone.
        """
        try:
            info = self.store.head(key, version_id)
        except NotFound:
            self.result.fail(f"{prefix}.present", key, f"version {version_id} is not in the store")
            return False
        if info.lock_mode != expected.lock_mode:
            self.result.fail(
                "lock.mode", key, f"lock mode {info.lock_mode}, catalog says {expected.lock_mode}"
            )
        if expected.retain_until is not None and (
            info.retain_until is None or info.retain_until < expected.retain_until
        ):
            self.result.fail(
                "lock.retain_until",
                key,
                f"retained until {info.retain_until}, catalog says {expected.retain_until}",
            )
        if info.legal_hold != expected.legal_hold:
            self.result.fail(
                "lock.legal_hold",
                key,
                f"legal hold {'on' if info.legal_hold else 'off'}, catalog says "
                f"{'on' if expected.legal_hold else 'off'}",
            )
        return True

    def manifest(
        self, prefix: str, key: str | None, version_id: str | None, expected: _Expected
    ) -> dict[str, Any] | None:
        """Fetch the archived manifest version and verify its signature."""
        if not key:
            self.result.fail(f"{prefix}.present", "-", "the catalog names no manifest")
            return None
        self.result.objects.append({"key": key, "version_id": version_id, "kind": prefix})
        newer = self.current_version(f"{prefix}.current_version", key, version_id)
        if newer is not None:  # what a plain reader now gets: say whether it is even ours
            try:
                verify_envelope(self.store.get_bytes(key, newer), self.keys)
            except (EnvelopeError, NotFound) as exc:
                self.result.fail(
                    f"{prefix}.signature", key, f"the newer version {newer} does not verify: {exc}"
                )
        if not self.locks(prefix, key, version_id, expected):
            return None
        try:
            envelope = self.store.get_bytes(key, version_id)
        except NotFound:
            self.result.fail(f"{prefix}.present", key, f"version {version_id} is not in the store")
            return None
        try:
            verified = verify_envelope(envelope, self.keys)
        except EnvelopeError as exc:
            self.result.fail(f"{prefix}.signature", key, f"does not verify: {exc}")
            return None
        problem = self.key_window(verified.keyid, verified.payload)
        if problem is not None:
            self.result.fail(f"{prefix}.key_window", key, problem)
            return None
        return verified.payload

    def content(
        self,
        prefix: str,
        key: str,
        version_id: str | None,
        sha256: str | None,
        size: int | None,
        expected: _Expected,
    ) -> None:
        """Re-hash the archived version and compare with the signed hash and size."""
        self.result.objects.append({"key": key, "version_id": version_id, "kind": prefix})
        self.current_version(f"{prefix}.current_version", key, version_id)
        if not self.locks(prefix, key, version_id, expected):
            return
        try:
            digest, read = hash_version(self.store, key, version_id, self.on_bytes)
        except NotFound:
            self.result.fail(f"{prefix}.present", key, f"version {version_id} is not in the store")
            return
        self.result.bytes_read += read
        FIXITY_BYTES.inc(read)
        if sha256 is None:
            self.result.fail(f"{prefix}.sha256", key, "no signed SHA-256 to compare with")
        elif digest != sha256:
            self.result.fail(
                f"{prefix}.sha256", key, f"bytes hash to {digest}, the manifest signs {sha256}"
            )
        if size is not None and read != size:
            self.result.fail(f"{prefix}.size", key, f"{read} bytes, the manifest signs {size}")


def check_item(
    archive: Archive, evidence_id: str, on_bytes: ProgressFn | None = None
) -> ItemResult:
    """Check every stored object of one item (reads only; records nothing)."""
    with archive.db.session() as session:
        evidence = session.get(Evidence, evidence_id)
        if evidence is None:
            raise KeyError(evidence_id)
        derivatives = list(
            session.scalars(
                select(Derivative)
                .where(Derivative.evidence_id == evidence_id, Derivative.state == CopyState.STORED)
                .order_by(Derivative.id)
            )
        )
    result = ItemResult(evidence_id)
    checker = _Checker(archive, result, on_bytes)
    expected = _Expected(evidence.lock_mode, evidence.retain_until, evidence.legal_hold)
    payload = checker.manifest(
        "manifest", evidence.manifest_key, evidence.manifest_version_id, expected
    )
    signed_sha, signed_size = None, None
    if payload is not None:
        original = payload.get("original") or {}
        signed_sha, signed_size = original.get("sha256"), original.get("size")
        if payload.get("evidence_id") != evidence_id:
            result.fail(
                "manifest.content",
                evidence.manifest_key,
                f"signs evidence id {payload.get('evidence_id')!r}",
            )
        if signed_sha != evidence.sha256:
            result.fail(
                "catalog.sha256",
                f"catalog evidence {evidence_id}",
                f"catalog says sha256 {evidence.sha256}, the signed manifest {signed_sha}",
            )
        if signed_size != evidence.size:
            result.fail(
                "catalog.size",
                f"catalog evidence {evidence_id}",
                f"catalog says {evidence.size} bytes, the signed manifest {signed_size}",
            )
        if original.get("version_id") not in (None, evidence.original_version_id):
            result.fail(
                "catalog.version",
                f"catalog evidence {evidence_id}",
                f"catalog names version {evidence.original_version_id}, "
                f"the manifest {original.get('version_id')}",
            )
    checker.content(
        "original",
        evidence.original_key,
        evidence.original_version_id,
        signed_sha,
        signed_size,
        expected,
    )
    for derivative in derivatives:
        _check_derivative(checker, derivative, expected)
    return result


def _check_derivative(checker: _Checker, derivative: Derivative, expected: _Expected) -> None:
    payload = checker.manifest(
        "derivative_manifest", derivative.manifest_key, derivative.manifest_version_id, expected
    )
    signed = derivative.sha256
    if payload is not None and derivative_sha256(payload) != derivative.sha256:
        checker.result.fail(
            "derivative_manifest.content",
            derivative.manifest_key or "-",
            f"does not sign the playback copy's sha256 {derivative.sha256}",
        )
        signed = None
    if derivative.key:
        checker.content(
            "derivative",
            derivative.key,
            derivative.version_id,
            signed,
            derivative.size,
            expected,
        )


# --- recording -----------------------------------------------------------------


def record_result(archive: Archive, result: ItemResult, *, trigger: str, actor: str) -> None:
    """Keep the verdict, add its custody event, and make any failure loud."""
    now = utcnow()
    for problem in result.problems:
        FIXITY_FAILURES.labels(check=problem.check).inc()
        log.error(
            "fixity FAILED for %s: check %s on %s: %s",
            result.evidence_id,
            problem.check,
            problem.object,
            problem.message,
        )
    FIXITY_ITEMS.labels(result=result.verdict).inc()
    with archive.db.session() as session:
        record = session.get(FixityRecord, result.evidence_id)
        if record is None:
            record = FixityRecord(evidence_id=result.evidence_id, last_checked_at=now)
            session.add(record)
        record.last_checked_at = now
        record.result = result.verdict
        record.problems = [asdict(p) for p in result.problems]
        record.bytes_read = result.bytes_read
        if result.ok:
            record.last_verified_at = now
            record.failing_since = None
        else:
            record.failing_since = record.failing_since or now
        record_event(
            session,
            "fixity_checked",
            actor=actor,
            evidence_id=result.evidence_id,
            details={
                "result": record.result,
                "trigger": trigger,
                "bytes_read": result.bytes_read,
                "objects": result.objects,
                "problems": record.problems,
            },
            at=now,
        )


#: "not checked yet in this round": the value a sweep saw when it planned an item
_UNSEEN = object()


@contextmanager
def _claim(archive: Archive, evidence_id: str, seen: Any) -> Iterator[bool]:
    """Take one item for checking, so stations sharing a sweep never check it twice.

    On PostgreSQL the item's evidence row is locked ``FOR UPDATE SKIP LOCKED``
    for as long as the check runs: another station's sweep skips it instead of
    waiting, and a link/unlink of that item waits for the check, so the lock
    and hold compared are not changed half-way. Then the last check must still
    be the one the sweep planned with (``seen``); if another station checked
    the item since, it is skipped. SQLite (one station) only does the second.
    """
    with archive.db.session() as session:
        query = (
            select(Evidence.evidence_id, FixityRecord.last_checked_at)
            .outerjoin(FixityRecord, FixityRecord.evidence_id == Evidence.evidence_id)
            .where(Evidence.evidence_id == evidence_id)
        )
        if session.connection().dialect.name == "postgresql":
            query = query.with_for_update(of=Evidence, skip_locked=True)
        row = session.execute(query).one_or_none()
        if row is None:  # being checked by another station right now
            yield False
            return
        yield seen is _UNSEEN or row.last_checked_at == seen


def run_checks(
    archive: Archive,
    evidence_ids: Iterable[str],
    *,
    trigger: str,
    actor: str | None = None,
    on_bytes: ProgressFn | None = None,
    on_item: Callable[[ItemResult], None] | None = None,
    seen: dict[str, datetime | None] | None = None,
) -> RunResult:
    """Check and record each item in order; the run itself is kept in ``fixity_runs``.

    With ``seen`` (a sweep's plan: each item's last check as planned), an item
    another station is checking, or checked since, is skipped (:func:`_claim`).
    """
    actor = actor or system_actor(archive.station)
    run = RunResult(trigger)
    with archive.db.session() as session:
        row = FixityRun(trigger=trigger, started_at=utcnow())
        session.add(row)
        session.flush()
        run_id = row.id
    try:
        for evidence_id in evidence_ids:
            with _claim(
                archive, evidence_id, seen.get(evidence_id) if seen is not None else _UNSEEN
            ) as mine:
                if not mine:
                    log.debug("fixity: %s is checked by another station", evidence_id)
                    continue
                result = check_item(archive, evidence_id, on_bytes)
                record_result(archive, result, trigger=trigger, actor=actor)
            run.items.append(result)
            if on_item is not None:
                on_item(result)
    finally:
        with archive.db.session() as session:
            finished = session.get(FixityRun, run_id)
            assert finished is not None
            finished.finished_at = utcnow()
            finished.items = len(run.items)
            finished.failed = len(run.failed)
            finished.bytes_read = run.bytes_read
            FIXITY_UNRESOLVED.set(_unresolved_count(session))
    return run


# --- sweeps --------------------------------------------------------------------


def plan_sweep(archive: Archive, now: datetime | None = None) -> list[str]:
    """The items one sweep checks, longest-unchecked first (see :func:`plan_with_seen`)."""
    return list(plan_with_seen(archive, now))


def plan_with_seen(
    archive: Archive, now: datetime | None = None, *, fresh_after: datetime | None = None
) -> dict[str, datetime | None]:
    """The items one sweep checks, longest-unchecked first, each with its last check.

    Never-checked items come first, then by last check. Items are taken while
    the byte budget lasts (at least one), and every item whose last check (or,
    if never checked, whose sealing) is older than the cycle is taken whatever
    the budget, so no item waits longer than ``cycle_days`` plus one interval.
    Items checked after ``fresh_after`` (by any station) are not taken: several
    stations sweeping on their own schedules do not multiply the re-reads.
    """
    settings = archive.settings.fixity
    now = now or utcnow()
    due_before = now - timedelta(days=settings.cycle_days)
    derivative_bytes = (
        select(Derivative.evidence_id, func.sum(Derivative.size).label("bytes"))
        .where(Derivative.state == CopyState.STORED)
        .group_by(Derivative.evidence_id)
        .subquery()
    )
    with archive.db.session() as session:
        rows = session.execute(
            select(
                Evidence.evidence_id,
                Evidence.size,
                derivative_bytes.c.bytes,
                Evidence.sealed_at,
                FixityRecord.last_checked_at,
            )
            .outerjoin(FixityRecord, FixityRecord.evidence_id == Evidence.evidence_id)
            .outerjoin(derivative_bytes, derivative_bytes.c.evidence_id == Evidence.evidence_id)
            .where(Evidence.state.not_in(GONE_STATES))
            .order_by(
                FixityRecord.last_checked_at.is_not(None),
                FixityRecord.last_checked_at,
                Evidence.sealed_at,
                Evidence.evidence_id,
            )
        ).all()
    chosen: dict[str, datetime | None] = {}
    used = 0
    for evidence_id, size, extra, sealed_at, last_checked in rows:
        if fresh_after is not None and last_checked is not None and last_checked > fresh_after:
            continue
        overdue = (last_checked or sealed_at) <= due_before
        if used < settings.bytes_per_run or overdue:
            chosen[evidence_id] = last_checked
            used += size + (extra or 0)
    return chosen


def sweep(
    archive: Archive,
    *,
    trigger: str = "schedule",
    actor: str | None = None,
    fresh_within: timedelta | None = None,
) -> RunResult:
    """One fixity sweep (the scheduled job, and ``strongroom fixity``).

    Stations sharing a catalog share the work: each item is claimed before it
    is checked (:func:`_claim`). ``fresh_within`` (the daemon's schedule: half
    an interval) leaves out items any station checked that recently, so
    stations sweeping on their own schedules do not multiply the re-reads.
    """
    fresh_after = utcnow() - fresh_within if fresh_within is not None else None
    plan = plan_with_seen(archive, fresh_after=fresh_after)
    log.info("fixity sweep: %d item(s) to check", len(plan))
    run = run_checks(archive, list(plan), trigger=trigger, actor=actor, seen=plan)
    run.bucket_problems = check_bucket_keys(archive)
    for problem in run.bucket_problems:
        log.error("fixity: %s %s: %s", problem.check, problem.object, problem.message)
    log.info(
        "fixity sweep done: %d checked, %d failed, %d bytes",
        len(run.items),
        len(run.failed),
        run.bytes_read,
    )
    return run


def check_bucket_keys(archive: Archive) -> list[Problem]:
    """Keys published under ``keys/`` that are not configured, and evidence
    manifests the catalog does not know that no configured key signed – what
    someone with the bucket's write keys would plant. Lists names only; the
    manifests of catalogued items are checked item by item as always."""
    trusted = archive.key.public_keys()
    problems: list[Problem] = []
    for key in archive.store.list_keys(KEYS):
        if not is_public_key_name(key):
            continue
        try:
            raw = bytes.fromhex(json.loads(archive.store.get_bytes(key))["public_key"])
        except (ValueError, KeyError, TypeError, NotFound) as exc:
            problems.append(Problem("key.format", key, f"not a published public key: {exc!r}"))
            continue
        if trusted.get(key_id(raw)) != raw:
            problems.append(
                Problem("key.untrusted", key, "published in the bucket but not a configured key")
            )
    pending: dict[str, str] = {}
    for key in archive.store.list_keys(MANIFESTS):
        if evidence_id := parse_manifest_key(key):
            pending[evidence_id] = key
        if len(pending) >= 500:
            problems += _unknown_manifests(archive, pending, trusted)
            pending = {}
    return problems + _unknown_manifests(archive, pending, trusted)


def _unknown_manifests(
    archive: Archive, manifests: dict[str, str], trusted: dict[str, bytes]
) -> list[Problem]:
    if not manifests:
        return []
    with archive.db.session() as session:
        known = set(
            session.scalars(
                select(Evidence.evidence_id).where(Evidence.evidence_id.in_(list(manifests)))
            )
        )
    problems = []
    for evidence_id, key in sorted(manifests.items()):
        if evidence_id in known:
            continue
        try:
            verify_envelope(archive.store.get_bytes(key), trusted)
        except (EnvelopeError, NotFound) as exc:
            problems.append(
                Problem(
                    "manifest.untrusted",
                    key,
                    f"not in the catalog and not signed by a configured key: {exc}",
                )
            )
    return problems


def scheduled_sweep(archive: Archive) -> None:
    """The APScheduler job. Check failures are already loud (see
    :func:`record_result`); a sweep that cannot run at all is raised to the
    scheduler's guard (one log line, a fault in ``status``) and retried at the
    next interval. Items any station checked within half an interval are left
    out, so stations sweeping on their own schedules do not multiply re-reads."""
    half_interval = timedelta(minutes=archive.settings.fixity.interval_minutes / 2)
    sweep(archive, fresh_within=half_interval)


def all_items(archive: Archive) -> list[str]:
    """Every item that still has stored objects, oldest first (``verify --all``)."""
    with archive.db.session() as session:
        return list(
            session.scalars(
                select(Evidence.evidence_id)
                .where(Evidence.state.not_in(GONE_STATES))
                .order_by(Evidence.sealed_at, Evidence.evidence_id)
            )
        )


# --- status --------------------------------------------------------------------


def _unresolved_count(session: Any) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(FixityRecord)
            .where(FixityRecord.result == FixityResult.FAILED)
        )
        or 0
    )


def fixity_summary(session: Any, cycle_days: float) -> dict[str, Any]:
    """For ``strongroom status``: the last run, unresolved problems, overdue items."""
    last = session.scalars(
        select(FixityRun).where(FixityRun.finished_at.is_not(None)).order_by(FixityRun.id.desc())
    ).first()
    unresolved = session.scalars(
        select(FixityRecord)
        .where(FixityRecord.result == FixityResult.FAILED)
        .order_by(FixityRecord.failing_since)
    ).all()
    due_before = utcnow() - timedelta(days=cycle_days)
    overdue = session.scalar(
        select(func.count())
        .select_from(Evidence)
        .outerjoin(FixityRecord, FixityRecord.evidence_id == Evidence.evidence_id)
        .where(Evidence.state.not_in(GONE_STATES))
        .where(func.coalesce(FixityRecord.last_checked_at, Evidence.sealed_at) <= due_before)
    )
    return {
        "last_run": None
        if last is None
        else {
            "trigger": last.trigger,
            "started_at": last.started_at.isoformat(),
            "finished_at": last.finished_at.isoformat() if last.finished_at else None,
            "checked": last.items,
            "failed": last.failed,
            "bytes_read": last.bytes_read,
        },
        "overdue_items": overdue or 0,
        "unresolved": [
            {
                "evidence_id": record.evidence_id,
                "failing_since": record.failing_since.isoformat() if record.failing_since else None,
                "last_checked_at": record.last_checked_at.isoformat(),
                "problems": record.problems,
            }
            for record in unresolved
        ],
    }


def item_fixity(session: Any, evidence_id: str) -> dict[str, Any] | None:
    """For ``strongroom show``: the item's latest verdict."""
    record = session.get(FixityRecord, evidence_id)
    if record is None:
        return None
    return {
        "result": record.result,
        "last_checked_at": record.last_checked_at.isoformat(),
        "last_verified_at": record.last_verified_at.isoformat()
        if record.last_verified_at
        else None,
        "problems": record.problems,
    }
