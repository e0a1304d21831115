"""The documents that describe evidence items and the station, built once for
every front door.

``strongroom show --json``, ``GET /v1/evidence/{id}``, ``strongroom status
--json`` and the auditor console show the same facts; each fact is read and
shaped here, once, so the doors cannot drift apart. The doors only choose
which document they serve and how to render it for a person. The CLI's and the
API's item documents differ in layout (flat vs. nested ``source``; the API's
times are serialised by its schema), and both layouts are contracts – they
share their parts, not their envelope.

Read-only: nothing here writes (the custody event for a read is the door's).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.caselinks import case_status, filter_by_case, link_dict, links_of
from archive.context import Archive
from archive.derivatives import Derivative
from archive.disposition import item_disposition
from archive.fixity_models import FixityRecord
from archive.health import queue_entry
from archive.incidents import incidents_section
from archive.instants import iso
from archive.ledger import ledger_summary
from archive.models import Evidence
from archive.queries import (
    EvidenceFilter,
    active_jobs,
    derivative_counts,
    derivative_summary,
    derivatives_in,
    derivatives_of,
    events_for,
    evidence_counts,
    evidence_query,
    find_evidence,
    job_counts,
    recent_problems,
    recorder_hash_section,
)
from archive.recorded_time import bad_timestamp_section, item_time, item_time_columns
from archive.states import CopyState
from archive.store import StoreError
from config.settings import Settings
from verify.fixity import fixity_summary, item_fixity
from verify.reports import deadline_section

#: playback-copy states the status document lists as troubled
COPY_TROUBLED = (CopyState.FAILED, CopyState.RETRYING)


# --- one item -----------------------------------------------------------------


def find_item(session: Session, evidence_id: str) -> Evidence | None:
    """An item by its id, or by the SHA-256 of its original (``show`` takes both)."""
    return (
        session.get(Evidence, evidence_id)
        or session.scalars(select(Evidence).where(Evidence.sha256 == evidence_id.lower())).first()
    )


def events_of(session: Session, evidence_id: str) -> list[dict[str, Any]]:
    """The item's custody events, oldest first."""
    return [
        {
            "seq": event.seq,
            "kind": event.kind,
            "actor": event.actor,
            "at": iso(event.at),
            "details": event.details,
        }
        for event in events_for(session, evidence_id)
    ]


def copies_of(session: Session, evidence_id: str) -> list[dict[str, Any]]:
    """Every playback copy of the item (or attempt at one), oldest first."""
    return [derivative_summary(d) for d in derivatives_of(session, evidence_id)]


def effective_category(settings: Settings, evidence: Evidence, linked: bool) -> str:
    """The category in force: a case link holds the item in the case category."""
    return settings.retention.case_category if linked else evidence.category


def show_document(settings: Settings, session: Session, evidence: Evidence) -> dict[str, Any]:
    """``strongroom show --json``: the item flat, with its events and sightings."""
    document = evidence.summary()
    events = events_of(session, evidence.evidence_id)
    links = links_of(session, evidence.evidence_id)
    document.update(
        {
            "media_type": evidence.media_type,
            "original_version_id": evidence.original_version_id,
            "original_checksum": evidence.original_checksum,
            "manifest_version_id": evidence.manifest_version_id,
            "keyid": evidence.keyid,
            "dock": evidence.dock,
            "source_path": evidence.source_path,
            "recorded_end": iso(evidence.recorded_end),
            # the witnesses of the recording time, and the one the item counts by
            "file_mtime": iso(evidence.file_mtime),
            "media_created": iso(evidence.media_created),
            "time_source": item_time(*item_time_columns(evidence))[1],
            "time_problem": evidence.time_problem,
            # the recorder's own hash compared at claim: match / mismatch / None (none beside it)
            "recorder_hash": evidence.recorder_hash,
            "lock_mode": evidence.lock_mode,
            "ingested_at": iso(evidence.ingested_at),
            "probe": evidence.probe,
            # what the recording says about itself (start, device, place): the manifest's
            "media": evidence.media,
            "sightings": [event for event in events if event["kind"] == "sighted"],
            "events": events,
            "fixity": item_fixity(session, evidence.evidence_id),
            "derivatives": copies_of(session, evidence.evidence_id),
            "cases": [link_dict(row) for row in links],
            "effective_category": effective_category(settings, evidence, bool(links)),
            "disposition": item_disposition(session, evidence.evidence_id),
        }
    )
    return document


def fixity_of(session: Session, evidence_id: str) -> dict[str, Any] | None:
    """The latest fixity verdict with its times as datetimes (the API's schema
    serialises them); None before the first check."""
    record = session.get(FixityRecord, evidence_id)
    if record is None:
        return None
    return {
        "result": record.result,
        "last_checked_at": record.last_checked_at,
        "last_verified_at": record.last_verified_at,
        "failing_since": record.failing_since,
        "problems": list(record.problems or []),
    }


def retention_of(settings: Settings, evidence: Evidence, linked: bool) -> dict[str, Any]:
    """Category, the category in force, and the lock that enforces it."""
    effective = effective_category(settings, evidence, linked)
    category = settings.retention.categories.get(effective)
    return {
        "category": evidence.category,
        "effective_category": effective,
        "permanent": bool(category and category.permanent),
        "lock_mode": evidence.lock_mode,
        "retain_until": evidence.retain_until,
        "legal_hold": evidence.legal_hold,
    }


