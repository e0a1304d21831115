"""The offline bundle verifier:
``strongroom verify-bundle DIR [--pubkey FILE]… [--key-fingerprint FP] [--json]``.

An auditor runs this on their own machine with nothing but Python 3 and
PyNaCl, so it imports only the standard library, PyNaCl and Strongroom's pure
modules (canonical JSON, DSSE, Merkle math, signed notes, the hostile-bag
reader), which import nothing else.

It trusts only what the auditor brings: the public key (``--pubkey``) or its
fingerprint (``--key-fingerprint``, compared with the keys in the bundle),
obtained from the archive's published place – never the bundle alone. Without
either it still runs every check, but fails and prints the fingerprint of the
key the bundle brought, to compare with the published one. Then it checks:

* the bag (RFC 8493) through :mod:`verify.bagread`: every path in every
  manifest and tag manifest stays inside the bag, nothing is followed through a
  symbolic link, nothing extra, no duplicate entries, the declared
  Payload-Oxum, each payload and tag file's checksum; no file is read beyond
  the size its signed manifest declares;
* every manifest's Ed25519 signature (DSSE), and each original's (and playback
  copy's) SHA-256 and size against the manifest that signs it;
* the checkpoint's signature (C2SP signed note) and form;
* every ledger leaf's hash and inclusion proof against the checkpoint root, and
  that the ledger records the sealing of each original's hash.

Each check is reported in words; the exit status is 1 if any failed (all
failures are listed) – also for a bundle that cannot be read at all – and 2
for bad arguments (an unreadable key file, a malformed fingerprint).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archive.dsse import EnvelopeError, VerifiedPayload, key_fingerprint, key_id, verify_envelope
from archive.merkle import ProofError, leaf_hash, verify_inclusion
from archive.note import Checkpoint, NoteError, open_checkpoint, parse_vkey
from archive.payloads import derivative_sha256
from verify.bagread import MAX_DOCUMENT, Bag, BagPathError, parse_manifest_line

_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_SIG_PREFIX = "\u2014 "
#: failures of one kind kept in full; the rest are counted (a 100,000-line
#: hostile manifest must not become 100,000 report entries in memory)
MAX_FAILURES_PER_CHECK = 100
_MANIFEST = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")
_DIGEST_LENGTH = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
#: a signed manifest is a few KiB; a larger one is not read
_MAX_ENVELOPE = 1024 * 1024
_FINGERPRINT = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


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
    suppressed: dict[str, int] = field(default_factory=dict)
    key_verified: bool = False
    _failed: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, check: str, subject: str, ok: bool, detail: str) -> bool:
        if not ok:
            self._failed[check] = self._failed.get(check, 0) + 1
            if self._failed[check] > MAX_FAILURES_PER_CHECK:
                self.suppressed[check] = self.suppressed.get(check, 0) + 1
                return ok
        self.checks.append(Check(check, subject, ok, detail))
        return ok

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.failures and not self.suppressed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "key_verified": self.key_verified,
            "checks": [asdict(c) for c in self.checks],
            "failures": [asdict(c) for c in self.failures],
            "more_failures": self.suppressed,
            "notes": self.notes,
        }


class KeyFileError(ValueError):
    """A --pubkey file we cannot read as an Ed25519 public key."""


# --- keys ------------------------------------------------------------------------


def fingerprint(raw: bytes) -> str:
    """The key fingerprint the archive publishes (``xxd -r -p <<< HEX | sha256sum``)."""
    return key_fingerprint(raw)


def parse_fingerprint(text: str) -> str:
    """A fingerprint as given (any case, ``:``/spaces allowed) in canonical form."""
    cleaned = re.sub(r"[\s:]", "", text.strip().lower())
    cleaned = cleaned[len("sha256") :] if cleaned.startswith("sha256") else cleaned
    match = _FINGERPRINT.match(cleaned)
    if not match:
        raise KeyFileError(
            f"{text!r} is not a key fingerprint (sha256: and 64 hex digits, as GET /v1/keys "
            "publishes it)"
        )
    return "sha256:" + match.group(1)


def read_public_key(data: bytes) -> bytes:
    """A raw 32-byte Ed25519 key from: 64 hex digits, a vkey, a PEM/DER
    SubjectPublicKeyInfo, or a JSON document with ``public_key`` (hex)."""
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
            text = str(document.get("public_key") or document["public_key_hex"]).strip()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyFileError("JSON key file has no public_key") from exc
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    if "+" in text and "\n" not in text:
        try:
            return parse_vkey(text)[1]
        except (NoteError, ValueError) as exc:
            raise KeyFileError(str(exc)) from exc
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        try:
            data = base64.b64decode(body)
        except ValueError as exc:
            raise KeyFileError("PEM body is not base64") from exc
    if len(data) == 44 and data.startswith(_SPKI_PREFIX):
        return data[len(_SPKI_PREFIX) :]
    raise KeyFileError("not an Ed25519 public key (hex, vkey, PEM, DER or JSON)")


def _bundle_keys(bag: Bag, files: dict[str, int], report: Report) -> list[bytes]:
    keys = []
    for name in sorted(files):
        if name.startswith("data/keys/") and name.count("/") == 2 and name.endswith(".json"):
            try:
                keys.append(read_public_key(bag.read(name, 64 * 1024)))
            except (KeyFileError, BagPathError) as exc:
                report.add("key.read", name, False, f"unreadable key: {exc}")
    return list(dict.fromkeys(keys))


def _trusted_keys(
    bundled: list[bytes],
    pubkeys: list[bytes],
    fingerprints: list[str],
    report: Report,
) -> list[bytes]:
    """The keys signatures are checked with: the auditor's, never the bundle's alone."""
    if pubkeys or fingerprints:
        trusted = list(pubkeys)
        for wanted in fingerprints:
            match = [k for k in bundled if fingerprint(k) == wanted]
            report.add(
                "key.fingerprint",
                "data/keys/",
                bool(match),
                f"the bundle's key has the fingerprint you gave ({wanted})"
                if match
                else f"no key in the bundle has the fingerprint you gave ({wanted}): "
                "nothing in it can be trusted",
            )
            trusted += match
        if pubkeys and bundled and not set(bundled) & set(pubkeys):
            report.notes.append("the key shipped in the bundle is not a --pubkey key")
        report.key_verified = bool(trusted)
        if trusted:
            report.add(
                "key.verified",
                "--pubkey/--key-fingerprint",
                True,
                "signatures are checked only with the key(s) you brought: "
                + ", ".join(fingerprint(k) for k in dict.fromkeys(trusted)),
            )
        return list(dict.fromkeys(trusted))
    shown = ", ".join(fingerprint(k) for k in bundled) or "none"
    report.add(
        "key.verified",
        "data/keys/",
        False,
        "the key is UNVERIFIED: it came with the bundle, and a forged bundle brings its "
        f"own. Its fingerprint: {shown}. Compare it with the fingerprint the archive "
        "publishes (GET /v1/keys, the archive's README or public page) and run again "
        "with --key-fingerprint FP or --pubkey FILE",
    )
    return bundled


def _open_envelope(bag: Bag, name: str, trusted: dict[str, bytes]) -> VerifiedPayload:
    """A verified DSSE envelope; every way a hostile one can fail is an EnvelopeError."""
    try:
        verified = verify_envelope(bag.read(name, _MAX_ENVELOPE), trusted)
    except BagPathError as exc:
        raise EnvelopeError(f"cannot be read: {exc}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise EnvelopeError(f"envelope is malformed: {exc!r}") from None
    if not isinstance(verified.payload, dict):
        raise EnvelopeError("the signed payload is not a JSON object")
    return verified


# --- the bag -----------------------------------------------------------------------


@dataclass
class Inventory:
    """What is in the bag, found without following anything."""

    payload: dict[str, int] = field(default_factory=dict)  # data/… → size
    tags: dict[str, int] = field(default_factory=dict)  # everything else → size

    @property
    def files(self) -> dict[str, int]:
        return {**self.tags, **self.payload}


def take_inventory(bag: Bag, report: Report) -> Inventory:
    inventory = Inventory()
    for entry in bag.walk():
        if entry.refused:
            report.add("bag.entry", entry.name, False, entry.refused)
        elif entry.name.startswith("data/"):
            inventory.payload[entry.name] = entry.size
        else:
            inventory.tags[entry.name] = entry.size
    return inventory


def _manifest_entries(
    bag: Bag, manifest: str, algorithm: str, report: Report, check: str
) -> dict[str, str]:
    """``{path: digest}`` of one manifest; bad lines and duplicates are failures."""
    entries: dict[str, str] = {}
    length = _DIGEST_LENGTH[algorithm]
    try:
        for number, line in bag.lines(manifest):
            if not line.strip():
                continue
            try:
                digest, name = parse_manifest_line(line, length)
            except BagPathError as exc:
                shown = line[:200].decode("utf-8", "replace")
                report.add(check, f"{manifest} line {number}", False, f"{shown!r}: {exc}")
                continue
            if name in entries:
                report.add(check, name, False, f"listed twice in {manifest}: refused")
                entries[name] = ""  # never matches: a duplicate fails whatever it says
                continue
            entries[name] = digest
    except BagPathError as exc:
        report.add(check, manifest, False, f"cannot be read: {exc}")
    return entries


def _check_entries(
    bag: Bag,
    manifest: str,
    algorithm: str,
    entries: dict[str, str],
    present: dict[str, int],
    limits: dict[str, int],
    report: Report,
    check: str,
) -> dict[str, str]:
    """Each listed file against its digest; returns ``{path: digest}`` as read."""
    hashed: dict[str, str] = {}
    for name, digest in sorted(entries.items()):
        if name not in present:
            report.add(check, name, False, f"listed in {manifest} but not a file in the bag")
            continue
        if not digest:
            continue
        try:
            actual, _ = bag.hash(name, algorithm, limits.get(name, MAX_DOCUMENT))
        except BagPathError as exc:
            report.add(check, name, False, str(exc))
            continue
        hashed[name] = actual
        report.add(
            check,
            name,
            actual == digest,
            f"{algorithm.upper()} matches {manifest}"
            if actual == digest
            else f"{algorithm.upper()} is {actual}, {manifest} says {digest}",
        )
    return hashed


def check_bag(
    bag: Bag, inventory: Inventory, limits: dict[str, int], report: Report
) -> dict[str, str]:
    """BagIt: declaration, manifests, completeness, Payload-Oxum, checksums.

    ``limits`` caps what may be read of each payload file (its signed size);
    other payload and tag files may have at most MAX_DOCUMENT bytes, so a
    file whose size lies is refused before a byte of it is read. Returns ``{data/… path:
    sha256}`` of what was hashed, for the later checks.
    """
    try:
        declared = b"BagIt-Version:" in bag.read("bagit.txt", 4096)
    except BagPathError:
        declared = False
    report.add("bag.declaration", "bagit.txt", declared, "the folder declares itself a BagIt bag")
    manifests = sorted(n for n in inventory.tags if _MANIFEST.match(n))
    payload_manifests = [n for n in manifests if not n.startswith("tag")]
    tag_manifests = [n for n in manifests if n.startswith("tag")]
    for required in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        if required not in manifests:
            report.add("bag.manifest", required, False, "the bag has no such manifest")

    _check_oxum(bag, inventory, report)
    sha256_of: dict[str, str] = {}
    for manifest in payload_manifests:
        # `manifests` holds only names _MANIFEST matched
        algorithm = _MANIFEST.match(manifest).group(2)  # type: ignore[union-attr]
        if algorithm not in _DIGEST_LENGTH:
            report.notes.append(f"{manifest}: algorithm {algorithm} not known, skipped")
            continue
        entries = _manifest_entries(bag, manifest, algorithm, report, "bag.payload")
        for name in entries:
            if not name.startswith("data/"):
                report.add("bag.payload", name, False, f"{manifest} lists a path outside data/")
        for name in sorted(set(inventory.payload) - set(entries)):
            report.add("bag.payload", name, False, f"is in data/ but not in {manifest}")
        hashed = _check_entries(
            bag,
            manifest,
            algorithm,
            {n: d for n, d in entries.items() if n.startswith("data/")},
            inventory.payload,
            limits,
            report,
            "bag.payload",
        )
        if algorithm == "sha256":
            sha256_of.update(hashed)

    for manifest in tag_manifests:
        # `manifests` holds only names _MANIFEST matched
        algorithm = _MANIFEST.match(manifest).group(2)  # type: ignore[union-attr]
        if algorithm not in _DIGEST_LENGTH:
            continue
        entries = _manifest_entries(bag, manifest, algorithm, report, "bag.tag")
        for name in entries:
            if name.startswith("data/"):
                report.add("bag.tag", name, False, f"{manifest} lists a payload file")
        unlisted = set(inventory.tags) - set(entries) - set(tag_manifests)
        for name in sorted(unlisted):
            report.add("bag.tag", name, False, f"is a tag file but not in {manifest}")
        _check_entries(
            bag,
            manifest,
            algorithm,
            {n: d for n, d in entries.items() if not n.startswith("data/")},
            inventory.tags,
            {},
            report,
            "bag.tag",
        )
    return sha256_of


def _bag_info(bag: Bag) -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = bag.read("bag-info.txt", 1024 * 1024).decode("utf-8", "replace")
    except BagPathError:
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def _check_oxum(bag: Bag, inventory: Inventory, report: Report) -> bool:
    oxum = _bag_info(bag).get("Payload-Oxum")
    total, count = sum(inventory.payload.values()), len(inventory.payload)
    return report.add(
        "bag.oxum",
        "bag-info.txt",
        oxum == f"{total}.{count}",
        f"Payload-Oxum {oxum}, the payload holds {total} bytes in {count} files"
        if oxum
        else "bag-info.txt declares no Payload-Oxum",
    )


# --- signatures, hashes, proofs -------------------------------------------------------


@dataclass
class Signed:
    """What the verified manifests sign, and the files they are about."""

    #: evidence id -> (signed SHA-256, signed size or None if unsigned, file in the bag)
    originals: dict[str, tuple[str, int | None, str | None]] = field(default_factory=dict)
    derivatives: list[tuple[str, str, str]] = field(default_factory=list)  # subject, sha, copy

    @property
    def sha256(self) -> dict[str, str]:
        return {eid: sha for eid, (sha, _, _) in self.originals.items()}


def _in_folder(files: dict[str, int], folder: str) -> list[str]:
    return sorted(n for n in files if n.startswith(folder) and "/" not in n[len(folder) :])


def check_signatures(
    bag: Bag, inventory: Inventory, keys: list[bytes], report: Report
) -> tuple[Signed, dict[str, int]]:
    """Manifest signatures, first: what they sign bounds what is read later.

    Returns what is signed and ``{data/… path: signed size}``."""
    payload = inventory.payload
    trusted = {key_id(k): k for k in keys}
    signed = Signed()
    limits: dict[str, int] = {}
    for manifest in _in_folder(payload, "data/manifests/"):
        if not manifest.endswith(".dsse.json"):
            continue
        evidence_id = manifest[len("data/manifests/") : -len(".dsse.json")]
        try:
            verified = _open_envelope(bag, manifest, trusted)
        except EnvelopeError as exc:
            report.add("manifest.signature", manifest, False, f"signature does not verify: {exc}")
            continue
        report.add(
            "manifest.signature",
            manifest,
            True,
            f"Ed25519 signature by key {verified.keyid} verifies over the DSSE PAE bytes",
        )
        content = verified.payload
        original = found if isinstance(found := content.get("original"), dict) else {}
        report.add(
            "manifest.content",
            manifest,
            content.get("evidence_id") == evidence_id,
            f"the signed manifest names evidence id {content.get('evidence_id')}",
        )
        sha, size = original.get("sha256"), original.get("size")
        files = _in_folder(payload, f"data/originals/{evidence_id}/")
        signed.originals[evidence_id] = (str(sha), size, files[0] if len(files) == 1 else None)
        if len(files) != 1:
            report.add(
                "original.present",
                f"data/originals/{evidence_id}/",
                False,
                f"expected one original (a regular file, not a link), found {len(files)}",
            )
        elif isinstance(size, int) and size >= 0:
            limits[files[0]] = size
    for d_manifest in sorted(payload):
        parts = d_manifest.split("/")
        if len(parts) != 4 or parts[1] != "derivatives" or not parts[3].endswith(".dsse.json"):
            continue
        sha = parts[3][: -len(".dsse.json")]
        try:
            verified = _open_envelope(bag, d_manifest, trusted)
        except EnvelopeError as exc:
            report.add(
                "derivative.signature", d_manifest, False, f"signature does not verify: {exc}"
            )
            continue
        report.add(
            "derivative.signature", d_manifest, True, "the playback copy's manifest verifies"
        )
        named = derivative_sha256(verified.payload)
        copies = [
            n
            for n in _in_folder(payload, f"data/derivatives/{parts[2]}/")
            if n != d_manifest and n.split("/")[3].startswith(f"{sha}.")
        ]
        if not copies:
            report.add("derivative.present", d_manifest, False, "the playback copy is missing")
        derivative = verified.payload.get("derivative")
        size = derivative.get("size") if isinstance(derivative, dict) else None
        for copy in copies:
            signed.derivatives.append((copy, sha, str(named)))
            if isinstance(size, int) and size >= 0:
                limits[copy] = size
    return signed, limits


def check_files(bag: Bag, signed: Signed, known: dict[str, str], report: Report) -> None:
    """Each original and playback copy against the manifest that signs it; a
    file of another size than signed is not read."""
    for _evidence_id, (sha, size, path) in sorted(signed.originals.items()):
        if path is None:
            continue
        digest, actual_size = _hash_signed(bag, path, size, known)
        good = digest == sha and actual_size == size
        report.add(
            "original.sha256",
            path,
            good,
            f"SHA-256 {digest} and size {actual_size} equal the signed manifest's"
            if good
            else f"SHA-256 {digest or '(not read)'} ({actual_size} bytes), the manifest signs "
            f"{sha} ({size} bytes)",
        )
    for copy, sha, named in signed.derivatives:
        digest, _ = _hash_signed(bag, copy, None, known)
        good = digest == sha == named
        report.add(
            "derivative.sha256",
            copy,
            good,
            "SHA-256 equals the one its signed manifest names"
            if good
            else f"SHA-256 {digest or '(not read)'} is not the one its signed manifest names",
        )


def _hash_signed(
    bag: Bag, path: str, size: object, known: dict[str, str]
) -> tuple[str | None, int]:
    try:
        actual_size = bag.size(path)
        if path in known:
            return known[path], actual_size
        if isinstance(size, int) and actual_size != size:
            return None, actual_size
        return bag.hash(path, "sha256", size if isinstance(size, int) else None)
    except BagPathError:
        return None, -1


def _signature_names(note: str) -> list[str]:
    block = note[note.rfind("\n\n") + 2 :] if "\n\n" in note else ""
    names = []
    for line in block.splitlines():
        if line.startswith(_SIG_PREFIX):
            names.append(line[len(_SIG_PREFIX) :].split(" ", 1)[0])
    return names


def check_checkpoint(bag: Bag, keys: list[bytes], report: Report) -> Checkpoint | None:
    subject = "data/ledger/checkpoint.txt"
    try:
        note = bag.read(subject, 1024 * 1024)
    except BagPathError as exc:
        report.add("checkpoint.present", subject, False, f"the bundle's ledger checkpoint: {exc}")
        return None
    text = note.decode("utf-8", "replace")
    last_error = "no signature line"
    for key in keys:
        for name in _signature_names(text)[:16]:
            try:
                cp, _ = open_checkpoint(note, {name: key})
            except (NoteError, ValueError) as exc:
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
    bag: Bag,
    inventory: Inventory,
    checkpoint: Checkpoint | None,
    signed: dict[str, str],
    report: Report,
) -> None:
    proofs = {
        name[len("data/ledger/") : -len(".json")]: name
        for name in _in_folder(inventory.payload, "data/ledger/")
        if name.endswith(".json")
    }
    for evidence_id in sorted(set(signed) - set(proofs)):
        report.add(
            "ledger.present", evidence_id, False, "the bundle has no ledger proofs for this item"
        )
    for evidence_id, subject in sorted(proofs.items()):
        try:
            document = json.loads(bag.read(subject))
            leaves = list(document["leaves"])
            claimed = document.get("checkpoint") or {}
            if not isinstance(claimed, dict):
                raise TypeError("checkpoint is not an object")
        except (BagPathError, ValueError, KeyError, TypeError, AttributeError) as exc:
            report.add("ledger.format", subject, False, f"unreadable: {exc}")
            continue
        if checkpoint is not None:
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
    entry: Any,
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
        if not isinstance(event, dict):
            raise TypeError("the leaf is not a JSON object")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
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
    except (ProofError, ValueError, TypeError) as exc:
        report.add("ledger.inclusion", where, False, f"inclusion proof fails: {exc}")
        return False
    details = found if isinstance(found := event.get("details"), dict) else {}
    return ok and event.get("kind") == "sealed" and details.get("sha256") == signed.get(evidence_id)


# --- entry point ------------------------------------------------------------------------


def verify_bundle(
    root: Path,
    pubkeys: list[bytes] | bytes | None = None,
    fingerprints: Sequence[str] = (),
) -> Report:
    """Run every check on the bundle in ``root`` with the auditor's keys
    (``pubkeys``) or fingerprints; with neither the report fails as unverified."""
    if isinstance(pubkeys, bytes):
        pubkeys = [pubkeys]
    report = Report()
    try:
        bag = Bag(root)
    except OSError as exc:
        report.add("bag.open", str(root), False, f"cannot open the bundle: {exc.strerror or exc}")
        return report
    with bag:
        inventory = take_inventory(bag, report)
        bundled = _bundle_keys(bag, inventory.payload, report)
        keys = _trusted_keys(bundled, list(pubkeys or []), list(fingerprints), report)
        if not keys:
            report.add("key.present", "data/keys/", False, "no public key to check signatures with")
        signed, limits = check_signatures(bag, inventory, keys, report)
        if not signed.originals:
            report.add(
                "manifest.present", "data/manifests/", False, "the bundle holds no manifests"
            )
        known = check_bag(bag, inventory, limits, report)
        check_files(bag, signed, known, report)
        checkpoint = check_checkpoint(bag, keys, report)
        check_ledger(bag, inventory, checkpoint, signed.sha256, report)
    return report


def _print_report(report: Report, out: Any) -> None:
    for check in report.checks:
        mark = "PASS" if check.ok else "FAIL"
        out.write(f"{mark}  [{check.check}] {check.subject}: {check.detail}\n")
    for note in report.notes:
        out.write(f"NOTE  {note}\n")
    failures = report.failures
    more = sum(report.suppressed.values())
    out.write(f"\n{len(report.checks) + more} checks, {len(failures) + more} failed.\n")
    if failures or more:
        out.write("FAILURES:\n")
        for check in failures:
            out.write(f"  [{check.check}] {check.subject}: {check.detail}\n")
        for name, count in sorted(report.suppressed.items()):
            out.write(f"  [{name}] … and {count} more failures of this check\n")
        if not report.key_verified:
            out.write("The key is UNVERIFIED: nothing here proves who signed this bundle.\n")
        out.write("The bundle does NOT verify.\n")
    else:
        out.write("The bundle verifies: every hash, signature and proof checked out.\n")


def _safe(text: str) -> str:
    """Text from a hostile bundle made printable (lone surrogates, controls)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strongroom verify-bundle",
        description="Check a Strongroom export bundle offline (needs only Python and PyNaCl). "
        "Give the archive's key with --pubkey or --key-fingerprint, obtained from the "
        "archive's published place, never from the bundle.",
    )
    parser.add_argument("bundle", type=Path, help="the bundle folder")
    parser.add_argument(
        "--pubkey",
        type=Path,
        action="append",
        default=[],
        help="a public key of the archive (hex, vkey, PEM, DER or JSON); may be repeated",
    )
    parser.add_argument(
        "--key-fingerprint",
        action="append",
        default=[],
        help="the published fingerprint (sha256:…) of the key in the bundle; may be repeated",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--config", "-c", help="accepted like every strongroom command; the verifier reads none"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    pubkeys = []
    for path in args.pubkey:
        try:
            pubkeys.append(read_public_key(path.read_bytes()[: 64 * 1024]))
        except (OSError, KeyFileError) as exc:
            sys.stderr.write(f"--pubkey {path}: {exc}\n")
            return 2
    try:
        fingerprints = [parse_fingerprint(fp) for fp in args.key_fingerprint]
    except KeyFileError as exc:
        sys.stderr.write(f"--key-fingerprint: {exc}\n")
        return 2
    try:
        report = verify_bundle(args.bundle, pubkeys, fingerprints)
    except Exception as exc:  # a last resort: a clean line, never a traceback
        sys.stderr.write(
            f"verify-bundle: cannot check {args.bundle}: {type(exc).__name__}: {exc}\n"
            "The bundle does NOT verify.\n"
        )
        return 1
    if args.json:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=True)
        sys.stdout.write(text + "\n")
    else:
        out = io.StringIO()
        _print_report(report, out)
        sys.stdout.write(_safe(out.getvalue()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
