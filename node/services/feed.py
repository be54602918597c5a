"""FeedService: stream this node's log to an enrolled subscriber.

No per-subscriber queue holds entries: each stream reads the log from the database at its own
pace and only waits on a coalescing "newer checkpoint" signal, so a slow subscriber stalls
nobody but itself (gRPC flow control suspends its generator).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from node.api import feeds, feeds_rpc
from node.feeds.publisher import Publisher

BATCH_LEAVES = 256
BATCH_BYTES = 1 << 20


class FeedServicer(feeds_rpc.FeedServiceServicer):
    def __init__(self, publisher: Publisher) -> None:
        self._pub = publisher

    async def _checkpoint(self, from_size: int, size: int, signed: bytes) -> feeds.SignedCheckpoint:
        proof: list[bytes] = []
        if 0 < from_size < size:
            proof = await self._pub.log.consistency_proof(from_size, size)
        # A subscriber ahead of us (from_size > size) gets no proof: the smaller signed size is
        # itself the evidence of rollback it needs.
        return feeds.SignedCheckpoint(
            note=signed, proof_from_size=from_size, consistency_proof=proof
        )

    async def GetCheckpoint(
        self, request: feeds.GetCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> feeds.GetCheckpointResponse:
        size, signed = self._pub.latest_size, self._pub.latest_note
        if not signed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no checkpoint signed yet")
        return feeds.GetCheckpointResponse(
            checkpoint=await self._checkpoint(request.from_size, size, signed)
        )

    async def Subscribe(
        self, request: feeds.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[feeds.SubscribeResponse]:
        applied, verified = request.from_size, request.checkpoint_size
        if applied > verified:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "from_size must not exceed checkpoint_size"
            )
        sent = -1
        while True:
            if self._pub.latest_size <= sent:
                await self._pub.wait_newer(sent)
                continue
            size, signed = self._pub.latest_size, self._pub.latest_note
            yield feeds.SubscribeResponse(checkpoint=await self._checkpoint(verified, size, signed))
            sent = size
            pos = applied
            while pos < size:
                for start, leaves, proof in await self._pub.log.read_batches(
                    pos, size, max_leaves=BATCH_LEAVES, max_bytes=BATCH_BYTES
                ):
                    # Default deny: no personal field is opened to any peer until sharing
                    # agreements (the desensitisation policy) say otherwise.
                    yield feeds.SubscribeResponse(
                        batch=feeds.LeafBatch(
                            start=start,
                            leaves=[feeds.FeedLeaf(entry=d) for d in leaves],
                            proof_to_checkpoint=proof,
                        )
                    )
                    pos = start + len(leaves)
            applied = verified = max(size, applied)
