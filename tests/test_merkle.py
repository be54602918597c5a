"""RFC 6962 Merkle tree math: reference vectors, an independent naive model, properties."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.feeds.merkle import (
    HASH_SIZE,
    Frontier,
    ProofError,
    consistency_proof,
    consistency_proof_indexes,
    empty_root,
    inclusion_proof,
    inclusion_proof_indexes,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
    tree_hash,
    tree_hash_indexes,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency reference test data (google/certificate-transparency
# merkle_tree_test.cc, transparency-dev/merkle testonly): leaves, roots for sizes 1..8,
# audit paths (0-based leaf index) and consistency proofs.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# Hashes of the perfect subtrees of the 8-leaf tree, by level (the CT "node hashes").
CT_LEVELS = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

MAX_SIZE = 300


# --- an independent model: plain RFC 6962 recursion over the full leaf list ----------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """RFC 6962 section 2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [naive_root(leaves)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], complete), naive_root(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_root(leaves[:k])]


def naive_stored_hash_index(level: int, n: int) -> int:
    """tlog's StoredHashIndex, loop for loop."""
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


# --- helpers -------------------------------------------------------------------------------


class RecordingStore(Mapping[int, bytes]):
    """A hash store that remembers which indexes were read."""

    def __init__(self, hashes: Mapping[int, bytes]) -> None:
        self._hashes = dict(hashes)
        self.reads: set[int] = set()

    def __getitem__(self, index: int) -> bytes:
        self.reads.add(index)
        return self._hashes[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)


def make_leaves(size: int, salt: bytes = b"") -> list[bytes]:
    # Distinct leaves, so a proof for one leaf can never accidentally verify another.
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


def build(leaves: list[bytes]) -> tuple[Frontier, dict[int, bytes]]:
    frontier = Frontier()
    store: dict[int, bytes] = {}
    for h in leaves:
        for index, value in frontier.append(h):
            assert index not in store
            store[index] = value
    return frontier, store


def only(store: Mapping[int, bytes], indexes: list[int]) -> dict[int, bytes]:
    """Exactly the hashes a caller would fetch, so proofs cannot peek at anything else."""
    return {i: store[i] for i in indexes}


def log_bound(n: int) -> int:
    return 2 * max(n, 1).bit_length()


CT_LEAF_HASHES = [leaf_hash(d) for d in CT_LEAVES]
CT_FRONTIER, CT_STORE = build(CT_LEAF_HASHES)
BIG_LEAVES = make_leaves(MAX_SIZE, b"big")
BIG_FRONTIER, BIG_STORE = build(BIG_LEAVES)


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


# --- RFC 6962 reference vectors ------------------------------------------------------------


def test_empty_tree() -> None:
    assert empty_root().hex() == CT_EMPTY_ROOT
    assert Frontier().root().hex() == CT_EMPTY_ROOT
    assert root_from_leaf_hashes([]).hex() == CT_EMPTY_ROOT
    assert tree_hash(0, {}).hex() == CT_EMPTY_ROOT
    assert tree_hash_indexes(0) == []
    assert stored_hash_count(0) == 0


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"").hex() == CT_ROOTS[0]
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert leaf_hash(b"\x01ab") != node_hash(b"a", b"b")


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    frontier, store = build(CT_LEAF_HASHES[:size])
    assert frontier.size == size
    assert frontier.root().hex() == CT_ROOTS[size - 1]
    assert root_from_leaf_hashes(CT_LEAF_HASHES[:size]).hex() == CT_ROOTS[size - 1]
    assert tree_hash(size, only(store, tree_hash_indexes(size))).hex() == CT_ROOTS[size - 1]


def test_reference_stored_hashes() -> None:
    assert len(CT_STORE) == stored_hash_count(8) == 15
    for level, hashes in enumerate(CT_LEVELS):
        for n, expected in enumerate(hashes):
            assert CT_STORE[stored_hash_index(level, n)].hex() == expected


@pytest.mark.parametrize(("n", "t", "expected"), CT_INCLUSION)
def test_reference_inclusion_proofs(n: int, t: int, expected: list[str]) -> None:
    hashes = only(CT_STORE, inclusion_proof_indexes(t, n))
    proof = inclusion_proof(t, n, hashes)
    assert [p.hex() for p in proof] == expected
    root = bytes.fromhex(CT_ROOTS[t - 1])
    verify_inclusion(proof, t, root, n, CT_LEAF_HASHES[n])


