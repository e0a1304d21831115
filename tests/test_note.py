"""Checkpoints and signed notes are read and written exactly as the C2SP specs
and Go's sumdb/note package do, and anything altered or untrusted is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive.merkle import leaf_hash
from archive.note import (
    Checkpoint,
    CheckpointError,
    NoteError,
    encode_vkey,
    format_checkpoint,
    key_hash,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_vkey,
    sign_note,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "c2sp_signed_note.json").read_text(encoding="utf-8")
)
GO = VECTORS["signed_note"]
TEXT = GO["text"]
PETER_NAME, PETER_KEY = parse_vkey(GO["peter_vkey"])
ENOCH_NAME, ENOCH_KEY = parse_vkey(GO["enoch_vkey"])
PETER = {PETER_NAME: PETER_KEY}
ROOT = leaf_hash(b"some root")


def peter_signing_key() -> SigningKey:
    """Go's ``PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)`` signer key, test-only."""
    prefix, key, name, hash_hex, data = GO["peter_skey"].split("+", 4)
    assert (prefix, key, name) == ("PRIVATE", "KEY", "PeterNeumann")
    raw = base64.b64decode(data)
    assert raw[0] == 1
    signing_key = SigningKey(raw[1:])
    assert key_hash(name, bytes(signing_key.verify_key)).hex() == hash_hex
    return signing_key


# --- keys -----------------------------------------------------------------------


def test_published_vkeys_parse_and_re_encode_identically() -> None:
    assert PETER_NAME == "PeterNeumann"
    assert ENOCH_NAME == "EnochRoot"
    assert encode_vkey(PETER_NAME, PETER_KEY) == GO["peter_vkey"]
    assert encode_vkey(ENOCH_NAME, ENOCH_KEY) == GO["enoch_vkey"]
    assert key_hash(PETER_NAME, PETER_KEY).hex() == "c74f20a3"


def test_published_signer_key_matches_published_vkey() -> None:
    assert bytes(peter_signing_key().verify_key) == PETER_KEY


def test_every_mangled_vkey_is_refused() -> None:
    """As Go's TestNewVerifier: every proper substring and every one-byte bump fails."""
    vkey = GO["peter_vkey"]
    mangled = {vkey[i:j] for i in range(len(vkey) + 1) for j in range(i + 1, len(vkey) + 1)}
    mangled |= {vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))}
    mangled |= set(GO["bad_vkeys"])
    mangled.discard(vkey)
    for bad in sorted(mangled):
        with pytest.raises(NoteError):
            parse_vkey(bad)


def test_generated_vkey_round_trips() -> None:
    public_key = bytes(SigningKey.generate().verify_key)
    assert parse_vkey(encode_vkey("strongroom.example/ledger", public_key)) == (
        "strongroom.example/ledger",
        public_key,
    )


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\tname"])
def test_vkey_refuses_invalid_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        encode_vkey(name, PETER_KEY)


# --- the published signed note --------------------------------------------------


def test_signing_reproduces_the_published_note_byte_for_byte() -> None:
    assert sign_note(TEXT, "PeterNeumann", peter_signing_key()) == GO["signed_by_peter"]


def test_published_note_verifies() -> None:
    assert open_note(GO["signed_by_peter"], PETER) == (TEXT, ["PeterNeumann"])
    assert open_note(GO["signed_by_peter"].encode("utf-8"), PETER) == (TEXT, ["PeterNeumann"])


def test_unknown_signatures_are_ignored_and_known_ones_all_verified() -> None:
    both = TEXT + "\n" + GO["peter_sig_line"] + GO["enoch_sig_line"]
    assert open_note(both, PETER) == (TEXT, ["PeterNeumann"])
    assert open_note(both, {ENOCH_NAME: ENOCH_KEY}) == (TEXT, ["EnochRoot"])
    assert open_note(both, {**PETER, ENOCH_NAME: ENOCH_KEY}) == (
        TEXT,
        ["PeterNeumann", "EnochRoot"],
    )
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(both, {})


