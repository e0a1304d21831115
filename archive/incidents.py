"""Dispatch incidents (警情/CAD) and the evidence they link to cases by themselves.

An incident says: these officers of this unit were sent out from ``start`` to
``end``, and (perhaps) it became case ``case_id``. Footage an officer recorded
inside that window belongs to the case – and footage nobody tags is deleted
when its dated retention ends, so the archive links it by rule:

* an item *matches* an incident when its officer is one of the incident's, its
  unit lies in the incident unit's scope (the unit and its descendants), and
  its recorded span overlaps the window widened by ``[incidents]
  slack_minutes`` on both sides (recorder clocks drift);
* a match links the item to the incident's case as ``rule:incident-window``
  through :func:`archive.caselinks.link` – the same legal hold and ``linked``
  custody event as any link – or, with ``[incidents] confirm = true``, is kept
  as a proposal (``link_proposed``) that a person confirms (then the link is
  theirs) or rejects (``link_rejected``);
* every match is one ``incident_matches`` row, written once: re-importing the
  same incidents, or a person unlinking what the rule linked, is never redone.

Matching runs from both sides: for an incident when it is imported (or its
window, officers or case change), for an item when it is sealed. Whichever
commits second sees the other, so no order of arrival misses a match.
:func:`run_owed` does what is still owed (a crash between seal and match, a
store outage during a link) and is what the daemon's matcher calls.

An item's recorded span: from its start (file-name time, else the media's
creation time, else the file time) to its end (file-name end, else the start).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from archive import caselinks
from archive.caselinks import MAX_CASE_ID, EvidenceGone
from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.incident_models import Incident, IncidentCheck, IncidentMatch, IncidentOfficer
from archive.models import Evidence
from archive.scope import ALL_UNITS, Scope
from archive.states import GONE_STATES
from config.errors import BadInputError, ConflictError, NotFoundError, UnknownEvidence
from config.settings import UNIT_PATTERN, Settings

#: who the custody ledger names for a link the rule made
RULE_ACTOR = "rule:incident-window"
CSV_COLUMNS = ("incident_id", "case_id", "officer_ids", "unit", "start", "end")
#: a longer window would link an officer's whole week: refused as a data error
MAX_WINDOW = timedelta(hours=72)
MAX_OFFICERS = 200
#: a dispatch time outside these years is a data error (and keeps date arithmetic in range)
EARLIEST_YEAR, LATEST_YEAR = 2000, 2200
_OFFICER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_OFFICER_SPLIT = re.compile(r"[;,\s|]+")
#: items matched against incidents per pass of :func:`run_owed`
BATCH = 500


class IncidentRefused(BadInputError, ValueError):
    """An incident (or a CSV line) is malformed or conflicts with one on record."""

    code = "invalid_request"


class UnknownMatch(NotFoundError, LookupError):
    """No match of this id in the caller's scope."""

    code = "match_not_found"


class MatchDecided(ConflictError, ValueError):
    """The proposal was decided already (rejected ones stay rejected)."""

    code = "match_decided"


@dataclass(frozen=True)
class IncidentRecord:
    """One incident as given (CSV line or API body), validated."""

    incident_id: str
    case_id: str | None
    officers: tuple[str, ...]
    unit: str
    start: datetime
    end: datetime
    line: int | None = None  # where it came from in a CSV file

    def where(self) -> str:
        return f"line {self.line}: " if self.line is not None else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "case_id": self.case_id,
            "officer_ids": list(self.officers),
            "unit": self.unit,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    #: why matching did not finish now (the daemon's matcher finishes it later)
    matching_deferred: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "matches": self.matches,
            "matching_deferred": self.matching_deferred,
        }


# -- reading and checking ----------------------------------------------------------