@pytest.mark.parametrize(("t1", "t2", "expected"), CT_CONSISTENCY)
def test_reference_consistency_proofs(t1: int, t2: int, expected: list[str]) -> None:
    hashes = only(CT_STORE, consistency_proof_indexes(t1, t2))
    proof = consistency_proof(t1, t2, hashes)
    assert [p.hex() for p in proof] == expected
    root1, root2 = bytes.fromhex(CT_ROOTS[t1 - 1]), bytes.fromhex(CT_ROOTS[t2 - 1])
    verify_consistency(proof, t1, root1, t2, root2)


def test_reference_proofs_all_sizes() -> None:
    for t in range(1, 9):
        root = bytes.fromhex(CT_ROOTS[t - 1])
        for n in range(t):
            proof = inclusion_proof(t, n, CT_STORE)
            assert proof == naive_path(n, CT_LEAF_HASHES[:t])
            verify_inclusion(proof, t, root, n, CT_LEAF_HASHES[n])
        for t1 in range(1, t + 1):
            proof = consistency_proof(t1, t, CT_STORE)
            assert proof == naive_subproof(t1, CT_LEAF_HASHES[:t], True)
            verify_consistency(proof, t1, bytes.fromhex(CT_ROOTS[t1 - 1]), t, root)


# --- stored hash indexing -------------------------------------------------------------------


def test_stored_hash_layout_matches_tlog() -> None:
    # Record 0: leaf; record 1: leaf, (1,0); record 2: leaf; record 3: leaf, (1,1), (2,0)...
    layout = [split_stored_hash_index(i) for i in range(15)]
    assert layout == [
        (0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4),
        (0, 5), (1, 2), (0, 6), (0, 7), (1, 3), (2, 1), (3, 0),
    ]  # fmt: skip


def test_stored_hash_index_matches_naive_and_inverts() -> None:
    for level in range(8):
        for n in range(300):
            index = stored_hash_index(level, n)
            assert index == naive_stored_hash_index(level, n)
            assert split_stored_hash_index(index) == (level, n)
    for index in range(2000):
        assert stored_hash_index(*split_stored_hash_index(index)) == index


def test_stored_hash_count_matches_tlog_definition() -> None:
    for n in range(1, 600):
        # tlog: hashes up to the last leaf, plus the subtrees that leaf completes.
        trailing_ones = 0
        m = n - 1
        while m & 1:
            trailing_ones += 1
            m >>= 1
        assert stored_hash_count(n) == naive_stored_hash_index(0, n - 1) + 1 + trailing_ones


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_appends_store_exactly_the_counted_hashes(size: int) -> None:
    frontier = Frontier()
    emitted: list[int] = []
    for i, h in enumerate(BIG_LEAVES[:size]):
        pairs = frontier.append(h)
        assert pairs[0] == (stored_hash_index(0, i), h)
        # The leaf, then each parent it completes, one level up at a time.
        assert [split_stored_hash_index(index) for index, _ in pairs] == [
            (level, i >> level) for level in range(len(pairs))
        ]
        assert all(BIG_STORE[index] == value for index, value in pairs)
        emitted.extend(index for index, _ in pairs)
    assert emitted == list(range(stored_hash_count(size)))


def test_stored_interior_hashes_are_subtree_roots() -> None:
    for index in range(stored_hash_count(128)):
        level, n = split_stored_hash_index(index)
        lo = n << level
        assert BIG_STORE[index] == naive_root(BIG_LEAVES[lo : lo + (1 << level)])


# --- properties over random trees -----------------------------------------------------------

sizes = st.integers(min_value=1, max_value=MAX_SIZE)
salts = st.binary(max_size=8)


@given(sizes, salts, st.lists(st.integers(min_value=0, max_value=MAX_SIZE), max_size=5))
def test_frontier_root_matches_naive(size: int, salt: bytes, prefixes: list[int]) -> None:
    leaves = make_leaves(size, salt)
    frontier = Frontier()
    roots = [frontier.root()]
    for h in leaves:
        frontier.append(h)
        roots.append(frontier.root())
    assert frontier.root() == root_from_leaf_hashes(leaves) == naive_root(leaves)
    _, store = build(leaves)
    for p in (min(p, size) for p in prefixes):
        assert roots[p] == naive_root(leaves[:p])
        indexes = tree_hash_indexes(p)
        assert len(indexes) <= log_bound(p)
        assert all(i < stored_hash_count(p) for i in indexes)
        assert tree_hash(p, only(store, indexes)) == roots[p]


@settings(max_examples=40)
@given(sizes)
def test_every_inclusion_proof_verifies(t: int) -> None:
    root = tree_hash(t, BIG_STORE)
    for n in range(t):
        indexes = inclusion_proof_indexes(t, n)
        assert len(indexes) <= log_bound(t)
        assert len(set(indexes)) == len(indexes)
        assert all(i < stored_hash_count(t) for i in indexes)
        store = RecordingStore(only(BIG_STORE, indexes))
        proof = inclusion_proof(t, n, store)
        assert store.reads == set(indexes)
        verify_inclusion(proof, t, root, n, BIG_LEAVES[n])


