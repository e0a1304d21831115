"""The offline bundle verifier: ``strongroom verify-bundle DIR [--pubkey FILE] [--json]``.

An auditor runs this on their own machine with nothing but Python 3 and
PyNaCl, so it imports only the standard library, PyNaCl and Strongroom's pure
modules (canonical JSON, DSSE, Merkle math, signed notes), which import
nothing else. It trusts nothing in the bundle but the bytes and a public key
(``--pubkey``, or else the key shipped in the bundle, which it says it did):

* every payload and tag file against the BagIt manifests, and nothing extra;
* every manifest's Ed25519 signature (DSSE), and each original's (and playback
  copy's) SHA-256 and size against the manifest that signs it;
* the checkpoint's signature (C2SP signed note) and form;
* every ledger leaf's hash and inclusion proof against the checkpoint root, and
  that the ledger records the sealing of each original's hash.

Each check is reported in words; the exit status is 1 if any failed (all
failures are listed), 2 if the bundle cannot be read at all.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archive.dsse import EnvelopeError, key_id, verify_envelope
from archive.merkle import ProofError, leaf_hash, verify_inclusion
from archive.note import Checkpoint, NoteError, open_checkpoint, parse_vkey
from archive.payloads import derivative_sha256

_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_SIG_PREFIX = "\u2014 "


@dataclass(frozen=True)
class Check:
    """One thing checked, about one subject, in words."""

    check: str
    subject: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, check: str, subject: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(check, subject, ok, detail))
        return ok

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "failures": [asdict(c) for c in self.failures],
            "notes": self.notes,
        }


class KeyFileError(ValueError):
    """A --pubkey file we cannot read as an Ed25519 public key."""


# --- keys ------------------------------------------------------------------------


def read_public_key(data: bytes) -> bytes:
    """A raw 32-byte Ed25519 key from: 64 hex digits, a vkey, a PEM/DER
    SubjectPublicKeyInfo, or a JSON document with ``public_key`` (hex)."""
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["public_key"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError("JSON key file has no public_key") from exc
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    if "+" in text and "\n" not in text:
        try:
            return parse_vkey(text)[1]
        except NoteError as exc:
            raise KeyFileError(str(exc)) from exc
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        data = base64.b64decode(body)
    if len(data) == 44 and data.startswith(_SPKI_PREFIX):
        return data[len(_SPKI_PREFIX) :]
    raise KeyFileError("not an Ed25519 public key (hex, vkey, PEM, DER or JSON)")


def _bundle_keys(data: Path, report: Report) -> list[bytes]:
    keys = []
    for path in sorted((data / "keys").glob("*.json")):
        try:
            keys.append(read_public_key(path.read_bytes()))
        except KeyFileError as exc:
            report.add("key.read", _rel(path, data.parent), False, f"unreadable key: {exc}")
    return keys


# --- BagIt -------------------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_manifest(path: Path) -> list[tuple[str, str]]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, _, name = line.strip().partition(" ")
            entries.append((digest.lower(), name.strip().lstrip("*")))
    return entries


def _file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def check_bag(root: Path, report: Report) -> dict[str, str]:
    """BagIt: declaration, every manifest entry, completeness, Payload-Oxum.

    Returns ``{data/… path: sha256}`` as checked, for the later checks.
    """
    declaration = root / "bagit.txt"
    report.add(
        "bag.declaration",
        "bagit.txt",
        declaration.is_file() and "BagIt-Version:" in declaration.read_text("utf-8", "replace"),
        "the folder declares itself a BagIt bag",
    )
    manifests = sorted(root.glob("manifest-*.txt"))
    if not manifests:
        report.add("bag.manifest", "manifest-*.txt", False, "the bag has no payload manifest")
    sha256_of: dict[str, str] = {}
    listed: set[str] = set()
    for manifest in manifests:
        algorithm = manifest.stem.split("-", 1)[1]
        if algorithm not in hashlib.algorithms_available:
            report.notes.append(f"{manifest.name}: algorithm {algorithm} not available, skipped")
            continue
        for digest, name in _read_manifest(manifest):
            listed.add(name)
            path = root / name
            if ".." in Path(name).parts or not name.startswith("data/"):
                report.add(
                    "bag.payload", name, False, f"{manifest.name} lists a path outside data/"
                )
                continue
            if not path.is_file():
                report.add("bag.payload", name, False, f"listed in {manifest.name} but missing")
                continue
            actual = _file_hash(path, algorithm)
            if algorithm == "sha256":
                sha256_of[name] = actual
            report.add(
                "bag.payload",
                name,
                actual == digest,
                f"{algorithm.upper()} matches {manifest.name}"
                if actual == digest
                else f"{algorithm.upper()} is {actual}, {manifest.name} says {digest}",
            )
    on_disk = {
        _rel(Path(folder) / name, root)
        for folder, _dirs, names in os.walk(root / "data")
        for name in names
    }
    for name in sorted(on_disk - listed):
        report.add("bag.payload", name, False, "is in data/ but in no payload manifest")
    oxum = _bag_info(root).get("Payload-Oxum")
    if oxum:
        total = sum((root / name).stat().st_size for name in on_disk)
        report.add(
            "bag.oxum",
            "bag-info.txt",
            oxum == f"{total}.{len(on_disk)}",
            f"Payload-Oxum {oxum}, the payload holds {total} bytes in {len(on_disk)} files",
        )
    for tagmanifest in sorted(root.glob("tagmanifest-*.txt")):
        algorithm = tagmanifest.stem.split("-", 1)[1]
        if algorithm not in hashlib.algorithms_available:
            continue
        for digest, name in _read_manifest(tagmanifest):
            path = root / name
            good = path.is_file() and _file_hash(path, algorithm) == digest
            report.add(
                "bag.tag",
                name,
                good,
                f"{algorithm.upper()} matches {tagmanifest.name}"
                if good
                else f"does not match {tagmanifest.name} (changed or missing)",
            )
    return sha256_of


def _bag_info(root: Path) -> dict[str, str]:
    info: dict[str, str] = {}
    path = root / "bag-info.txt"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
    return info


# --- signatures, hashes, proofs -------------------------------------------------------


def _hash_file(path: Path, known: dict[str, str], root: Path) -> tuple[str, int]:
    name = _rel(path, root)
    digest = known.get(name) or _file_hash(path, "sha256")
    return digest, path.stat().st_size


def check_items(
    root: Path, keys: list[bytes], report: Report, known: dict[str, str]
) -> dict[str, str]:
    """Manifests and the files they sign; returns ``{evidence id: signed sha256}``."""
    data = root / "data"
    trusted = {key_id(k): k for k in keys}
    signed: dict[str, str] = {}
    for manifest in sorted((data / "manifests").glob("*.dsse.json")):
        evidence_id = manifest.name[: -len(".dsse.json")]
        subject = _rel(manifest, root)
        try:
            verified = verify_envelope(manifest.read_bytes(), trusted)
        except EnvelopeError as exc:
            report.add("manifest.signature", subject, False, f"signature does not verify: {exc}")
            continue
        report.add(
            "manifest.signature",
            subject,
            True,
            f"Ed25519 signature by key {verified.keyid} verifies over the DSSE PAE bytes",
        )
        payload = verified.payload
        original = payload.get("original") or {}
        report.add(
            "manifest.content",
            subject,
            payload.get("evidence_id") == evidence_id,
            f"the signed manifest names evidence id {payload.get('evidence_id')}",
        )
        sha, size = original.get("sha256"), original.get("size")
        signed[evidence_id] = sha
        files = sorted(p for p in (data / "originals" / evidence_id).glob("*") if p.is_file())
        if len(files) != 1:
            report.add(
                "original.present",
                f"data/originals/{evidence_id}/",
                False,
                f"expected one original, found {len(files)}",
            )
            continue
        digest, actual_size = _hash_file(files[0], known, root)
        report.add(
            "original.sha256",
            _rel(files[0], root),
            digest == sha and actual_size == size,
            f"SHA-256 {digest} and size {actual_size} equal the signed manifest's"
            if digest == sha and actual_size == size
            else f"SHA-256 {digest} ({actual_size} bytes), the manifest signs {sha} ({size} bytes)",
        )
    for d_manifest in sorted((data / "derivatives").glob("*/*.dsse.json")):
        subject = _rel(d_manifest, root)
        sha = d_manifest.name[: -len(".dsse.json")]
        try:
            verified = verify_envelope(d_manifest.read_bytes(), trusted)
        except EnvelopeError as exc:
            report.add("derivative.signature", subject, False, f"signature does not verify: {exc}")
            continue
        report.add("derivative.signature", subject, True, "the playback copy's manifest verifies")
        copies = [p for p in d_manifest.parent.glob(f"{sha}.*") if p != d_manifest]
        for copy in copies:
            digest, _ = _hash_file(copy, known, root)
            good = digest == sha and derivative_sha256(verified.payload) == sha
            report.add(
                "derivative.sha256",
                _rel(copy, root),
                good,
                "SHA-256 equals the one its signed manifest names"
                if good
                else f"SHA-256 {digest} is not the one its signed manifest names",
            )
        if not copies:
            report.add("derivative.present", subject, False, "the playback copy is missing")
    return signed


def _signature_names(note: str) -> list[str]:
    block = note[note.rfind("\n\n") + 2 :] if "\n\n" in note else ""
    names = []
    for line in block.splitlines():
        if line.startswith(_SIG_PREFIX):
            names.append(line[len(_SIG_PREFIX) :].split(" ", 1)[0])
    return names


def check_checkpoint(root: Path, keys: list[bytes], report: Report) -> Checkpoint | None:
    path = root / "data" / "ledger" / "checkpoint.txt"
    subject = _rel(path, root)
    if not path.is_file():
        report.add("checkpoint.present", subject, False, "the bundle has no ledger checkpoint")
        return None
    note = path.read_bytes()
    text = note.decode("utf-8", "replace")
    last_error = "no signature line"
    for key in keys:
        for name in _signature_names(text):
            try:
                cp, _ = open_checkpoint(note, {name: key})
            except NoteError as exc:
                last_error = str(exc)
                continue
            report.add(
                "checkpoint.signature",
                subject,
                True,
                f"signed note by key {name!r} verifies: log {cp.origin!r}, {cp.size} leaves, "
                f"root {cp.root_hash.hex()}",
            )
            return cp
    report.add("checkpoint.signature", subject, False, f"does not verify: {last_error}")
    return None


def check_ledger(
    root: Path, checkpoint: Checkpoint | None, signed: dict[str, str], report: Report
) -> None:
    data = root / "data"
    proofs = {p.name[: -len(".json")]: p for p in (data / "ledger").glob("*.json")}
    for evidence_id in sorted(set(signed) - set(proofs)):
        report.add(
            "ledger.present", evidence_id, False, "the bundle has no ledger proofs for this item"
        )
    for evidence_id, path in sorted(proofs.items()):
        subject = _rel(path, root)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            leaves = list(document["leaves"])
        except (ValueError, KeyError, TypeError) as exc:
            report.add("ledger.format", subject, False, f"unreadable: {exc}")
            continue
        if checkpoint is not None:
            claimed = document.get("checkpoint") or {}
            same = (
                claimed.get("size") == checkpoint.size
                and claimed.get("root_hash") == checkpoint.root_hash.hex()
            )
            report.add(
                "ledger.checkpoint",
                subject,
                same,
                "names the bundle's checkpoint"
                if same
                else "names another checkpoint than data/ledger/checkpoint.txt",
            )
        sealed = False
        for entry in leaves:
            sealed |= _check_leaf(evidence_id, subject, entry, checkpoint, signed, report)
        if evidence_id in signed:
            report.add(
                "ledger.sealed",
                subject,
                sealed,
                f"the ledger records the sealing of SHA-256 {signed[evidence_id]}"
                if sealed
                else "no proven ledger leaf records the sealing of this original's SHA-256",
            )


def _check_leaf(
    evidence_id: str,
    subject: str,
    entry: dict[str, Any],
    checkpoint: Checkpoint | None,
    signed: dict[str, str],
    report: Report,
) -> bool:
    """One leaf: its hash, its item, its inclusion proof. Returns True if it is
    a proven ``sealed`` leaf naming the signed hash."""
    try:
        index = int(entry["index"])
        leaf = str(entry["leaf"]).encode("utf-8")
        proof = [bytes.fromhex(h) for h in entry["inclusion_proof"]]
        claimed = bytes.fromhex(entry["leaf_hash"])
        event = json.loads(leaf)
    except (KeyError, TypeError, ValueError) as exc:
        report.add("ledger.format", subject, False, f"malformed leaf entry: {exc}")
        return False
    where = f"{subject} leaf {index} ({event.get('kind')})"
    computed = leaf_hash(leaf)
    ok = report.add(
        "ledger.leaf_hash",
        where,
        computed == claimed,
        "leaf hash is SHA-256(0x00 || leaf)" if computed == claimed else "leaf hash is wrong",
    )
    ok &= report.add(
        "ledger.leaf_item",
        where,
        event.get("evidence_id") == evidence_id,
        f"the leaf is about {event.get('evidence_id')}",
    )
    if checkpoint is None:
        report.add("ledger.inclusion", where, False, "no verified checkpoint to prove against")
        return False
    try:
        verify_inclusion(computed, index, checkpoint.size, proof, checkpoint.root_hash)
        report.add(
            "ledger.inclusion",
            where,
            True,
            f"inclusion proof leads to the checkpoint root (tree of {checkpoint.size})",
        )
    except ProofError as exc:
        report.add("ledger.inclusion", where, False, f"inclusion proof fails: {exc}")
        return False
    details = event.get("details") or {}
    return ok and event.get("kind") == "sealed" and details.get("sha256") == signed.get(evidence_id)


# --- entry point ------------------------------------------------------------------------


def verify_bundle(root: Path, pubkey: bytes | list[bytes] | None = None) -> Report:
    """Run every check on the bundle in ``root``. ``pubkey``: the trusted key,
    or several (a station that rotated its key: each item verifies with its own)."""
    report = Report()
    known = check_bag(root, report)
    data = root / "data"
    bundled = _bundle_keys(data, report)
    given = [pubkey] if isinstance(pubkey, bytes) else pubkey
    if given:
        keys = list(given)
        if bundled and any(k not in keys for k in bundled):
            report.notes.append("a key shipped in the bundle is not one of the --pubkey keys")
    else:
        keys = bundled
        report.notes.append(
            "trusting the public key shipped in the bundle (data/keys/); pass --pubkey with "
            "a key obtained separately to rule out a re-signed bundle"
        )
    if not keys:
        report.add("key.present", "data/keys/", False, "no public key to check signatures with")
    signed = check_items(root, keys, report, known)
    if not signed:
        report.add("manifest.present", "data/manifests/", False, "the bundle holds no manifests")
    checkpoint = check_checkpoint(root, keys, report)
    check_ledger(root, checkpoint, signed, report)
    return report


def _print_report(report: Report, out: Any) -> None:
    for check in report.checks:
        mark = "PASS" if check.ok else "FAIL"
        out.write(f"{mark}  [{check.check}] {check.subject}: {check.detail}\n")
    for note in report.notes:
        out.write(f"NOTE  {note}\n")
    failures = report.failures
    out.write(f"\n{len(report.checks)} checks, {len(failures)} failed.\n")
    if failures:
        out.write("FAILURES:\n")
        for check in failures:
            out.write(f"  [{check.check}] {check.subject}: {check.detail}\n")
        out.write("The bundle does NOT verify.\n")
    else:
        out.write("The bundle verifies: every hash, signature and proof checked out.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strongroom verify-bundle",
        description="Check a Strongroom export bundle offline (needs only Python and PyNaCl).",
    )
    parser.add_argument("bundle", type=Path, help="the bundle folder")
    parser.add_argument(
        "--pubkey",
        type=Path,
        action="append",
        help="the station's public key (hex, vkey, PEM, DER or JSON); repeat for the "
        "keys of a station that rotated its key",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--config", "-c", help="accepted like every strongroom command; the verifier reads none"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.bundle.is_dir():
        sys.stderr.write(f"{args.bundle}: not a folder\n")
        return 2
    pubkeys = []
    for path in args.pubkey or []:
        try:
            pubkeys.append(read_public_key(path.read_bytes()))
        except (OSError, KeyFileError) as exc:
            sys.stderr.write(f"--pubkey {path}: {exc}\n")
            return 2
    report = verify_bundle(args.bundle, pubkeys or None)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        _print_report(report, sys.stdout)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
