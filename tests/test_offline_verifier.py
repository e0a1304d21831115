"""The offline verifier runs where an auditor runs it: a Python with only
PyNaCl installed and nothing of Strongroom but the verifier's own files. It
passes an untouched bundle, reports each check in words, and lists every
tampering (exit 1), with the item and the failed check."""

from __future__ import annotations

import ast
import base64
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
from verify.export import VERIFIER_MODULES, VERIFIER_NAME

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

    result = run_verifier(bare_python, str(bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for evidence_id in (i["evidence_id"] for i in items):
        assert f"[original.sha256] data/originals/{evidence_id}/" in out
        assert f"[manifest.signature] data/manifests/{evidence_id}.dsse.json: Ed25519" in out
        assert f"[ledger.sealed] data/ledger/{evidence_id}.json: the ledger records" in out
    assert "[checkpoint.signature] data/ledger/checkpoint.txt: signed note by key" in out
    assert "inclusion proof leads to the checkpoint root" in out
    assert "SHA256 matches manifest-sha256.txt" in out
    assert "The bundle verifies" in out and "trusting the public key shipped" in out

    # the single-file copy in the bundle runs the same way, with a key given apart
    keyid = next((bundle / "data" / "keys").glob("*.json")).stem
    pem = bundle / "data" / "keys" / f"{keyid}.pem"
    pyz = subprocess.run(
        [str(python), str(bundle / VERIFIER_NAME), str(bundle), "--pubkey", str(pem), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert pyz.returncode == 0 and json.loads(pyz.stdout)["ok"], pyz.stdout + pyz.stderr

    published = station.s3.get_object(Bucket=station.bucket, Key=f"keys/{keyid}.pub")
    key_file = tmp_path / "station.pub"
    key_file.write_bytes(published["Body"].read())
    assert run_verifier(bare_python, str(bundle), "--pubkey", str(key_file)).returncode == 0
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

    result = run_verifier(bare_python, str(bundle), "--json")
    assert result.returncode == 1
    failures = {(c["check"], c["subject"]) for c in json.loads(result.stdout)["failures"]}
    subjects = {c: [s for k, s in failures if k == c] for c, _ in failures}
    assert any(first in s for s in subjects["original.sha256"]), failures
    assert any(first in s for s in subjects["bag.payload"]), failures
    assert ("manifest.signature", f"data/manifests/{second}.dsse.json") in failures
    assert any(third in s for s in subjects["ledger.leaf_hash"]), failures
    assert any(third in s for s in subjects["ledger.inclusion"]), failures
    text = run_verifier(bare_python, str(bundle))
    assert "FAILURES:" in text.stdout and "does NOT verify" in text.stdout

    # 4. a rewritten checkpoint: nothing can be proved against it
    checkpoint = data / "ledger" / "checkpoint.txt"
    lines = checkpoint.read_text().split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    checkpoint.write_text("\n".join(lines))
    result = run_verifier(bare_python, str(bundle), "--json")
    failures = {c["check"] for c in json.loads(result.stdout)["failures"]}
    assert result.returncode == 1
    assert {"checkpoint.signature", "ledger.inclusion", "original.sha256"} <= failures