@given(st.data())
def test_inclusion_proof_properties(data: st.DataObject) -> None:
    t = data.draw(sizes, label="t")
    n = data.draw(st.integers(min_value=0, max_value=t - 1), label="n")
    leaves = BIG_LEAVES[:t]
    root = BIG_FRONTIER.root() if t == MAX_SIZE else root_from_leaf_hashes(leaves)
    proof = inclusion_proof(t, n, only(BIG_STORE, inclusion_proof_indexes(t, n)))
    assert proof == naive_path(n, leaves)
    verify_inclusion(proof, t, root, n, leaves[n])

    with pytest.raises(ProofError):
        verify_inclusion(proof, t, flip(root), n, leaves[n])
    with pytest.raises(ProofError):
        verify_inclusion(proof, t, root, n, leaf_hash(b"not in the tree"))
    if t > 1:
        other = data.draw(st.integers(min_value=0, max_value=t - 1).filter(lambda i: i != n))
        with pytest.raises(ProofError):
            verify_inclusion(proof, t, root, other, leaves[n])
        with pytest.raises(ProofError):
            verify_inclusion(proof, t, root, n, leaves[other])
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="tampered")
        with pytest.raises(ProofError):
            verify_inclusion([*proof[:i], flip(proof[i]), *proof[i + 1 :]], t, root, n, leaves[n])
        with pytest.raises(ProofError):
            verify_inclusion(proof[:-1], t, root, n, leaves[n])
    with pytest.raises(ProofError):
        verify_inclusion([*proof, root], t, root, n, leaves[n])


@settings(max_examples=40)
@given(sizes)
def test_every_consistency_proof_verifies(t2: int) -> None:
    root2 = tree_hash(t2, BIG_STORE)
    for t1 in range(t2 + 1):
        indexes = consistency_proof_indexes(t1, t2)
        assert len(indexes) <= log_bound(t2)
        assert all(i < stored_hash_count(t2) for i in indexes)
        store = RecordingStore(only(BIG_STORE, indexes))
        proof = consistency_proof(t1, t2, store)
        assert store.reads == set(indexes)
        verify_consistency(proof, t1, tree_hash(t1, BIG_STORE), t2, root2)


@given(st.data())
def test_consistency_proof_properties(data: st.DataObject) -> None:
    t2 = data.draw(sizes, label="t2")
    t1 = data.draw(st.integers(min_value=1, max_value=t2), label="t1")
    leaves = BIG_LEAVES[:t2]
    root1, root2 = naive_root(leaves[:t1]), naive_root(leaves)
    proof = consistency_proof(t1, t2, only(BIG_STORE, consistency_proof_indexes(t1, t2)))
    assert proof == naive_subproof(t1, leaves, True)
    verify_consistency(proof, t1, root1, t2, root2)

    with pytest.raises(ProofError):
        verify_consistency(proof, t1, flip(root1), t2, root2)
    with pytest.raises(ProofError):
        verify_consistency(proof, t1, root1, t2, flip(root2))
    # A tree that agrees on the first t1 leaves but then diverges is not an extension.
    if t1 < t2:
        forked = [*leaves[:t1], *make_leaves(t2 - t1, b"fork")]
        with pytest.raises(ProofError):
            verify_consistency(proof, t1, root1, t2, naive_root(forked))
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="tampered")
        with pytest.raises(ProofError):
            verify_consistency([*proof[:i], flip(proof[i]), *proof[i + 1 :]], t1, root1, t2, root2)
        with pytest.raises(ProofError):
            verify_consistency(proof[:-1], t1, root1, t2, root2)
        with pytest.raises(ProofError):
            verify_consistency([*proof, root2], t1, root1, t2, root2)
        if t1 > 1:
            with pytest.raises(ProofError):
                verify_consistency(proof, t1 - 1, naive_root(leaves[: t1 - 1]), t2, root2)


@given(sizes, salts, st.data())
def test_frontier_rebuilt_from_storage_continues_identically(
    size: int, salt: bytes, data: st.DataObject
) -> None:
    leaves = make_leaves(size, salt)
    original = Frontier()
    pairs = [original.append(h) for h in leaves]
    store = {i: h for batch in pairs for i, h in batch}
    cut = data.draw(st.integers(min_value=0, max_value=size), label="cut")
    indexes = Frontier.indexes_for_size(cut)
    assert len(indexes) == cut.bit_count()
    rebuilt = Frontier.from_hashes(cut, only(store, indexes))
    assert rebuilt.size == cut
    assert rebuilt.root() == naive_root(leaves[:cut])
    for i, h in enumerate(leaves[cut:], start=cut):
        assert rebuilt.append(h) == pairs[i]
    assert rebuilt.root() == original.root()
    assert rebuilt.hashes == original.hashes


