"""AuditService: a partner fetches this node's receipts of the exchanges it had with it.

A caller sees only entries naming itself (as the gate admitted it); the node calling itself is
refused (its own log is read locally). The answer is recorded like any other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc

from node.api import audit, audit_rpc
from node.audit.entry import EPOCH
from node.audit.log import AuditLog
from node.audit.query import Filter, find_entries
from node.peers.gate import current_caller

MAX_RECEIPTS = 1000


def receipt(idx: int, e: Any) -> audit.Receipt:
    r = audit.Receipt(
        audit_index=idx, exchange=e.exchange, seq=e.seq, direction=e.direction, kind=e.kind,
        outcome=e.outcome, at_unix_us=e.at_us, method=e.method, response_sha256=e.response,
    )  # fmt: skip
    if e.remote is not None:
        r.remote_index = e.remote
    if e.leaves is not None:  # how far a feed range went: the origin follows its subscribers
        r.leaves_first, r.leaves_last = e.leaves
    return r


class AuditServicer(audit_rpc.AuditServiceServicer):
    def __init__(self, log: AuditLog, node_uri: str) -> None:
        self._log = log
        self._uri = node_uri

    async def Receipts(
        self, request: audit.ReceiptsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit.ReceiptsResponse:
        caller = current_caller.get()
        if caller.is_self:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "receipts are for peers")
        if request.to_unix_us and request.to_unix_us <= request.from_unix_us:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "to must be after from")
        limit = min(request.limit or MAX_RECEIPTS, MAX_RECEIPTS)
        start = EPOCH + dt.timedelta(microseconds=request.from_unix_us)
        end = EPOCH + dt.timedelta(microseconds=request.to_unix_us) if request.to_unix_us else None
        flt = Filter(start=start, end=end, peer=caller.identity.node, min_index=request.start_index)
        found = await find_entries(self._log.store, self._uri, flt, limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
        next_index = found[-1][0] + 1 if found else request.start_index
        checkpoint = await self._log.sign_checkpoint()
        return audit.ReceiptsResponse(
            receipts=[receipt(i, e) for i, e in found],
            more=more,
            next_index=next_index,
            checkpoint=checkpoint,
        )
