"""RFC 6962 / RFC 9162 Merkle tree math for the append-only feed log.

Modelled on Go's ``golang.org/x/mod/sumdb/tlog``: every leaf hash and every completed
perfect-subtree hash is stored once, at a "stored hash index", in append order. Proofs are
two-phase so async storage code can fetch exactly the hashes it needs first::

    from node.feeds.merkle import (
        Frontier, inclusion_proof, inclusion_proof_indexes, leaf_hash, verify_inclusion,
    )

    store: dict[int, bytes] = {}
    frontier = Frontier()
    for record in (b"a", b"b", b"c"):
        store.update(frontier.append(leaf_hash(record)))
    root = frontier.root()
    needed = {i: store[i] for i in inclusion_proof_indexes(3, 1)}
    proof = inclusion_proof(3, 1, needed)
    verify_inclusion(proof, 3, root, 1, leaf_hash(b"b"))
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

__all__ = [
    "HASH_SIZE",
    "Frontier",
    "ProofError",
    "consistency_proof",
    "consistency_proof_indexes",
    "empty_root",
    "inclusion_proof",
    "inclusion_proof_indexes",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "tree_hash",
    "tree_hash_indexes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

_Range = tuple[int, int]  # [lo, hi) leaf range of a subtree


class ProofError(ValueError):
    """An inclusion or consistency proof does not verify."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    """Root of the empty tree: SHA-256 of the empty string."""
    return hashlib.sha256(b"").digest()


# --- stored hash indexing (same numbering as tlog) ---------------------------------------


def stored_hash_index(level: int, n: int) -> int:
    """Storage index of the ``n``-th hash at ``level`` (level 0 = leaves)."""
    if level < 0 or n < 0:
        raise ValueError("level and n must be non-negative")
    # Level L's n-th hash is stored right after level 0's hash number
    # (n << L) | (2^L - 1), the last leaf it covers; at level 0, record m is preceded by
    # m + m/2 + m/4 + ... = 2m - popcount(m) hashes.
    m = (n << level) | ((1 << level) - 1)
    return 2 * m - m.bit_count() + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Inverse of :func:`stored_hash_index`: ``(level, n)``."""
    if index < 0:
        raise ValueError("index must be non-negative")
    # stored_hash_index(0, n) <= 2n, so the record that stored `index` is at least
    # index // 2 and at most log2(index) further on.
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n stores its leaf plus one hash per subtree it completes.
        nxt = index_n + 1 + _trailing_zeros(n + 1)
        if nxt > index:
            break
        n += 1
        index_n = nxt
    level = index - index_n
    return level, n >> level


def stored_hash_count(n: int) -> int:
    """Number of hashes stored for a tree of ``n`` records."""
    if n < 0:
        raise ValueError("tree size must be non-negative")
    # n leaves plus one interior hash per completed perfect subtree: 2n - popcount(n).
    return 2 * n - n.bit_count()


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def _split(size: int) -> int:
    """Largest power of two strictly smaller than ``size`` (RFC 6962's k), size >= 2."""
    return 1 << ((size - 1).bit_length() - 1)


def _perfect_ranges(lo: int, hi: int) -> list[_Range]:
    """Decompose [lo, hi) into perfect subtrees, largest (leftmost) first."""
    out: list[_Range] = []
    while lo < hi:
        k = 1 << ((hi - lo).bit_length() - 1)
        # Callers only pass ranges whose lo is aligned to every piece.
        out.append((lo, lo + k))
        lo += k
    return out


def _perfect_index(lo: int, hi: int) -> int:
    level = (hi - lo).bit_length() - 1
    return stored_hash_index(level, lo >> level)


def _range_indexes(ranges: Sequence[_Range]) -> list[int]:
    return [
        _perfect_index(p_lo, p_hi) for lo, hi in ranges for p_lo, p_hi in _perfect_ranges(lo, hi)
    ]


def _read(hashes: Mapping[int, bytes], index: int) -> bytes:
    try:
        h = hashes[index]
    except KeyError:
        raise ValueError(f"stored hash {index} was not provided") from None
    if len(h) != HASH_SIZE:
        raise ValueError(f"stored hash {index} is not {HASH_SIZE} bytes")
    return h


