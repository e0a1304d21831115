"""Lineage of a playback copy: the signed statement of what it was made from, and how.

A playback copy is a new object with its own hash (invariant 3: the original
is never touched). Its manifest – a DSSE envelope like the evidence manifest,
but with payload type ``application/vnd.strongroom.derivative+json`` – names
the original by evidence id and SHA-256, the copy by SHA-256, size, media type
and probe summary, and the exact ffmpeg version and argument list, so anyone
with the public key and both files can check the copy came from the original
and could re-run the same command.

The argument list is stored with the station's local paths replaced by
``{input}`` and ``{output}``: the lineage then reads the same on every host
and leaks no folder layout, and the input is pinned by its hash instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from archive.dsse import DERIVATIVE_PAYLOAD_TYPE
from archive.instants import iso_z as _iso
from archive.keys import StationKey
from archive.seal import SealedManifest, derivative_key, original_key, store_manifest
from archive.store import ObjectStore, Retention

LINEAGE_SCHEMA = "strongroom/derivative/v1"
INPUT_PLACEHOLDER = "{input}"
OUTPUT_PLACEHOLDER = "{output}"
#: the fields a stored lineage manifest must agree on before a retry adopts it
IDENTITY_FIELDS = ("evidence_id", "original.sha256", "derivative.sha256")


def derivative_manifest_key(evidence_id: str, derivative_sha256: str) -> str:
    """``manifests/<evidence_id>.derivative.<sha256[:16]>.dsse.json`` (next to the item's own)."""
    return f"manifests/{evidence_id}.derivative.{derivative_sha256[:16]}.dsse.json"


def portable_args(args: Sequence[str], input_path: Path, output_dir: Path) -> list[str]:
    """ffmpeg's argument list with this host's paths replaced by placeholders.

    ``file:<input>`` becomes ``{input}``; any ``file:`` path inside
    ``output_dir`` (ffmpeg writes to a temporary name there) becomes
    ``{output}``. Everything else is kept verbatim.
    """
    source = "file:" + os.path.abspath(os.fsdecode(input_path))
    out_prefix = "file:" + os.path.abspath(os.fsdecode(output_dir)) + os.sep
    portable = []
    for arg in args:
        if arg == source:
            portable.append(INPUT_PLACEHOLDER)
        elif arg.startswith(out_prefix):
            portable.append(OUTPUT_PLACEHOLDER)
        else:
            portable.append(arg)
    return portable


def derivative_payload(
    *,
    evidence_id: str,
    original_sha256: str,
    original_size: int,
    original_version_id: str | None,
    sha256: str,
    size: int,
    media_type: str | None,
    version_id: str | None,
    store_checksum: str | None,
    probe: dict[str, Any] | None,
    plan: dict[str, Any],
    ffmpeg_version: str,
    args: Sequence[str],
    created_at: datetime,
    retention: Retention | None,
    keyid: str,
) -> dict[str, Any]:
    """The lineage manifest body (canonical JSON once signed)."""
    return {
        "schema": LINEAGE_SCHEMA,
        "evidence_id": evidence_id,
        "original": {
            "sha256": original_sha256,
            "size": original_size,
            "key": original_key(original_sha256),
            "version_id": original_version_id,
        },
        "derivative": {
            "sha256": sha256,
            "size": size,
            "media_type": media_type,
            "key": derivative_key(sha256),
            "version_id": version_id,
            "store_checksum": store_checksum,
            "probe": probe,
        },
        "plan": dict(plan),
        "tool": {
            "ffmpeg_version": ffmpeg_version,
            "args": list(args),
            "placeholders": {
                INPUT_PLACEHOLDER: "the original named above, verified by its sha256",
                OUTPUT_PLACEHOLDER: "the derivative named above",
            },
        },
        "created_at": _iso(created_at),
        "lock_mode": retention.mode if retention else None,
        "retain_until": _iso(retention.retain_until) if retention else None,
        "legal_hold": retention.legal_hold if retention else False,
        "keyid": keyid,
    }


def seal_derivative(
    store: ObjectStore,
    station_key: StationKey,
    payload: dict[str, Any],
    retention: Retention | None,
) -> SealedManifest:
    """Sign and store the lineage manifest create-only; a retry adopts an identical one."""
    key = derivative_manifest_key(payload["evidence_id"], payload["derivative"]["sha256"])
    return store_manifest(
        store,
        station_key,
        key,
        payload,
        DERIVATIVE_PAYLOAD_TYPE,
        retention,
        identity_fields=IDENTITY_FIELDS,
    )
