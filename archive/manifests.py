"""The signed manifests as types: what an evidence manifest and a lineage
manifest say, written and read in one place.

Frozen dataclasses, not pydantic: the offline verifier (``verify.offline``)
ships with nothing but the standard library and PyNaCl, and reads lineage
payloads (``archive.payloads``, beside this module) – so the manifests stay
standard-library types too: pydantic would put a third-party model between
the bytes and the auditor. Dataclasses also give what matters here: the
fields by name and type, times as aware ``datetime``, immutability, and
``to_payload()`` that yields exactly the JSON object earlier versions signed
– the signed bytes of the same input do not change
(``tests/test_manifests.py`` pins manifests signed before these types).

``from_payload()`` reads a payload back (a stored one, which someone with the
bucket's write keys may have planted: it verified, but its fields are still
checked) and raises :class:`ManifestError` for anything that is not a
manifest this code writes. The ``source`` section stays an open
:class:`Source` dictionary: it carries what the dock and the file name said,
whose keys grew over versions, and an absent key must stay absent to keep
the signed bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, TypeVar, cast

from archive.instants import iso_z as iso  # a manifest time: UTC written Z
from archive.layout import derivative_key, original_key, parse_derivative_key, parse_original_key

MANIFEST_SCHEMA = "strongroom/evidence/v1"
LINEAGE_SCHEMA = "strongroom/derivative/v1"
INPUT_PLACEHOLDER = "{input}"
OUTPUT_PLACEHOLDER = "{output}"
PLACEHOLDERS = {
    INPUT_PLACEHOLDER: "the original named above, verified by its sha256",
    OUTPUT_PLACEHOLDER: "the derivative named above",
}

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject = dict[str, JSONValue]
_T = TypeVar("_T")


class ManifestError(ValueError):
    """A payload that is not a manifest this code writes (the message says what is wrong)."""


class Source(TypedDict, total=False):
    """Where the recording came from, as the station read it (open: keys grew over time)."""

    station: str
    dock: str
    path: str
    file_mtime: str | None
    device: str | None
    officer: str | None
    unit: str | None
    recorded_start: str | None
    recorded_end: str | None
    seq: str | None
    flags: list[str]
    time_problem: str | None
    name_profile: str | None
    name_timezone: str | None
    media_created: str | None
    time_source: str | None
    unit_source: str
    name_unit: str
    media_time_problem: str
    probe_error: str
    uploaded_by: str  # an upload through the API: the uploading token's name
    upload_id: str
    #: the recorder's own hashes read beside the file, each with ``match`` (issue 19)
    recorder_hashes: list[dict[str, object]]


def parse_time(value: object) -> datetime | None:
    """A manifest or leaf time (``Z`` or an offset) as an aware datetime; None if absent
    or unreadable. A time without a zone is taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- evidence manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class OriginalPart:
    """The ``original`` section: which bytes, stored where."""

    sha256: str
    size: int
    file_name: str
    media_type: str
    version_id: str | None
    store_checksum: str

    @property
    def key(self) -> str:
        return original_key(self.sha256)