def test_repeated_signature_lines_count_once() -> None:
    note = TEXT + "\n" + GO["peter_sig_line"] * 3
    assert open_note(note, PETER) == (TEXT, ["PeterNeumann"])


def test_corrupted_signature_by_trusted_key_rejects_the_note() -> None:
    line = GO["peter_sig_line"]
    with pytest.raises(NoteError, match="PeterNeumann"):  # Go's case: 3 bytes inserted
        open_note(TEXT + "\n" + line[:60] + "ABCD" + line[60:], PETER)
    flipped = line[:60] + ("A" if line[60] != "A" else "B") + line[61:]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(TEXT + "\n" + flipped, PETER)


@pytest.mark.parametrize(
    "note",
    [
        pytest.param(TEXT, id="no signatures"),
        pytest.param(TEXT + "\n", id="blank line but no signatures"),
        pytest.param(TEXT + "\n" + GO["peter_sig_line"][:-1], id="no final newline"),
        pytest.param("\x01" + TEXT + "\n" + GO["peter_sig_line"], id="control character"),
        pytest.param(
            TEXT + "\n" + GO["peter_sig_line"].replace("PeterNeumann", "Bad Name")[:-1],
            id="space in key name",
        ),
        pytest.param(TEXT + "\n" + GO["peter_sig_line"] + "Unexpected line.\n", id="stray line"),
        pytest.param(TEXT + GO["peter_sig_line"], id="missing blank line"),
        pytest.param(TEXT + "\n" + GO["peter_sig_line"] * 101, id="too many signatures"),
        pytest.param(
            TEXT + "\n" + GO["peter_sig_line"].replace("\u2014", "-"), id="hyphen not em dash"
        ),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    """Go's badMsgs in TestOpen, plus a few of our own."""
    with pytest.raises(NoteError):
        open_note(note, PETER)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + GO["signed_by_peter"].encode("utf-8"), PETER)


# --- our own notes ----------------------------------------------------------------


def test_sign_and_open_round_trip() -> None:
    key = SigningKey.generate()
    body = "strongroom.example/ledger\n3\n" + base64.b64encode(ROOT).decode() + "\n"
    note = sign_note(body, "strongroom.example/ledger", key)
    trusted = {"strongroom.example/ledger": bytes(key.verify_key)}
    assert open_note(note, trusted) == (body, ["strongroom.example/ledger"])


def test_modified_body_is_refused() -> None:
    note = GO["signed_by_peter"].replace("cryptography", "cryptographY")
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(note, {"PeterNeumann": bytes(SigningKey.generate().verify_key)})
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, PETER)


def test_wrong_key_under_the_trusted_name_is_refused() -> None:
    """Another key under the trusted name has another key hash: it is an unknown
    key, so the note has no trusted signature."""
    note = sign_note(TEXT, "PeterNeumann", SigningKey.generate())
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(note, PETER)


def test_forged_key_hash_does_not_help_a_wrong_key() -> None:
    forger = SigningKey.generate()
    signature = forger.sign(TEXT.encode()).signature
    forged = base64.b64encode(key_hash("PeterNeumann", PETER_KEY) + signature).decode()
    with pytest.raises(NoteError, match="does not verify"):
        open_note(TEXT + "\n\u2014 PeterNeumann " + forged + "\n", PETER)


def test_unknown_key_name_is_refused() -> None:
    note = sign_note(TEXT, "SomeoneElse", peter_signing_key())
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(note, PETER)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("no newline at end", "PeterNeumann"),
        ("bell \x07\n", "PeterNeumann"),
        (TEXT, "Peter Neumann"),
        (TEXT, "Peter+Neumann"),
        (TEXT, ""),
    ],
)
def test_sign_note_refuses_invalid_input(body: str, name: str) -> None:
    with pytest.raises(NoteError):
        sign_note(body, name, peter_signing_key())


# --- checkpoints ------------------------------------------------------------------


