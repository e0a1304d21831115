"""C2SP signed notes and transparency-log checkpoints, signed with Ed25519.

The ledger's checkpoints are written in the formats the transparency-log world
already reads (c2sp.org/signed-note, c2sp.org/tlog-checkpoint, the Go
``golang.org/x/mod/sumdb/note`` package), so an auditor or a witness can check
them with tools we did not write. A checkpoint body is::

    <origin>
    <tree size, decimal>
    <base64 root hash>
    [extension lines]

and a signed note is the body, a blank line, then one line per signature::

    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>

Public keys travel as "vkeys" (``<name>+<hex key hash>+<base64(0x01 || key)>``).
Only PyNaCl and the standard library are used, so the offline verifier can
import this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ED25519_TYPE = b"\x01"
"""Signature type byte for Ed25519 in the signed-note key hash and vkey."""

ROOT_HASH_SIZE = 32
MAX_SIGNATURES = 100
"""Notes with more signature lines are refused (the spec requires accepting >= 16)."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or not signed by a trusted key."""


class CheckpointError(NoteError):
    """A note body that is not a well-formed tlog checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement of the log: "at this size, this is the root"."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note body for this checkpoint."""
        return format_checkpoint(self.origin, self.size, self.root_hash, self.extensions)


def _b64decode(value: str, what: str, error: type[NoteError] = NoteError) -> bytes:
    """Strict standard base64: no stray characters and only the canonical spelling,
    so one value has exactly one text form."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise error(f"{what} is not valid base64: {value!r}") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise error(f"{what} is not canonical base64: {value!r}")
    return raw


def _is_valid_name(name: str) -> bool:
    """Key names are non-empty and contain neither Unicode spaces nor '+'."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _check_text(text: str, what: str, error: type[NoteError] = NoteError) -> None:
    """Notes are UTF-8 with no control characters other than newline."""
    if _CONTROL.search(text):
        raise error(f"{what} contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be signed bytes
        raise error(f"{what} is not valid UTF-8") from exc


# --- checkpoints -------------------------------------------------------------


def format_checkpoint(
    origin: str, size: int, root_hash: bytes, extensions: Iterable[str] = ()
) -> str:
    """The tlog-checkpoint note body for a tree of ``size`` leaves with ``root_hash``."""
    extensions = tuple(extensions)
    if not origin or "\n" in origin:
        raise CheckpointError(f"origin must be one non-empty line, got {origin!r}")
    if not 0 <= size <= _MAX_TREE_SIZE:
        raise CheckpointError(f"tree size {size} is outside 0..2**64-1")
    if len(root_hash) != ROOT_HASH_SIZE:
        raise CheckpointError(f"root hash must be {ROOT_HASH_SIZE} bytes, got {len(root_hash)}")
    for line in extensions:
        if not line or "\n" in line:
            raise CheckpointError(f"extension lines must be one non-empty line, got {line!r}")
    lines = [origin, str(size), base64.b64encode(root_hash).decode("ascii"), *extensions]
    text = "\n".join(lines) + "\n"
    _check_text(text, "checkpoint", CheckpointError)
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (the text of a note whose signature was checked).

    Strict on purpose: the size is plain ASCII decimal with no leading zeros
    and fits in 64 bits, the root hash is canonical base64 of exactly 32 bytes,
    extension lines are non-empty. Raises :class:`CheckpointError`.
    """
    _check_text(text, "checkpoint", CheckpointError)
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint needs at least 3 lines, got {len(lines)}")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise CheckpointError("checkpoint origin is empty")
    if not _DECIMAL.fullmatch(size_text):
        raise CheckpointError(f"checkpoint tree size is not a decimal number: {size_text!r}")
    size = int(size_text)
    if size > _MAX_TREE_SIZE:
        raise CheckpointError(f"checkpoint tree size {size} does not fit in 64 bits")
    root_hash = _b64decode(root_text, "checkpoint root hash", CheckpointError)
    if len(root_hash) != ROOT_HASH_SIZE:
        raise CheckpointError(
            f"checkpoint root hash must be {ROOT_HASH_SIZE} bytes, got {len(root_hash)}"
        )
    for i, line in enumerate(extensions):
        if not line:
            raise CheckpointError(f"checkpoint extension line {i + 1} is empty")
    return Checkpoint(origin, size, root_hash, tuple(extensions))


# --- keys --------------------------------------------------------------------


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key ID of an Ed25519 key:
    SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    if len(public_key) != 32:
        raise ValueError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def encode_vkey(name: str, public_key: bytes) -> str:
    """The verifier key string (``<name>+<hex key hash>+<base64(0x01||key)>``)
    that transparency-dev and Go sumdb tools accept."""
    if not _is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}: must be non-empty, no spaces, no '+'")
    encoded = base64.b64encode(ED25519_TYPE + public_key).decode("ascii")
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_vkey(vkey: str) -> tuple[str, bytes]:
    """Split a verifier key into ``(name, 32-byte Ed25519 public key)``.

    The key hash in the string must match the name and key, so a vkey that was
    mangled in transit is refused rather than silently trusting another key.
    """
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"malformed verifier key {vkey!r}: want <name>+<hash>+<key>")
    name, hash_hex, key_b64 = parts
    if not _is_valid_name(name) or not _HEX8.fullmatch(hash_hex):
        raise NoteError(f"malformed verifier key {vkey!r}")
    key = _b64decode(key_b64, "verifier key data")
    if not key or key[:1] != ED25519_TYPE:
        raise NoteError(f"verifier key {name!r} is not an Ed25519 key")
    public_key = key[1:]
    if len(public_key) != 32:
        raise NoteError(f"verifier key {name!r} is {len(public_key)} bytes, want 32")
    if key_hash(name, public_key) != bytes.fromhex(hash_hex):
        raise NoteError(f"verifier key {name!r}: key hash {hash_hex} does not match the key")
    return name, public_key


# --- signed notes --------------------------------------------------------------


def sign_note(body: str, key_name: str, signing_key: SigningKey) -> str:
    """Sign ``body`` (which must end in a newline) and return the signed note text."""
    if not _is_valid_name(key_name):
        raise NoteError(f"invalid key name {key_name!r}: must be non-empty, no spaces, no '+'")
    if not body.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_text(body, "note text")
    public_key = bytes(signing_key.verify_key)
    signature = signing_key.sign(body.encode("utf-8")).signature
    encoded = base64.b64encode(key_hash(key_name, public_key) + signature).decode("ascii")
    return f"{body}\n{_SIG_PREFIX}{key_name} {encoded}\n"


def open_note(note_text: str | bytes, verifiers: Mapping[str, bytes]) -> tuple[str, list[str]]:
    """Verify a signed note against trusted keys ``{key name: 32-byte public key}``.

    Returns ``(body, names of the keys whose signatures verified)``. Follows the
    signed-note rules: signatures by unknown keys (another name, or the same
    name with another key hash) are ignored; a signature by a trusted key that
    does not verify rejects the whole note; at least one trusted signature must
    verify. Raises :class:`NoteError` saying what is wrong.
    """
    trusted: dict[tuple[str, bytes], VerifyKey] = {
        (name, key_hash(name, key)): VerifyKey(bytes(key)) for name, key in verifiers.items()
    }
    if isinstance(note_text, bytes):
        try:
            note_text = note_text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _check_text(note_text, "note")
    split = note_text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    body, sig_block = note_text[: split + 1], note_text[split + 2 :]
    if not sig_block.endswith("\n"):
        raise NoteError("note signatures must end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")

    body_bytes = body.encode("utf-8")
    verified: list[str] = []
    for number, line in enumerate(lines, start=1):
        name, keyid, signature = _parse_signature_line(line, number)
        verify_key = trusted.get((name, keyid))
        if verify_key is None or name in verified:
            continue  # an unknown key, or a repeat of one we already checked
        if len(signature) != 64:
            raise NoteError(f"signature by {name!r} is {len(signature)} bytes, want 64")
        try:
            verify_key.verify(body_bytes, signature)
        except BadSignatureError as exc:
            raise NoteError(f"signature by trusted key {name!r} does not verify") from exc
        verified.append(name)
    if not verified:
        raise NoteError("note has no signature by a trusted key")
    return body, verified


def _parse_signature_line(line: str, number: int) -> tuple[str, bytes, bytes]:
    """One ``— <name> <base64>`` line as (name, 4-byte key hash, signature)."""
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"signature line {number} does not start with an em dash and space")
    name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    if not space or not _is_valid_name(name) or not encoded:
        raise NoteError(f"signature line {number} is not '— <key name> <signature>'")
    raw = _b64decode(encoded, f"signature line {number}")
    if len(raw) < 5:
        raise NoteError(f"signature line {number} is too short")
    return name, raw[:4], raw[4:]


def open_checkpoint(
    note_text: str | bytes, verifiers: Mapping[str, bytes]
) -> tuple[Checkpoint, list[str]]:
    """Verify a signed checkpoint, then parse it: the body is never read unverified."""
    body, names = open_note(note_text, verifiers)
    return parse_checkpoint(body), names
