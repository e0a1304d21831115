"""The bucket layout: every object key Strongroom writes, built and parsed here.

One module both writes and reads the names (as restic keeps its repository
layout in one file), so a name cannot be written one way and parsed another.
The layout is fixed: existing buckets must keep working, so every key is
byte-identical to what earlier versions wrote (``tests/test_layout.py`` pins
known keys)::

    originals/sha256/<sha256>                                 an original, by content
    derivatives/sha256/<sha256>                               a playback copy, by content
    manifests/<evidence_id>.dsse.json                         evidence manifest (DSSE)
    manifests/<evidence_id>.derivative.<sha256[:16]>.dsse.json  lineage of a playback copy
    keys/<keyid>.pub                                          a station's public key (JSON)
    keys/<keyid>.rotation.dsse.json                           the old key's word for a new one
    dispositions/<plan_id>.dsse.json                          disposition certificate
    ledger/leaves/<first>-<last>.jsonl                        custody ledger leaves
    ledger/checkpoints/<size>                                 signed ledger checkpoint
    catalog/backups/<station>/<YYYYMMDDTHHMMSSZ>.sqlite.gz    SQLite catalog backup
    canary/<hex>                                              the lock self-test's object

Builders refuse a part that could leave its place (``/``, ``..``, NUL,
control characters, an empty or over-long name) with :class:`LayoutError`;
parsers return ``None`` for a key that is not a name Strongroom writes, since
the bucket may hold anything someone with its write keys put there.
Standard library only: nothing here needs the store or the catalog.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

ORIGINALS = "originals/sha256/"
DERIVATIVES = "derivatives/sha256/"
MANIFESTS = "manifests/"
KEYS = "keys/"
DISPOSITIONS = "dispositions/"
LEDGER = "ledger/"
SEGMENTS = "ledger/leaves/"
CHECKPOINTS = "ledger/checkpoints/"
BACKUPS = "catalog/backups/"
CANARY = "canary/"

MANIFEST_SUFFIX = ".dsse.json"
PUBLIC_KEY_SUFFIX = ".pub"
ROTATION_SUFFIX = ".rotation.dsse.json"
SEGMENT_SUFFIX = ".jsonl"
BACKUP_SUFFIX = ".sqlite.gz"
BACKUP_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
#: the longest free-form part (station name, plan id) a key may carry
MAX_NAME = 128

_SHA256 = r"[0-9a-f]{64}"
_EVIDENCE_ID = r"ev-[0-9a-f]{24}"
_KEYID = r"[0-9a-f]{16}"
_NUMBER = r"0|[1-9][0-9]*"
_BACKUP_TIME = r"[0-9]{8}T[0-9]{6}Z"
_NAME = r"[^/\\\x00-\x1f\x7f]+"  # one path segment; '.' and '..' refused apart

_ORIGINAL_KEY = re.compile(rf"{ORIGINALS}({_SHA256})")
_DERIVATIVE_KEY = re.compile(rf"{DERIVATIVES}({_SHA256})")
_MANIFEST_KEY = re.compile(rf"{MANIFESTS}({_EVIDENCE_ID})\.dsse\.json")
_LINEAGE_KEY = re.compile(rf"{MANIFESTS}({_EVIDENCE_ID})\.derivative\.([0-9a-f]{{16}})\.dsse\.json")
_PUBLIC_KEY_KEY = re.compile(rf"{KEYS}({_KEYID})\.pub")
_ROTATION_KEY = re.compile(rf"{KEYS}({_KEYID})\.rotation\.dsse\.json")
_CERTIFICATE_KEY = re.compile(rf"{DISPOSITIONS}({_NAME})\.dsse\.json")
_SEGMENT_KEY = re.compile(rf"{SEGMENTS}({_NUMBER})-({_NUMBER})\.jsonl")
_CHECKPOINT_KEY = re.compile(rf"{CHECKPOINTS}({_NUMBER})")
_BACKUP_KEY = re.compile(rf"{BACKUPS}({_NAME})/({_BACKUP_TIME})\.sqlite\.gz")
_CANARY_KEY = re.compile(rf"{CANARY}([0-9a-f]{{32}})")


class LayoutError(ValueError):
    """A key part that is not what the layout allows (the message says which)."""


# -- parts -------------------------------------------------------------------------------


def _part(value: str, pattern: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise LayoutError(f"not a {what}: {str(value)[:80]!r}")
    return value


def _name(value: str, what: str) -> str:
    """A free-form segment (station name, plan id): one segment, never '.' or '..'."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_NAME
        or value in (".", "..")
        or not re.fullmatch(_NAME, value)
    ):
        raise LayoutError(f"not a {what} that can name an object: {str(value)[:80]!r}")
    return value


