"""Export bundles: everything an auditor or a court needs to check evidence
without Strongroom, as one BagIt bag (RFC 8493).

``data/`` holds, per item, the original (``originals/<evidence id>/<file
name>``), its signed manifest (``manifests/<evidence id>.dsse.json``),
optionally the playback copies with their manifests, and
``ledger/<evidence id>.json`` (the item's custody leaves with inclusion
proofs); plus the latest signed checkpoint (``ledger/checkpoint.txt``) and the
station's public key (``keys/``: raw hex, vkey, PEM). Beside the payload, the
bag holds ``VERIFY.txt`` (how to check it all with sha256sum, openssl and the
bagit tool) and ``strongroom-verify.pyz``, the offline verifier as one file
that needs only Python and PyNaCl. Both say that the key's fingerprint and the
verifier must come from the archive's published place, never from the bundle:
a forged bundle would bring its own.

Originals are streamed from their exact archived versions and re-hashed on
the way; bytes that do not match their signed manifest are refused, so a
bundle never carries something Strongroom cannot vouch for. Exporting is an
``exported`` custody event per item.

The bag is written here in one pass (each file hashed as it is written) and
then checked with the ``bagit`` library. ``bagit.make_bag``/``Bag.save`` are
not used to write it: they change the process's working directory, which is
unsafe in the API server's threads, and re-read every payload byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bagit
from sqlalchemy import select

from archive.context import Archive
from archive.custody import record_event
from archive.derivatives import Derivative
from archive.dsse import envelope_bytes, key_fingerprint, verify_envelope
from archive.ledger import checkpoint, checkpoint_document, ledger_key_name, proof_document
from archive.models import Evidence
from archive.note import encode_vkey
from archive.states import CopyState
from config.errors import StrongroomError, UnknownEvidence

BUNDLE_FORMAT = "strongroom-bundle/v1"
VERIFIER_NAME = "strongroom-verify.pyz"
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

#: the modules the offline verifier runs on (standard library + PyNaCl only)
VERIFIER_MODULES = (
    "archive/__init__.py",
    "archive/canonical.py",
    "archive/dsse.py",
    "archive/merkle.py",
    "archive/note.py",
    "archive/payloads.py",
    "verify/__init__.py",
    "verify/bagread.py",
    "verify/offline.py",
)


class ExportError(StrongroomError):
    """The bundle cannot be made as asked (the message says why)."""

    code = "export_failed"


def safe_file_name(name: str) -> str:
    """A file name that is safe on any file system and in a bag manifest."""
    cleaned = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "original"
    return cleaned[:150]


def public_key_pem(raw: bytes) -> str:
    """The SubjectPublicKeyInfo PEM OpenSSL reads, built from the raw Ed25519 key."""
    der = _ED25519_SPKI_PREFIX + raw
    body = base64.b64encode(der).decode("ascii")
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def write_verifier(path: Path) -> Path:
    """The offline verifier as one zipapp file: ``python3 strongroom-verify.pyz DIR``."""
    root = Path(__file__).resolve().parent.parent
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for module in VERIFIER_MODULES:
            info = zipfile.ZipInfo(module, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / module).read_bytes())
        main = zipfile.ZipInfo("__main__.py", date_time=(2020, 1, 1, 0, 0, 0))
        archive.writestr(
            main, "import sys\nfrom verify.offline import main\nsys.exit(main(sys.argv[1:]))\n"
        )
    return path


class _BagWriter:
    """Writes payload files under ``data/``, hashing each as it is written, then
    the tag files (RFC 8493 §2): one pass over every byte."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: list[tuple[str, str, int]] = []  # (sha256 hex, data/… path, size)

    def _target(self, relative: Path) -> Path:
        path = self.root / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_bytes(self, relative: Path, data: bytes) -> str:
        self._target(relative).write_bytes(data)
        self.entries.append((hashlib.sha256(data).hexdigest(), f"data/{relative}", len(data)))
        return str(relative)

    def add_object(
        self, archive: Archive, key: str, version_id: str | None, sha256: str, relative: Path
    ) -> str:
        """Copy one object version in, refusing bytes that are not ``sha256``."""
        dest = self._target(relative)
        digest = hashlib.sha256()
        size = 0
        body = archive.store.open(key, version_id)
        try:
            with dest.open("xb") as out:
                while chunk := body.read(8 * 1024 * 1024):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        finally:
            body.close()
        if digest.hexdigest() != sha256:
            dest.unlink()
            raise ExportError(
                f"{key}@{version_id} hashes to {digest.hexdigest()}, its manifest signs "
                f"{sha256}: not exported; run `strongroom verify`"
            )
        self.entries.append((sha256, f"data/{relative}", size))
        return str(relative)

    def finish(self, info: dict[str, str], extra_tag_files: dict[str, bytes]) -> None:
        """bagit.txt, bag-info.txt, the payload manifest, extra tag files, tag manifest."""
        total = sum(size for _, _, size in self.entries)
        info = {
            "Bag-Software-Agent": "strongroom (verify.export)",
            "Bagging-Date": datetime.now(UTC).date().isoformat(),
            **info,
            "Payload-Oxum": f"{total}.{len(self.entries)}",
        }
        tag_files = {
            "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "bag-info.txt": "".join(f"{k}: {v}\n" for k, v in info.items()).encode("utf-8"),
            # two spaces: the format sha256sum -c reads, and RFC 8493 allows
            "manifest-sha256.txt": "".join(
                f"{digest}  {path}\n" for digest, path, _ in sorted(self.entries, key=_by_path)
            ).encode("utf-8"),
            **extra_tag_files,
        }
        for name, data in tag_files.items():
            (self.root / name).write_bytes(data)
        (self.root / "tagmanifest-sha256.txt").write_text(
            "".join(
                f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                for name, data in sorted(tag_files.items())
            ),
            encoding="utf-8",
        )


