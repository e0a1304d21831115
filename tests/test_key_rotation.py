"""Key rotation and the configured trust set.

Items sealed before and after ``keys rotate`` verify with every checker
(``verify``, ``ledger audit``, ``catalog rebuild``, export and the offline
verifier with two ``--pubkey`` files) once the retired key is configured – and
not before. A key planted in the bucket, and a manifest signed by it, are
named as problems by ``catalog rebuild``; nothing it signed is trusted.
"""

from __future__ import annotations

import json
import subprocess
import sys

from nacl.signing import SigningKey

from archive.dsse import EVIDENCE_PAYLOAD_TYPE, envelope_bytes, key_id, sign_envelope
from archive.ledger import checkpoint_document
from archive.note import parse_vkey

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _rebuild(station, target):
    result = station.cli("catalog", "rebuild", "--into", str(target), "--json", check=False)
    return json.loads(result.stdout)


def _checks(summary) -> set[tuple[str, str]]:
    return {(p["check"], p["subject"]) for p in summary["problems"]}


def test_rotation_keeps_old_and_new_items_verifiable(station, tmp_path, api):
    before = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"before " * 4000)
    station.cli("ledger", "checkpoint")
    rotated = json.loads(station.cli("keys", "rotate", "--json").stdout)
    assert rotated["old_keyid"] != rotated["new_keyid"]
    assert (station.root / "var" / "keys" / f"signing.key.{rotated['old_keyid']}.retired").exists()
    published = station.s3.list_objects_v2(Bucket=station.bucket, Prefix="keys/")
    names = {o["Key"] for o in published["Contents"]}
    assert f"keys/{rotated['new_keyid']}.pub" in names and rotated["statement"] in names

    # without the retired key configured, the old item no longer verifies
    after = station.ingest_bytes("ABC1234_012345_20260301090000_0002.MP4", b"after " * 4000)
    code = station.cli("verify", before["evidence_id"], "--json", check=False).returncode
    assert code != 0, "an old item verified although its key is not configured"

    station.write_config("\n" + rotated["trusted_entry"])
    archive = station.archive()
    try:  # the latest checkpoint is still the old key's: its vkey says so
        _, signer = parse_vkey(checkpoint_document(archive)["vkey"])
    finally:
        archive.close()
    assert signer.hex() == rotated["old_public_key"]
    station.cli("ledger", "checkpoint")
    for item in (before, after):
        checked = station.cli("verify", item["evidence_id"], "--json", check=False)
        assert checked.returncode == 0, checked.stdout
    audit = json.loads(station.cli("ledger", "audit", "--json").stdout)
    assert audit["ok"] is True, audit
    summary = _rebuild(station, tmp_path / "rebuilt.db")
    assert summary["ok"] is True, summary["problems"]
    assert summary["items"] == 2
    assert set(summary["keys"]) == {rotated["old_keyid"], rotated["new_keyid"]}

    bundle = tmp_path / "bundle"
    ids = [before["evidence_id"], after["evidence_id"]]
    station.cli("export", *ids, "-o", str(bundle), "--json")
    pubkeys = []
    for name in ("old", "new"):
        path = tmp_path / f"{name}.hex"
        path.write_text(rotated[f"{name}_public_key"] + "\n")
        pubkeys += ["--pubkey", str(path)]
    offline = [sys.executable, str(ROOT / "verify" / "offline.py"), str(bundle), "--json"]
    both = subprocess.run([*offline, *pubkeys], capture_output=True, text=True, cwd=tmp_path)
    assert both.returncode == 0, both.stdout + both.stderr
    only_new = subprocess.run([*offline, *pubkeys[2:]], capture_output=True, text=True)
    assert only_new.returncode == 1, "the old item must not verify with the new key alone"

    # the API lists the current key first, then the retired one with its window
    handle = api("\n" + rotated["trusted_entry"])
    listed = handle.get("/v1/keys", "auditor").json()["keys"]
    assert [(k["keyid"], k["current"]) for k in listed] == [
        (rotated["new_keyid"], True),
        (rotated["old_keyid"], False),
    ]
    assert listed[1]["valid_until"] is not None

    # a retired key trusted only until before it signed the old item: out of its window
    early = rotated["trusted_entry"].replace(
        f'valid_until = "{rotated["retired_at"]}"', 'valid_until = "2020-01-01T00:00:00+00:00"'
    )
    assert early != rotated["trusted_entry"]
    station.write_config("\n" + early)
    checked = json.loads(station.cli("verify", before["evidence_id"], "--json", check=False).stdout)
    problems = {p["check"] for item in checked["items"] for p in item["problems"]}
    assert "manifest.key_window" in problems, checked
    assert station.cli("verify", after["evidence_id"], "--json", check=False).returncode == 0
    summary = _rebuild(station, tmp_path / "windowed.db")
    assert ("manifest.key_window", before["manifest_key"]) in _checks(summary)


def test_a_planted_key_and_what_it_signed_are_named(station, tmp_path):
    item = station.ingest_bytes("ABC1234_012345_20260301083015_0001.MP4", b"real " * 4000)
    station.cli("ledger", "checkpoint")
    planted = SigningKey.generate()
    raw = bytes(planted.verify_key)
    planted_id = key_id(raw)
    document = {"keyid": planted_id, "algorithm": "ed25519", "public_key": raw.hex()}
    station.s3.put_object(
        Bucket=station.bucket, Key=f"keys/{planted_id}.pub", Body=json.dumps(document).encode()
    )
    # a forged manifest: a real item's payload, another id, signed by the planted key
    manifest = station.s3.get_object(Bucket=station.bucket, Key=item["manifest_key"])
    envelope = json.loads(manifest["Body"].read())
    payload = json.loads(__import__("base64").b64decode(envelope["payload"]))
    forged_id = "ev-" + "f" * 24
    payload["evidence_id"] = forged_id
    forged = envelope_bytes(sign_envelope(payload, EVIDENCE_PAYLOAD_TYPE, planted))
    forged_key = f"manifests/{forged_id}.dsse.json"
    station.s3.put_object(Bucket=station.bucket, Key=forged_key, Body=forged)

    summary = _rebuild(station, tmp_path / "rebuilt.db")
    assert summary["ok"] is False
    checks = _checks(summary)
    assert ("key.untrusted", f"keys/{planted_id}.pub") in checks
    assert ("manifest.signature", forged_key) in checks
    assert planted_id not in summary["keys"]
    assert summary["items"] == 1

    swept = station.cli("fixity", "--json", check=False)
    assert swept.returncode == 1
    named = {(p["check"], p["object"]) for p in json.loads(swept.stdout)["bucket_problems"]}
    assert named == {
        ("key.untrusted", f"keys/{planted_id}.pub"),
        ("manifest.untrusted", forged_key),
    }
