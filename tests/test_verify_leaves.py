"""The subscriber's lean batch verification (issue 17): the checks of ``verify_batch`` with the
frontier extended in one pass and only the leaf bytes and their openings kept."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.api import feeds
from node.feeds import merkle, projection
from node.feeds.leaf import build_leaf
from node.feeds.note import Checkpoint, sign_checkpoint
from node.feeds.verify import (
    FeedError,
    Tampered,
    VerifiedCheckpoint,
    verify_batch,
    verify_leaves,
)
from tests.feedutil import org_entry, person_entry
from tests.test_leaf_verify import KEY, ORIGIN, _batch, _frontier


def _log(n: int) -> tuple[list[bytes], list[feeds.FeedLeaf], VerifiedCheckpoint]:
    """n leaves, each delivered with its body and personal openings, and their checkpoint."""
    leaves, delivered = [], []
    for i in range(n):
        entry = person_entry(i) if i % 2 else org_entry(i)
        data, openings = build_leaf(
            ORIGIN, f"e{i}", feeds.EVENT_TYPE_ADD, entry, recorded_at_unix=i
        )
        leaves.append(data)
        delivered.append(feeds.FeedLeaf(entry=data, body=openings.body,
                                        disclosures=openings.fields))  # fmt: skip
    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(d) for d in leaves])
    note = sign_checkpoint(Checkpoint(ORIGIN, n, root), KEY)
    return leaves, delivered, VerifiedCheckpoint(Checkpoint(ORIGIN, n, root), note)


def _with_openings(
    batch: feeds.LeafBatch, delivered: list[feeds.FeedLeaf], start: int
) -> feeds.LeafBatch:
    out = copy.deepcopy(batch)
    for i, leaf in enumerate(out.leaves):
        leaf.CopyFrom(delivered[start + i])
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 70), st.data())
def test_the_same_verdict_and_tree_as_verify_batch(n: int, data: st.DataObject) -> None:
    leaves, delivered, cp = _log(n)
    cut = data.draw(st.integers(0, n - 1))
    lean, full = _frontier(leaves, cut), _frontier(leaves, cut)
    batch = _with_openings(_batch(leaves, cut, n), delivered, cut)
    got = verify_leaves(lean, cp, batch, ORIGIN, projection.openings_bytes)
    opened, _ = verify_batch(full, cp, batch, ORIGIN)
    assert (lean.size, lean.root(), lean.hashes) == (full.size, full.root(), full.hashes)
    assert got.leaves == leaves[cut:]
    assert [o.entry for o in got.opened] == [o.entry for o in opened]
    # Every leaf came with openings: each kept, as its FeedLeaf without the entry.
    assert [i for i, _ in got.openings] == list(range(cut, n))
    for i, kept in got.openings:
        back = feeds.FeedLeaf.FromString(kept)
        assert not back.entry and back.body == delivered[i].body
        assert list(back.disclosures) == list(delivered[i].disclosures)


def test_flipping_any_byte_is_refused_and_leaves_the_frontier_alone() -> None:
    leaves, delivered, cp = _log(3)
    batch = _with_openings(_batch(leaves, 0, 3), delivered, 0)
    for i in range(3):
        for part in ("entry", "salt"):
            raw = bytes(batch.leaves[i].entry if part == "entry" else batch.leaves[i].body.salt)
            for pos in range(len(raw)):
                tampered = copy.deepcopy(batch)
                flipped = bytearray(raw)
                flipped[pos] ^= 0x01
                if part == "entry":
                    tampered.leaves[i].entry = bytes(flipped)
                else:
                    tampered.leaves[i].body.salt = bytes(flipped)
                f = merkle.Frontier()
                with pytest.raises(FeedError):
                    verify_leaves(f, cp, tampered, ORIGIN, projection.openings_bytes)
                if part == "salt":  # refused before hashing: nothing appended
                    assert f.size == 0


def test_a_foreign_origin_a_gap_and_an_overrun_are_refused() -> None:
    leaves, _, cp = _log(5)
    with pytest.raises(FeedError, match="starts at"):
        verify_leaves(
            _frontier(leaves, 1), cp, _batch(leaves, 2, 5), ORIGIN, projection.openings_bytes
        )
    foreign = build_leaf("creditnode://x/y", "e9", feeds.EVENT_TYPE_ADD, org_entry(9),
                         recorded_at_unix=0)[0]  # fmt: skip
    batch = _batch(leaves, 0, 5)
    batch.leaves[4].entry = foreign
    with pytest.raises(Tampered, match="names origin"):
        verify_leaves(merkle.Frontier(), cp, batch, ORIGIN, projection.openings_bytes)
    with pytest.raises(FeedError, match="beyond the checkpoint"):
        small = VerifiedCheckpoint(Checkpoint(ORIGIN, 2, cp.root), cp.note)
        verify_leaves(
            merkle.Frontier(), small, _batch(leaves, 0, 5), ORIGIN, projection.openings_bytes
        )


@given(st.integers(0, 300), st.integers(0, 300))
def test_extend_is_append_in_one_pass(a: int, b: int) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(a + b)]
    one, two = merkle.Frontier(), merkle.Frontier()
    stored: dict[int, bytes] = {}
    for d in leaves:
        stored.update(one.append(merkle.leaf_hash(d)))
    two.extend(leaves[:a])
    two.extend(leaves[a:])
    assert (two.size, two.hashes, two.root()) == (one.size, one.hashes, one.root())
    assert dict(two.stored()) == {i: stored[i] for i in merkle.tree_hash_indexes(a + b)}
    assert merkle.Frontier.from_hashes(two.size, dict(two.stored())).root() == one.root()