def _by_path(entry: tuple[str, str, int]) -> str:
    return entry[1]


def _manifest(archive: Archive, key: str, version_id: str | None) -> tuple[bytes, dict[str, Any]]:
    data = archive.store.get_bytes(key, version_id)
    verified = verify_envelope(data, archive.key.public_keys())
    problem = archive.key.window_problem(verified.keyid, verified.payload)
    if problem is not None:
        raise ExportError(f"{key}: {problem}")
    return data, verified.payload


def export_bundle(
    archive: Archive,
    evidence_ids: list[str],
    out_dir: Path,
    *,
    actor: str,
    include_derivatives: bool = False,
) -> Path:
    """Write a BagIt bundle of ``evidence_ids`` into ``out_dir`` (new or empty).

    Runs the ledger sequencer first, so the bundle's proofs cover every event
    up to now. Raises :class:`UnknownEvidence` (a KeyError) for an unknown id,
    ExportError when an item's stored bytes or manifest do not check out.
    Returns ``out_dir``.
    """
    ids = list(dict.fromkeys(evidence_ids))
    if not ids:
        raise ExportError("nothing to export: no evidence ids given")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} exists and is not empty")
    with archive.db.session() as session:
        items = {}
        derivatives: dict[str, list[Derivative]] = {}
        for evidence_id in ids:
            evidence = session.get(Evidence, evidence_id)
            if evidence is None:
                raise UnknownEvidence(evidence_id)
            items[evidence_id] = evidence
            derivatives[evidence_id] = (
                list(
                    session.scalars(
                        select(Derivative)
                        .where(
                            Derivative.evidence_id == evidence_id,
                            Derivative.state == CopyState.STORED,
                        )
                        .order_by(Derivative.id)
                    )
                )
                if include_derivatives
                else []
            )
    checkpoint(archive)
    out_dir.mkdir(parents=True, exist_ok=True)
    bag = _BagWriter(out_dir)
    files = {
        evidence_id: _export_item(archive, bag, evidence, derivatives[evidence_id])
        for evidence_id, evidence in items.items()
    }
    cp = checkpoint_document(archive)
    bag.add_bytes(Path("ledger") / "checkpoint.txt", cp["note"].encode("utf-8"))
    _add_keys(archive, bag)
    verifier = out_dir / VERIFIER_NAME
    write_verifier(verifier)
    bag.finish(
        {
            "Source-Organization": f"Strongroom station {archive.station}",
            "External-Description": "Evidence export: originals, signed manifests, custody "
            "ledger proofs and the signed checkpoint. See VERIFY.txt.",
            "External-Identifier": " ".join(ids),
            "Strongroom-Bundle-Format": BUNDLE_FORMAT,
            "Strongroom-Checkpoint-Size": str(cp["size"]),
        },
        {
            "VERIFY.txt": verify_text(
                ids, archive.key.keyid, key_fingerprint(archive.key.public_key)
            ).encode("utf-8"),
            VERIFIER_NAME: verifier.read_bytes(),
        },
    )
    try:  # the library's own reading of what we wrote (structure, completeness, oxum)
        bagit.Bag(str(out_dir)).validate(completeness_only=True)
    except bagit.BagError as exc:
        raise ExportError(f"the bag in {out_dir} does not validate: {exc}") from exc
    manifest_digest = hashlib.sha256((out_dir / "manifest-sha256.txt").read_bytes()).hexdigest()
    with archive.db.session() as session:
        for evidence_id in ids:
            record_event(
                session,
                "exported",
                actor=actor,
                evidence_id=evidence_id,
                details={
                    "bundle": out_dir.name,
                    "items": ids,
                    "files": files[evidence_id],
                    "payload_manifest_sha256": manifest_digest,
                    "checkpoint_size": cp["size"],
                    "with_playback": include_derivatives,
                },
            )
    return out_dir


