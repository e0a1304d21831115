"""The ledger's Merkle math matches published RFC 6962/9162 vectors byte for byte,
rejects every tampered proof, and round-trips on random trees."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from archive.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    RootMismatchError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "rfc6962_inclusion_consistency.json").read_text()
)
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots_hex"]]
NODES = [[bytes.fromhex(x) for x in level] for level in VECTORS["node_hashes_hex"]]
SOME_HASH = bytes.fromhex(VECTORS["some_hash"])
INCLUSION = [
    (v["index"], v["tree_size"], [bytes.fromhex(p) for p in v["proof"]])
    for v in VECTORS["inclusion"]
]
CONSISTENCY = [
    (v["old_size"], v["new_size"], [bytes.fromhex(p) for p in v["proof"]])
    for v in VECTORS["consistency"]
]


# --- a reference written straight from the RFC 9162 text (slices, recursion) --


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- hashing and roots ----------------------------------------------------------


def test_hasher_matches_published_values() -> None:
    h = VECTORS["hasher"]
    assert EMPTY_ROOT.hex() == h["empty_root"]
    assert root([]).hex() == h["empty_root"]
    assert leaf_hash(b"").hex() == h["leaf_hash_of_empty"]
    assert leaf_hash(b"L123456").hex() == h["leaf_hash_of_L123456"]
    assert node_hash(b"N123", b"N456").hex() == h["node_hash_of_N123_N456"]


@pytest.mark.parametrize("size", range(9))
def test_root_of_every_prefix_matches_published_root(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size]


def test_every_perfect_subtree_matches_published_node_hash() -> None:
    for level, row in enumerate(NODES):
        width = 1 << level
        for index, want in enumerate(row):
            assert root(LEAVES[index * width : (index + 1) * width]) == want, (level, index)


@pytest.mark.parametrize("size", range(9))
def test_compact_range_holds_published_frontier(size: int) -> None:
    frontier = CompactRange()
    frontier.extend(LEAVES[:size])
    want = [NODES[level][index] for level, index in VECTORS["compact_ranges"][size]]
    assert list(frontier.hashes) == want
    assert frontier.size == size
    assert frontier.root() == ROOTS[size]


def test_subtree_rolling_hashes_match_merkle_tree_certs_vectors() -> None:
    """Every valid [start, end) subtree of a 130-leaf tree: hash and every inclusion
    proof, folded into one SHA-256 each, as in transparency-dev's vectors_test.go."""
    rolling = VECTORS["subtree_rolling"]
    leaves = [leaf_hash(bytes([i])) for i in range(rolling["max_size"])]
    hashes, proofs = hashlib.sha256(), hashlib.sha256()
    for end in range(1, rolling["max_size"] + 1):
        for start in range(end):
            width = end - start
            bit_ceil = 1 << (width - 1).bit_length()
            if start % bit_ceil:
                continue
            sub = leaves[start:end]
            hashes.update(f"[{start}, {end}) {root(sub).hex()}\n".encode())
            for index in range(start, end):
                path = "".join(f" {p.hex()}" for p in inclusion_proof(sub, index - start))
                proofs.update(f"{index} [{start}, {end}){path}\n".encode())
    assert hashes.hexdigest() == rolling["subtree_hash_sha256"]
    assert proofs.hexdigest() == rolling["subtree_inclusion_sha256"]


# --- published inclusion proofs ---------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proof_is_generated_byte_for_byte(
    index: int, size: int, proof: list[bytes]
) -> None:
    assert inclusion_proof(LEAVES[:size], index) == proof
    assert inclusion_proof(LEAVES, index, tree_size=size) == proof


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_published_inclusion_proof_verifies(index: int, size: int, proof: list[bytes]) -> None:
    verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 8]) + out[i][1:]
    return out