def test_format_and_parse_the_published_go_tree_note() -> None:
    tree = VECTORS["tlog_tree"]
    root_hash = leaf_hash(tree["root_is_leaf_hash_of"].encode())
    assert format_checkpoint("go.sum database tree", tree["size"], root_hash) == tree["text"]
    assert parse_checkpoint(tree["text"]) == Checkpoint(
        "go.sum database tree", tree["size"], root_hash
    )


def test_parse_the_c2sp_example_checkpoint() -> None:
    example = VECTORS["c2sp_example_checkpoint"]
    checkpoint = parse_checkpoint(example["body"])
    assert (checkpoint.origin, checkpoint.size) == (example["origin"], example["size"])
    assert checkpoint.text() == example["body"]


def test_checkpoint_with_extensions_round_trips() -> None:
    text = format_checkpoint("strongroom.example/ledger", 0, ROOT, ["ext one", "ext two"])
    assert text.endswith("\next one\next two\n")
    assert parse_checkpoint(text) == Checkpoint(
        "strongroom.example/ledger", 0, ROOT, ("ext one", "ext two")
    )


def test_signed_checkpoint_opens_to_the_checkpoint() -> None:
    key = SigningKey.generate()
    body = format_checkpoint("strongroom.example/ledger", 42, ROOT)
    note = sign_note(body, "strongroom.example/ledger", key)
    checkpoint, names = open_checkpoint(note, {"strongroom.example/ledger": bytes(key.verify_key)})
    assert checkpoint == Checkpoint("strongroom.example/ledger", 42, ROOT)
    assert names == ["strongroom.example/ledger"]


GOOD_B64 = base64.b64encode(ROOT).decode()
THIRTY_SEVEN = "dGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ=="  # not 32 bytes


def _bad_checkpoints() -> list:
    """Published invalid inputs, with their 37-byte hash swapped for a good
    one so that each fails only for its own reason; plus our own."""
    published = [t.replace(THIRTY_SEVEN, GOOD_B64) for t in VECTORS["invalid_checkpoints"]]
    published += VECTORS["tlog_tree"]["bad"]
    ours = {
        "size with leading zero": f"log\n0123\n{GOOD_B64}\n",
        "size with plus sign": f"log\n+5\n{GOOD_B64}\n",
        "size with space": f"log\n 5\n{GOOD_B64}\n",
        "size with underscore": f"log\n5_000\n{GOOD_B64}\n",
        "size in non-ASCII digits": f"log\n\u0661\u0662\u0663\n{GOOD_B64}\n",
        "size over 64 bits": f"log\n{2**64}\n{GOOD_B64}\n",
        "root not base64": "log\n5\nnot*base64*at*all*\n",
        "root non-canonical base64": "log\n5\n" + GOOD_B64[:-2] + "B=\n",
        "root 31 bytes": f"log\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",
        "root 33 bytes": f"log\n5\n{base64.b64encode(ROOT + b'x').decode()}\n",
        "root hex": f"log\n5\n{ROOT.hex()}\n",
        "empty extension line": f"log\n5\n{GOOD_B64}\n\nmore\n",
        "carriage return": f"log\r\n5\n{GOOD_B64}\n",
        "missing final newline": f"log\n5\n{GOOD_B64}",
    }
    return [pytest.param(t, id=f"published {i}") for i, t in enumerate(published)] + [
        pytest.param(t, id=desc) for desc, t in ours.items()
    ]


@pytest.mark.parametrize("text", _bad_checkpoints())
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    ("origin", "size", "root_hash", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("two\nlines", 1, ROOT, ()),
        ("log", -1, ROOT, ()),
        ("log", 2**64, ROOT, ()),
        ("log", 1, ROOT[:31], ()),
        ("log", 1, ROOT, ("",)),
        ("log", 1, ROOT, ("a\nb",)),
    ],
)
def test_format_checkpoint_refuses_what_it_could_not_parse(
    origin: str, size: int, root_hash: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(CheckpointError):
        format_checkpoint(origin, size, root_hash, extensions)