def parse_time(text: str, zone: ZoneInfo, what: str) -> datetime:
    """ISO 8601; a time without an offset is the station's zone (CAD exports say local)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise IncidentRefused(
            f"{what} {text!r} is not an ISO 8601 time (e.g. 2026-03-01T08:30:00+08:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


def check_record(
    settings: Settings,
    *,
    incident_id: str,
    case_id: str | None,
    officers: Iterable[str],
    unit: str,
    start: datetime,
    end: datetime,
    line: int | None = None,
) -> IncidentRecord:
    """Validate one incident; :class:`IncidentRefused` names the line and the field."""
    where = f"line {line}: " if line is not None else ""

    def refuse(message: str) -> IncidentRefused:
        return IncidentRefused(f"{where}{message}")

    try:
        caselinks.check_case_id(incident_id)
    except caselinks.LinkRefused:
        raise refuse(
            f"incident_id {incident_id!r} must be 1–{MAX_CASE_ID} printable characters "
            "without '/', '\\' or surrounding spaces"
        ) from None
    if case_id is not None:
        try:
            caselinks.check_case_id(case_id)
        except caselinks.LinkRefused as exc:
            raise refuse(f"case_id {case_id!r}: {exc}") from None
    officer_ids = tuple(dict.fromkeys(officers))
    if not officer_ids:
        raise refuse("officer_ids is empty: an incident needs at least one officer")
    if len(officer_ids) > MAX_OFFICERS:
        raise refuse(f"more than {MAX_OFFICERS} officer ids")
    for officer in officer_ids:
        if not _OFFICER.fullmatch(officer):
            raise refuse(f"officer id {officer!r} is not 1–64 letters, digits, '.', '_' or '-'")
    if len(unit) > 64 or not re.fullmatch(UNIT_PATTERN, unit):
        raise refuse(f"unit {unit!r} is not a unit code")
    if settings.units and unit not in settings.units:
        raise refuse(f"unit {unit!r} is not one of the configured [units]")
    for name, value in (("start", start), ("end", end)):
        if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            raise refuse(
                f"{name} {value.isoformat()} is not between {EARLIEST_YEAR} and {LATEST_YEAR}"
            )
    if end < start:
        raise refuse(f"end {end.isoformat()} is before start {start.isoformat()}")
    if end - start > MAX_WINDOW:
        raise refuse(f"the window is longer than {MAX_WINDOW.total_seconds() / 3600:g} hours")
    return IncidentRecord(incident_id, case_id, officer_ids, unit, start, end, line)


def read_csv(settings: Settings, path: Path) -> tuple[list[IncidentRecord], str]:
    """Every row of an incidents CSV, validated, and the file's SHA-256.

    The first line names the columns (:data:`CSV_COLUMNS`, in any order; more
    columns are ignored). ``officer_ids`` holds one or more ids separated by
    ``;``, ``,``, ``|`` or spaces. UTF-8, with or without a byte-order mark.
    Any bad row refuses the whole file, naming its line: nothing is imported
    from a file that is only partly right.
    """
    digest = hashlib.sha256()
    zone = settings.station.tzinfo
    with path.open("rb") as raw:
        hashing = _HashingReader(raw, digest)
        # a readable binary stream: TextIOWrapper needs only read/readinto
        text = io.TextIOWrapper(cast(BinaryIO, hashing), encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader, None)
            if header is None:
                raise IncidentRefused(f"{path.name}: the file is empty")
            names = [name.strip().lower() for name in header]
            missing = [c for c in CSV_COLUMNS if c not in names]
            if missing:
                raise IncidentRefused(
                    f"line 1: missing column(s) {', '.join(missing)}; the header must name "
                    + ", ".join(CSV_COLUMNS)
                )
            index = {c: names.index(c) for c in CSV_COLUMNS}
            records: list[IncidentRecord] = []
            seen: dict[str, int] = {}
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) < len(names):
                    raise IncidentRefused(
                        f"line {line}: {len(row)} columns where the header has {len(names)}"
                    )
                cell = {c: row[i].strip() for c, i in index.items()}
                try:
                    record = check_record(
                        settings,
                        incident_id=cell["incident_id"],
                        case_id=cell["case_id"] or None,
                        officers=[o for o in _OFFICER_SPLIT.split(cell["officer_ids"]) if o],
                        unit=cell["unit"],
                        start=parse_time(cell["start"], zone, "start"),
                        end=parse_time(cell["end"], zone, "end"),
                        line=line,
                    )
                except IncidentRefused as exc:
                    text_ = str(exc)
                    raise IncidentRefused(
                        text_ if text_.startswith("line ") else f"line {line}: {text_}"
                    ) from None
                if record.incident_id in seen:
                    raise IncidentRefused(
                        f"line {line}: incident {record.incident_id} appears again "
                        f"(first on line {seen[record.incident_id]})"
                    )
                seen[record.incident_id] = line
                records.append(record)
        except UnicodeDecodeError as exc:
            raise IncidentRefused(
                f"line {reader.line_num + 1}: not UTF-8 text ({exc.reason})"
            ) from None
        except csv.Error as exc:
            raise IncidentRefused(f"line {reader.line_num}: {exc}") from None
    return records, digest.hexdigest()


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them (the import event names the file's hash)."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self._raw, self._digest = raw, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)


# -- storing -------------------------------------------------------------------------


def incident_dict(incident: Incident, officers: list[str]) -> dict[str, Any]:
    return {
        "incident_id": incident.incident_id,
        "case_id": incident.case_id,
        "officer_ids": officers,
        "unit": incident.unit,
        "start": incident.start.isoformat(),
        "end": incident.end.isoformat(),
        "created_by": incident.created_by,
        "created_at": incident.created_at.isoformat(),
        "updated_at": incident.updated_at.isoformat(),
        "matched_at": incident.matched_at.isoformat() if incident.matched_at else None,
    }


def officers_of(session: Session, incident_id: str) -> list[str]:
    return list(
        session.scalars(
            select(IncidentOfficer.officer)
            .where(IncidentOfficer.incident_id == incident_id)
            .order_by(IncidentOfficer.officer)
        )
    )


def import_incidents(
    archive: Archive,
    records: list[IncidentRecord],
    *,
    actor: str,
    scope: Scope = ALL_UNITS,
    source: dict[str, Any] | None = None,
    match: bool = True,
) -> ImportResult:
    """Store the incidents in one transaction (all or nothing), then match them.

    A record equal to the one on file changes nothing; one that differs updates
    it (and is matched again), except that a case id once set is never replaced
    by another: that is a person's decision (unlink/link), not a re-import's.
    An incident whose unit is outside ``scope`` – new or on file – is refused.
    """
    result = ImportResult()
    now = utcnow()
    with archive.db.session() as session:
        for record in records:
            if not scope.covers(record.unit):
                raise IncidentRefused(
                    f"{record.where()}incident {record.incident_id}: unit {record.unit} "
                    "is outside your units"
                )
            row = session.get(Incident, record.incident_id)
            if row is None:
                session.add(
                    Incident(
                        incident_id=record.incident_id,
                        case_id=record.case_id,
                        unit=record.unit,
                        start=record.start,
                        end=record.end,
                        created_by=actor,
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.add_all(
                    IncidentOfficer(incident_id=record.incident_id, officer=o)
                    for o in record.officers
                )
                result.created.append(record.incident_id)
                continue
            if not scope.covers(row.unit):  # said like a new one of another unit
                raise IncidentRefused(
                    f"{record.where()}incident {record.incident_id}: unit {record.unit} "
                    "is outside your units"
                )
            officers = officers_of(session, record.incident_id)
            same = (
                row.case_id == record.case_id
                and row.unit == record.unit
                and row.start == record.start
                and row.end == record.end
                and officers == sorted(record.officers)
            )
            if same:
                result.unchanged.append(record.incident_id)
                continue
            if row.case_id is not None and record.case_id != row.case_id:
                raise IncidentRefused(
                    f"{record.where()}incident {record.incident_id} is on record with case "
                    f"{row.case_id}; it cannot become {record.case_id or 'no case'} by an "
                    "import (link or unlink its items instead)"
                )
            row.unit, row.start, row.end = record.unit, record.start, record.end
            row.case_id = record.case_id
            row.updated_at, row.matched_at = now, None
            for officer in set(officers) - set(record.officers):
                session.delete(session.get(IncidentOfficer, (record.incident_id, officer)))
            session.add_all(
                IncidentOfficer(incident_id=record.incident_id, officer=o)
                for o in set(record.officers) - set(officers)
            )
            result.updated.append(record.incident_id)
        if result.created or result.updated:
            changed = {*result.created, *result.updated}
            record_event(
                session,
                "incidents_imported",
                actor=actor,
                details={
                    **(source or {}),
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": len(result.unchanged),
                    "scope": scope.to_dict(),
                    # the records themselves, so a catalog rebuilt from the bucket has them
                    "incidents": [r.to_dict() for r in records if r.incident_id in changed],
                },
            )
    if match:
        for incident_id in [*result.created, *result.updated]:
            try:
                result.matches.extend(match_incident(archive, incident_id))
            except Exception as exc:  # the store is down, say: the matcher retries
                result.matching_deferred = f"{type(exc).__name__}: {exc}"[:500]
                break
    return result


# -- matching ------------------------------------------------------------------------


def _item_start() -> ColumnElement[Any]:
    return func.coalesce(Evidence.recorded_start, Evidence.media_created, Evidence.file_mtime)


def _item_end() -> ColumnElement[Any]:
    return func.coalesce(
        Evidence.recorded_end, Evidence.recorded_start, Evidence.media_created, Evidence.file_mtime
    )


def item_span(evidence: Evidence) -> tuple[datetime, datetime] | None:
    """The item's recorded span, or None when nothing says when it was recorded."""
    start = evidence.recorded_start or evidence.media_created or evidence.file_mtime
    if start is None:
        return None
    return start, evidence.recorded_end or start


