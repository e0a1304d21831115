"""Export bundles: a BagIt bag the Library of Congress tool validates, whose
manifest signatures verify with plain openssl by the recipe in VERIFY.txt,
with each item's ledger proofs and the signed checkpoint; exporting is a
custody event, and bytes that do not match their seal are never exported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, update

from archive.cases import CaseLink
from archive.dsse import key_fingerprint
from archive.models import CustodyEvent, Evidence
from tests.test_fixity import add_playback_copy
from tests.test_ledger import ingest_files

BAGIT = str(Path(sys.executable).parent / "bagit.py")


def make_bundle(station, tmp_path: Path, count: int = 2) -> tuple[Path, list[dict]]:
    items = ingest_files(station, tmp_path, count, tag="export")
    out = tmp_path / "bundle"
    ids = [i["evidence_id"] for i in items]
    result = station.cli("export", *ids, "-o", str(out), "--json")
    assert json.loads(result.stdout)["items"] == ids
    return out, items


def openssl_recipe(bundle: Path) -> str:
    text = (bundle / "VERIFY.txt").read_text()
    start = text.index("# --- begin openssl check ---")
    return text[start : text.index("# --- end openssl check ---")]


def test_verify_txt_sends_the_auditor_to_the_published_key_and_verifier(station, tmp_path):
    """Issue 11: VERIFY.txt told the auditor to run the verifier shipped inside
    the bundle, so a forged bundle brought its own verifier."""
    bundle, _ = make_bundle(station, tmp_path)
    text = (bundle / "VERIFY.txt").read_text()
    assert "never from this bundle" in text and "GET /v1/keys" in text
    assert "--key-fingerprint" in text and "Run the published verifier" in text
    start = text.index("# --- begin fingerprint check ---")
    recipe = text[start : text.index("# --- end fingerprint check ---")]
    computed = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", recipe], cwd=bundle, capture_output=True, text=True
    )
    assert computed.returncode == 0, computed.stderr
    archive = station.archive()
    try:
        published = key_fingerprint(archive.key.public_key)
    finally:
        archive.close()
    assert computed.stdout.split()[0] == published.removeprefix("sha256:")
    assert published in text, "the claimed fingerprint is shown, to spot a mismatch"


def test_bundle_validates_with_bagit_and_its_signatures_with_openssl(station, tmp_path):
    bundle, items = make_bundle(station, tmp_path)
    validate = subprocess.run([BAGIT, "--validate", str(bundle)], capture_output=True, text=True)
    assert validate.returncode == 0, validate.stderr
    sums = subprocess.run(
        ["sha256sum", "--strict", "-c", "manifest-sha256.txt"], cwd=bundle, capture_output=True
    )
    assert sums.returncode == 0, sums.stdout

    for item in items:
        original = next((bundle / "data" / "originals" / item["evidence_id"]).iterdir())
        assert original.name.endswith(".MP4") and original.stat().st_size == item["size"]
        assert (bundle / "data" / "manifests" / f"{item['evidence_id']}.dsse.json").is_file()
        ledger = json.loads(
            (bundle / "data" / "ledger" / f"{item['evidence_id']}.json").read_text()
        )
        assert {"stored", "sealed"} <= {json.loads(x["leaf"])["kind"] for x in ledger["leaves"]}

    recipe = openssl_recipe(bundle)
    good = subprocess.run(["bash", "-e", "-c", recipe], cwd=bundle, capture_output=True, text=True)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [
            "bag-info.txt",
            "bagit.txt",
            "data",
            "manifest-sha256.txt",
            "tagmanifest-sha256.txt",
            "VERIFY.txt",
            "strongroom-verify.pyz",
        ]
    ), "the recipe works in a scratch folder, never in the bag"

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    manifest = tampered / "data" / "manifests" / f"{items[0]['evidence_id']}.dsse.json"
    envelope = json.loads(manifest.read_text())
    envelope["payload"] = envelope["payload"].replace("A", "B", 1)
    manifest.write_text(json.dumps(envelope))
    bad = subprocess.run(["bash", "-c", recipe], cwd=tampered, capture_output=True, text=True)
    assert bad.returncode != 0 and "Signature Verification Failure" in bad.stdout + bad.stderr
    invalid = subprocess.run([BAGIT, "--validate", str(tampered)], capture_output=True, text=True)
    assert invalid.returncode != 0


def test_export_is_a_custody_event_and_carries_the_signed_checkpoint(station, tmp_path):
    bundle, items = make_bundle(station, tmp_path)
    archive = station.archive()
    try:
        with archive.db.session() as s:
            events = s.scalars(select(CustodyEvent).where(CustodyEvent.kind == "exported")).all()
    finally:
        archive.close()
    assert sorted(e.evidence_id for e in events) == sorted(i["evidence_id"] for i in items)
    assert all(e.actor.startswith("os:") and e.details["bundle"] == "bundle" for e in events)
    note = (bundle / "data" / "ledger" / "checkpoint.txt").read_text()
    prove = json.loads(station.cli("ledger", "prove", items[0]["evidence_id"], "--json").stdout)
    assert prove["checkpoint"]["note"] == note
    info = (bundle / "bag-info.txt").read_text()
    assert "Payload-Oxum:" in info and items[0]["evidence_id"] in info


def test_export_of_a_case_with_playback_copies(station, tmp_path):
    items = ingest_files(station, tmp_path, 3, tag="case")
    linked = [items[0]["evidence_id"], items[2]["evidence_id"]]
    archive = station.archive()
    try:
        with archive.db.session() as s:
            for evidence_id in linked:
                s.add(
                    CaseLink(case_id="CASE-7", evidence_id=evidence_id, linked_by="t", reason="r")
                )
        copy = add_playback_copy(archive, linked[0], b"playback copy " * 2000)
    finally:
        archive.close()
    out = tmp_path / "case-bundle"
    document = json.loads(
        station.cli(
            "export", "--case", "CASE-7", "--with-playback", "-o", str(out), "--json"
        ).stdout
    )
    assert sorted(document["items"]) == sorted(linked)
    assert sorted(p.name for p in (out / "data" / "originals").iterdir()) == sorted(linked)
    assert (out / "data" / "derivatives" / linked[0] / f"{copy.sha256}.mp4").is_file()
    assert (out / "data" / "derivatives" / linked[0] / f"{copy.sha256}.dsse.json").is_file()
    key = tmp_path / "station.pem"  # the auditor's own copy of the key
    key.write_bytes(next((out / "data" / "keys").glob("*.pem")).read_bytes())
    checked = station.cli("verify-bundle", str(out), "--pubkey", str(key), "--json")
    report = json.loads(checked.stdout)
    assert report["ok"]
    assert {"derivative.signature", "derivative.sha256"} <= {c["check"] for c in report["checks"]}


def test_export_refuses_an_item_whose_catalog_disagrees_with_its_seal(station, tmp_path):
    (item,) = ingest_files(station, tmp_path, 1)
    archive = station.archive()
    try:
        with archive.db.session() as s:
            s.execute(
                update(Evidence)
                .where(Evidence.evidence_id == item["evidence_id"])
                .values(sha256="f" * 64)
            )
    finally:
        archive.close()
    result = station.cli("export", item["evidence_id"], "-o", str(tmp_path / "b"), check=False)
    assert result.returncode == 1
    assert item["evidence_id"] in result.stderr and "signed manifest" in result.stderr
