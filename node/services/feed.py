"""FeedService: stream this node's log to an enrolled subscriber.

No per-subscriber queue holds entries: each stream reads the log from the database at its own
pace and only waits on a coalescing "newer checkpoint" signal, so a slow subscriber stalls
nobody but itself (gRPC flow control suspends its generator).

When the node stops, every open stream ends at its next wait or batch (the ``stopping`` event):
a subscriber keeps what it verified and resumes from its cursor once the node is back, and the
stop does not wait out the grace period for streams that would never finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog

from node.api import feeds, feeds_rpc
from node.border import Border
from node.feeds import measures_store
from node.feeds.dates import shanghai_today
from node.feeds.note import NoteError
from node.feeds.publisher import Publisher
from node.feeds.state import read_bodies, read_openings
from node.peers.gate import current_caller, still_admitted
from node.verification.check import Finding
from node.witness.cosignature import note_body
from node.witness.store import cosignatures_of

log = structlog.get_logger("creditnode.feeds")

BATCH_LEAVES = 256
BATCH_BYTES = 1 << 20
DISCLOSE_MAX_LEAVES = 4096


class FeedServicer(feeds_rpc.FeedServiceServicer):
    def __init__(
        self,
        publisher: Publisher,
        border: Border,
        *,
        refuse: Callable[[], Finding | None] = lambda: None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self._pub = publisher
        self._border = border
        # A standing finding against the stored own log (node.verification): not served.
        self._refuse = refuse
        # Set when the node stops: open streams end, new ones are refused.
        self._stopping = stopping or asyncio.Event()

    async def _newer_or_stopping(self, size: int) -> bool:
        """Wait for a checkpoint larger than *size*; False if the node stops first."""
        waits = (
            asyncio.ensure_future(self._pub.wait_newer(size)),
            asyncio.ensure_future(self._stopping.wait()),
        )
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)
        return not self._stopping.is_set()

    async def _refuse_tampered(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        finding = self._refuse()
        if finding is None:
            return
        log.error(
            "own feed refused: its stored data does not verify",
            caller=current_caller.get().identity.node,
            finding=finding.describe(),
        )
        await context.abort(
            grpc.StatusCode.DATA_LOSS,
            "this node's stored feed does not verify (see `creditnode verify` at the origin); "
            "it is not served until repaired",
        )

    async def _openings(
        self, fields: frozenset[str], start: int, count: int
    ) -> list[tuple[feeds.EntryBody | None, list[feeds.FieldDisclosure]]]:
        """Per leaf, its body and the stored openings of *fields*: only for the newest leaf of
        an entry active today. A removed or expired entry's leaves go bare, whoever asks."""
        log_id = self._pub.log.log_id
        async with self._pub.store.engine.connect() as conn:
            bodies = await read_bodies(conn, log_id, start, start + count, shanghai_today())
            stored = (
                await read_openings(conn, log_id, start, start + count, fields)
                if fields and bodies
                else {}
            )
        out: list[tuple[feeds.EntryBody | None, list[feeds.FieldDisclosure]]] = []
        for idx in range(start, start + count):
            body = bodies.get(idx)
            if body is None:
                out.append((None, []))
                continue
            opened = [
                feeds.FieldDisclosure(field=name, salt=salt, value=value)
                for name, (salt, value) in sorted(stored.get(idx, {}).items())
            ]
            out.append((body, opened))
        return out

    def _granted(self) -> frozenset[str]:
        caller = current_caller.get()
        return frozenset() if caller.is_self else self._border.feed_fields(caller.identity.node)

    async def _checkpoint(self, from_size: int, size: int, signed: bytes) -> feeds.SignedCheckpoint:
        proof: list[bytes] = []
        if 0 < from_size < size:
            proof = await self._pub.log.consistency_proof(from_size, size)
        # A subscriber ahead of us (from_size > size) gets no proof: the smaller signed size is
        # itself the evidence of rollback it needs.
        return feeds.SignedCheckpoint(
            note=signed,
            proof_from_size=from_size,
            consistency_proof=proof,
            cosignatures=await self._cosignatures(signed),
        )

    async def _cosignatures(self, signed: bytes) -> list[str]:
        """Peers' cosignatures held for the note's body (those obtained so far: a checkpoint
        just signed is sent before its witnesses have answered)."""
        try:
            body = note_body(signed)
        except NoteError:
            return []
        async with self._pub.store.engine.connect() as conn:
            return await cosignatures_of(conn, self._pub.origin, body)

    async def GetCheckpoint(
        self, request: feeds.GetCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> feeds.GetCheckpointResponse:
        await self._refuse_tampered(context)
        await self._pub.refresh()
        size, signed = self._pub.latest_size, self._pub.latest_note
        if not signed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no checkpoint signed yet")
        return feeds.GetCheckpointResponse(
            checkpoint=await self._checkpoint(request.from_size, size, signed)
        )

    async def Disclose(
        self, request: feeds.DiscloseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> feeds.DiscloseResponse:
        await self._refuse_tampered(context)
        start, end = request.start, request.end
        if not start < end <= start + DISCLOSE_MAX_LEAVES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"ask for 1 to {DISCLOSE_MAX_LEAVES} leaves: start < end <= start + "
                f"{DISCLOSE_MAX_LEAVES}",
            )
        if end > self._pub.latest_size:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"the log has {self._pub.latest_size} signed leaves; end {end} is beyond them",
            )
        fields = self._granted()
        if not fields:
            return feeds.DiscloseResponse()
        openings = await self._openings(fields, start, end - start)
        return feeds.DiscloseResponse(
            leaves=[
                feeds.DisclosedLeaf(index=start + i, disclosures=o)
                for i, (_, o) in enumerate(openings)
                if o
            ]
        )

    async def GetMeasuresCatalogue(
        self,
        request: feeds.GetMeasuresCatalogueRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> feeds.GetMeasuresCatalogueResponse:
        """The documents of a measures catalogue this node kept, by digest: public text, which
        the caller checks against the digest its verified leaves commit to."""
        await self._refuse_tampered(context)
        if not measures_store.SHA256.fullmatch(request.sha256):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "sha256: 64 lowercase hexadecimal digits"
            )
        async with self._pub.store.engine.connect() as conn:
            data = await measures_store.documents(conn, request.sha256)
        if data is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no measures catalogue with that digest")
        return feeds.GetMeasuresCatalogueResponse(documents=data)

    async def Subscribe(
        self, request: feeds.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[feeds.SubscribeResponse]:
        await self._refuse_tampered(context)
        if self._stopping.is_set():
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "the node is stopping; resume once it is back"
            )
        applied, verified = request.from_size, request.checkpoint_size
        if applied > verified:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "from_size must not exceed checkpoint_size"
            )
        fields = self._granted()
        await self._pub.refresh()
        sent = -1
        while True:
            if self._pub.latest_size <= sent:
                if not await self._newer_or_stopping(sent):
                    return  # the node stops: the subscriber resumes from its cursor
                continue
            size, signed = self._pub.latest_size, self._pub.latest_note
            # Enrollment re-read after the checkpoint was made: a leaf appended after a `peer
            # remove` committed (in any process) never reaches the removed peer.
            if not await still_admitted():
                return
            await self._refuse_tampered(context)  # found while this subscriber streamed
            yield feeds.SubscribeResponse(checkpoint=await self._checkpoint(verified, size, signed))
            sent = size
            pos = applied
            while pos < size:
                if self._stopping.is_set():
                    return  # mid catch-up: what was sent verifies, the rest comes after
                for start, leaves, proof in await self._pub.log.read_batches(
                    pos, size, max_leaves=BATCH_LEAVES, max_bytes=BATCH_BYTES
                ):
                    if self._stopping.is_set():
                        return
                    # Bodies go with live entries only; every personal opening also crosses
                    # the border: none unless an agreement grants it.
                    openings = await self._openings(fields, start, len(leaves))
                    yield feeds.SubscribeResponse(
                        batch=feeds.LeafBatch(
                            start=start,
                            leaves=[
                                feeds.FeedLeaf(entry=d, disclosures=o, body=b)
                                for d, (b, o) in zip(leaves, openings, strict=True)
                            ],
                            proof_to_checkpoint=proof,
                        )
                    )
                    pos = start + len(leaves)
            applied = verified = max(size, applied)
