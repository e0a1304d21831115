"""Merkle tree math for the custody ledger, exactly as RFC 9162 §2.1 defines it.

The ledger is an append-only log whose leaves are canonical JSON events. Its
root hash, inclusion proofs and consistency proofs must be byte-for-byte what
any RFC 6962/9162 implementation computes, so an auditor can check our proofs
with tools we did not write. This module is that math and nothing else: pure
functions over leaf hashes, no I/O, standard library only (the offline verifier
imports it).

- ``leaf_hash(data)``  = SHA-256(0x00 || data)
- ``node_hash(l, r)``  = SHA-256(0x01 || l || r)
- ``root(leaves)``     = MTH over a list of leaf hashes (empty tree: SHA-256(""))
- ``inclusion_proof`` / ``verify_inclusion``      (RFC 9162 §2.1.3)
- ``consistency_proof`` / ``verify_consistency``  (RFC 9162 §2.1.4)
- ``CompactRange``: the O(log n) "frontier" the sequencer keeps, so appending a
  leaf and producing the next checkpoint root never rehashes the whole log.

Proof generation works over a sequence of leaf hashes and reads each one at
most once per proof (O(n)); verification is O(log n) and is what auditors run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
"""Every hash in the tree is a SHA-256 digest."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof that does not verify; the message says which check failed."""


class RootMismatchError(ProofError):
    """A well-formed proof that leads to a different root than the trusted one.

    Kept apart from a malformed proof because it means something else to an
    auditor: the proof has the right shape, but the leaf (or the tree) is not
    the one the checkpoint commits to.
    """

    def __init__(self, what: str, expected: bytes, computed: bytes) -> None:
        self.expected = expected
        self.computed = computed
        super().__init__(f"{what}: computed {computed.hex()}, expected {expected.hex()}")


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf. The 0x00 prefix keeps a leaf from posing as a node."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node from its two children's hashes."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n`` > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {size}")


class CompactRange:
    """The roots of the perfect subtrees that cover leaves ``[0, size)``.

    A log of ``size`` leaves is, left to right, one perfect subtree per set bit
    of ``size`` (largest first). Keeping only those roots - at most 64 hashes -
    is enough to append the next leaf in O(log n) and to compute the tree root
    in O(log n), which is what the sequencer needs for every checkpoint. The
    state is just ``(size, hashes)``, so it can be stored and restored.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """Start empty, or resume from a stored ``(size, hashes)`` pair."""
        hashes = [bytes(h) for h in hashes]
        if size < 0:
            raise ValueError(f"compact range size must be >= 0, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} holds {size.bit_count()} hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"compact range hash {i} is {len(h)} bytes, want {HASH_SIZE}")
        self._size = size
        self._hashes = hashes

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect-subtree roots, largest (leftmost) first: the state to persist."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash; merges as many equal-sized subtrees as it completes."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        node = bytes(leaf)
        size = self._size
        # Each trailing 1 bit of size is a right-most subtree of the same height
        # as the one we carry: merge them, like a binary carry.
        while size & 1:
            node = node_hash(self._hashes.pop(), node)
            size >>= 1
        self._hashes.append(node)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the covered leaves: fold the subtree roots from the right."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            result = node_hash(left, result)
        return result

    def copy(self) -> CompactRange:
        """An independent copy, e.g. to compute a tentative root."""
        return CompactRange(self._size, self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) in one pass with O(log n) memory (no slice copy)."""
    frontier = CompactRange()
    for i in range(lo, hi):
        frontier.append(leaves[i])
    return frontier.root()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1)."""
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(
    leaf_hashes: Sequence[bytes], index: int, *, tree_size: int | None = None
) -> list[bytes]:
    """The audit path PATH(index, D[0:tree_size]) of RFC 9162 §2.1.3.1.

    ``tree_size`` defaults to ``len(leaf_hashes)``; pass it to prove against an
    older checkpoint without copying a prefix of a long list. The path is
    ordered from the leaf's sibling up to the child of the root. Each sibling
    subtree is hashed once, so the whole proof costs O(tree_size) hashes and
    O(log n) memory.
    """
    size = len(leaf_hashes) if tree_size is None else tree_size
    if not 0 <= size <= len(leaf_hashes):
        raise ValueError(f"tree size {size} is outside 0..{len(leaf_hashes)}")
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            top_down.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def consistency_proof(
    leaf_hashes: Sequence[bytes], old_size: int, *, new_size: int | None = None
) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) = SUBPROOF(m, D[n], true), RFC 9162 §2.1.4.1.

    ``new_size`` defaults to ``len(leaf_hashes)``. A proof from the empty tree or
    to the same size is empty. Ordered innermost first, as the RFC writes it.
    """
    n = len(leaf_hashes) if new_size is None else new_size
    if not 0 <= n <= len(leaf_hashes):
        raise ValueError(f"new size {n} is outside 0..{len(leaf_hashes)}")
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    siblings: list[bytes] = []
    lo, hi, m = 0, n, old_size
    complete = True  # RFC's b: is D[lo:lo+m] a subtree the verifier already has?
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            siblings.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            siblings.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo += k
            m -= k
            complete = False
    proof = [] if complete else [_subtree_root(leaf_hashes, lo, hi)]
    proof.extend(reversed(siblings))
    return proof


def _inclusion_proof_length(index: int, size: int) -> int:
    """Hashes in an inclusion proof: levels below the split from the right
    border, plus one per left-sibling on the border path."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    """Hashes in a consistency proof for ``0 < old_size < new_size``."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zeros
    fn, sn = (old_size - 1) >> shift, (new_size - 1) >> shift
    inner = (fn ^ sn).bit_length()
    # An old tree that is one perfect subtree (fn == 0) is not sent: the verifier has it.
    return inner + (fn >> inner).bit_count() + (1 if fn else 0)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is at ``index`` of the tree with ``root`` (RFC 9162 §2.1.3.2).

    Returns ``None`` on success; raises :class:`ProofError` naming the failed
    check otherwise (:class:`RootMismatchError` if the proof is well formed but
    leads elsewhere).
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    want = _inclusion_proof_length(index, tree_size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof for leaf {index} of {tree_size} must have {want} hashes, "
            f"got {len(proof)}"
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash {i}")
    fn, sn = index, tree_size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:  # a last node without a sibling moves up unchanged
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise RootMismatchError(
            f"inclusion proof for leaf {index} of {tree_size} gives another root", root, r
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``new_root`` extends the tree ``old_root`` (RFC 9162 §2.1.4.2).

    Returns ``None`` on success; raises :class:`ProofError` naming the failed
    check otherwise. Stricter than the RFC at the edges: from size 0 the old
    root must be the empty-tree hash, and equal sizes need equal roots and an
    empty proof.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is not within 0..new size {new_size}")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise ProofError(
                f"consistency proof from {old_size} to {new_size} must be empty, "
                f"got {len(proof)} hashes"
            )
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise RootMismatchError("old root of an empty tree", EMPTY_ROOT, old_root)
        if old_size == new_size and old_root != new_root:
            raise RootMismatchError(f"roots of two trees of size {new_size}", old_root, new_root)
        return
    want = _consistency_proof_length(old_size, new_size)
    if len(proof) != want:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} must have {want} hashes, "
            f"got {len(proof)}"
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof hash {i}")

    path = [bytes(p) for p in proof]
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the path
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if fr != old_root:
        raise RootMismatchError(
            f"consistency proof from {old_size} to {new_size} gives another old root",
            old_root,
            fr,
        )
    if sr != new_root:
        raise RootMismatchError(
            f"consistency proof from {old_size} to {new_size} gives another new root",
            new_root,
            sr,
        )
