"""The full description of one evidence item, as ``GET /v1/evidence/{id}`` returns it.

The manifest envelope is fetched from the store – the signed statement, not
the catalog's copy of it – so a reader sees what a verifier would check. If the
store cannot be read the rest is still returned, with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.caselinks import link_dict, links_of
from archive.context import Archive
from archive.derivatives import Derivative
from archive.models import Evidence
from archive.store import StoreError


def _manifest(archive: Archive, evidence: Evidence) -> dict[str, Any]:
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


def _derivatives(session: Session, evidence_id: str) -> list[dict[str, Any]]:
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


def fixity_of(session: Session, evidence_id: str) -> dict[str, Any] | None:
    """The latest fixity verdict, when the fixity feature is installed."""
    try:
        from archive.fixity_models import FixityRecord
    except ImportError:
        return None
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


def retention_of(archive: Archive, evidence: Evidence, linked: bool) -> dict[str, Any]:
    settings = archive.settings
    effective = settings.retention.case_category if linked else evidence.category
    category = settings.retention.categories.get(effective)
    return {
        "category": evidence.category,
        "effective_category": effective,
        "permanent": bool(category and category.permanent),
        "lock_mode": evidence.lock_mode,
        "retain_until": evidence.retain_until,
        "legal_hold": evidence.legal_hold,
    }


def item_document(archive: Archive, session: Session, evidence: Evidence) -> dict[str, Any]:
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
            "manifest": _manifest(archive, evidence),
            "derivatives": _derivatives(session, evidence.evidence_id),
            "cases": [link_dict(row) for row in links],
            "retention": retention_of(archive, evidence, bool(links)),
            "fixity": fixity_of(session, evidence.evidence_id),
        }
    )
    return document