def _slack(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.incidents.slack_minutes)


def _details(
    settings: Settings, incident: Incident, evidence: Evidence, span: tuple[datetime, datetime]
) -> dict[str, Any]:
    return {
        "incident_id": incident.incident_id,
        "case_id": incident.case_id,
        "unit": incident.unit,
        "officer": evidence.officer,
        "window": [incident.start.isoformat(), incident.end.isoformat()],
        "slack_minutes": settings.incidents.slack_minutes,
        "recorded": [span[0].isoformat(), span[1].isoformat()],
    }


def match_incident(archive: Archive, incident_id: str) -> list[dict[str, Any]]:
    """Match one incident against the items on record; returns the matches made."""
    settings = archive.settings
    with archive.db.session() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return []
        stamp = incident.updated_at
        found: list[tuple[Incident, Evidence]] = []
        if incident.case_id is not None:
            slack = _slack(settings)
            scope = Scope(settings.unit_scope([incident.unit]))
            officers = officers_of(session, incident_id)
            query = scope.where(
                select(Evidence)
                .where(Evidence.officer.in_(officers))
                .where(Evidence.state.not_in(GONE_STATES))
                .where(_item_start() <= incident.end + slack)
                .where(_item_end() >= incident.start - slack)
                .where(
                    ~exists().where(
                        IncidentMatch.incident_id == incident_id,
                        IncidentMatch.evidence_id == Evidence.evidence_id,
                    )
                )
                .order_by(Evidence.evidence_id)
            )
            found = [(incident, e) for e in session.scalars(query)]
            session.expunge_all()
    made = [_act(archive, incident, evidence) for incident, evidence in found]
    with archive.db.session() as session:
        row = session.get(Incident, incident_id)
        if row is not None and row.updated_at == stamp:  # not changed meanwhile
            row.matched_at = utcnow()
    return [m for m in made if m is not None]