def _export_item(
    archive: Archive, bag: _BagWriter, evidence: Evidence, derivatives: list[Derivative]
) -> list[str]:
    evidence_id = evidence.evidence_id
    envelope, payload = _manifest(archive, evidence.manifest_key, evidence.manifest_version_id)
    signed_sha = payload["original"]["sha256"]
    if signed_sha != evidence.sha256:
        raise ExportError(
            f"{evidence_id}: catalog sha256 {evidence.sha256} differs from the signed manifest"
        )
    written = [
        bag.add_object(
            archive,
            evidence.original_key,
            evidence.original_version_id,
            signed_sha,
            Path("originals") / evidence_id / safe_file_name(evidence.file_name),
        ),
        bag.add_bytes(
            Path("manifests") / f"{evidence_id}.dsse.json", envelope_bytes(json.loads(envelope))
        ),
    ]
    for derivative in derivatives:
        if not (derivative.key and derivative.manifest_key and derivative.sha256):
            continue
        d_envelope, _ = _manifest(archive, derivative.manifest_key, derivative.manifest_version_id)
        folder = Path("derivatives") / evidence_id
        written.append(
            bag.add_object(
                archive,
                derivative.key,
                derivative.version_id,
                derivative.sha256,
                folder / f"{derivative.sha256}{_suffix(derivative)}",
            )
        )
        written.append(
            bag.add_bytes(
                folder / f"{derivative.sha256}.dsse.json", envelope_bytes(json.loads(d_envelope))
            )
        )
    proof = proof_document(archive, evidence_id)
    text = json.dumps(proof, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    written.append(bag.add_bytes(Path("ledger") / f"{evidence_id}.json", text.encode("utf-8")))
    return written


def _suffix(derivative: Derivative) -> str:
    probe = derivative.probe or {}
    kind = probe.get("kind") if isinstance(probe, dict) else None
    return ".m4a" if kind == "audio" else ".mp4"


def _add_keys(archive: Archive, bag: _BagWriter) -> None:
    """Every configured key – the current one and the retired ones – because an
    item sealed before a rotation verifies with the key of its time."""
    name = ledger_key_name(archive.settings)
    folder = Path("keys")
    for keyid, raw in sorted(archive.key.public_keys().items()):
        document: dict[str, Any] = {
            "keyid": keyid,
            "algorithm": "ed25519",
            "public_key": raw.hex(),
            "key_name": name,
            "vkey": encode_vkey(name, raw),
            "current": keyid == archive.key.keyid,
        }
        bag.add_bytes(folder / f"{keyid}.json", (json.dumps(document, indent=2) + "\n").encode())
        bag.add_bytes(folder / f"{keyid}.pem", public_key_pem(raw).encode("ascii"))


def verify_text(ids: list[str], keyid: str, fingerprint: str) -> str:
    """The plain-language instructions shipped in every bundle."""
    example = ids[0]
    return VERIFY_TEMPLATE.format(
        example=example, keyid=keyid, verifier=VERIFIER_NAME, fingerprint=fingerprint
    )


VERIFY_TEMPLATE = """\
HOW TO CHECK THIS EVIDENCE BUNDLE
=================================

This folder is a BagIt bag (RFC 8493) written by Strongroom, an evidence
archive for body-worn camera recordings. It lets you check, without access
to Strongroom or its database, that each recording is the original the
station archived, unaltered, and that its custody record is part of the
station's signed, append-only ledger.

What is inside
--------------
data/originals/<evidence id>/<file>   the original recording, byte for byte
data/manifests/<evidence id>.dsse.json  the signed statement (manifest) of what
                                      the original is: SHA-256, size, source,
                                      times. A DSSE envelope, Ed25519 signature.
data/derivatives/<evidence id>/...    playback copies and their signed
                                      manifests (only if asked for)
data/ledger/<evidence id>.json        the item's custody events (ledger leaves)
                                      with Merkle inclusion proofs (RFC 9162)
data/ledger/checkpoint.txt            the ledger checkpoint the proofs lead to,
                                      signed (C2SP signed-note format)
data/keys/{keyid}.json                the station's public key: raw hex, and as a
                                      "vkey" for transparency-log tools
data/keys/{keyid}.pem                 the same key as a PEM file for OpenSSL
manifest-sha256.txt                   SHA-256 of every file under data/
{verifier}                 the offline verifier (Python 3 + PyNaCl)

FIRST: TWO THINGS YOU MUST NOT TAKE FROM THIS BUNDLE
----------------------------------------------------
Anyone can build a folder that looks like this one, sign it with a key of
their own and put in a verifier that says "verifies". Obtain these two from
the archive's published place – its public key page, its API (GET /v1/keys),
its README or a court filing – never from this bundle:

  * the fingerprint of the station's signing key. Step 0 below computes the
    fingerprint of the key this bundle carries; it must equal the published
    one. (For finding a mismatch only, the bundle's key claims to be
    {fingerprint}
    – this line proves nothing by itself.)
  * the verifier: the archive's published strongroom-verify.pyz, or the
    `strongroom verify-bundle` command of an installation you trust. The
    {verifier} in this folder is a convenience, only as trustworthy as
    the bundle.

0. The key is the archive's (sha256sum)
---------------------------------------
# --- begin fingerprint check ---
python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['public_key'])" \\
    data/keys/{keyid}.json | xxd -r -p | sha256sum
# --- end fingerprint check ---

The printed hash must equal the published fingerprint (after "sha256:"). If
it does not, stop: nothing else in this bundle can be trusted.

1. Every file is intact (sha256sum, bagit)
------------------------------------------
    sha256sum -c manifest-sha256.txt
    bagit.py --validate .                  (pip install bagit)

2. The original is the one that was signed
------------------------------------------
The manifest's payload is base64 JSON; it names the original's SHA-256:

    python3 -c "import json,base64,sys; m=json.load(open(sys.argv[1])); \\
print(json.loads(base64.b64decode(m['payload']))['original']['sha256'])" \\
        data/manifests/{example}.dsse.json
    sha256sum data/originals/{example}/*

The two hashes must be equal.

3. The manifest's signature (openssl)
-------------------------------------
DSSE signs not the file but its "pre-authentication encoding" (PAE):

    DSSEv1 <length of type> <type> <length of payload> <payload bytes>

(lengths in bytes, as decimal numbers, single spaces). These commands, run
from this folder with bash, build the PAE file, the signature file and the
PEM public key from the raw hex key in a scratch folder ($W), then check the
signature:

# --- begin openssl check ---
j() {{ python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[int(k)] if k.isdigit() else d[k]
print(d, end="")' "$1" "$2"; }}
M=data/manifests/{example}.dsse.json
W=$(mktemp -d)
j "$M" payloadType > "$W/type.txt"
j "$M" payload | base64 -d > "$W/payload.bin"
j "$M" signatures.0.sig | base64 -d > "$W/sig.bin"
TL=$(stat -c %s "$W/type.txt"); PL=$(stat -c %s "$W/payload.bin")
printf 'DSSEv1 %d %s %d ' "$TL" "$(cat "$W/type.txt")" "$PL" > "$W/pae.bin"
cat "$W/payload.bin" >> "$W/pae.bin"
printf '302a300506032b6570032100%s' "$(j data/keys/{keyid}.json public_key)" \\
    | xxd -r -p > "$W/key.der"
openssl pkey -pubin -inform DER -in "$W/key.der" -out "$W/key.pem"
openssl pkeyutl -verify -pubin -inkey "$W/key.pem" -rawin -in "$W/pae.bin" \\
    -sigfile "$W/sig.bin"
# --- end openssl check ---

The last command prints "Signature Verified Successfully". (The prefix
302a300506032b6570032100 is the fixed DER header of an Ed25519 public key;
$W/key.pem equals data/keys/{keyid}.pem. Use another manifest by changing M.)
Any changed byte of the manifest makes it print "Signature Verification
Failure".

4. Everything at once: the offline verifier
-------------------------------------------
    python3 -m pip install pynacl
    python3 strongroom-verify.pyz . --key-fingerprint sha256:<published fingerprint>
    python3 strongroom-verify.pyz . --pubkey KEYFILE
                         (KEYFILE: the published key as raw hex, vkey, PEM or
                          the .json/.pub key document; --pubkey may be repeated)
    (or: strongroom verify-bundle . --key-fingerprint sha256:<published fingerprint>)

Run the published verifier, not this folder's copy. Without --pubkey or
--key-fingerprint it still checks everything but fails, because a key that
came with the bundle proves nothing; it prints that key's fingerprint for you
to compare. It never reads a file outside this folder: a manifest naming an
absolute path, a path with "..", or a symbolic link is refused.

It checks every payload hash, each original against its signed manifest,
every manifest signature, each ledger leaf's inclusion proof against the
checkpoint root, and the checkpoint's signature, and says in words what it
checked. It exits with status 1 and lists every failure if anything is wrong.
It needs only Python 3 and PyNaCl; its source is inside the .pyz (a zip file).

What the ledger proves
----------------------
Each custody event (archived, sealed, linked to a case, viewed, exported,
fixity-checked, ...) is a leaf of a Merkle tree (RFC 9162 hashing). The
checkpoint is the station's signed statement of the tree's size and root
hash; it is also kept in the station's object store under Object Lock
(ledger/checkpoints/<size>). An inclusion proof shows that a leaf is in the
tree with that root, so no event listed here can have been altered or
removed without breaking the proof or the signature. Tools written for
transparency logs (C2SP tlog-checkpoint) can read checkpoint.txt with the
vkey in data/keys/.
"""
