"""The origin side of witnessing (I/O): after this node signs a new checkpoint of one of its
logs, ask every enrolled peer to cosign it (tlog-witness add-checkpoint), in the background,
best effort, with per-peer backoff; keep the cosignatures that verify under the peer's trust.

The size a peer holds is learnt from its answer: a conflict names it (trailing metadata), and
the request is made again once with a proof from that size.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import structlog

from node.api import witness, witness_rpc
from node.feeds import merkle
from node.feeds.logstore import read_cursor, read_hashes
from node.feeds.note import NoteError
from node.home import TlsMaterial
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer
from node.storage import Store
from node.storage.peers import PeerRepository
from node.witness.cosignature import note_body
from node.witness.store import keep_cosignatures
from node.witness.witness import verified_cosignatures

log = structlog.get_logger("creditnode.witness")

HELD_SIZE_METADATA = "creditnode-witness-size"
ROUND_SECONDS = 0.5  # how often signed checkpoints are looked at
CALL_TIMEOUT_SECONDS = 10.0
BASE_DELAY, MAX_DELAY = 1.0, 60.0


class StoredLog:
    """One of this node's own logs (the feed, the audit log) as stored: its newest signed
    checkpoint and consistency proofs, read from the database (whichever process signed)."""

    def __init__(self, store: Store, origin: str) -> None:
        self.store = store
        self.origin = origin

    async def latest(self) -> tuple[int, bytes]:
        """The newest signed (size, note); (0, b"") while the log does not exist."""
        async with self.store.engine.connect() as conn:
            cursor = await read_cursor(conn, self.origin)
        if cursor is None or cursor.peer is not None:
            return 0, b""
        return cursor.checkpoint_size, cursor.checkpoint_note

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        async with self.store.engine.connect() as conn:
            cursor = await read_cursor(conn, self.origin)
            if cursor is None:
                return []
            indexes = merkle.consistency_proof_indexes(old, new)
            hashes = await read_hashes(conn, cursor.log_id, indexes)
        return merkle.consistency_proof(old, new, hashes)


@dataclass
class _PeerState:
    held: int = 0  # the size the peer is believed to hold for the origin
    done: bytes = b""  # the body it last cosigned
    delay: float = BASE_DELAY
    next_try: float = 0.0


class CosignRequester:
    """Asks enrolled peers to cosign the newest checkpoint of each of *logs*."""

    @classmethod
    def for_origins(
        cls,
        tls: TlsMaterial,
        store: Store,
        peers: Callable[[], list[KnownPeer]],
        origins: list[str],
    ) -> CosignRequester:
        return cls(tls, store, peers, [StoredLog(store, o) for o in origins])

    def __init__(
        self,
        tls: TlsMaterial,
        store: Store,
        peers: Callable[[], list[KnownPeer]],
        logs: list[StoredLog],
    ) -> None:
        self.tls = tls
        self.store = store
        self.repository = PeerRepository(store)
        self._peers = peers
        self.logs = logs
        self._state: dict[tuple[str, str], _PeerState] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[int]] = {}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a busy database must not end witnessing
                    log.exception("cosignature round failed")
                await asyncio.sleep(ROUND_SECONDS)
        finally:
            for task in self._inflight.values():
                task.cancel()

    async def round(self) -> int:
        """One pass: for each log's newest checkpoint, start asking each peer that is due and
        not already being asked (a slow peer delays nobody else). Returns how many requests
        were started."""
        started = 0
        peers = self._peers()
        for source in self.logs:
            size, note = await source.latest()
            if not note:
                continue
            try:
                body = note_body(note)
            except NoteError:
                continue
            for peer in peers:
                key = (source.origin, peer.identity.node)
                state = self._state.setdefault(key, _PeerState())
                running = self._inflight.get(key)
                if running is not None and not running.done():
                    continue
                if state.done == body or time.monotonic() < state.next_try:
                    continue
                self._inflight[key] = asyncio.create_task(
                    self._ask_peer(peer, state, source, size, note, body),
                    name=f"cosign-{peer.identity.node}",
                )
                started += 1
        return started

    async def _ask_peer(
        self,
        peer: KnownPeer,
        state: _PeerState,
        source: StoredLog,
        size: int,
        note: bytes,
        body: bytes,
    ) -> int:
        try:
            lines = await self._add_checkpoint(peer, state, source, size, note)
            # Kept only if they verify under the peer's trust (a peer may only sign for itself).
            verified = await verified_cosignatures(self.repository, body, lines)
            mine = [(c, line) for c, line in verified if c == peer.identity.uri]
            kept = await keep_cosignatures(self.store, source.origin, body, size, mine)
        except Exception as exc:
            # The first failure of a streak is a warning; the retries after it are not news.
            report = log.warning if state.delay == BASE_DELAY else log.info
            report(
                "cosignature not obtained",
                peer=peer.identity.node,
                origin=source.origin,
                size=size,
                reason=str(exc)[:300],
            )
            state.next_try = time.monotonic() + state.delay * (0.5 + random.random())  # noqa: S311
            state.delay = min(state.delay * 2, MAX_DELAY)
            return 0
        state.delay = BASE_DELAY
        state.done = body
        state.held = size
        if len(mine) < len(lines):
            log.warning("cosignature from peer does not verify", peer=peer.identity.node, size=size)
        return kept

    async def _add_checkpoint(
        self, peer: KnownPeer, state: _PeerState, source: StoredLog, size: int, note: bytes
    ) -> list[str]:
        async with peer.channel(self.tls) as channel:
            stub = witness_rpc.WitnessServiceStub(channel)
            for _ in range(2):  # once more with the size a conflict names
                old = state.held if state.held <= size else 0
                proof = await source.consistency_proof(old, size) if 0 < old < size else []
                try:
                    resp = await stub.AddCheckpoint(
                        witness.AddCheckpointRequest(
                            origin=source.origin, old_size=old, consistency_proof=proof, note=note
                        ),
                        timeout=CALL_TIMEOUT_SECONDS,
                    )
                except grpc.aio.AioRpcError as err:
                    held = _held_size(err)
                    if held is not None and held != old and held <= size:
                        state.held = held
                        continue
                    raise RuntimeError(
                        describe_rpc_error(peer.identity, peer.record.endpoint, err)
                    ) from None
                return list(resp.cosignatures)
        raise RuntimeError("the peer's witness view keeps changing")


def _held_size(err: grpc.aio.AioRpcError) -> int | None:
    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return None
    for key, value in err.trailing_metadata() or ():
        if key == HELD_SIZE_METADATA:
            text = value.decode() if isinstance(value, bytes) else value
            return int(text) if text.isdigit() and len(text) <= 19 else None
    return None
