"""The bucket layout (archive.layout): known keys stay byte-identical, every
builder round-trips through its parser, hostile parts are refused, and no other
module spells a key itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest

from archive import layout
from archive.catalog_backup import BackupError, list_backups
from archive.layout import LayoutError
from archive.store import ObjectStore

SHA = "5c866cb78e1f0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819203"
EV = "ev-5c866cb78e1f0a2b3c4d5e6f"
KEYID = "0123456789abcdef"
AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

#: keys as earlier versions wrote them: existing buckets must keep working
KNOWN = [
    (layout.original_key(SHA), f"originals/sha256/{SHA}"),
    (layout.derivative_key(SHA), f"derivatives/sha256/{SHA}"),
    (layout.manifest_key(EV), "manifests/ev-5c866cb78e1f0a2b3c4d5e6f.dsse.json"),
    (
        layout.derivative_manifest_key(EV, "f" * 64),
        "manifests/ev-5c866cb78e1f0a2b3c4d5e6f.derivative.ffffffffffffffff.dsse.json",
    ),
    (layout.public_key_key(KEYID), "keys/0123456789abcdef.pub"),
    (layout.rotation_key(KEYID), "keys/0123456789abcdef.rotation.dsse.json"),
    (
        layout.certificate_key("dp-20260304T050607Z-a1b2c3"),
        "dispositions/dp-20260304T050607Z-a1b2c3.dsse.json",
    ),
    (layout.segment_key(0, 41), "ledger/leaves/0-41.jsonl"),
    (layout.checkpoint_key(42), "ledger/checkpoints/42"),
    (layout.backup_prefix("dock-01"), "catalog/backups/dock-01/"),
    (
        layout.backup_key("dock-01", AT.astimezone(timezone(timedelta(hours=8)))),
        "catalog/backups/dock-01/20260304T050607Z.sqlite.gz",
    ),
    (layout.canary_key("a" * 32), "canary/" + "a" * 32),
]


@pytest.mark.parametrize(("built", "expected"), KNOWN, ids=[k for _, k in KNOWN])
def test_known_keys_are_byte_identical(built: str, expected: str) -> None:
    assert built == expected


#: (builder, its arguments, parser, what the parser gives back)
ROUND_TRIPS = [
    (layout.original_key, (SHA,), layout.parse_original_key, SHA),
    (layout.derivative_key, (SHA,), layout.parse_derivative_key, SHA),
    (layout.manifest_key, (EV,), layout.parse_manifest_key, EV),
    (
        layout.derivative_manifest_key,
        (EV, SHA),
        layout.parse_derivative_manifest_key,
        (EV, SHA[:16]),  # the key carries the first 16 hex digits only
    ),
    (layout.public_key_key, (KEYID,), layout.parse_public_key_key, KEYID),
    (layout.rotation_key, (KEYID,), layout.parse_rotation_key, KEYID),
    (layout.certificate_key, ("dp-1",), layout.parse_certificate_key, "dp-1"),
    (layout.certificate_key, ("计划.v1",), layout.parse_certificate_key, "计划.v1"),
    (layout.segment_key, (0, 0), layout.parse_segment_key, (0, 0)),
    (layout.segment_key, (17, 2**40), layout.parse_segment_key, (17, 2**40)),
    (layout.checkpoint_key, (0,), layout.parse_checkpoint_key, 0),
    (layout.checkpoint_key, (10**12,), layout.parse_checkpoint_key, 10**12),
    (layout.backup_key, ("dock-01", AT), layout.parse_backup_key, ("dock-01", AT)),
    (layout.backup_key, ("站 一", AT), layout.parse_backup_key, ("站 一", AT)),
    (layout.canary_key, ("b" * 32,), layout.parse_canary_key, "b" * 32),
]


@pytest.mark.parametrize(
    ("build", "args", "parse", "expected"),
    ROUND_TRIPS,
    ids=[f"{b.__name__}{a}"[:60] for b, a, _, _ in ROUND_TRIPS],
)
def test_every_builder_round_trips_through_its_parser(build, args, parse, expected) -> None:
    key = build(*args)
    assert parse(key) == expected
    # and no other parser claims it: one name, one meaning
    others = {p for _, _, p, _ in ROUND_TRIPS if p is not parse}
    assert [p.__name__ for p in others if p(key) is not None] == []


def test_round_trips_cover_every_builder() -> None:
    builders = {b for b, _, _, _ in ROUND_TRIPS}
    parsers = {p for _, _, p, _ in ROUND_TRIPS}
    public = {getattr(layout, n) for n in dir(layout) if not n.startswith("_")}
    functions = {f for f in public if callable(f) and hasattr(f, "__name__")}
    parse = {f for f in functions if f.__name__.startswith("parse_")}
    build = {f for f in functions if f.__name__.endswith("_key") and f not in parse}
    assert build == builders
    assert parse == parsers


HOSTILE = [
    "../x",
    "..",
    ".",
    "a/b",
    "/",
    "a\\b",
    "a\x00b",
    "a\nb",
    "",
    "x" * (layout.MAX_NAME + 1),
]
HOSTILE_HEX = [*HOSTILE, SHA.upper(), SHA + "0", SHA[:-1], "../" + SHA[3:], SHA[:-1] + "\x00"]


@pytest.mark.parametrize("bad", HOSTILE_HEX, ids=repr)
def test_hostile_content_ids_are_refused(bad: str) -> None:
    for build in (layout.original_key, layout.derivative_key):
        with pytest.raises(LayoutError):
            build(bad)
    with pytest.raises(LayoutError):
        layout.derivative_manifest_key(EV, bad)


@pytest.mark.parametrize(
    "bad", [*HOSTILE, "ev-../../../../etc", EV + "0", EV.upper(), EV + "/x", EV[:-1] + "\x00"]
)
def test_hostile_evidence_ids_are_refused(bad: str) -> None:
    with pytest.raises(LayoutError):
        layout.manifest_key(bad)
    with pytest.raises(LayoutError):
        layout.derivative_manifest_key(bad, SHA)


@pytest.mark.parametrize("bad", [*HOSTILE, KEYID + "0", "../" + KEYID[3:]])
def test_hostile_key_ids_are_refused(bad: str) -> None:
    for build in (layout.public_key_key, layout.rotation_key):
        with pytest.raises(LayoutError):
            build(bad)


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_names_are_refused(bad: str) -> None:
    with pytest.raises(LayoutError):
        layout.certificate_key(bad)
    with pytest.raises(LayoutError):
        layout.backup_prefix(bad)
    with pytest.raises(LayoutError):
        layout.backup_key(bad, AT)


@pytest.mark.parametrize("bad", [-1, True, 1.0, "3"])
def test_ledger_numbers_must_be_counts(bad) -> None:
    with pytest.raises(LayoutError):
        layout.checkpoint_key(bad)
    with pytest.raises(LayoutError):
        layout.segment_key(bad, 5)
    with pytest.raises(LayoutError):
        layout.segment_key(5, 4)  # first after last


def test_a_backup_time_must_say_its_zone() -> None:
    with pytest.raises(LayoutError):
        layout.backup_key("dock-01", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "key",
    [
        "originals/sha256/" + SHA + "/../x",
        "originals/sha256/" + SHA.upper(),
        "manifests/ev-5c866cb78e1f0a2b3c4d5e6f.dsse.json.bak",
        "manifests/../ev-5c866cb78e1f0a2b3c4d5e6f.dsse.json",
        "manifests/ev-5c866cb78e1f0a2b3c4d5e6f.derivative.FFFFFFFFFFFFFFFF.dsse.json",
        "keys/0123456789abcdef.pub.old",
        "keys/../0123456789abcdef.pub",
        "dispositions/../x.dsse.json",
        "dispositions/a/b.dsse.json",
        "dispositions/...dsse.json",
        "ledger/leaves/01-2.jsonl",
        "ledger/leaves/3-2.jsonl",
        "ledger/checkpoints/007",
        "ledger/checkpoints/-1",
        "catalog/backups/dock-01/20261399T000000Z.sqlite.gz",
        "catalog/backups/dock-01/x/20260304T050607Z.sqlite.gz",
        "catalog/backups/../20260304T050607Z.sqlite.gz",
        "canary/" + "A" * 32,
    ],
)
def test_parsers_refuse_what_strongroom_never_writes(key: str) -> None:
    assert [p.__name__ for _, _, p, _ in ROUND_TRIPS if p(key) is not None] == []


_PRODUCT = ("archive", "verify", "ingest", "frontdoors", "config")
_SPELLED = re.compile(
    r"""["'](originals/|derivatives/sha256|manifests/|keys/|dispositions/|ledger/"""
    r"""|catalog/backups|canary/)"""
)


def test_no_other_module_spells_a_bucket_key() -> None:
    """Keys are built and parsed in archive/layout.py only (docstrings may name them)."""
    root = Path(__file__).resolve().parents[1]
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for package in _PRODUCT
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "layout.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _SPELLED.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "a\x00"])
def test_a_station_name_no_key_can_carry_is_a_clear_backup_error(bad: str) -> None:
    """``catalog backups --station ../x`` says why in one line; the store is not asked."""
    with pytest.raises(BackupError, match="no station's backups can be named"):
        list_backups(cast(ObjectStore, object()), bad)