@given(sizes, salts, st.integers(min_value=0, max_value=40))
def test_a_frontier_copy_goes_on_alone(size: int, salt: bytes, more: int) -> None:
    leaves = make_leaves(size + more, salt)
    original = Frontier()
    for h in leaves[:size]:
        original.append(h)
    copied = original.copy()
    assert (copied.size, copied.hashes, copied.root()) == (size, original.hashes, original.root())
    for h in leaves[size:]:
        copied.append(h)
    assert copied.root() == naive_root(leaves)
    assert original.size == size and original.root() == naive_root(leaves[:size])


# --- edge cases and argument checking -------------------------------------------------------


def test_single_leaf_tree() -> None:
    h = leaf_hash(b"only")
    assert inclusion_proof_indexes(1, 0) == []
    assert inclusion_proof(1, 0, {}) == []
    verify_inclusion([], 1, h, 0, h)
    with pytest.raises(ProofError):
        verify_inclusion([], 1, h, 0, leaf_hash(b"other"))


def test_trivial_consistency() -> None:
    root = BIG_FRONTIER.root()
    assert consistency_proof_indexes(0, MAX_SIZE) == []
    assert consistency_proof(0, MAX_SIZE, {}) == []
    assert consistency_proof(MAX_SIZE, MAX_SIZE, {}) == []
    assert consistency_proof(0, 0, {}) == []
    verify_consistency([], 0, empty_root(), MAX_SIZE, root)
    verify_consistency([], MAX_SIZE, root, MAX_SIZE, root)
    verify_consistency([], 0, empty_root(), 0, empty_root())
    with pytest.raises(ProofError, match="empty"):
        verify_consistency([root], 0, empty_root(), MAX_SIZE, root)
    with pytest.raises(ProofError):
        verify_consistency([], 0, flip(empty_root()), MAX_SIZE, root)
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency([], MAX_SIZE, root, MAX_SIZE, flip(root))
    with pytest.raises(ProofError):
        verify_consistency([root], MAX_SIZE, root, MAX_SIZE, root)
    with pytest.raises(ProofError, match="empty"):
        verify_consistency([], 3, tree_hash(3, BIG_STORE), MAX_SIZE, root)


@pytest.mark.parametrize(("t", "n"), [(0, 0), (5, 5), (5, 6), (-1, 0), (5, -1)])
def test_invalid_inclusion_arguments(t: int, n: int) -> None:
    with pytest.raises(ValueError):
        inclusion_proof_indexes(t, n)
    with pytest.raises(ValueError):
        inclusion_proof(t, n, BIG_STORE)
    with pytest.raises(ProofError):
        verify_inclusion([], t, empty_root(), n, leaf_hash(b""))


@pytest.mark.parametrize(("t1", "t2"), [(6, 5), (-1, 5), (1, 0)])
def test_invalid_consistency_arguments(t1: int, t2: int) -> None:
    with pytest.raises(ValueError):
        consistency_proof_indexes(t1, t2)
    with pytest.raises(ValueError):
        consistency_proof(t1, t2, BIG_STORE)
    with pytest.raises(ProofError):
        verify_consistency([], t1, empty_root(), t2, empty_root())


def test_invalid_index_arguments() -> None:
    for call in (
        lambda: stored_hash_index(-1, 0),
        lambda: stored_hash_index(0, -1),
        lambda: split_stored_hash_index(-1),
        lambda: stored_hash_count(-1),
        lambda: tree_hash_indexes(-1),
        lambda: tree_hash(-1, {}),
        lambda: Frontier.from_hashes(-1, {}),
    ):
        with pytest.raises(ValueError):
            call()


def test_bad_hash_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        Frontier().append(b"short")
    with pytest.raises(ValueError, match="not provided"):
        tree_hash(5, {})
    with pytest.raises(ValueError, match="32 bytes"):
        tree_hash(1, {0: b"short"})
    root = tree_hash(4, BIG_STORE)
    proof = inclusion_proof(4, 0, BIG_STORE)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion([*proof[:-1], proof[-1] + b"\x00"], 4, root, 0, BIG_LEAVES[0])
    with pytest.raises(ProofError):
        verify_inclusion(proof, 4, root[:-1], 0, BIG_LEAVES[0])
    assert len(root) == HASH_SIZE
