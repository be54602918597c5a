"""The gRPC health service, with Watch streams that end when the node stops.

grpc_health's Watch never returns: one watcher (a load balancer, a monitoring probe) would
hold every stop for the whole grace period. Here each Watch ends once the node's ``stopping``
event is set, after telling the watcher NOT_SERVING, like the feed's Subscribe streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2


class StoppingHealth(health.aio.HealthServicer):  # type: ignore[misc]
    def __init__(self, stopping: asyncio.Event) -> None:
        super().__init__()
        self._stopping = stopping

    async def Watch(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        watching = asyncio.ensure_future(super().Watch(request, context))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((watching, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, stopping):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(watching, stopping, return_exceptions=True)
        if not self._stopping.is_set():  # the watcher went away, or the write failed
            watching.result()
            return
        # The last word is NOT_SERVING (possibly again: a repeat is harmless to a watcher),
        # then the stream ends with OK.
        await context.write(
            health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        )