def _range_hash(lo: int, hi: int, hashes: Mapping[int, bytes]) -> bytes:
    """MTH of [lo, hi) folded from its perfect-subtree hashes."""
    parts = [_read(hashes, _perfect_index(a, b)) for a, b in _perfect_ranges(lo, hi)]
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")


# --- appending ---------------------------------------------------------------------------


class Frontier:
    """The right edge of the tree: one hash per perfect subtree in the binary digits of size."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # left to right, i.e. largest subtree first

    @property
    def size(self) -> int:
        return self._size

    def copy(self) -> Frontier:
        """An independent copy (the hashes are immutable bytes: the list alone is copied)."""
        other = Frontier()
        other._size = self._size
        other._hashes = list(self._hashes)
        return other

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect-subtree hashes, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, bytes]]:
        """Add a leaf; return the (stored index, hash) pairs that this append stores."""
        _check_hash(leaf_hash, "leaf hash")
        n = self._size
        # A record's hashes are stored consecutively: its leaf, then each completed parent.
        base = stored_hash_index(0, n)
        stored = [(base, leaf_hash)]
        h = leaf_hash
        level = 0
        # Each trailing 1 bit of n is a same-sized subtree on the edge that now completes.
        while (n >> level) & 1:
            h = node_hash(self._hashes.pop(), h)
            level += 1
            stored.append((base + level, h))
        self._hashes.append(h)
        self._size = n + 1
        return stored

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append the leaves *leaves* (their bytes, hashed here) in one pass: each completed
        subtree is hashed once, on a local stack, and nothing per leaf is kept (a mirror
        stores only the frontier)."""
        sha = hashlib.sha256
        stack = self._hashes
        n = self._size
        for data in leaves:
            h = sha(b"\x00" + data).digest()
            k = n
            while k & 1:  # each trailing 1 bit: a same-sized subtree on the edge completes
                h = sha(b"\x01" + stack.pop() + h).digest()
                k >>= 1
            stack.append(h)
            n += 1
        self._size = n

    def stored(self) -> list[tuple[int, bytes]]:
        """The frontier as (stored index, hash) pairs: what :meth:`from_hashes` reads."""
        return list(zip(tree_hash_indexes(self._size), self._hashes, strict=True))

    def root(self) -> bytes:
        """Tree hash at the current size."""
        if not self._hashes:
            return empty_root()
        h = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            h = node_hash(left, h)
        return h

    @staticmethod
    def indexes_for_size(n: int) -> list[int]:
        """Stored indexes needed by :meth:`from_hashes` for size ``n``."""
        return tree_hash_indexes(n)

    @classmethod
    def from_hashes(cls, n: int, hashes: Mapping[int, bytes]) -> Frontier:
        """Rebuild the frontier of a tree of ``n`` records from stored hashes."""
        if n < 0:
            raise ValueError("tree size must be non-negative")
        frontier = cls()
        frontier._hashes = [_read(hashes, i) for i in tree_hash_indexes(n)]
        frontier._size = n
        return frontier


# --- tree hash and proofs ----------------------------------------------------------------


def tree_hash_indexes(n: int) -> list[int]:
    """Stored indexes needed by :func:`tree_hash` for size ``n``."""
    if n < 0:
        raise ValueError("tree size must be non-negative")
    return _range_indexes([(0, n)]) if n else []


def tree_hash(n: int, hashes: Mapping[int, bytes]) -> bytes:
    """Root of the tree of ``n`` records, from stored hashes."""
    if n < 0:
        raise ValueError("tree size must be non-negative")
    return _range_hash(0, n, hashes) if n else empty_root()


def _inclusion_ranges(t: int, n: int) -> list[_Range]:
    if t < 0 or n < 0 or n >= t:
        raise ValueError(f"invalid inclusion proof request: record {n} in tree of size {t}")
    # Walk down RFC 6962 PATH(n, D[0:t]) collecting the sibling not taken at each level.
    ranges: list[_Range] = []
    lo, hi = 0, t
    while hi - lo > 1:
        k = lo + _split(hi - lo)
        if n < k:
            ranges.append((k, hi))
            hi = k
        else:
            ranges.append((lo, k))
            lo = k
    ranges.reverse()  # proofs list siblings from the leaf up
    return ranges