def match_evidence(archive: Archive, evidence_id: str) -> list[dict[str, Any]]:
    """Match one item against the incidents on record; returns the matches made."""
    settings = archive.settings
    found: list[tuple[Incident, Evidence]] = []
    with archive.db.session() as session:
        evidence = session.get(Evidence, evidence_id)
        span = item_span(evidence) if evidence is not None else None
        if evidence is not None and span is not None and evidence.officer and evidence.unit:
            slack = _slack(settings)
            query = (
                select(Incident)
                .join(IncidentOfficer, IncidentOfficer.incident_id == Incident.incident_id)
                .where(IncidentOfficer.officer == evidence.officer)
                .where(Incident.case_id.is_not(None))
                .where(Incident.start <= span[1] + slack)
                .where(Incident.end >= span[0] - slack)
                .where(
                    ~exists().where(
                        IncidentMatch.incident_id == Incident.incident_id,
                        IncidentMatch.evidence_id == evidence_id,
                    )
                )
                .order_by(Incident.start, Incident.incident_id)
            )
            found = [
                (incident, evidence)
                for incident in session.scalars(query)
                if evidence.unit in settings.unit_scope([incident.unit])
            ]
            session.expunge_all()
    made = [_act(archive, incident, evidence) for incident, evidence in found]
    with archive.db.session() as session:
        if session.get(IncidentCheck, evidence_id) is None and (
            session.get(Evidence, evidence_id) is not None
        ):
            session.add(IncidentCheck(evidence_id=evidence_id, checked_at=utcnow()))
            try:
                session.flush()
            except IntegrityError:  # another matcher checked it at the same moment
                session.rollback()
    return [m for m in made if m is not None]