def manifest_of(archive: Archive, evidence: Evidence) -> dict[str, Any]:
    """The manifest envelope as the store holds it – the signed statement, not
    the catalog's copy – so a reader sees what a verifier would check. If the
    store cannot be read, the reason instead."""
    document: dict[str, Any] = {
        "key": evidence.manifest_key,
        "version_id": evidence.manifest_version_id,
        "envelope": None,
        "error": None,
    }
    try:
        raw = archive.store.get_bytes(evidence.manifest_key, evidence.manifest_version_id)
        document["envelope"] = json.loads(raw)
    except StoreError as exc:
        document["error"] = f"could not read the manifest from the store: {exc}"
    except ValueError:
        document["error"] = "the stored manifest is not JSON"
    return document


def _api_copies(session: Session, evidence_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Derivative).where(Derivative.evidence_id == evidence_id).order_by(Derivative.id)
    )
    return [
        {
            "id": d.id,
            "state": d.state,
            "action": d.action,
            "reason": d.reason,
            "sha256": d.sha256,
            "size": d.size,
            "key": d.key,
            "version_id": d.version_id,
            "manifest_key": d.manifest_key,
            "manifest_version_id": d.manifest_version_id,
            "ffmpeg_version": d.ffmpeg_version,
            "created_at": d.created_at,
        }
        for d in rows
    ]


def evidence_detail(archive: Archive, session: Session, evidence: Evidence) -> dict[str, Any]:
    """``GET /v1/evidence/{id}``: the item with its source nested, the signed
    manifest as stored, playback copies, case links, retention and fixity."""
    links = links_of(session, evidence.evidence_id)
    document = evidence.summary()
    document.update(
        {
            "media_type": evidence.media_type,
            "original_version_id": evidence.original_version_id,
            "original_checksum": evidence.original_checksum,
            "keyid": evidence.keyid,
            "ingested_at": evidence.ingested_at,
            "source": {
                "station": evidence.station,
                "dock": evidence.dock,
                "device": evidence.device,
                "officer": evidence.officer,
                "unit": evidence.unit,
                "recorded_start": evidence.recorded_start,
                "recorded_end": evidence.recorded_end,
                "file_name": evidence.file_name,
                "source_path": evidence.source_path,
                "flags": list(evidence.flags or []),
            },
            "media": evidence.media,
            "manifest": manifest_of(archive, evidence),
            "derivatives": _api_copies(session, evidence.evidence_id),
            "cases": [link_dict(row) for row in links],
            "retention": retention_of(archive.settings, evidence, bool(links)),
            "fixity": fixity_of(session, evidence.evidence_id),
        }
    )
    return document


# --- searches -------------------------------------------------------------------


def find_items(
    session: Session, filters: EvidenceFilter, case: str | None, limit: int
) -> list[dict[str, Any]]:
    """``find``: the filters combined with AND (``case``: only that case's items)."""
    query = evidence_query(filters)
    if case:
        query = filter_by_case(query, case)
    return [row.summary() for row in find_evidence(session, filters, limit, query)]


# --- the station ----------------------------------------------------------------


def copies_status(session: Session) -> dict[str, Any]:
    """Playback copies by state, the running ones with percent and speed, and
    the latest failures with ffmpeg's reason."""
    running = [
        {
            "evidence_id": d.evidence_id,
            "action": d.action,
            "percent": round(d.progress or 0.0, 1),
            "speed": f"{d.speed:g}x" if d.speed is not None else None,
            "attempt": d.attempts,
        }
        for d in derivatives_in(session, [CopyState.RUNNING])
    ]
    failed = [
        {
            "evidence_id": d.evidence_id,
            "state": d.state,
            "attempts": d.attempts,
            "error": d.last_error,
        }
        for d in derivatives_in(session, list(COPY_TROUBLED), limit=10)
    ]
    return {"counts": derivative_counts(session), "running": running, "failed": failed}


def status_document(settings: Settings, session: Session, daemon: dict[str, Any]) -> dict[str, Any]:
    """``strongroom status --json``, the catalog's part: jobs and items by state,
    the queue (with what each job waits for, from the daemon's health file),
    problems, and the features' sections."""
    return {
        "jobs": job_counts(session),
        "evidence": evidence_counts(session),
        "queue": [queue_entry(job, daemon) for job in active_jobs(session)],
        "problems": recent_problems(session),
        "fixity": fixity_summary(session, settings.fixity.cycle_days),
        "ledger": ledger_summary(session),
        "derivatives": copies_status(session),
        "cases": case_status(session),
        "archive_deadline": deadline_section(settings, session),
        "bad_timestamps": bad_timestamp_section(session),
        "incidents": incidents_section(session),
        "recorder_hashes": recorder_hash_section(session),
    }


def fixity_counts(session: Session) -> dict[str, int]:
    """Items by their latest fixity verdict (``ok``, ``failed`` …)."""
    rows = session.execute(
        select(FixityRecord.result, func.count()).group_by(FixityRecord.result)
    ).all()
    return {result: count for result, count in rows}
