"""The offline verifier runs where an auditor runs it: a Python with only
PyNaCl installed and nothing of Strongroom but the verifier's own files. It
passes an untouched bundle, reports each check in words, and lists every
tampering (exit 1), with the item and the failed check."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive.dsse import envelope_bytes, sign_envelope
from tests.test_export_bundle import make_bundle
from tests.test_offline_verifier_fuzz import forge, rebag, run_main
from verify.export import VERIFIER_MODULES, VERIFIER_NAME
from verify.offline import read_public_key

REPO = Path(__file__).resolve().parent.parent
ALLOWED = {"nacl", "archive", "verify", "__future__"}


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a venv with only PyNaCl, a folder holding only the verifier's files)."""
    root = tmp_path_factory.mktemp("bare")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "pynacl"],
        check=True,
        timeout=300,
    )
    src = root / "src"
    for module in VERIFIER_MODULES:
        (src / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / module, src / module)
    return python, src


def run_verifier(bare_python, *args: str) -> subprocess.CompletedProcess:
    python, src = bare_python
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(src)
    return subprocess.run(
        [str(python), "-m", "verify.offline", *args],
        cwd=src.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_verifier_modules_import_only_stdlib_pynacl_and_each_other():
    for module in VERIFIER_MODULES:
        tree = ast.parse((REPO / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED, (module, name)
                if top in ("archive", "verify"):
                    assert f"{name.replace('.', '/')}.py" in VERIFIER_MODULES, (module, name)


def test_untouched_bundle_verifies_with_only_pynacl_installed(station, tmp_path, bare_python):
    bundle, items = make_bundle(station, tmp_path)
    python, src = bare_python
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    for forbidden in ("boto3", "sqlalchemy", "typer", "bagit", "ingest", "archive.store"):
        probe = subprocess.run(
            [str(python), "-c", f"import {forbidden}"],
            capture_output=True,
            cwd=src.parent,
            env={**env, "PYTHONPATH": str(src)},
        )
        assert probe.returncode != 0, f"{forbidden} must not be importable in the bare venv"

    keyid = next((bundle / "data" / "keys").glob("*.json")).stem
    published = station.s3.get_object(Bucket=station.bucket, Key=f"keys/{keyid}.pub")
    key_file = tmp_path / "station.pub"  # obtained apart from the bundle
    key_file.write_bytes(published["Body"].read())
    fp = "sha256:" + hashlib.sha256(read_public_key(key_file.read_bytes())).hexdigest()

    result = run_verifier(bare_python, str(bundle), "--key-fingerprint", fp)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for evidence_id in (i["evidence_id"] for i in items):
        assert f"[original.sha256] data/originals/{evidence_id}/" in out
        assert f"[manifest.signature] data/manifests/{evidence_id}.dsse.json: Ed25519" in out
        assert f"[ledger.sealed] data/ledger/{evidence_id}.json: the ledger records" in out
    assert "[checkpoint.signature] data/ledger/checkpoint.txt: signed note by key" in out
    assert "inclusion proof leads to the checkpoint root" in out
    assert "SHA256 matches manifest-sha256.txt" in out
    assert "The bundle verifies" in out and "[key.verified] --pubkey/--key-fingerprint" in out

    # the single-file copy runs the same way (copied out: the auditor's own copy)
    pem = bundle / "data" / "keys" / f"{keyid}.pem"
    pyz_copy = tmp_path / VERIFIER_NAME
    shutil.copy(bundle / VERIFIER_NAME, pyz_copy)
    pyz = subprocess.run(
        [str(python), str(pyz_copy), str(bundle), "--pubkey", str(key_file), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert pyz.returncode == 0 and json.loads(pyz.stdout)["ok"], pyz.stdout + pyz.stderr
    assert json.loads(pyz.stdout)["key_verified"] is True
    both = run_verifier(bare_python, str(bundle), "--pubkey", str(key_file), "--pubkey", str(pem))
    assert both.returncode == 0, both.stdout
    other = tmp_path / "other.hex"
    other.write_text(bytes(SigningKey.generate().verify_key).hex())
    wrong = run_verifier(bare_python, str(bundle), "--pubkey", str(other), "--json")
    assert wrong.returncode == 1
    failed = {c["check"] for c in json.loads(wrong.stdout)["failures"]}
    assert {"manifest.signature", "checkpoint.signature"} <= failed


def test_every_tampering_is_listed_with_its_item_and_check(station, tmp_path, bare_python):
    bundle, items = make_bundle(station, tmp_path, 3)
    first, second, third = (i["evidence_id"] for i in items)
    data = bundle / "data"

    # 1. the original's bytes changed (same size)
    original = next((data / "originals" / first).iterdir())
    raw = bytearray(original.read_bytes())
    raw[100] ^= 0xFF
    original.write_bytes(bytes(raw))
    # 2. a manifest replaced by one signed with another key
    manifest = data / "manifests" / f"{second}.dsse.json"
    envelope = json.loads(manifest.read_text())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    forged = sign_envelope(payload, envelope["payloadType"], SigningKey.generate())
    manifest.write_bytes(envelope_bytes(forged))
    # 3. a ledger leaf altered
    proofs = data / "ledger" / f"{third}.json"
    document = json.loads(proofs.read_text())
    document["leaves"][0]["leaf"] = document["leaves"][0]["leaf"].replace("dock-01", "dock-99")
    proofs.write_text(json.dumps(document))

    key = bundle / "data" / "keys" / next((data / "keys").glob("*.pem")).name
    trusted = tmp_path / "trusted.pem"
    shutil.copy(key, trusted)
    result = run_verifier(bare_python, str(bundle), "--json", "--pubkey", str(trusted))
    assert result.returncode == 1
    failures = {(c["check"], c["subject"]) for c in json.loads(result.stdout)["failures"]}
    subjects = {c: [s for k, s in failures if k == c] for c, _ in failures}
    assert any(first in s for s in subjects["original.sha256"]), failures
    assert any(first in s for s in subjects["bag.payload"]), failures
    assert ("manifest.signature", f"data/manifests/{second}.dsse.json") in failures
    assert any(third in s for s in subjects["ledger.leaf_hash"]), failures
    assert any(third in s for s in subjects["ledger.inclusion"]), failures
    text = run_verifier(bare_python, str(bundle), "--pubkey", str(trusted))
    assert "FAILURES:" in text.stdout and "does NOT verify" in text.stdout

    # 4. a rewritten checkpoint: nothing can be proved against it
    checkpoint = data / "ledger" / "checkpoint.txt"
    lines = checkpoint.read_text().split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    checkpoint.write_text("\n".join(lines))
    result = run_verifier(bare_python, str(bundle), "--json", "--pubkey", str(trusted))
    failures = {c["check"] for c in json.loads(result.stdout)["failures"]}
    assert result.returncode == 1
    assert {"checkpoint.signature", "ledger.inclusion", "original.sha256"} <= failures


def test_a_bundle_forged_with_its_own_key_verifies_only_with_the_auditors_key(
    station, tmp_path, bare_python
):
    """Issue 11: without --pubkey a bundle re-signed with a random key said
    "verifies", exit 0. Now a key that came with the bundle is never enough."""
    bundle, _ = make_bundle(station, tmp_path)
    real = read_public_key(next((bundle / "data" / "keys").glob("*.pem")).read_bytes())
    real_fp = "sha256:" + hashlib.sha256(real).hexdigest()

    honest = run_verifier(bare_python, str(bundle))
    assert honest.returncode == 1, honest.stdout
    assert "UNVERIFIED" in honest.stdout and real_fp in honest.stdout
    assert "GET /v1/keys" in honest.stdout and "does NOT verify" in honest.stdout
    assert run_verifier(bare_python, str(bundle), "--key-fingerprint", real_fp).returncode == 0
    spaced = ":".join(real_fp[7:][i : i + 2] for i in range(0, 64, 2)).upper()
    assert run_verifier(bare_python, str(bundle), "--key-fingerprint", spaced).returncode == 0

    attacker = SigningKey.generate()
    forge(bundle, attacker)
    forged_fp = "sha256:" + hashlib.sha256(bytes(attacker.verify_key)).hexdigest()
    alone = run_verifier(bare_python, str(bundle), "--json")
    assert alone.returncode == 1
    report = json.loads(alone.stdout)
    assert not report["ok"] and not report["key_verified"]
    [unverified] = [c for c in report["failures"] if c["check"] == "key.verified"]
    assert forged_fp in unverified["detail"], "the fingerprint to compare is printed"
    # everything else checks out with the bundle's own key: only the key is wrong
    assert {c["check"] for c in report["failures"]} == {"key.verified"}

    by_fp = run_verifier(bare_python, str(bundle), "--key-fingerprint", real_fp, "--json")
    assert by_fp.returncode == 1
    failed = {c["check"] for c in json.loads(by_fp.stdout)["failures"]}
    assert {"key.fingerprint", "manifest.signature", "checkpoint.signature"} <= failed
    key_file = tmp_path / "real.hex"
    key_file.write_text(real.hex())
    by_key = run_verifier(bare_python, str(bundle), "--pubkey", str(key_file), "--json")
    assert by_key.returncode == 1
    assert "manifest.signature" in {c["check"] for c in json.loads(by_key.stdout)["failures"]}

    bad = run_verifier(bare_python, str(bundle), "--key-fingerprint", "abc123")
    assert bad.returncode == 2 and "not a key fingerprint" in bad.stderr
    via_cli = station.cli("verify-bundle", str(bundle), check=False)
    assert via_cli.returncode == 1 and forged_fp in via_cli.stdout
    assert "Traceback" not in via_cli.stderr


def test_paths_in_tag_manifests_and_symlinked_payload_never_lead_outside(station, tmp_path):
    """Issue 11: tag-manifest paths were not checked and symlinked payload
    folders and files were followed (it printed /etc/passwd's SHA-256)."""
    bundle, items = make_bundle(station, tmp_path)
    key = tmp_path / "station.pem"
    key.write_bytes(next((bundle / "data" / "keys").glob("*.pem")).read_bytes())
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    first, second = (i["evidence_id"] for i in items)

    original = next((bundle / "data" / "originals" / first).iterdir())
    original.unlink()
    original.symlink_to("/etc/passwd")
    folder = bundle / "data" / "originals" / second
    shutil.rmtree(folder)
    folder.symlink_to("/etc")
    rebag(bundle, {"/etc/passwd": passwd})
    with (bundle / "tagmanifest-sha256.txt").open("a") as handle:
        handle.write(f"{passwd}  ../../../../../../etc/passwd\n{passwd}  /etc/passwd\n")

    code, out, err = run_main(str(bundle), "--pubkey", str(key), "--json")
    assert code == 1 and not err
    report = json.loads(out)
    details = {(c["check"], c["subject"]): c["detail"] for c in report["failures"]}
    assert any("'..'" in d for (k, _), d in details.items() if k == "bag.tag")
    assert any("absolute path" in d for (k, _), d in details.items() if k == "bag.tag")
    assert "symbolic link" in details[("bag.entry", f"data/originals/{second}")]
    assert "symbolic link" in details[("bag.entry", original.relative_to(bundle).as_posix())]
    assert passwd not in out.replace(f"says {passwd}", "").replace(f"{passwd}  ", "")
    assert not any(c["ok"] and "etc" in c["subject"] for c in report["checks"]), (
        "nothing outside the bag is ever reported as checked"
    )
