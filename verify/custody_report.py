"""The chain-of-custody report: one typed document per request, built once and
rendered as PDF, CSV or JSON by whichever front door asked.

Everything a court clerk needs about each item is gathered here, and every
check is *made* here, while the report is built – never copied from an earlier
verdict:

* the stored original and playback copies are re-read and re-hashed, the
  manifests' signatures verified, locks compared (``verify.fixity.check_item``);
* the latest signed checkpoint is opened with the station's key, and every one
  of the item's ledger leaves that it covers is proved included in it;
* events the checkpoint does not cover yet are listed as such (not a failure).

Each item gets one verdict and the list of *every* failing check, so the first
page can say exactly what is wrong. Issuing a report is itself a custody event
(``report_issued``, carrying the SHA-256 of the file handed out), recorded by
:func:`record_issued` once the rendered bytes exist.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from archive.caselinks import filter_by_case, links_of
from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.derivatives import Derivative
from archive.ledger import latest_checkpoint, ledger_key_name
from archive.merkle import ProofError, inclusion_proof, leaf_hash, verify_inclusion
from archive.models import CustodyEvent, Evidence
from archive.note import NoteError, open_checkpoint
from archive.scope import ALL_UNITS, Scope
from archive.states import GONE_STATES
from archive.store import StoreError
from config.errors import NotFoundError, UnknownEvidence
from verify.audit import read_bucket_leaves
from verify.fixity import check_item

FORMATS = ("pdf", "csv", "json")
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}


class EmptyCase(NotFoundError, LookupError):
    """A case with no evidence linked to it."""

    code = "case_not_found"


@dataclass
class Check:
    """One failed check: what was checked, on what, and what was found."""

    check: str
    subject: str
    message: str


@dataclass
class Event:
    """One custody event of the item, in ledger order."""

    seq: int
    at: str  # station time
    at_utc: str
    kind: str
    actor: str
    station: str | None
    ledger_index: int | None
    proof: str  # "verified" | "pending" (newer than the checkpoint) | "FAILED: …"
    details: dict[str, Any]


@dataclass
class PlaybackCopy:
    state: str
    action: str | None
    sha256: str | None
    size: int | None
    key: str | None
    manifest_key: str | None
    ffmpeg_version: str | None
    ffmpeg_args: list[str]
    reason: str | None
    created_at: str


@dataclass
class Item:
    """Everything the report says about one evidence item."""

    evidence_id: str
    verdict: str  # "ok" | "FAILED" | "disposed"
    failures: list[Check]
    file_name: str
    size: int
    sha256: str
    media_type: str
    state: str
    officer: str | None
    device: str | None
    unit: str | None
    station: str
    dock: str
    recorded_start: str | None  # station time
    recorded_end: str | None
    ingested_at: str
    sealed_at: str
    manifest_key: str
    manifest_signature: str  # "verified (key …)" or the failure
    keyid: str
    events: list[Event]
    fixity: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    retention: dict[str, Any]
    playback_copies: list[PlaybackCopy]
    bytes_reread: int = 0


@dataclass
class CheckpointInfo:
    size: int
    root_hash: str
    origin: str
    key_name: str
    signature: str  # "verified" or the failure
    created_at: str


@dataclass
class CustodyReport:
    """The report as data: rendered by :func:`to_json`, :func:`to_csv` and
    ``verify.report_pdf.render``."""

    title: str
    scope: dict[str, Any]  # {"evidence_ids": [...]} or {"case": "..."}
    generated_at: str  # station time
    generated_at_utc: str
    generated_by: str
    station: str
    timezone: str
    checkpoint: CheckpointInfo | None
    items: list[Item] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(item.verdict != "FAILED" for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["ok"] = self.ok
        return document


# --- building -------------------------------------------------------------------


def _local(value: datetime | None, zone: ZoneInfo) -> str | None:
    if value is None:
        return None
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")


def _utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def resolve_ids(
    archive: Archive, ids: list[str] | None, case: str | None, units: Scope = ALL_UNITS
) -> list[str]:
    """The report's items: the given ids (all must exist) or the case's items
    within ``units`` (a case with none of them is answered like an empty one)."""
    with archive.db.session() as session:
        if case is not None:
            query = units.where(filter_by_case(select(Evidence.evidence_id), case)).order_by(
                Evidence.recorded_start, Evidence.evidence_id
            )
            found = list(session.scalars(query))
            if not found:
                raise EmptyCase(f"case {case!r} has no evidence linked to it")
            return found
        wanted = list(dict.fromkeys(ids or []))
        present = set(
            session.scalars(select(Evidence.evidence_id).where(Evidence.evidence_id.in_(wanted)))
        )
    missing = [i for i in wanted if i not in present]
    if missing:
        raise UnknownEvidence(missing)
    return wanted


class _Ledger:
    """The latest checkpoint, opened with any trusted key, and the leaf hashes
    it covers – loaded once per report, however many items it has."""

    def __init__(self, archive: Archive) -> None:
        self.info: CheckpointInfo | None = None
        self.problem: str | None = None
        self.hashes: list[bytes] = []
        self.leaves: list[bytes] = []
        self.root = b""
        with archive.db.session() as session:
            row = latest_checkpoint(session)
            if row is None:
                self.problem = "the ledger has no signed checkpoint yet"
                return
            signature = "verified"
            try:
                name = row.key_name or ledger_key_name(archive.settings)
                opened = _open_with_any(row.note, name, archive.key.public_keys().values())
                if opened.size != row.size or opened.root_hash.hex() != row.root_hash:
                    signature = "FAILED: the signed note does not match the catalog's checkpoint"
            except NoteError as exc:
                signature = f"FAILED: {exc}"
            self.info = CheckpointInfo(
                size=row.size,
                root_hash=row.root_hash,
                origin=row.origin,
                key_name=row.key_name,
                signature=signature,
                created_at=_utc(row.created_at),
            )
            if signature != "verified":
                self.problem = f"checkpoint {row.size}: signature {signature}"
            self.root = bytes.fromhex(row.root_hash)
            size = row.size
        # prove against the leaves in the locked bucket, not the catalog's copy
        try:
            stored, found = read_bucket_leaves(archive)
            problems = [f"{p.check} {p.subject}: {p.message}" for p in found]
        except StoreError as exc:
            stored, problems = [], [str(exc)]
        self.leaves = stored[:size]
        self.hashes = [leaf_hash(leaf) for leaf in self.leaves]
        if len(self.hashes) != size and self.problem is None:
            self.problem = (
                f"the bucket holds {len(self.hashes)} of the {size} leaves of the "
                f"checkpoint ({'; '.join(problems) or 'segments missing'}); "
                "run `strongroom ledger audit`"
            )

    def prove(self, event: CustodyEvent) -> str:
        """'verified', 'pending' or 'FAILED: …' for one event."""
        if self.info is None or event.ledger_index is None or event.ledger_index >= self.info.size:
            return "pending"
        if self.problem is not None:
            return f"FAILED: {self.problem}"
        index = event.ledger_index
        if self.leaves[index] != event.leaf:
            return "FAILED: the catalog's event differs from the leaf stored in the locked log"
        mine = leaf_hash(event.leaf)
        try:
            proof = inclusion_proof(self.hashes, index)
            verify_inclusion(mine, index, self.info.size, proof, self.root)
        except ProofError as exc:
            return f"FAILED: {exc}"
        return "verified"


def _event(row: CustodyEvent, zone: ZoneInfo, proof: str) -> Event:
    details = dict(row.details or {})
    actor = row.actor
    # the daemon acts as strongroom@<station>; operators and tokens name no station
    station = details.get("station") or (
        actor.split("@", 1)[1] if actor.startswith("strongroom@") else None
    )
    return Event(
        seq=row.seq,
        at=_local(row.at, zone) or "",
        at_utc=_utc(row.at),
        kind=row.kind,
        actor=actor,
        station=station,
        ledger_index=row.ledger_index,
        proof=proof,
        details=details,
    )


def _build_item(archive: Archive, evidence_id: str, ledger: _Ledger, zone: ZoneInfo) -> Item:
    with archive.db.session() as session:
        ev = session.get(Evidence, evidence_id)
        if ev is None:
            raise UnknownEvidence([evidence_id])
        rows = list(
            session.scalars(
                select(CustodyEvent)
                .where(CustodyEvent.evidence_id == evidence_id)
                .order_by(CustodyEvent.ledger_index.is_(None), CustodyEvent.ledger_index)
                .order_by(CustodyEvent.seq)
            )
        )
        links = links_of(session, evidence_id)
        copies = list(
            session.scalars(
                select(Derivative)
                .where(Derivative.evidence_id == evidence_id)
                .order_by(Derivative.id)
            )
        )
        settings = archive.settings
        effective = settings.retention.case_category if links else ev.category
        category = settings.retention.categories.get(effective)
        retention = {
            "category": ev.category,
            "effective_category": effective,
            "permanent": bool(category and category.permanent),
            "lock_mode": ev.lock_mode,
            "retain_until": _local(ev.retain_until, zone),
            "legal_hold": ev.legal_hold,
        }
        cases = [
            {
                "case_id": link.case_id,
                "linked_by": link.linked_by,
                "reason": link.reason,
                "linked_at": _local(link.linked_at, zone),
            }
            for link in links
        ]
        item = Item(
            evidence_id=ev.evidence_id,
            verdict="ok",
            failures=[],
            file_name=ev.file_name,
            size=ev.size,
            sha256=ev.sha256,
            media_type=ev.media_type,
            state=ev.state,
            officer=ev.officer,
            device=ev.device,
            unit=ev.unit,
            station=ev.station,
            dock=ev.dock,
            recorded_start=_local(ev.recorded_start, zone),
            recorded_end=_local(ev.recorded_end, zone),
            ingested_at=_local(ev.ingested_at, zone) or "",
            sealed_at=_local(ev.sealed_at, zone) or "",
            manifest_key=ev.manifest_key,
            manifest_signature="verified",
            keyid=ev.keyid,
            events=[],
            fixity=[],
            cases=cases,
            retention=retention,
            playback_copies=[
                PlaybackCopy(
                    state=d.state,
                    action=d.action,
                    sha256=d.sha256,
                    size=d.size,
                    key=d.key,
                    manifest_key=d.manifest_key,
                    ffmpeg_version=d.ffmpeg_version,
                    ffmpeg_args=list(d.ffmpeg_args or []),
                    reason=d.reason,
                    created_at=_local(d.created_at, zone) or "",
                )
                for d in copies
            ],
        )
    for row in rows:
        event = _event(row, zone, ledger.prove(row))
        item.events.append(event)
        if event.proof.startswith("FAILED"):
            item.failures.append(
                Check(
                    "ledger.inclusion", f"event {row.kind} (leaf {row.ledger_index})", event.proof
                )
            )
        if row.kind == "fixity_checked":
            item.fixity.append(
                {
                    "at": event.at,
                    "result": event.details.get("result"),
                    "trigger": event.details.get("trigger"),
                    "problems": [p.get("check") for p in event.details.get("problems") or []],
                }
            )
    if ledger.problem is not None and ledger.info is None:
        item.failures.append(Check("ledger.checkpoint", "ledger", ledger.problem))
    if not any(e.proof == "verified" for e in item.events):
        item.failures.append(
            Check("ledger.inclusion", evidence_id, "no event of this item is proved in the ledger")
        )
    if item.state in GONE_STATES:
        item.manifest_signature = "not checked: the item was disposed of"
    else:
        _check_store(archive, item)
    if item.failures:
        item.verdict = "FAILED"
    elif item.state in GONE_STATES:
        item.verdict = "disposed"
    return item


def _check_store(archive: Archive, item: Item) -> None:
    """Re-read the item from the store now and add every failed check."""
    try:
        result = check_item(archive, item.evidence_id)
    except StoreError as exc:
        item.failures.append(Check("store.read", item.evidence_id, f"store unreadable: {exc}"))
        item.manifest_signature = "not checked: the store could not be read"
        return
    item.bytes_reread = result.bytes_read
    for problem in result.problems:
        item.failures.append(Check(problem.check, problem.object, problem.message))
    signature = [p for p in result.problems if p.check == "manifest.signature"]
    if signature:
        item.manifest_signature = "FAILED: " + signature[0].message
    elif any(p.check.startswith("manifest.") for p in result.problems):
        item.manifest_signature = "FAILED: the archived manifest could not be checked"
    else:
        item.manifest_signature = f"verified (Ed25519 key {item.keyid})"


def build_report(
    archive: Archive,
    *,
    evidence_ids: list[str] | None = None,
    case: str | None = None,
    actor: str,
    units: Scope = ALL_UNITS,
) -> CustodyReport:
    """Gather and check everything for the report (reads only; see module doc).
    A case report of a scoped caller covers only the case's items in ``units``
    and says so in its scope.

    Raises :class:`UnknownEvidence` naming every id that does not exist, and
    :class:`EmptyCase` for a case without items (in ``units``).
    """
    if (case is None) == (not evidence_ids):
        raise ValueError("give evidence ids or a case, not both")
    ids = resolve_ids(archive, evidence_ids, case, units)
    zone = archive.settings.station.tzinfo
    now = utcnow()
    ledger = _Ledger(archive)
    scope: dict[str, Any] = {"case": case} if case is not None else {"evidence_ids": ids}
    if case is not None and not units.all_units:
        scope["units"] = units.to_dict()["units"]
    title = f"Chain-of-custody report – case {case}" if case else "Chain-of-custody report"
    report = CustodyReport(
        title=title,
        scope=scope,
        generated_at=_local(now, zone) or "",
        generated_at_utc=_utc(now),
        generated_by=actor,
        station=archive.station,
        timezone=archive.settings.station.timezone,
        checkpoint=ledger.info,
    )
    for evidence_id in ids:
        report.items.append(_build_item(archive, evidence_id, ledger, zone))
    return report


# --- rendering (JSON, CSV; PDF in verify.report_pdf) -----------------------------


def to_json(report: CustodyReport) -> bytes:
    return (json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


CSV_COLUMNS = (
    "evidence_id",
    "verdict",
    "failures",
    "file_name",
    "size",
    "sha256",
    "officer",
    "device",
    "unit",
    "recorded_start",
    "event_at",
    "event_at_utc",
    "event",
    "actor",
    "station",
    "ledger_index",
    "inclusion_proof",
    "details",
)


def to_csv(report: CustodyReport) -> bytes:
    """One row per custody event, each carrying its item's identity and verdict,
    so a spreadsheet can filter by item or by event."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in report.items:
        failures = "; ".join(f"[{f.check}] {f.subject}: {f.message}" for f in item.failures)
        identity = [
            item.evidence_id,
            item.verdict,
            failures,
            item.file_name,
            item.size,
            item.sha256,
            item.officer or "",
            item.device or "",
            item.unit or "",
            item.recorded_start or "",
        ]
        events: list[Event | None] = [*item.events] if item.events else [None]
        for event in events:
            if event is None:
                writer.writerow([*identity, *[""] * 8])
                continue
            writer.writerow(
                [
                    *identity,
                    event.at,
                    event.at_utc,
                    event.kind,
                    event.actor,
                    event.station or "",
                    "" if event.ledger_index is None else event.ledger_index,
                    event.proof,
                    json.dumps(event.details, ensure_ascii=False, sort_keys=True),
                ]
            )
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel reads UTF-8 Chinese


