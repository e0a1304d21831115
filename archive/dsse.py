"""DSSE envelopes (Dead Simple Signing Envelope, as used by in-toto and Sigstore)
signed with Ed25519.

A manifest is ``{"payloadType", "payload" (base64), "signatures": [{"keyid",
"sig"}]}``; the signature covers DSSE's pre-authentication encoding (PAE) of
the payload type and the payload bytes, never the JSON envelope itself, so
re-serialising the envelope cannot break it. Needs only PyNaCl and the standard
library, so the offline verifier can import it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from archive.canonical import canonical_json

EVIDENCE_PAYLOAD_TYPE = "application/vnd.strongroom.evidence+json"
DERIVATIVE_PAYLOAD_TYPE = "application/vnd.strongroom.derivative+json"


class EnvelopeError(ValueError):
    """An envelope that is malformed or whose signature does not verify."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def key_id(public_key: bytes) -> str:
    """Strongroom's key id: the first 16 hex digits of SHA-256 of the raw key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def key_fingerprint(public_key: bytes) -> str:
    """The fingerprint an archive publishes for auditors: ``sha256:`` and the
    SHA-256 of the raw 32-byte key in full (the 16-digit key id is a name, too
    short to vouch for a key)."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()


def sign_envelope(
    payload: dict[str, Any], payload_type: str, signing_key: SigningKey
) -> dict[str, Any]:
    """Sign ``payload`` (canonical JSON) and return the DSSE envelope as a dict."""
    body = canonical_json(payload)
    signature = signing_key.sign(pae(payload_type, body)).signature
    return {
        "payload": base64.b64encode(body).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {
                "keyid": key_id(bytes(signing_key.verify_key)),
                "sig": base64.b64encode(signature).decode("ascii"),
            }
        ],
    }


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """The stored form of an envelope (canonical JSON, so identical runs give
    identical objects)."""
    return canonical_json(envelope)


@dataclass(frozen=True)
class VerifiedPayload:
    """What a good signature vouches for."""

    payload_type: str
    payload: dict[str, Any]
    payload_bytes: bytes
    keyid: str


def verify_envelope(
    envelope: dict[str, Any] | bytes, public_keys: dict[str, bytes]
) -> VerifiedPayload:
    """Check an envelope against trusted public keys (``keyid`` → raw 32 bytes).

    Succeeds only if at least one signature is by a trusted key and verifies.
    Raises :class:`EnvelopeError` saying what is wrong otherwise.
    """
    if isinstance(envelope, bytes | bytearray):
        try:
            envelope = cast(dict[str, Any], json.loads(envelope))  # checked below
        except ValueError as exc:
            raise EnvelopeError(f"envelope is not JSON: {exc}") from exc
    try:
        payload_type = envelope["payloadType"]
        body = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"envelope is malformed: {exc!r}") from exc
    message = pae(payload_type, body)
    problems = []
    for entry in signatures:
        kid = entry.get("keyid", "")
        raw_key = public_keys.get(kid)
        if raw_key is None:
            problems.append(f"signature by unknown key {kid!r}")
            continue
        try:
            VerifyKey(raw_key).verify(message, base64.b64decode(entry["sig"]))
        except (BadSignatureError, KeyError, ValueError):
            problems.append(f"signature by key {kid} does not verify")
            continue
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise EnvelopeError(f"signed payload is not JSON: {exc}") from exc
        return VerifiedPayload(payload_type, payload, body, kid)
    raise EnvelopeError("; ".join(problems) or "envelope has no signatures")
