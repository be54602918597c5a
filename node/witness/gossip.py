"""Gossip (I/O): for each origin this node mirrors, ask the other enrolled peers which
checkpoint they hold for it (``WitnessService.GetWitnessed``) and compare with the mirror's.

A checkpoint validly signed by the origin that cannot be true of the same append-only log as
the mirror's is a fork, recorded as evidence on the mirror (which stops: state ``forked``),
even if this node never received that branch itself:

- same size, different root: equivocation, proven by the two notes;
- different sizes: the origin is asked for its newest checkpoint with a consistency proof
  from the smaller size (``FeedService.GetCheckpoint``), and from the larger when the newest
  is larger still; a proof that does not verify, or a newest checkpoint smaller than one it
  signed, is the evidence. An origin that cannot be reached decides nothing: asked again at
  the next round.

Cosignatures that come with a gossiped checkpoint are verified under the cosigners' trust,
kept, and attached to the note kept as evidence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
import structlog

from node.api import feeds, feeds_rpc, witness, witness_rpc
from node.feeds import merkle
from node.feeds.note import Checkpoint, NoteError, stored_checkpoint
from node.feeds.subscriber import FeedUnavailable, Subscriber
from node.feeds.verify import FeedError, ForkError
from node.home import TlsMaterial
from node.keys.roles import FEED
from node.peers.directory import KnownPeer
from node.storage import Store
from node.witness.cosignature import attach, note_body
from node.witness.store import keep_cosignatures
from node.witness.trust import open_origin_checkpoint
from node.witness.witness import MAX_NOTE_BYTES, verified_cosignatures

log = structlog.get_logger("creditnode.gossip")

GOSSIP_SECONDS = 5.0
CALL_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Found:
    """A fork found by gossip."""

    peer: str  # the origin's peer name
    source: str  # the peer whose checkpoint revealed it
    kind: str
    detail: str


class Gossip:
    def __init__(
        self,
        tls: TlsMaterial,
        store: Store,
        peers: Callable[[], list[KnownPeer]],
        *,
        on_fork: Callable[[Found], None] | None = None,
    ) -> None:
        self.tls = tls
        self.store = store
        self._peers = peers
        self._on_fork = on_fork

    async def run(self, interval: float = GOSSIP_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval * (0.5 + random.random()))  # noqa: S311 - jitter
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gossip round failed")

    async def round(self) -> list[Found]:
        """Compare every mirrored origin with what every other peer holds for it."""
        found: list[Found] = []
        peers = self._peers()
        for origin_peer in peers:
            sub = await Subscriber.open(self.tls, self.store, origin_peer)
            if sub.log.cursor.state == "forked" or not sub.log.cursor.checkpoint_note:
                continue
            for other in peers:
                if other.identity.node == origin_peer.identity.node:
                    continue
                try:
                    fork = await self.compare(sub, other)
                except (FeedError, grpc.aio.AioRpcError, NoteError) as exc:
                    log.info(
                        "gossip inconclusive",
                        origin=origin_peer.identity.node,
                        peer=other.identity.node,
                        reason=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                    )
                    continue
                if fork is not None:
                    await sub._record_fork(fork)
                    hit = Found(
                        origin_peer.identity.node, other.identity.node, fork.kind, fork.detail
                    )
                    found.append(hit)
                    if self._on_fork is not None:
                        self._on_fork(hit)
                    break
        return found

    async def compare(self, sub: Subscriber, other: KnownPeer) -> ForkError | None:
        """Ask *other* for its checkpoint of *sub*'s origin; the fork it reveals, if any."""
        origin = sub.origin
        async with other.channel(self.tls) as channel:
            resp = await witness_rpc.WitnessServiceStub(channel).GetWitnessed(
                witness.GetWitnessedRequest(origin=origin), timeout=CALL_TIMEOUT_SECONDS
            )
        if not resp.note:
            return None
        if len(resp.note) > MAX_NOTE_BYTES:
            raise FeedError(f"{other.identity.node} sent a checkpoint of {len(resp.note)} bytes")
        await sub.load_root()
        now = dt.datetime.now(dt.UTC)
        theirs_note = bytes(resp.note)
        theirs = self._open(sub, theirs_note, now)
        body = note_body(theirs_note)
        cosigned = await verified_cosignatures(sub.peers, body, resp.cosignatures, skip=origin)
        await keep_cosignatures(self.store, origin, body, theirs.size, cosigned)
        evidence_note = attach(theirs_note, [line for _, line in cosigned])
        mine_note = sub.log.cursor.checkpoint_note
        mine = stored_checkpoint(mine_note)
        source = f"checkpoint held by {other.identity.node}"
        if theirs.size == mine.size:
            if theirs.root == mine.root:
                return None
            return ForkError(
                "equivocation",
                f"{source}: two roots signed for size {mine.size}",
                mine_note,
                evidence_note,
                b"",
            )
        pair = [(mine, mine_note), (theirs, evidence_note)]
        pair.sort(key=lambda p: p[0].size)
        (small, small_note), (large, large_note) = pair
        newest, newest_note, proof = await self._newest(sub, small.size, now)
        if newest.size < large.size:
            return ForkError(
                "rollback",
                f"{source}: origin signs size {newest.size} after signing size {large.size}",
                large_note,
                newest_note,
                b"",
            )
        for old, old_note, prf in ((small, small_note, proof), (large, large_note, None)):
            if prf is None:
                if newest.size == large.size:
                    if newest.root != large.root:
                        return ForkError(
                            "equivocation",
                            f"{source}: two roots signed for size {large.size}",
                            large_note,
                            newest_note,
                            b"",
                        )
                    continue
                newest, newest_note, prf = await self._newest(sub, large.size, now)
            try:
                merkle.verify_consistency(prf, old.size, old.root, newest.size, newest.root)
            except merkle.ProofError as exc:
                return ForkError(
                    "inconsistent",
                    f"{source}: size {newest.size} does not extend size {old.size}: {exc}",
                    old_note,
                    newest_note,
                    b"".join(prf),
                )
        return None

    def _open(self, sub: Subscriber, note: bytes, now: dt.datetime) -> Checkpoint:
        trust = sub.trusted if sub.trusted is not None else sub.key
        return open_origin_checkpoint(
            note, trust, origin=sub.origin, key_name=sub.origin, role=FEED, now=now
        )

    async def _newest(
        self, sub: Subscriber, from_size: int, now: dt.datetime
    ) -> tuple[Checkpoint, bytes, Sequence[bytes]]:
        """The origin's newest checkpoint and a consistency proof from *from_size* to it."""
        async with sub.peer.channel(self.tls) as channel:
            try:
                resp = await feeds_rpc.FeedServiceStub(channel).GetCheckpoint(
                    feeds.GetCheckpointRequest(from_size=from_size), timeout=CALL_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as err:
                raise FeedUnavailable(f"origin not asked: {err.code().name}") from None
        note = bytes(resp.checkpoint.note)
        cp = self._open(sub, note, now)
        if 0 < from_size < cp.size and resp.checkpoint.proof_from_size != from_size:
            raise FeedError("origin's proof does not start at the size asked for")
        return cp, note, list(resp.checkpoint.consistency_proof)
