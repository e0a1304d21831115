"""Sealing: the signed statement of what an original is and where it came from.

An original becomes evidence when its manifest – a DSSE envelope over canonical
JSON, signed with the station's Ed25519 key – is stored next to it under the
same Object Lock. The manifest holds everything the catalog knows about the
item, so the catalog can be rebuilt from the bucket alone.

Sealing is idempotent: evidence ids are derived from the bytes, and a retry
that finds its manifest already stored checks the signature and the hash and
adopts it, instead of writing a second one.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from archive.dsse import (
    EVIDENCE_PAYLOAD_TYPE,
    EnvelopeError,
    envelope_bytes,
    sign_envelope,
    verify_envelope,
)
from archive.keys import StationKey
from archive.layout import manifest_key, public_key_key
from archive.manifests import (
    EvidenceManifest,
    JSONObject,
    ManifestError,
    OriginalPart,
    Source,
)
from archive.store import AlreadyExists, ObjectStore, Retention, StoredObject
from config.errors import ConflictError


def evidence_id_for(sha256_hex: str) -> str:
    """Evidence ids name content: the same bytes always get the same id (96 bits)."""
    return f"ev-{sha256_hex[:24]}"


class SealError(ConflictError):
    """A stored manifest that is not what this evidence should have."""

    code = "seal_conflict"


@dataclass(frozen=True)
class SealedManifest:
    """A signed payload as stored: ours, or the identical one a retry adopted."""

    payload: JSONObject
    stored: StoredObject


@dataclass(frozen=True)
class SealedEvidence:
    """An evidence manifest as stored (the adopted one, if a retry found it there)."""

    manifest: EvidenceManifest
    stored: StoredObject


def evidence_manifest(
    *,
    evidence_id: str,
    sha256: str,
    size: int,
    file_name: str,
    media_type: str,
    original_version_id: str | None,
    original_checksum: str,
    source: Source,
    probe: JSONObject | None,
    ingested_at: datetime,
    sealed_at: datetime,
    category: str,
    retention: Retention,
    keyid: str,
    media: JSONObject | None = None,
) -> EvidenceManifest:
    """The manifest of an original; the lock it states is ``retention``."""
    return EvidenceManifest(
        evidence_id=evidence_id,
        original=OriginalPart(
            sha256=sha256,
            size=size,
            file_name=file_name,
            media_type=media_type,
            version_id=original_version_id,
            store_checksum=original_checksum,
        ),
        source=source,
        probe=probe,
        ingested_at=ingested_at,
        sealed_at=sealed_at,
        category=category,
        lock_mode=retention.mode,
        retain_until=retention.retain_until,
        legal_hold=retention.legal_hold,
        keyid=keyid,
        media=media,
    )


def store_manifest(
    store: ObjectStore,
    station_key: StationKey,
    key: str,
    payload: JSONObject,
    payload_type: str,
    retention: Retention | None,
    *,
    identity_fields: tuple[str, ...],
) -> SealedManifest:
    """Sign ``payload`` and store it create-only at ``key``.

    If ``key`` exists (a retry after a crash, or another station sealed the
    same bytes), the stored envelope must verify with a trusted key and agree
    on ``identity_fields``; it is then adopted as the seal.
    """
    envelope = sign_envelope(payload, payload_type, station_key.signing_key)
    try:
        stored = store.put_bytes(
            key, envelope_bytes(envelope), retention, content_type="application/json"
        )
        return SealedManifest(payload, stored)
    except AlreadyExists:
        pass
    existing = store.get_bytes(key)
    info = store.head(key)
    try:
        verified = verify_envelope(existing, station_key.public_keys())
    except EnvelopeError as exc:
        raise SealError(f"{key} exists but does not verify with this station's key: {exc}") from exc
    for field in identity_fields:
        if _dig(verified.payload, field) != _dig(payload, field):
            raise SealError(
                f"{key} exists with {field}={_dig(verified.payload, field)!r}, "
                f"expected {_dig(payload, field)!r}"
            )
    stored = StoredObject(key, info.version_id, info.size, info.checksum_sha256 or "", False)
    return SealedManifest(verified.payload, stored)


def seal_evidence(
    store: ObjectStore, station_key: StationKey, manifest: EvidenceManifest, retention: Retention
) -> SealedEvidence:
    """Store ``manifest`` (see :func:`store_manifest`); returns the stored one."""
    sealed = store_manifest(
        store,
        station_key,
        manifest_key(manifest.evidence_id),
        manifest.to_payload(),
        EVIDENCE_PAYLOAD_TYPE,
        retention,
        identity_fields=("evidence_id", "original.sha256", "original.size"),
    )
    try:
        stored = EvidenceManifest.from_payload(sealed.payload)
    except ManifestError as exc:  # signed by us, same identity, yet not readable
        raise SealError(
            f"{sealed.stored.key} exists but is not an evidence manifest: {exc}"
        ) from exc
    return SealedEvidence(stored, sealed.stored)


def publish_public_key(store: ObjectStore, station_key: StationKey, retention: Retention) -> str:
    """Put ``keys/<keyid>.pub`` (JSON with the raw key in hex) if not there yet."""
    key = public_key_key(station_key.keyid)
    body = json.dumps(
        {
            "keyid": station_key.keyid,
            "algorithm": "ed25519",
            "public_key": station_key.public_key.hex(),
        },
        sort_keys=True,
    ).encode()
    with contextlib.suppress(AlreadyExists):  # published before: keys never change
        store.put_bytes(key, body, retention, content_type="application/json")
    return key


def _dig(document: JSONObject, dotted: str) -> object:
    value: object = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