@dataclass(frozen=True)
class EvidenceManifest:
    """The evidence manifest (payload type ``application/vnd.strongroom.evidence+json``)."""

    evidence_id: str
    original: OriginalPart
    source: Source
    probe: JSONObject | None
    ingested_at: datetime
    sealed_at: datetime
    category: str
    lock_mode: str | None
    retain_until: datetime | None
    legal_hold: bool
    keyid: str
    #: what the recording says about itself (``ingest.metadata``); None: not read
    #: (manifests sealed before it existed, or media ffprobe could not read)
    media: JSONObject | None = None

    def to_payload(self) -> JSONObject:
        """The JSON object that is signed (canonical JSON), in the layout DESIGN.md fixes.

        ``media`` is written only when there is one, so a manifest without it
        is byte for byte what earlier versions signed."""
        original = self.original
        payload: JSONObject = {
            "schema": MANIFEST_SCHEMA,
            "evidence_id": self.evidence_id,
            "original": {
                "sha256": original.sha256,
                "size": original.size,
                "file_name": original.file_name,
                "media_type": original.media_type,
                "key": original.key,
                "version_id": original.version_id,
                "store_checksum": original.store_checksum,
            },
            "source": cast(JSONObject, dict(self.source)),
            "probe": self.probe,
            "ingested_at": iso(self.ingested_at),
            "sealed_at": iso(self.sealed_at),
            "category": self.category,
            "lock_mode": self.lock_mode,
            "retain_until": iso(self.retain_until),
            "legal_hold": self.legal_hold,
            "keyid": self.keyid,
        }
        if self.media is not None:
            payload["media"] = self.media
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> EvidenceManifest:
        """Read a signed evidence payload; :class:`ManifestError` if it is not one."""
        _schema(payload, MANIFEST_SCHEMA)
        original = _object(payload, "original")
        sha256 = _field(original, "sha256", str)
        if parse_original_key(str(original.get("key"))) != sha256:
            raise ManifestError(f"original key {original.get('key')!r}")
        source = payload.get("source") or {}
        if not isinstance(source, dict):
            raise ManifestError("source is not an object")
        for name in ("station", "dock", "path", "device", "officer", "unit", "time_problem"):
            _optional(source, name, str)
        flags = source.get("flags") or []
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise ManifestError("source.flags is not a list of strings")
        return cls(
            evidence_id=_field(payload, "evidence_id", str),
            original=OriginalPart(
                sha256=sha256,
                size=_count(original, "size"),
                file_name=_field(original, "file_name", str),
                media_type=_field(original, "media_type", str),
                version_id=_optional(original, "version_id", str),
                store_checksum=_optional(original, "store_checksum", str) or "",
            ),
            source=cast(Source, source),
            probe=_optional(payload, "probe", dict),
            ingested_at=_time(payload, "ingested_at"),
            sealed_at=_time(payload, "sealed_at"),
            category=_field(payload, "category", str),
            lock_mode=_optional(payload, "lock_mode", str),
            retain_until=parse_time(payload.get("retain_until")),
            legal_hold=bool(payload.get("legal_hold")),
            keyid=_field(payload, "keyid", str),
            media=_media(payload),
        )


def _media(payload: Mapping[str, object]) -> JSONObject | None:
    """The ``media`` section, its searchable fields checked: a time, and a
    location with latitude/longitude in range (the catalog indexes these)."""
    media = _optional(payload, "media", dict)
    if media is None:
        return None
    for name in ("recorded_at_tag", "make", "model", "serial", "software"):
        _optional(media, f"{name}", str)
    recorded_at = media.get("recorded_at")
    if recorded_at is not None and parse_time(recorded_at) is None:
        raise ManifestError(f"media.recorded_at is {recorded_at!r}, not a time")
    location = media.get("location")
    if location is not None:
        if not isinstance(location, dict):
            raise ManifestError("media.location is not an object")
        for name, bound in (("latitude", 90), ("longitude", 180)):
            value = location.get(name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not abs(value) <= bound
            ):
                raise ManifestError(f"media.location.{name} is {value!r}")
    return cast(JSONObject, media)


def media_location(media: Mapping[str, object] | None) -> tuple[float, float] | None:
    """(latitude, longitude) of a checked ``media`` section, or None."""
    location = (media or {}).get("location")
    if not isinstance(location, dict):
        return None
    return float(location["latitude"]), float(location["longitude"])


# -- lineage manifest --------------------------------------------------------------------


@dataclass(frozen=True)
class LineageOriginal:
    """The ``original`` section of a lineage manifest: what the copy was made from."""

    sha256: str
    size: int
    version_id: str | None

    @property
    def key(self) -> str:
        return original_key(self.sha256)


@dataclass(frozen=True)
class CopyPart:
    """The ``derivative`` section: the playback copy's bytes and where they are."""

    sha256: str
    size: int
    media_type: str | None
    version_id: str | None
    store_checksum: str | None
    probe: JSONObject | None

    @property
    def key(self) -> str:
        return derivative_key(self.sha256)


