"""What a subscriber accepts from a peer's stream (pure): signed checkpoints that extend the last
one it verified, and batches of leaves whose hashes lead exactly to that checkpoint.

Whose signature a checkpoint needs, for an origin whose root is held here: the note is opened
with every feed key that root lists (whatever its window), and at least one key whose
signature verified must have been valid *at the checkpoint's signed time* (its ``time`` line)
in that root (:meth:`TrustedRoot.key_valid`). So history signed inside an old key's window
still verifies after a rotation, and nothing signed at or after a key's revocation does. A
signed time more than :data:`MAX_CLOCK_SKEW` ahead of the verifier's clock is refused, and so
is one earlier than the previous verified checkpoint's (a revoked key cannot backdate below
what was already seen). A checkpoint without a ``time`` line (signed before they existed) is
judged at receipt. For an origin enrolled without a root, its enrolled feed key decides.

Everything is checked on the bytes received; nothing is re-serialised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keys import VerifyingKey
from node.api import feeds
from node.feeds import merkle
from node.feeds.leaf import LeafError, OpenedLeaf, open_leaf
from node.feeds.note import (
    MAX_CLOCK_SKEW,
    Checkpoint,
    NoteError,
    Verifiers,
    checkpoint_time,
    open_checkpoint_by,
)
from node.keys.roles import FEED, ed25519_public, format_time, tuf_key
from node.keys.trusted import TrustedRoot

_KEYID_CHARS = 16  # of a key id in a refusal


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


class CheckpointRefused(FeedError):
    """A checkpoint that is not the origin's: a malformed note, a signature by no key the
    origin holds, by a key not valid at the signed time, or a signed time earlier than one
    already verified. Verification failed (the subscriber marks the feed ``tampered`` and
    keeps the note); a time merely ahead of this node's clock is a plain FeedError (stalled).
    *note*: the note received."""

    def __init__(self, detail: str, note: bytes = b"") -> None:
        super().__init__(detail)
        self.note = note


class Tampered(FeedError):
    """What was received, or what this node stored of the feed, does not verify against a
    validly signed checkpoint: a leaf that fails its commitment or does not lead to the
    checkpoint (*index*, *leaf*: its bytes), or stored hashes that do not give the verified
    root (*stored*). The subscriber keeps evidence and marks the feed ``tampered``."""

    def __init__(self, detail: str, *, index: int | None, leaf: bytes = b"", stored: bool = False):
        super().__init__(detail)
        self.index = index
        self.leaf = leaf
        self.stored = stored


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

    @property
    def signed_at(self) -> dt.datetime | None:
        """The signed time, or None without one. A checkpoint kept before time lines were
        checked may carry an unreadable one: it bounds nothing (None) rather than stalling
        the feed forever on what was already accepted."""
        try:
            return checkpoint_time(self.checkpoint)
        except NoteError:
            return None


def _key_id(key: VerifyingKey, root: TrustedRoot | None) -> str:
    keyid = root.keyid_of(key) if root is not None else None
    return (keyid or tuf_key(key).keyid)[:_KEYID_CHARS]


def _key_ids(keys: Sequence[VerifyingKey], root: TrustedRoot | None) -> str:
    return ", ".join(_key_id(k, root) for k in keys)


def _windows(root: TrustedRoot, key: VerifyingKey) -> str:
    found = [
        o.window.describe() + (" (revoked)" if o.window.revoked_at is not None else "")
        for o in root.entries(FEED, key)
    ]
    return "; ".join(found) or "none"


def root_feed_keys(root: TrustedRoot, origin: str) -> list[VerifyingKey]:
    """Every feed key *root* lists, whatever its window: the keys a checkpoint is opened
    with before its signing time is known."""
    return [VerifyingKey(origin, ed25519_public(o.key)) for o in root.content.online_keys(FEED)]


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint whose signature and signers' validity passed, not yet its history."""

    checkpoint: Checkpoint
    signed_at: dt.datetime | None  # None: a note signed before time lines existed
    signers: str  # the key ids whose signatures verified, for messages


def open_signed_checkpoint(
    note: bytes, key: Verifiers | TrustedRoot, origin: str, *, now: dt.datetime
) -> OpenedCheckpoint:
    """Open *note* and judge its signers at its signed time (see the module docstring).
    Raises FeedError."""
    root = key if isinstance(key, TrustedRoot) else None
    try:
        if root is not None:
            keys = root_feed_keys(root, origin)
            if not keys:
                raise CheckpointRefused(
                    f"checkpoint refused: root v{root.version} lists no feed key", note
                )
            cp, signers = open_checkpoint_by(note, keys, origin=origin)
        else:
            assert not isinstance(key, TrustedRoot)
            cp, signers = open_checkpoint_by(note, key, origin=origin)
        at = checkpoint_time(cp)
    except NoteError as exc:
        raise CheckpointRefused(f"checkpoint refused: {exc}", note) from None
    if at is not None and at > now + MAX_CLOCK_SKEW:
        raise FeedError(
            f"checkpoint refused: signed at {format_time(at)} by key {_key_ids(signers, root)}, "
            f"more than {MAX_CLOCK_SKEW.total_seconds() / 60:g} minutes ahead of this node's "
            f"clock ({format_time(now)})"
        )
    if root is not None:
        judged = now if at is None else at
        if not any(root.key_valid(FEED, k, judged) for k in signers):
            when = (
                f"at receipt ({format_time(now)}, the note has no signed time)"
                if at is None
                else f"at its signed time {format_time(at)}"
            )
            details = ", ".join(f"{_key_id(k, root)} (window {_windows(root, k)})" for k in signers)
            raise CheckpointRefused(
                f"checkpoint refused: no feed key that signed it was valid {when} in "
                f"root v{root.version}: {details}",
                note,
            )
    return OpenedCheckpoint(cp, at, _key_ids(signers, root))


