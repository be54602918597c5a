"""What a subscriber accepts from a peer's stream (pure): signed checkpoints that extend the last
one it verified, and batches of leaves whose hashes lead exactly to that checkpoint.

Everything is checked on the bytes received; nothing is re-serialised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.api import feeds
from node.feeds import merkle
from node.feeds.leaf import LeafError, OpenedLeaf, open_leaf
from node.feeds.note import Checkpoint, NoteError, Verifiers, open_checkpoint


class FeedError(ValueError):
    """The stream carried something that does not verify; nothing of it is applied."""


class ForkError(FeedError):
    """Two validly signed checkpoints that cannot both be true of one append-only log."""

    def __init__(self, kind: str, detail: str, earlier: bytes, later: bytes, proof: bytes) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.earlier = earlier
        self.later = later
        self.proof = proof


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    note: bytes

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def verify_checkpoint(
    signed: feeds.SignedCheckpoint,
    key: Verifiers,
    origin: str,
    previous: VerifiedCheckpoint | None,
) -> VerifiedCheckpoint:
    """Accept *signed* only if it is signed by *key* (or by one of a set of keys: the origin's
    feed keys valid now) for *origin* and extends *previous*."""
    note = bytes(signed.note)
    try:
        cp = open_checkpoint(note, key, origin=origin)
    except NoteError as exc:
        raise FeedError(f"checkpoint refused: {exc}") from None
    new = VerifiedCheckpoint(cp, note)
    if previous is None:
        return new
    proof = b"".join(signed.consistency_proof)
    if cp.size < previous.size:
        raise ForkError(
            "rollback",
            f"signed size {cp.size} after verified size {previous.size}",
            previous.note,
            note,
            proof,
        )
    if cp.size == previous.size:
        if cp.root != previous.root:
            raise ForkError(
                "equivocation", f"two roots signed for size {cp.size}", previous.note, note, proof
            )
        return new
    if signed.proof_from_size != previous.size:
        raise FeedError(
            f"consistency proof starts at {signed.proof_from_size}, "
            f"not at the verified size {previous.size}"
        )
    try:
        merkle.verify_consistency(
            list(signed.consistency_proof), previous.size, previous.root, cp.size, cp.root
        )
    except merkle.ProofError as exc:
        raise ForkError(
            "inconsistent",
            f"size {cp.size} does not extend size {previous.size}: {exc}",
            previous.note,
            note,
            proof,
        ) from None
    return new


def verify_batch(
    frontier: merkle.Frontier,
    checkpoint: VerifiedCheckpoint,
    batch: feeds.LeafBatch,
    origin: str,
) -> tuple[list[OpenedLeaf], list[tuple[int, bytes]]]:
    """Open every leaf, extend *frontier* (in place) and prove the result leads to *checkpoint*.

    Returns the opened leaves and the stored hashes the append produced.
    """
    if batch.start != frontier.size:
        raise FeedError(f"batch starts at {batch.start}, expected {frontier.size}")
    end = batch.start + len(batch.leaves)
    if not batch.leaves or end > checkpoint.size:
        raise FeedError(f"batch [{batch.start}, {end}) is empty or beyond the checkpoint")
    opened: list[OpenedLeaf] = []
    hashes: list[tuple[int, bytes]] = []
    for i, leaf in enumerate(batch.leaves):
        try:
            body = leaf.body if leaf.HasField("body") else None
            o = open_leaf(bytes(leaf.entry), list(leaf.disclosures), body)
        except LeafError as exc:
            raise FeedError(f"leaf {batch.start + i}: {exc}") from None
        if o.leaf.origin != origin:
            raise FeedError(f"leaf {batch.start + i} names origin {o.leaf.origin!r}")
        opened.append(o)
        hashes.extend(frontier.append(merkle.leaf_hash(bytes(leaf.entry))))
    proof: Sequence[bytes] = list(batch.proof_to_checkpoint)
    try:
        merkle.verify_consistency(proof, end, frontier.root(), checkpoint.size, checkpoint.root)
    except merkle.ProofError as exc:
        raise FeedError(
            f"leaves [{batch.start}, {end}) do not lead to the checkpoint: {exc}"
        ) from None
    return opened, hashes
