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

from archive.dsse import DERIVATIVE_PAYLOAD_TYPE
from archive.keys import StationKey
from archive.layout import derivative_manifest_key
from archive.manifests import (
    INPUT_PLACEHOLDER,
    OUTPUT_PLACEHOLDER,
    CopyPart,
    JSONObject,
    LineageManifest,
    LineageOriginal,
)
from archive.seal import SealedManifest, store_manifest
from archive.store import ObjectStore, Retention

#: the fields a stored lineage manifest must agree on before a retry adopts it
IDENTITY_FIELDS = ("evidence_id", "original.sha256", "derivative.sha256")


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


def lineage_manifest(
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
    probe: JSONObject | None,
    plan: JSONObject,
    ffmpeg_version: str,
    args: Sequence[str],
    created_at: datetime,
    retention: Retention | None,
    keyid: str,
) -> LineageManifest:
    """The lineage manifest of a playback copy; the lock it states is ``retention``."""
    return LineageManifest(
        evidence_id=evidence_id,
        original=LineageOriginal(
            sha256=original_sha256, size=original_size, version_id=original_version_id
        ),
        derivative=CopyPart(
            sha256=sha256,
            size=size,
            media_type=media_type,
            version_id=version_id,
            store_checksum=store_checksum,
            probe=probe,
        ),
        plan=dict(plan),
        ffmpeg_version=ffmpeg_version,
        args=tuple(args),
        created_at=created_at,
        lock_mode=retention.mode if retention else None,
        retain_until=retention.retain_until if retention else None,
        legal_hold=retention.legal_hold if retention else False,
        keyid=keyid,
    )


def seal_derivative(
    store: ObjectStore,
    station_key: StationKey,
    lineage: LineageManifest,
    retention: Retention | None,
) -> SealedManifest:
    """Sign and store the lineage manifest create-only; a retry adopts an identical one."""
    key = derivative_manifest_key(lineage.evidence_id, lineage.derivative.sha256)
    return store_manifest(
        store,
        station_key,
        key,
        lineage.to_payload(),
        DERIVATIVE_PAYLOAD_TYPE,
        retention,
        identity_fields=IDENTITY_FIELDS,
    )