def _act(archive: Archive, incident: Incident, evidence: Evidence) -> dict[str, Any] | None:
    """Link (or propose) one match, and record it once."""
    settings = archive.settings
    span = item_span(evidence)
    assert span is not None and incident.case_id is not None
    details = _details(settings, incident, evidence, span)
    proposed = settings.incidents.confirm
    if not proposed:
        reason = (
            f"incident {incident.incident_id}: officer {evidence.officer} recorded "
            f"{span[0].isoformat()} within {incident.start.isoformat()} – "
            f"{incident.end.isoformat()} (± {settings.incidents.slack_minutes:g} min)"
        )
        try:
            caselinks.link(
                archive,
                incident.case_id,
                evidence.evidence_id,
                actor=RULE_ACTOR,
                reason=reason,
                scope=Scope(settings.unit_scope([incident.unit])),
                match=details,
            )
        except (UnknownEvidence, EvidenceGone):
            return None  # gone or moved out of the unit meanwhile: nothing to hold
    state = "pending" if proposed else "linked"
    try:
        with archive.db.session() as session:
            match = IncidentMatch(
                incident_id=incident.incident_id,
                evidence_id=evidence.evidence_id,
                case_id=incident.case_id,
                state=state,
                matched_at=utcnow(),
                details=details,
            )
            session.add(match)
            session.flush()
            if proposed:
                record_event(
                    session,
                    "link_proposed",
                    actor=RULE_ACTOR,
                    evidence_id=evidence.evidence_id,
                    details={**details, "match_id": match.id},
                )
            return match_dict(match)
    except IntegrityError:  # another matcher recorded this pair first
        return None


# -- proposals -----------------------------------------------------------------------


def match_dict(match: IncidentMatch) -> dict[str, Any]:
    return {
        "id": match.id,
        "incident_id": match.incident_id,
        "evidence_id": match.evidence_id,
        "case_id": match.case_id,
        "state": match.state,
        "matched_at": match.matched_at.isoformat(),
        "details": match.details,
        "decided_by": match.decided_by,
        "decided_at": match.decided_at.isoformat() if match.decided_at else None,
        "reason": match.decision_reason,
    }


