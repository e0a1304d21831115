"""Typed manifests (archive.manifests) and the one manifest -> row mapping
(archive.manifest_rows): the signed bytes are those the code before the types
signed, a payload reads back to the same type, and what is not a manifest is
refused with the reason."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive.dsse import (
    DERIVATIVE_PAYLOAD_TYPE,
    EVIDENCE_PAYLOAD_TYPE,
    envelope_bytes,
    sign_envelope,
)
from archive.lineage import lineage_manifest
from archive.manifest_rows import derivative_row, evidence_row
from archive.manifests import EvidenceManifest, LineageManifest, ManifestError, disposed_ids
from archive.seal import evidence_manifest
from archive.store import Retention

#: signed by the seal and lineage code as they were before the typed manifests
FIXTURES = Path(__file__).parent / "fixtures" / "manifests"
KEY = SigningKey(bytes(range(32)))
SHA = "5c866cb78e1f0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819203"
EV = "ev-" + SHA[:24]
SEALED_AT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
SOURCE = {
    "station": "dock-01",
    "dock": "front",
    "path": "sub/GAT947_012345_20260304130506_0001.MP4",
    "file_mtime": "2026-03-04T05:06:00.123456+00:00",
    "device": "GAT947",
    "officer": "012345",
    "unit": "310101",
    "recorded_start": "2026-03-04T13:05:06+08:00",
    "recorded_end": None,
    "seq": "0001",
    "flags": ["imp"],
    "time_problem": None,
    "name_profile": "gat947",
    "name_timezone": "Asia/Shanghai",
    "media_created": None,
    "time_source": "name",
    "unit_source": "name",
    "name_unit": None,
    "probe_error": None,
    "名": "值",
}


def _evidence() -> EvidenceManifest:
    return evidence_manifest(
        evidence_id=EV,
        sha256=SHA,
        size=123456789,
        file_name="GAT947_012345_20260304130506_0001.MP4",
        media_type="video/mp4",
        original_version_id="v-0001",
        original_checksum="abc=",
        source=copy.deepcopy(SOURCE),  # type: ignore[arg-type]  # an older key ("名") too
        probe={"kind": "video", "duration": 12.5, "streams": [{"codec": "h264", "width": 1920}]},
        ingested_at=SEALED_AT - timedelta(seconds=3),
        sealed_at=SEALED_AT,
        category="routine",
        retention=Retention("COMPLIANCE", SEALED_AT + timedelta(days=183), False),
        keyid="0123456789abcdef",
    )


def _lineage() -> LineageManifest:
    return lineage_manifest(
        evidence_id=EV,
        original_sha256=SHA,
        original_size=123456789,
        original_version_id="v-0001",
        sha256="f" * 64,
        size=4567,
        media_type="video/mp4",
        version_id=None,
        store_checksum="def=",
        probe={"kind": "video"},
        plan={"action": "transcode", "reason": "not browser-playable", "rule": "hevc"},
        ffmpeg_version="6.1.1",
        args=["-i", "{input}", "{output}"],
        created_at=SEALED_AT,
        retention=None,
        keyid="0123456789abcdef",
    )


def _payload(name: str) -> dict:
    envelope = json.loads((FIXTURES / name).read_bytes())
    return json.loads(base64.b64decode(envelope["payload"]))


def test_evidence_manifest_signs_the_same_bytes_as_before() -> None:
    signed = envelope_bytes(sign_envelope(_evidence().to_payload(), EVIDENCE_PAYLOAD_TYPE, KEY))
    assert signed == (FIXTURES / "evidence.dsse.json").read_bytes()


def test_lineage_manifest_signs_the_same_bytes_as_before() -> None:
    signed = envelope_bytes(sign_envelope(_lineage().to_payload(), DERIVATIVE_PAYLOAD_TYPE, KEY))
    assert signed == (FIXTURES / "derivative.dsse.json").read_bytes()


def test_stored_manifests_read_back_to_the_same_type_and_payload() -> None:
    evidence = EvidenceManifest.from_payload(_payload("evidence.dsse.json"))
    assert evidence == _evidence()
    assert evidence.to_payload() == _payload("evidence.dsse.json")
    lineage = LineageManifest.from_payload(_payload("derivative.dsse.json"))
    assert lineage == _lineage()
    assert lineage.to_payload() == _payload("derivative.dsse.json")


def test_one_row_mapping_from_the_manifest() -> None:
    row = evidence_row(
        _evidence(), manifest_key=f"manifests/{EV}.dsse.json", manifest_version_id="m1"
    )
    assert row["original_key"] == f"originals/sha256/{SHA}"
    assert (row["station"], row["dock"], row["source_path"]) == (
        "dock-01",
        "front",
        SOURCE["path"],
    )
    assert row["recorded_start"] == datetime(
        2026, 3, 4, 13, 5, 6, tzinfo=timezone(timedelta(hours=8))
    )
    assert row["file_mtime"] == datetime(2026, 3, 4, 5, 6, 0, 123456, tzinfo=UTC)
    assert row["retain_until"] == SEALED_AT + timedelta(days=183)
    assert (row["state"], row["flags"], row["legal_hold"]) == ("sealed", ["imp"], False)
    assert (row["manifest_key"], row["manifest_version_id"]) == (f"manifests/{EV}.dsse.json", "m1")
    copy_row = derivative_row(_lineage(), manifest_key="k", manifest_version_id=None)
    assert copy_row["key"] == "derivatives/sha256/" + "f" * 64
    assert copy_row["reason"] == "not browser-playable (rule hevc)"
    assert copy_row["ffmpeg_args"] == ["-i", "{input}", "{output}"]
    assert copy_row["created_at"] == SEALED_AT


def _broken(change) -> dict:
    payload = _payload("evidence.dsse.json")
    change(payload)
    return payload


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: p.update(schema="strongroom/evidence/v0"), "schema"),
        (lambda p: p["original"].update(key="originals/sha256/" + "0" * 64), "original key"),
        (lambda p: p["original"].update(key="../" + SHA), "original key"),
        (lambda p: p["original"].update(size="123"), "size"),
        (lambda p: p["original"].update(size=-1), "size"),
        (lambda p: p.pop("sealed_at"), "sealed_at"),
        (lambda p: p.update(ingested_at="yesterday"), "ingested_at"),
        (lambda p: p.update(source=["x"]), "source"),
        (lambda p: p["source"].update(flags="imp"), "flags"),
        (lambda p: p["source"].update(station=7), "station"),
        (lambda p: p.update(original=None), "original"),
        (lambda p: p.pop("keyid"), "keyid"),
        (lambda p: p.update(media=["x"]), "media"),
        (lambda p: p.update(media={"recorded_at": "soon"}), "recorded_at"),
        (lambda p: p.update(media={"location": "here"}), "location"),
        (lambda p: p.update(media={"location": {"latitude": 91, "longitude": 0}}), "latitude"),
        (lambda p: p.update(media={"location": {"latitude": 0, "longitude": "0"}}), "longitude"),
        (lambda p: p.update(media={"location": {"latitude": True, "longitude": 0}}), "latitude"),
        (lambda p: p.update(media={"make": 7}), "make"),
    ],
)
def test_what_is_not_an_evidence_manifest_is_refused(change, says: str) -> None:
    with pytest.raises(ManifestError, match=says):
        EvidenceManifest.from_payload(_broken(change))


def test_a_lineage_naming_another_copy_key_is_refused() -> None:
    payload = _payload("derivative.dsse.json")
    payload["derivative"]["key"] = "derivatives/sha256/" + "e" * 64
    with pytest.raises(ManifestError, match="derivative key"):
        LineageManifest.from_payload(payload)


def test_disposed_ids_reads_only_well_formed_entries() -> None:
    payload = {"disposed": [{"evidence_id": EV}, {"evidence_id": ""}, "x", {"evidence_id": 3}]}
    assert disposed_ids(payload) == [EV]
    assert disposed_ids({"disposed": "all"}) == []


def test_media_is_signed_when_there_is_one_and_maps_to_its_columns() -> None:
    media = {
        "recorded_at": "2026-03-04T05:05:06Z",
        "make": "Acme",
        "location": {"latitude": 31.2304, "longitude": 121.4737, "tag": "location"},
    }
    manifest = dataclasses.replace(_evidence(), media=media)
    payload = manifest.to_payload()
    assert payload["media"] == media and "media" not in _evidence().to_payload()
    assert EvidenceManifest.from_payload(payload) == manifest
    row = evidence_row(manifest, manifest_key="k", manifest_version_id=None)
    assert (row["latitude"], row["longitude"]) == (31.2304, 121.4737)
    assert row["recorded_at"] == datetime(2026, 3, 4, 5, 5, 6, tzinfo=UTC)
    assert row["media"] == media
    old = evidence_row(_evidence(), manifest_key="k", manifest_version_id=None)
    assert (old["media"], old["recorded_at"], old["latitude"]) == (None, None, None)
