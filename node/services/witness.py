"""WitnessService: cosign an enrolled peer's own checkpoints (tlog-witness add-checkpoint over
gRPC) and answer which checkpoint this node holds for an origin (gossip)."""

from __future__ import annotations

from typing import Any

import grpc

from node.api import witness, witness_rpc
from node.peers.gate import current_caller
from node.witness import witness as w
from node.witness.cosignature import MAX_COSIGNATURES
from node.witness.requester import HELD_SIZE_METADATA

MAX_ORIGIN = 200

_STATUS = {
    w.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    w.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    w.OUT_OF_RANGE: grpc.StatusCode.OUT_OF_RANGE,
    w.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    w.BAD_PROOF: grpc.StatusCode.INVALID_ARGUMENT,
    w.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


class WitnessServicer(witness_rpc.WitnessServiceServicer):
    def __init__(self, witness_: w.Witness) -> None:
        self._witness = witness_

    async def AddCheckpoint(
        self, request: witness.AddCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> witness.AddCheckpointResponse:
        caller = current_caller.get()
        if caller.is_self:
            await context.abort(grpc.StatusCode.NOT_FOUND, "a node does not witness itself")
        if len(request.origin) > MAX_ORIGIN:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "origin too long")
        try:
            lines = await self._witness.add_checkpoint(
                caller.identity,
                request.origin,
                request.old_size,
                list(request.consistency_proof),
                bytes(request.note),
            )
        except w.WitnessRefused as refused:
            if refused.held_size is not None:
                context.set_trailing_metadata(((HELD_SIZE_METADATA, str(refused.held_size)),))
            await context.abort(_STATUS[refused.code], str(refused))
        return witness.AddCheckpointResponse(cosignatures=lines)

    async def GetWitnessed(
        self, request: witness.GetWitnessedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> witness.GetWitnessedResponse:
        if not request.origin or len(request.origin) > MAX_ORIGIN:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "origin empty or too long")
        note, lines = await self._witness.witnessed(request.origin)
        return witness.GetWitnessedResponse(note=note, cosignatures=lines[:MAX_COSIGNATURES])