def _count(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LayoutError(f"not a {what}: {value!r}")
    return value


# -- originals and playback copies -------------------------------------------------------


def original_key(sha256_hex: str) -> str:
    """``originals/sha256/<hex>``: content-addressed, so a retry writes the same key."""
    return ORIGINALS + _part(sha256_hex, _SHA256, "SHA-256 in hex")


def parse_original_key(key: str) -> str | None:
    """The SHA-256 an original's key names."""
    match = _ORIGINAL_KEY.fullmatch(key)
    return match[1] if match else None


def derivative_key(sha256_hex: str) -> str:
    """``derivatives/sha256/<hex>``: identical copies of two items share one object."""
    return DERIVATIVES + _part(sha256_hex, _SHA256, "SHA-256 in hex")


def parse_derivative_key(key: str) -> str | None:
    match = _DERIVATIVE_KEY.fullmatch(key)
    return match[1] if match else None


# -- manifests ---------------------------------------------------------------------------


def manifest_key(evidence_id: str) -> str:
    """``manifests/<evidence_id>.dsse.json``: the item's signed evidence manifest."""
    return f"{MANIFESTS}{_part(evidence_id, _EVIDENCE_ID, 'evidence id')}{MANIFEST_SUFFIX}"


def parse_manifest_key(key: str) -> str | None:
    """The evidence id an evidence manifest's key names."""
    match = _MANIFEST_KEY.fullmatch(key)
    return match[1] if match else None


def derivative_manifest_key(evidence_id: str, derivative_sha256: str) -> str:
    """``manifests/<evidence_id>.derivative.<sha256[:16]>.dsse.json`` (next to the item's own)."""
    item = _part(evidence_id, _EVIDENCE_ID, "evidence id")
    copy = _part(derivative_sha256, _SHA256, "SHA-256 in hex")
    return f"{MANIFESTS}{item}.derivative.{copy[:16]}{MANIFEST_SUFFIX}"


def parse_derivative_manifest_key(key: str) -> tuple[str, str] | None:
    """(evidence id, first 16 hex digits of the copy's SHA-256) of a lineage manifest key."""
    match = _LINEAGE_KEY.fullmatch(key)
    return (match[1], match[2]) if match else None


# -- keys --------------------------------------------------------------------------------


def public_key_key(keyid: str) -> str:
    """``keys/<keyid>.pub``: where verifiers find a station's public key."""
    return f"{KEYS}{_part(keyid, _KEYID, 'key id')}{PUBLIC_KEY_SUFFIX}"


def parse_public_key_key(key: str) -> str | None:
    match = _PUBLIC_KEY_KEY.fullmatch(key)
    return match[1] if match else None


def is_public_key_name(key: str) -> bool:
    """Whether ``key`` sits where public keys go (``keys/….pub``), well-formed or not:
    a malformed one there is a problem to report, not something to skip."""
    return key.startswith(KEYS) and key.endswith(PUBLIC_KEY_SUFFIX)


def rotation_key(new_keyid: str) -> str:
    """``keys/<new keyid>.rotation.dsse.json``: the retired key's statement for its successor."""
    return f"{KEYS}{_part(new_keyid, _KEYID, 'key id')}{ROTATION_SUFFIX}"


def parse_rotation_key(key: str) -> str | None:
    match = _ROTATION_KEY.fullmatch(key)
    return match[1] if match else None


# -- dispositions ------------------------------------------------------------------------


def certificate_key(plan_id: str) -> str:
    """``dispositions/<plan_id>.dsse.json``: the signed disposition certificate."""
    return f"{DISPOSITIONS}{_name(plan_id, 'plan id')}{MANIFEST_SUFFIX}"


def parse_certificate_key(key: str) -> str | None:
    match = _CERTIFICATE_KEY.fullmatch(key)
    return match[1] if match and match[1] not in (".", "..") else None


# -- the custody ledger ------------------------------------------------------------------


def segment_key(first: int, last: int) -> str:
    """``ledger/leaves/<first>-<last>.jsonl``: the leaves ``first..last`` (inclusive)."""
    if _count(first, "leaf index") > _count(last, "leaf index"):
        raise LayoutError(f"segment {first}-{last}: first after last")
    return f"{SEGMENTS}{first}-{last}{SEGMENT_SUFFIX}"


def parse_segment_key(key: str) -> tuple[int, int] | None:
    """(first, last) of a segment key; None also when first > last."""
    match = _SEGMENT_KEY.fullmatch(key)
    if not match or int(match[1]) > int(match[2]):
        return None
    return int(match[1]), int(match[2])


def checkpoint_key(size: int) -> str:
    """``ledger/checkpoints/<size>``: the signed note for a tree of ``size`` leaves."""
    return f"{CHECKPOINTS}{_count(size, 'tree size')}"


def parse_checkpoint_key(key: str) -> int | None:
    match = _CHECKPOINT_KEY.fullmatch(key)
    return int(match[1]) if match else None


# -- catalog backups ---------------------------------------------------------------------


def backup_prefix(station: str) -> str:
    """``catalog/backups/<station>/``: one station's backups."""
    return f"{BACKUPS}{_name(station, 'station name')}/"


def backup_key(station: str, at: datetime) -> str:
    """``catalog/backups/<station>/<YYYYMMDDTHHMMSSZ>.sqlite.gz`` (sorts by time)."""
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise LayoutError(f"a backup time must be an aware datetime: {at!r}")
    stamp = at.astimezone(UTC).strftime(BACKUP_TIME_FORMAT)
    return f"{backup_prefix(station)}{stamp}{BACKUP_SUFFIX}"


def parse_backup_key(key: str) -> tuple[str, datetime] | None:
    """(station, time to the second, UTC) of a backup key."""
    match = _BACKUP_KEY.fullmatch(key)
    if not match or match[1] in (".", ".."):
        return None
    try:
        at = datetime.strptime(match[2], BACKUP_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return match[1], at


# -- the lock self-test ------------------------------------------------------------------


def canary_key(token_hex: str) -> str:
    """``canary/<32 hex digits>``: the object the Object Lock self-test writes."""
    return CANARY + _part(token_hex, r"[0-9a-f]{32}", "canary token")


def parse_canary_key(key: str) -> str | None:
    match = _CANARY_KEY.fullmatch(key)
    return match[1] if match else None
