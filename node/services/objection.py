"""ObjectionService: a holder raises an objection to one of this node's entries, and asks
what became of its objections. The raiser is the peer the gate admitted (never a name in the
message); each caller sees only its own objections."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc

from node.api import objections as pb
from node.api import objections_rpc
from node.feeds.publisher import Publisher
from node.objections import store
from node.objections.core import ObjectionError
from node.objections.origin import Refused, receive
from node.objections.wire import to_message
from node.peers.gate import current_caller

MAX_IDS = 100
_CODES = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "exists": grpc.StatusCode.ALREADY_EXISTS,
    "exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "not_found": grpc.StatusCode.NOT_FOUND,
}


class ObjectionServicer(objections_rpc.ObjectionServiceServicer):
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def Raise(
        self, request: pb.RaiseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RaiseResponse:
        caller = current_caller.get()
        if caller.is_self:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "objections come from peers")
        try:
            o = await receive(
                self._publisher, request.objection, raised_by=caller.identity.node,
                now=dt.datetime.now(dt.UTC),
            )  # fmt: skip
        except Refused as exc:
            await context.abort(_CODES[exc.code], str(exc))
        except ObjectionError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.RaiseResponse(objection=to_message(o))

    async def Status(
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StatusResponse:
        caller = current_caller.get()
        if caller.is_self:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "objections come from peers")
        if len(request.ids) > MAX_IDS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_IDS} ids")
        found = await store.find(
            self._publisher.store, ids=list(request.ids), side=store.RECEIVED,
            raised_by=caller.identity.node,
        )  # fmt: skip
        return pb.StatusResponse(objections=[to_message(h.objection) for h in found])
