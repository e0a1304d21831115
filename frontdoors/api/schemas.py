"""Response and request models: the API's published contract (``/openapi.json``).

Fields are only ever added, never renamed: the case system is written against
these names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from archive.caselinks import MAX_REASON, REASON_PATTERN


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. evidence_not_found")
    message: str
    request_id: str | None = Field(
        None,
        description="on server errors (5xx) only: the id the server log files the details "
        "under (also the X-Request-ID header of every response)",
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


class EvidenceSummary(BaseModel):
    """One item as listed by searches (the ``find --json`` fields)."""

    evidence_id: str
    sha256: str
    size: int
    state: str
    original_key: str
    manifest_key: str
    file_name: str
    station: str
    device: str | None
    officer: str | None
    unit: str | None
    recorded_start: datetime | None
    category: str
    retain_until: datetime | None
    legal_hold: bool
    flags: list[str]
    sealed_at: datetime | None


class EvidencePage(BaseModel):
    items: list[EvidenceSummary]
    count: int = Field(description="items on this page")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at end")


class CaseLinkOut(BaseModel):
    case_id: str
    linked_by: str
    reason: str
    linked_at: datetime
    linked_scope: dict[str, Any] | None = Field(
        None, description='the linker\'s scope: {"units": [...]} or {"all_units": true}'
    )


class SourceOut(BaseModel):
    station: str
    dock: str
    device: str | None
    officer: str | None
    unit: str | None
    recorded_start: datetime | None
    recorded_end: datetime | None
    file_name: str
    source_path: str
    flags: list[str]


class ManifestOut(BaseModel):
    key: str
    version_id: str | None
    envelope: dict[str, Any] | None = Field(
        description="the signed DSSE envelope as stored (null if the store could not be read)"
    )
    error: str | None = None


class DerivativeOut(BaseModel):
    id: int
    state: str
    action: str | None
    reason: str | None
    sha256: str | None
    size: int | None
    key: str | None
    version_id: str | None
    manifest_key: str | None
    manifest_version_id: str | None
    ffmpeg_version: str | None
    created_at: datetime


class RetentionOut(BaseModel):
    category: str = Field(description="the item's own retention category")
    effective_category: str = Field(
        description="the case category while linked to a case, else the item's own"
    )
    permanent: bool
    lock_mode: str
    retain_until: datetime | None
    legal_hold: bool


class FixityOut(BaseModel):
    result: str
    last_checked_at: datetime
    last_verified_at: datetime | None
    failing_since: datetime | None
    problems: list[dict[str, Any]]


class LocationOut(BaseModel):
    latitude: float = Field(description="WGS 84 degrees")
    longitude: float = Field(description="WGS 84 degrees")
    altitude: float | None = Field(None, description="metres, when the tag has one")
    tag: str | None = Field(None, description="the media tag it was read from")
    text: str | None = Field(None, description="the tag's ISO 6709 text as the file holds it")


class GpsTrackOut(BaseModel):
    stream: int | None
    codec_tag: str | None
    handler: str | None
    decoded: bool = Field(description="always false: tracks are named, not decoded")


class MediaOut(BaseModel):
    """What the recording says about itself (the signed manifest's ``media``)."""

    recorded_at: datetime | None = Field(None, description="start, by the recorder's clock")
    recorded_at_tag: str | None = None
    recorded_at_problem: str | None = None
    duration: float | None = Field(None, description="seconds")
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    software: str | None = None
    location: LocationOut | None = None
    location_problem: str | None = None
    gps_tracks: list[GpsTrackOut] = []


class EvidenceDetail(EvidenceSummary):
    """One item in full (reading it is a ``viewed`` custody event)."""

    media_type: str
    original_version_id: str | None
    original_checksum: str
    keyid: str
    ingested_at: datetime
    source: SourceOut
    manifest: ManifestOut
    derivatives: list[DerivativeOut]
    cases: list[CaseLinkOut]
    retention: RetentionOut
    fixity: FixityOut | None
    media: MediaOut | None = None


class CaseItem(EvidenceSummary):
    link: CaseLinkOut


class CaseOut(BaseModel):
    case_id: str
    total: int = Field(description="items linked to the case")
    items: list[CaseItem]
    count: int = Field(description="items on this page")
    next_cursor: str | None


class LinkRequest(BaseModel):
    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON,
        pattern=REASON_PATTERN,
        description="why; kept in the custody ledger (not blank, no control characters)",
    )


class LinkOut(BaseModel):
    case_id: str
    evidence_id: str
    linked: bool = Field(description="whether the link exists after this call")
    changed: bool = Field(description="whether this call created or removed it")
    legal_hold: bool = Field(description="the legal hold now in force on the item")
    linked_by: str | None = None
    linked_at: datetime | None = None
    reason: str | None = None


class PlaybackOut(BaseModel):
    evidence_id: str
    variant: Literal["original", "derivative"]
    url: str = Field(description="presigned GET of the exact object version")
    expires_at: datetime
    expires_in: int
    sha256: str
    size: int
    media_type: str | None


class KeyOut(BaseModel):
    keyid: str = Field(description="first 16 hex digits of SHA-256 of the raw key (DSSE)")
    fingerprint: str = Field(
        description="sha256: and the SHA-256 of the raw key in full: what an auditor "
        "passes to verify-bundle --key-fingerprint"
    )
    algorithm: Literal["ed25519"]
    public_key_hex: str
    key_name: str = Field(description="C2SP signed-note key name of checkpoints")
    vkey: str = Field(description="C2SP verifier key: <name>+<hash>+<base64(0x01||key)>")
    current: bool = Field(True, description="the key signing now; false: a retired trusted key")
    valid_from: datetime | None = None
    valid_until: datetime | None = Field(None, description="when a retired key was retired")


class KeysOut(BaseModel):
    keys: list[KeyOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