def verify_checkpoint(
    signed: feeds.SignedCheckpoint,
    key: Verifiers | TrustedRoot,
    origin: str,
    previous: VerifiedCheckpoint | None,
    *,
    now: dt.datetime | None = None,
) -> VerifiedCheckpoint:
    """Accept *signed* only if it is signed for *origin* by *key* (the enrolled feed key, or
    a set of keys) or, given the origin's root, by a feed key valid at its signed time in
    that root (see the module docstring), and it extends *previous*. *now*: this node's
    clock (default: read it), for the skew check and for notes without a signed time."""
    note = bytes(signed.note)
    now = dt.datetime.now(dt.UTC) if now is None else now
    opened = open_signed_checkpoint(note, key, origin, now=now)
    cp = opened.checkpoint
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
        return _not_backdated(new, opened, previous)
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
    return _not_backdated(new, opened, previous)


def _not_backdated(
    new: VerifiedCheckpoint, opened: OpenedCheckpoint, previous: VerifiedCheckpoint
) -> VerifiedCheckpoint:
    """Refuse a signed time earlier than the previous verified one: checked after the fork
    checks, so that two validly signed, inconsistent checkpoints are kept as evidence
    whatever times they claim."""
    at, before = opened.signed_at, previous.signed_at
    if at is not None and before is not None and at < before:
        raise CheckpointRefused(
            f"checkpoint refused: signed at {format_time(at)} by key {opened.signers}, "
            f"earlier than the checkpoint already verified (signed at {format_time(before)})",
            new.note,
        )
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
            raise Tampered(
                f"leaf {batch.start + i}: {exc}", index=batch.start + i, leaf=bytes(leaf.entry)
            ) from None
        if o.leaf.origin != origin:
            raise Tampered(
                f"leaf {batch.start + i} names origin {o.leaf.origin!r}",
                index=batch.start + i,
                leaf=bytes(leaf.entry),
            )
        opened.append(o)
        hashes.extend(frontier.append(merkle.leaf_hash(bytes(leaf.entry))))
    proof: Sequence[bytes] = list(batch.proof_to_checkpoint)
    try:
        merkle.verify_consistency(proof, end, frontier.root(), checkpoint.size, checkpoint.root)
    except merkle.ProofError as exc:
        raise Tampered(
            f"leaves [{batch.start}, {end}) do not lead to the checkpoint: {exc}",
            index=batch.start,
        ) from None
    return opened, hashes


@dataclass(frozen=True)
class VerifiedLeaves:
    """A verified batch, as the subscriber keeps it: no per-leaf objects."""

    leaves: list[bytes]  # the leaf bytes, as hashed
    openings: list[tuple[int, bytes]]  # (index, what opens the leaf) of leaves with openings
    opened: list[OpenedLeaf]  # what open_leaf made of each: handed to the fold in memory


def verify_leaves(
    frontier: merkle.Frontier,
    checkpoint: VerifiedCheckpoint,
    batch: feeds.LeafBatch,
    origin: str,
    keep: Callable[[feeds.FeedLeaf], bytes],
) -> VerifiedLeaves:
    """The checks of :func:`verify_batch` (every leaf opened by :func:`open_leaf`, its origin
    checked, the batch proved to lead to *checkpoint*), with the frontier extended in one
    pass (:meth:`merkle.Frontier.extend`, in place) and nothing kept per leaf but its bytes
    and *keep*'s serialization of its openings (b"": nothing to keep)."""
    start = batch.start
    if start != frontier.size:
        raise FeedError(f"batch starts at {start}, expected {frontier.size}")
    end = start + len(batch.leaves)
    if not batch.leaves or end > checkpoint.size:
        raise FeedError(f"batch [{start}, {end}) is empty or beyond the checkpoint")
    datas: list[bytes] = []
    openings: list[tuple[int, bytes]] = []
    opened: list[OpenedLeaf] = []
    idx = start
    for leaf in batch.leaves:
        data = leaf.entry
        has_body = leaf.HasField("body")
        try:
            o = open_leaf(data, leaf.disclosures, leaf.body if has_body else None)
        except LeafError as exc:
            raise Tampered(f"leaf {idx}: {exc}", index=idx, leaf=data) from None
        if o.leaf.origin != origin:
            raise Tampered(f"leaf {idx} names origin {o.leaf.origin!r}", index=idx, leaf=data)
        datas.append(data)
        opened.append(o)
        if has_body or leaf.disclosures:
            openings.append((idx, keep(leaf)))
        idx += 1
    frontier.extend(datas)
    try:
        merkle.verify_consistency(
            list(batch.proof_to_checkpoint), end, frontier.root(), checkpoint.size, checkpoint.root
        )
    except merkle.ProofError as exc:
        raise Tampered(
            f"leaves [{start}, {end}) do not lead to the checkpoint: {exc}", index=start
        ) from None
    return VerifiedLeaves(datas, openings, opened)