@dataclass(frozen=True)
class LineageManifest:
    """The lineage manifest of a playback copy (``application/vnd.strongroom.derivative+json``).

    ``plan``: the transcode plan (action, reason, rule); ``args``: ffmpeg's
    argument list with this host's paths replaced by the placeholders.
    """

    evidence_id: str
    original: LineageOriginal
    derivative: CopyPart
    plan: JSONObject
    ffmpeg_version: str | None
    args: tuple[str, ...]
    created_at: datetime | None
    lock_mode: str | None
    retain_until: datetime | None
    legal_hold: bool
    keyid: str

    def to_payload(self) -> JSONObject:
        copy = self.derivative
        return {
            "schema": LINEAGE_SCHEMA,
            "evidence_id": self.evidence_id,
            "original": {
                "sha256": self.original.sha256,
                "size": self.original.size,
                "key": self.original.key,
                "version_id": self.original.version_id,
            },
            "derivative": {
                "sha256": copy.sha256,
                "size": copy.size,
                "media_type": copy.media_type,
                "key": copy.key,
                "version_id": copy.version_id,
                "store_checksum": copy.store_checksum,
                "probe": copy.probe,
            },
            "plan": dict(self.plan),
            "tool": {
                "ffmpeg_version": self.ffmpeg_version,
                "args": list(self.args),
                "placeholders": cast(JSONObject, dict(PLACEHOLDERS)),
            },
            "created_at": iso(self.created_at),
            "lock_mode": self.lock_mode,
            "retain_until": iso(self.retain_until),
            "legal_hold": self.legal_hold,
            "keyid": self.keyid,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> LineageManifest:
        """Read a signed lineage payload; :class:`ManifestError` if it is not one."""
        _schema(payload, LINEAGE_SCHEMA)
        original = _object(payload, "original")
        copy = _object(payload, "derivative")
        sha256 = _field(copy, "sha256", str)
        if parse_derivative_key(str(copy.get("key"))) != sha256:
            raise ManifestError(f"derivative key {copy.get('key')!r}")
        plan = payload.get("plan") or {}
        tool = payload.get("tool") or {}
        if not isinstance(plan, dict) or not isinstance(tool, dict):
            raise ManifestError("plan or tool is not an object")
        args = tool.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ManifestError("tool.args is not a list of strings")
        return cls(
            evidence_id=_field(payload, "evidence_id", str),
            original=LineageOriginal(
                sha256=_field(original, "sha256", str),
                size=_count(original, "size"),
                version_id=_optional(original, "version_id", str),
            ),
            derivative=CopyPart(
                sha256=sha256,
                size=_count(copy, "size"),
                media_type=_optional(copy, "media_type", str),
                version_id=_optional(copy, "version_id", str),
                store_checksum=_optional(copy, "store_checksum", str),
                probe=_optional(copy, "probe", dict),
            ),
            plan=plan,
            ffmpeg_version=_optional(tool, "ffmpeg_version", str),
            args=tuple(args),
            created_at=parse_time(payload.get("created_at")),
            lock_mode=_optional(payload, "lock_mode", str),
            retain_until=parse_time(payload.get("retain_until")),
            legal_hold=bool(payload.get("legal_hold")),
            keyid=_field(payload, "keyid", str),
        )

    @property
    def reason(self) -> str | None:
        """The plan's reason as the catalog words it: ``<reason> (rule <rule>)``."""
        reason, rule = self.plan.get("reason"), self.plan.get("rule")
        if reason and rule:
            return f"{reason} (rule {rule})"  # as ingest.playback words it
        return reason if isinstance(reason, str) else None


# -- disposition certificate -------------------------------------------------------------


def disposed_ids(payload: Mapping[str, object]) -> list[str]:
    """The evidence ids a signed disposition certificate says were deleted."""
    items = payload.get("disposed")
    if not isinstance(items, list):
        return []
    return [
        item["evidence_id"]
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("evidence_id"), str)
        and item["evidence_id"]
    ]


# -- reading fields ----------------------------------------------------------------------


def _schema(payload: Mapping[str, object], schema: str) -> None:
    if payload.get("schema") != schema:
        raise ManifestError(f"schema {payload.get('schema')!r}, expected {schema!r}")


def _object(payload: Mapping[str, object], name: str) -> dict[str, object]:
    value = payload.get(name)
    if not isinstance(value, dict):
        raise ManifestError(f"{name} is not an object")
    return value


def _field(payload: Mapping[str, object], name: str, kind: type[_T]) -> _T:
    value = payload.get(name)
    if not isinstance(value, kind):
        raise ManifestError(f"{name} is {value!r}, not a {kind.__name__}")
    return value


def _optional(payload: Mapping[str, object], name: str, kind: type[_T]) -> _T | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, kind):
        raise ManifestError(f"{name} is {value!r}, not a {kind.__name__}")
    return value


def _count(payload: Mapping[str, object], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{name} is {value!r}, not a size")
    return value


def _time(payload: Mapping[str, object], name: str) -> datetime:
    value = parse_time(payload.get(name))
    if value is None:
        raise ManifestError(f"{name} is {payload.get(name)!r}, not a time")
    return value
