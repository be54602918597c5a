"""The gRPC health service, with Watch streams that end when the node stops.

grpc_health's Watch never returns: one watcher (a load balancer, a monitoring probe) would
hold every stop for the whole grace period. Here each Watch ends once the node's ``stopping``
event is set, after telling the watcher NOT_SERVING, like the feed's Subscribe streams. The
loop is the library's own, with that exit: wrapping the library's Watch in a task and
cancelling it could cancel it in the middle of a write, and a second write on the same call
then fails in gRPC's core (``GRPC_CALL_ERROR_TOO_MANY_OPERATIONS``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class StoppingHealth(health.aio.HealthServicer):  # type: ignore[misc]
    def __init__(self, stopping: asyncio.Event) -> None:
        super().__init__()
        self._stopping = stopping

    async def Watch(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        service = request.service
        condition: asyncio.Condition = self._server_watchers[service]
        self._watcher_count_by_service[service] += 1
        last = None
        try:
            async with condition:
                while True:
                    stopping = self._stopping.is_set()
                    status = NOT_SERVING if stopping else self._server_status.get(service, UNKNOWN)
                    if status != last:
                        await context.write(health_pb2.HealthCheckResponse(status=status))
                        last = status
                    if stopping:
                        return  # the stream ends with OK; the watcher's last word: NOT_SERVING
                    await condition.wait()
        finally:
            self._watcher_count_by_service[service] -= 1
            if self._watcher_count_by_service[service] == 0:
                del self._server_watchers[service]
                del self._watcher_count_by_service[service]

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service, and every watcher woken, also those of a service
        this node never set (the library wakes only those it set)."""
        await super().enter_graceful_shutdown()
        for condition in list(self._server_watchers.values()):
            async with condition:
                condition.notify_all()