def _inclusion_tampers(index: int, size: int, proof: list[bytes]):
    """The corruptions of transparency-dev's verify_test.go, as (desc, args)."""
    leaf, good_root = LEAVES[index], ROOTS[size]
    yield "index - 1", (leaf, index - 1, size, proof, good_root)
    yield "index + 1", (leaf, index + 1, size, proof, good_root)
    yield "index ^ 2", (leaf, index ^ 2, size, proof, good_root)
    yield "size * 2", (leaf, index, size * 2, proof, good_root)
    yield "size // 2", (leaf, index, size // 2, proof, good_root)
    yield "wrong leaf", (leaf_hash(b"WrongLeaf"), index, size, proof, good_root)
    yield "empty root", (leaf, index, size, proof, EMPTY_ROOT)
    yield "random root", (leaf, index, size, proof, SOME_HASH)
    yield "trailing garbage", (leaf, index, size, [*proof, b""], good_root)
    yield "trailing root", (leaf, index, size, [*proof, good_root], good_root)
    yield "preceding garbage", (leaf, index, size, [b"", *proof], good_root)
    yield "preceding root", (leaf, index, size, [good_root, *proof], good_root)
    for i in range(len(proof)):
        yield f"flipped bit in proof[{i}]", (leaf, index, size, _flip(proof, i), good_root)
    yield "truncated", (leaf, index, size, proof[:-1], good_root)
    if len(proof) > 1:
        inserted = [proof[0], SOME_HASH, *proof[1:]]
        yield "inserted component", (leaf, index, size, inserted, good_root)


INCLUSION_TAMPERS = [
    pytest.param(args, id=f"{index}/{size}: {desc}")
    for index, size, proof in INCLUSION
    if proof
    for desc, args in _inclusion_tampers(index, size, proof)
]


@pytest.mark.parametrize("args", INCLUSION_TAMPERS)
def test_tampered_inclusion_proof_is_rejected(args: tuple) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(*args)


def test_inclusion_root_mismatch_carries_both_roots() -> None:
    index, size, proof = INCLUSION[1]
    with pytest.raises(RootMismatchError) as caught:
        verify_inclusion(leaf_hash(b"other"), index, size, proof, ROOTS[size])
    assert caught.value.expected == ROOTS[size]
    assert caught.value.computed != ROOTS[size]


def test_single_leaf_tree_inclusion() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)
    for leaf, good_root in [(h, b""), (b"", h), (b"", b"")]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, 0, 1, [], good_root)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 4)])
def test_inclusion_index_outside_tree_is_rejected(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


# --- published consistency proofs -------------------------------------------------


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proof_is_generated_byte_for_byte(
    old: int, new: int, proof: list[bytes]
) -> None:
    assert consistency_proof(LEAVES[:new], old) == proof
    assert consistency_proof(LEAVES, old, new_size=new) == proof


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_published_consistency_proof_verifies(old: int, new: int, proof: list[bytes]) -> None:
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def _consistency_tampers(old: int, new: int, proof: list[bytes]):
    r1, r2 = ROOTS[old], ROOTS[new]
    yield "old - 1", (old - 1, new, r1, r2, proof)
    yield "old + 1", (old + 1, new, r1, r2, proof)
    yield "old ^ 2", (old ^ 2, new, r1, r2, proof)
    yield "new * 2", (old, new * 2, r1, r2, proof)
    yield "new // 2", (old, new // 2, r1, r2, proof)
    yield "wrong old root", (old, new, SOME_HASH, r2, proof)
    yield "wrong new root", (old, new, r1, SOME_HASH, proof)
    yield "swapped roots", (old, new, r2, r1, proof)
    yield "empty proof", (old, new, r1, r2, [])
    yield "trailing garbage", (old, new, r1, r2, [*proof, b""])
    yield "trailing old root", (old, new, r1, r2, [*proof, r1])
    yield "trailing new root", (old, new, r1, r2, [*proof, r2])
    yield "preceding garbage", (old, new, r1, r2, [b"", *proof])
    yield "preceding old root", (old, new, r1, r2, [r1, *proof])
    yield "preceding new root", (old, new, r1, r2, [r2, *proof])
    yield "preceding proof[0]", (old, new, r1, r2, [proof[0], *proof])
    yield "truncated", (old, new, r1, r2, proof[:-1])
    for i in range(len(proof)):
        yield f"flipped bit in proof[{i}]", (old, new, r1, r2, _flip(proof, i))


CONSISTENCY_TAMPERS = [
    pytest.param(args, id=f"{old}->{new}: {desc}")
    for old, new, proof in CONSISTENCY
    if proof
    for desc, args in _consistency_tampers(old, new, proof)
]


@pytest.mark.parametrize("args", CONSISTENCY_TAMPERS)
def test_tampered_consistency_proof_is_rejected(args: tuple) -> None:
    with pytest.raises(ProofError):
        verify_consistency(*args)


R1, R2 = leaf_hash(b"root one"), leaf_hash(b"root two")


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof"),
    [
        pytest.param(0, 0, EMPTY_ROOT, EMPTY_ROOT, [], id="empty to empty"),
        pytest.param(0, 5, EMPTY_ROOT, R2, [], id="empty to anything"),
        pytest.param(1, 1, R1, R1, [], id="same size same root"),
    ],
)
def test_trivially_consistent_trees(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    verify_consistency(old, new, old_root, new_root, proof)


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof"),
    [
        pytest.param(1, 1, R1, R2, [], id="same size different roots"),
        pytest.param(1, 0, R1, R2, [], id="shrinking tree"),
        pytest.param(2, 1, R1, R2, [], id="shrinking tree 2"),
        pytest.param(1, 2, R1, R2, [], id="growing tree empty proof"),
        pytest.param(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], id="empty trees non-empty proof"),
        pytest.param(0, 1, EMPTY_ROOT, R1, [EMPTY_ROOT], id="from empty non-empty proof"),
        pytest.param(1, 1, R1, R1, [EMPTY_ROOT], id="same tree non-empty proof"),
        pytest.param(0, 1, R1, R2, [], id="empty tree with a non-empty root"),
        pytest.param(1, 1, R1, b"short", [], id="short root"),
    ],
)
def test_edge_case_consistency_is_rejected(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, proof)


