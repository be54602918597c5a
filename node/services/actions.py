"""ActionsService: serve a partner the actions log this node keeps for it (issue 15).

The caller is the peer the gate admitted, never a name in the message, and it is served only
its own log (``<node uri>/actions/<caller>``): what this node did about a third city's entries
never leaves in an answer to it. For a caller nothing was recorded about yet, the log is made
empty and its empty tree signed: every answer is a signed checkpoint, so a log that later
shrinks or vanishes is a verifiable rollback.

One answer per call: the newest signed checkpoint with a consistency proof from the caller's
verified size, and the first batch of leaves from the caller's size with its proof to that
checkpoint. The partner verifies both (:mod:`node.actions.pull`) and asks again from where it
got to. Every call passes the border and is recorded in the audit log (``feed_range``).
"""

from __future__ import annotations

from typing import Any

import grpc

from node.actions.log import ActionsLog
from node.api import actions, actions_rpc, feeds
from node.feeds.note import NoteError, stored_checkpoint
from node.peers.gate import current_caller

BATCH_LEAVES = 1000
BATCH_BYTES = 1 << 20


class ActionsServicer(actions_rpc.ActionsServiceServicer):
    def __init__(self, log: ActionsLog) -> None:
        self._log = log

    async def GetActions(
        self, request: actions.GetActionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> actions.GetActionsResponse:
        caller = current_caller.get(None)
        if caller is None or caller.is_self:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "actions logs are served to partners only"
            )
        partner = caller.identity.node
        if request.from_size > request.checkpoint_size:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "from_size must not exceed checkpoint_size"
            )
        store = await self._log.log_for(partner, create=True)
        assert store is not None
        signed = await self._log.checkpoint(partner)
        if not signed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no actions checkpoint signed yet")
        try:
            size = stored_checkpoint(signed).size
        except NoteError:
            await context.abort(grpc.StatusCode.DATA_LOSS, "the stored actions checkpoint is bad")
        proof: list[bytes] = []
        if 0 < request.checkpoint_size < size:
            proof = await store.consistency_proof(request.checkpoint_size, size)
        response = actions.GetActionsResponse(
            checkpoint=feeds.SignedCheckpoint(
                note=signed, proof_from_size=request.checkpoint_size, consistency_proof=proof
            )
        )
        if request.from_size < size:
            start, leaves, to_cp = (
                await store.read_batches(
                    request.from_size,
                    size,
                    max_leaves=BATCH_LEAVES,
                    max_bytes=BATCH_BYTES,
                    window=BATCH_LEAVES,
                )
            )[0]
            response.batch.CopyFrom(
                feeds.LeafBatch(
                    start=start,
                    leaves=[feeds.FeedLeaf(entry=d) for d in leaves],
                    proof_to_checkpoint=to_cp,
                )
            )
        return response