def inclusion_proof_indexes(t: int, n: int) -> list[int]:
    """Stored indexes needed by :func:`inclusion_proof`."""
    return _range_indexes(_inclusion_ranges(t, n))


def inclusion_proof(t: int, n: int, hashes: Mapping[int, bytes]) -> list[bytes]:
    """RFC 6962 audit path for record ``n`` in the tree of size ``t``."""
    return [_range_hash(lo, hi, hashes) for lo, hi in _inclusion_ranges(t, n)]


def _consistency_ranges(t1: int, t2: int) -> list[_Range]:
    if t1 < 0 or t1 > t2:
        raise ValueError(f"invalid consistency proof request: size {t1} to size {t2}")
    if t1 == 0 or t1 == t2:
        return []
    # RFC 6962 SUBPROOF(t1, D[0:t2], true), walked top-down.
    ranges: list[_Range] = []
    lo, hi = 0, t2
    while t1 != hi:
        k = lo + _split(hi - lo)
        if t1 <= k:
            ranges.append((k, hi))
            hi = k
        else:
            ranges.append((lo, k))
            lo = k
    if lo != 0:
        # The verifier knows MTH(D[0:t1]) already, but not a subtree of it.
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def consistency_proof_indexes(t1: int, t2: int) -> list[int]:
    """Stored indexes needed by :func:`consistency_proof`."""
    return _range_indexes(_consistency_ranges(t1, t2))


def consistency_proof(t1: int, t2: int, hashes: Mapping[int, bytes]) -> list[bytes]:
    """RFC 6962 / 9162 consistency proof from size ``t1`` to size ``t2``."""
    return [_range_hash(lo, hi, hashes) for lo, hi in _consistency_ranges(t1, t2)]


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Plain recursive MTH over all leaf hashes (O(n); for tests and small callers)."""
    if not leaf_hashes:
        return empty_root()
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = _split(len(leaf_hashes))
    return node_hash(root_from_leaf_hashes(leaf_hashes[:k]), root_from_leaf_hashes(leaf_hashes[k:]))


# --- verification (RFC 9162 section 2.1.3.2 and 2.1.4.2) ---------------------------------


def _check_proof_hashes(proof: Sequence[bytes], what: str) -> None:
    for h in proof:
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} proof contains a hash that is not {HASH_SIZE} bytes")


def verify_inclusion(proof: Sequence[bytes], t: int, root: bytes, n: int, leaf_hash: bytes) -> None:
    """Check that ``leaf_hash`` is record ``n`` of the tree of size ``t`` with ``root``."""
    if n < 0 or t < 0 or n >= t:
        raise ProofError(f"record {n} is not in a tree of size {t}")
    if len(root) != HASH_SIZE or len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"root and leaf hash must be {HASH_SIZE} bytes")
    _check_proof_hashes(proof, "inclusion")
    fn, sn = n, t - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError(f"inclusion proof for record {n} does not match the root of size {t}")


def verify_consistency(
    proof: Sequence[bytes], t1: int, root1: bytes, t2: int, root2: bytes
) -> None:
    """Check that the tree of size ``t2`` with ``root2`` extends ``t1`` with ``root1``."""
    if t1 < 0 or t1 > t2:
        raise ProofError(f"size {t1} cannot be a prefix of size {t2}")
    if len(root1) != HASH_SIZE or len(root2) != HASH_SIZE:
        raise ProofError(f"roots must be {HASH_SIZE} bytes")
    _check_proof_hashes(proof, "consistency")
    if t1 == t2:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError(f"different roots for the same size {t1}")
        return
    if t1 == 0:
        # Every tree extends the empty tree, whose root is fixed.
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        if root1 != empty_root():
            raise ProofError("root of size 0 is not the empty-tree hash")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if t1 & (t1 - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root is the first node.
        path.insert(0, root1)
    fn, sn = t1 - 1, t2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
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
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError(f"consistency proof does not match the root of size {t1}")
    if sr != root2:
        raise ProofError(f"consistency proof does not match the root of size {t2}")