# --- generators refuse bad arguments ----------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: inclusion_proof(LEAVES, 8),
        lambda: inclusion_proof(LEAVES, -1),
        lambda: inclusion_proof([], 0),
        lambda: inclusion_proof(LEAVES, 3, tree_size=3),
        lambda: inclusion_proof(LEAVES, 0, tree_size=9),
        lambda: consistency_proof(LEAVES, 9),
        lambda: consistency_proof(LEAVES, -1),
        lambda: consistency_proof(LEAVES, 5, new_size=4),
        lambda: consistency_proof(LEAVES, 1, new_size=9),
    ],
)
def test_generators_refuse_out_of_range_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="outside"):
        call()


# --- compact range ------------------------------------------------------------------


def test_compact_range_resumes_from_stored_state() -> None:
    first = CompactRange()
    first.extend(LEAVES[:5])
    resumed = CompactRange(first.size, first.hashes)
    resumed.extend(LEAVES[5:])
    assert resumed.root() == ROOTS[8]
    assert first.root() == ROOTS[5]  # the stored state is not shared


@pytest.mark.parametrize(
    ("size", "hashes"),
    [(3, [SOME_HASH]), (1, []), (2, [SOME_HASH, SOME_HASH]), (1, [b"short"]), (-1, [])],
)
def test_compact_range_refuses_inconsistent_state(size: int, hashes: list[bytes]) -> None:
    with pytest.raises(ValueError):
        CompactRange(size, hashes)


def test_compact_range_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"not a hash")


# --- property test over random trees ----------------------------------------------


def test_random_trees_round_trip_against_rfc_reference() -> None:
    """For every size 1..70, every index and every old size: our proofs equal
    the RFC's recursive definitions, verify, and the compact range agrees."""
    rng = random.Random(9162)
    leaves = [leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(70)]
    frontier = CompactRange()
    roots = [EMPTY_ROOT]
    for n in range(1, 71):
        frontier.append(leaves[n - 1])
        tree = leaves[:n]
        roots.append(root(tree))
        assert roots[n] == ref_mth(tree) == frontier.root(), n
        for index in range(n):
            proof = inclusion_proof(tree, index)
            assert proof == ref_path(index, tree), (index, n)
            verify_inclusion(tree[index], index, n, proof, roots[n])
        for old in range(n + 1):
            proof = consistency_proof(tree, old)
            want = ref_subproof(old, tree, True) if 0 < old < n else []
            assert proof == want, (old, n)
            verify_consistency(old, n, roots[old], roots[n], proof)


def test_random_tampering_never_verifies() -> None:
    rng = random.Random(6962)
    leaves = [leaf_hash(rng.randbytes(8)) for _ in range(70)]
    for _ in range(300):
        n = rng.randrange(2, 71)
        index, old = rng.randrange(n), rng.randrange(1, n)
        tree = leaves[:n]
        proof = inclusion_proof(tree, index)
        with pytest.raises(ProofError):
            verify_inclusion(
                tree[index], index, n, _flip(proof, rng.randrange(len(proof))), root(tree)
            )
        cproof = consistency_proof(tree, old)
        with pytest.raises(ProofError):
            verify_consistency(
                old, n, root(tree[:old]), root(tree), _flip(cproof, rng.randrange(len(cproof)))
            )