def list_matches(
    session: Session,
    *,
    scope: Scope = ALL_UNITS,
    state: str | None = "pending",
    incident_id: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Matches (pending ones by default; of one incident if given) whose item lies
    in ``scope``, oldest first."""
    query = scope.where(
        select(IncidentMatch)
        .join(Evidence, Evidence.evidence_id == IncidentMatch.evidence_id)
        .order_by(IncidentMatch.id)
        .limit(limit)
    )
    if state is not None:
        query = query.where(IncidentMatch.state == state)
    if incident_id is not None:
        query = query.where(IncidentMatch.incident_id == incident_id)
    return [match_dict(m) for m in session.scalars(query)]


def _load_match(session: Session, match_id: int, scope: Scope) -> IncidentMatch:
    match = session.get(IncidentMatch, match_id)
    if match is None:
        raise UnknownMatch(str(match_id))
    evidence = session.get(Evidence, match.evidence_id)
    if evidence is None or not scope.covers(evidence.unit):
        raise UnknownMatch(str(match_id))
    return match


def confirm(
    archive: Archive,
    match_id: int,
    *,
    actor: str,
    scope: Scope = ALL_UNITS,
    reason: str | None = None,
) -> dict[str, Any]:
    """Make the proposed link, as ``actor``. Idempotent for a confirmed match."""
    with archive.db.session() as session:
        match = _load_match(session, match_id, scope)
        if match.state in ("confirmed", "linked"):
            return match_dict(match)
        if match.state != "pending":
            raise MatchDecided(f"match {match_id} was {match.state} by {match.decided_by}")
        case_id, evidence_id, incident_id = match.case_id, match.evidence_id, match.incident_id
    why = caselinks.check_reason(
        reason or f"confirmed match {match_id}: recorded within incident {incident_id}"
    )
    caselinks.link(archive, case_id, evidence_id, actor=actor, reason=why, scope=scope)
    with archive.db.session() as session:
        match = _load_match(session, match_id, scope)
        if match.state == "pending":
            match.state = "confirmed"
            match.decided_by, match.decided_at, match.decision_reason = actor, utcnow(), why
        return match_dict(match)


def reject(
    archive: Archive,
    match_id: int,
    *,
    actor: str,
    scope: Scope = ALL_UNITS,
    reason: str | None = None,
) -> dict[str, Any]:
    """Refuse the proposal for good (``link_rejected``). Idempotent for a rejected one."""
    why = caselinks.check_reason(reason or f"rejected match {match_id}")
    with archive.db.session() as session:
        match = _load_match(session, match_id, scope)
        if match.state == "rejected":
            return match_dict(match)
        if match.state != "pending":
            raise MatchDecided(
                f"match {match_id} was {match.state}; unlink the item from case "
                f"{match.case_id} instead"
            )
        match.state = "rejected"
        match.decided_by, match.decided_at, match.decision_reason = actor, utcnow(), why
        record_event(
            session,
            "link_rejected",
            actor=actor,
            evidence_id=match.evidence_id,
            details={
                "match_id": match.id,
                "incident_id": match.incident_id,
                "case_id": match.case_id,
                "reason": why,
            },
        )
        return match_dict(match)


# -- what is owed ----------------------------------------------------------------------


def run_owed(archive: Archive, *, limit: int = BATCH) -> dict[str, int]:
    """Match incidents changed since their last matching, and items sealed but not
    yet matched (at most ``limit`` of each). Errors propagate: the caller retries."""
    with archive.db.session() as session:
        incidents = list(
            session.scalars(
                select(Incident.incident_id)
                .where(Incident.case_id.is_not(None))
                .where(
                    (Incident.matched_at.is_(None)) | (Incident.matched_at < Incident.updated_at)
                )
                .order_by(Incident.updated_at)
                .limit(limit)
            )
        )
        items = list(
            session.scalars(
                select(Evidence.evidence_id)
                .outerjoin(IncidentCheck, IncidentCheck.evidence_id == Evidence.evidence_id)
                .where(IncidentCheck.evidence_id.is_(None))
                .order_by(Evidence.sealed_at)
                .limit(limit)
            )
        )
    made = 0
    for incident_id in incidents:
        made += len(match_incident(archive, incident_id))
    for evidence_id in items:
        made += len(match_evidence(archive, evidence_id))
    return {"incidents": len(incidents), "items": len(items), "matches": made}


def incidents_section(session: Session) -> dict[str, Any]:
    """``strongroom status``: incidents on file, matches by state, matching owed."""
    by_state = dict(
        session.execute(
            select(IncidentMatch.state, func.count()).group_by(IncidentMatch.state)
        ).all()
    )
    return {
        "incidents": session.scalar(select(func.count()).select_from(Incident)) or 0,
        "matches": by_state,
        "pending": by_state.get("pending", 0),
    }