def render(report: CustodyReport, fmt: str) -> bytes:
    """The report's bytes in one of :data:`FORMATS`."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "pdf":
        from verify.report_pdf import render_report

        return render_report(report)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def record_issued(
    archive: Archive, report: CustodyReport, data: bytes, fmt: str, *, actor: str, **extra: Any
) -> str:
    """One ``report_issued`` event per item, carrying the SHA-256 of the bytes
    handed out, so a printed report can be checked against the ledger."""
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    with archive.db.session() as session:
        for item in report.items:
            record_event(
                session,
                "report_issued",
                actor=actor,
                evidence_id=item.evidence_id,
                details={
                    "report_sha256": digest,
                    "format": fmt,
                    "scope": report.scope,
                    "verdict": item.verdict,
                    "failures": [f.check for f in item.failures],
                    "checkpoint_size": report.checkpoint.size if report.checkpoint else None,
                    **extra,
                },
            )
    return digest


@dataclass
class Issued:
    report: CustodyReport
    data: bytes
    sha256: str
    format: str


def issue_report(
    archive: Archive,
    *,
    evidence_ids: list[str] | None = None,
    case: str | None = None,
    fmt: str = "pdf",
    actor: str,
    units: Scope = ALL_UNITS,
    **extra: Any,
) -> Issued:
    """Checkpoint the ledger (so the report's events are provable), build,
    render, and record ``report_issued`` for every item – the one sequence both
    front doors run. A checkpoint that cannot be made leaves the newest events
    listed as pending; it does not stop the report."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    from archive.ledger import LedgerError, checkpoint

    resolve_ids(archive, evidence_ids, case, units)  # unknown ids fail before anything is written
    try:
        checkpoint(archive)
    except (LedgerError, StoreError) as exc:
        import logging

        logging.getLogger("strongroom.report").warning(
            "no fresh checkpoint for the report: %s", exc
        )
    report = build_report(archive, evidence_ids=evidence_ids, case=case, actor=actor, units=units)
    data = render(report, fmt)
    digest = record_issued(archive, report, data, fmt, actor=actor, **extra)
    return Issued(report, data, digest, fmt)


def _open_with_any(note: str, name: str, keys: Iterable[bytes]) -> Any:
    """The checkpoint opened with whichever trusted key signed it: with stations
    signing with their own keys, the lease holder of the moment signed it."""
    error: NoteError | None = None
    for raw in keys:
        try:
            opened, _ = open_checkpoint(note, {name: raw})
        except NoteError as exc:
            error = exc
            continue
        return opened
    raise error or NoteError("no trusted key")
