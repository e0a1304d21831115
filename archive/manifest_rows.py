"""Manifest -> catalog row: the one mapping the seal and the rebuild share.

The catalog is an index of what the bucket holds, so an ``evidence`` row is
what its signed manifest says and nothing else: the pipeline's seal
(``ingest.pipeline``) inserts the row made here from the manifest it stored
(or adopted on a retry), and ``strongroom catalog rebuild`` (``archive.rebuild``)
makes the same row from the same manifest read back from the bucket – then
lays over it what the bucket says since (the lock in force, the ledger's
replay of retention and unit changes, dispositions). Likewise a stored
playback copy's ``derivatives`` row from its lineage manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from archive.manifests import (
    EvidenceManifest,
    JSONObject,
    LineageManifest,
    media_location,
    parse_time,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EvidenceRow(TypedDict):
    """The ``evidence`` table's columns (``archive.models.Evidence``) as inserted."""

    evidence_id: str
    sha256: str
    size: int
    media_type: str
    file_name: str
    original_key: str
    original_version_id: str | None
    original_checksum: str
    manifest_key: str
    manifest_version_id: str | None
    keyid: str
    station: str
    dock: str
    source_path: str
    device: str | None
    officer: str | None
    unit: str | None
    recorded_start: datetime | None
    recorded_end: datetime | None
    file_mtime: datetime | None
    media_created: datetime | None
    time_problem: str | None
    flags: list[str]
    recorder_hash: str | None
    probe: JSONObject | None
    category: str
    lock_mode: str | None
    retain_until: datetime | None
    legal_hold: bool
    state: str
    ingested_at: datetime
    sealed_at: datetime
    media: JSONObject | None
    recorded_at: datetime | None
    latitude: float | None
    longitude: float | None


class DerivativeRow(TypedDict):
    """A stored playback copy's ``derivatives`` row (``archive.derivatives.Derivative``)."""

    evidence_id: str
    state: str
    action: str | None
    reason: str | None
    sha256: str
    size: int
    key: str
    version_id: str | None
    checksum: str | None
    manifest_key: str
    manifest_version_id: str | None
    probe: JSONObject | None
    ffmpeg_version: str | None
    ffmpeg_args: list[str]
    progress: float
    created_at: datetime
    updated_at: datetime


def evidence_row(
    manifest: EvidenceManifest, *, manifest_key: str, manifest_version_id: str | None
) -> EvidenceRow:
    """The ``evidence`` row that ``manifest``, stored at ``manifest_key``, describes."""
    original, source, media = manifest.original, manifest.source, manifest.media
    location = media_location(media)
    return {
        "evidence_id": manifest.evidence_id,
        "sha256": original.sha256,
        "size": original.size,
        "media_type": original.media_type,
        "file_name": original.file_name,
        "original_key": original.key,
        "original_version_id": original.version_id,
        "original_checksum": original.store_checksum,
        "manifest_key": manifest_key,
        "manifest_version_id": manifest_version_id,
        "keyid": manifest.keyid,
        "station": source.get("station") or "",
        "dock": source.get("dock") or "",
        "source_path": source.get("path") or "",
        "device": source.get("device"),
        "officer": source.get("officer"),
        "unit": source.get("unit"),
        "recorded_start": parse_time(source.get("recorded_start")),
        "recorded_end": parse_time(source.get("recorded_end")),
        "file_mtime": parse_time(source.get("file_mtime")),
        "media_created": parse_time(source.get("media_created")),
        "time_problem": source.get("time_problem"),
        "flags": list(source.get("flags") or []),
        "recorder_hash": recorder_verdict(source.get("recorder_hashes")),
        "probe": manifest.probe,
        "category": manifest.category,
        "lock_mode": manifest.lock_mode,
        "retain_until": manifest.retain_until,
        "legal_hold": manifest.legal_hold,
        "state": "sealed",
        "ingested_at": manifest.ingested_at,
        "sealed_at": manifest.sealed_at,
        "media": media,
        "recorded_at": parse_time((media or {}).get("recorded_at")),
        "latitude": location[0] if location else None,
        "longitude": location[1] if location else None,
    }


def recorder_verdict(hashes: object) -> str | None:
    """``match`` or ``mismatch`` over the recorder's hashes a manifest states
    (``source.recorder_hashes``); None when the dock held none (or an older manifest)."""
    if not isinstance(hashes, list) or not hashes:
        return None
    if any(isinstance(h, dict) and h.get("match") is False for h in hashes):
        return "mismatch"
    return "match"


def derivative_row(
    lineage: LineageManifest, *, manifest_key: str, manifest_version_id: str | None
) -> DerivativeRow:
    """The ``derivatives`` row of the stored playback copy ``lineage`` describes."""
    copy = lineage.derivative
    action = lineage.plan.get("action")
    created = lineage.created_at or _EPOCH
    return {
        "evidence_id": lineage.evidence_id,
        "state": "stored",
        "action": action if isinstance(action, str) else None,
        "reason": lineage.reason,
        "sha256": copy.sha256,
        "size": copy.size,
        "key": copy.key,
        "version_id": copy.version_id,
        "checksum": copy.store_checksum,
        "manifest_key": manifest_key,
        "manifest_version_id": manifest_version_id,
        "probe": copy.probe,
        "ffmpeg_version": lineage.ffmpeg_version,
        "ffmpeg_args": list(lineage.args),
        "progress": 100.0,
        "created_at": created,
        "updated_at": created,
    }
