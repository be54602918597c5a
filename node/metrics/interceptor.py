"""The one server interceptor that records every call's metrics: count and latency by method,
peer and status code, open streams, and the border's policy refusals.

It is the outermost interceptor, so a call the gate refuses is counted too (as peer ""). The
peer and the border's decision are read, after the call, from the context variables the gate
(:data:`~node.peers.gate.current_caller`) and the exit (:data:`~node.border.current_exit`) set
in the same task.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from node.border import current_exit
from node.metrics import NodeMetrics, label
from node.peers.gate import current_caller
from node.peers.interceptors import Behaviour, Handler, WrappingInterceptor, rebuild

Context = grpc.aio.ServicerContext[Any, Any]


def status_name(context: Context, exc: BaseException | None) -> str:
    """The call's status code as a name (OK when it returned, UNKNOWN when it raised)."""
    try:
        code = context.code()
    except Exception:
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for known in grpc.StatusCode:
            if known.value[0] == code:
                return known.name
    if exc is None:
        return "OK"
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError | GeneratorExit) else "UNKNOWN"


def caller_label() -> str:
    """The admitted caller of this call: its node name, ``self``, or "" (not admitted)."""
    caller = current_caller.get(None)
    if caller is None:
        return ""
    return "self" if caller.is_self else label(caller.identity.node)


class MetricsInterceptor(WrappingInterceptor):
    """Counts, times and tracks every call the server runs."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def wrap(self, handler: Handler, method: str) -> Handler:
        return _measured(handler, self.metrics, label(method))


def _measured(handler: Handler, m: NodeMetrics, method: str) -> Handler:
    def done(context: Context, started: float, exc: BaseException | None) -> None:
        peer = caller_label()
        m.rpcs.labels(method=method, peer=peer, code=status_name(context, exc)).inc()
        m.latency.labels(method=method, peer=peer).observe(time.monotonic() - started)
        call = current_exit.get(None)
        if call is not None and call.decision is not None and call.decision.refused:
            m.denials.labels(peer=peer).inc()

    def unary(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        async def run(request: Any, context: Context) -> Any:
            started = time.monotonic()
            current_exit.set(None)  # this call's decision only, never an inherited one
            try:
                response = await behaviour(request, context)
            except BaseException as exc:
                done(context, started, exc)
                raise
            done(context, started, None)
            return response

        return run

    def streaming(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        gauge = m.open_streams.labels(method=method)
        if not inspect.isasyncgenfunction(behaviour):

            async def writes(request: Any, context: Context) -> Any:
                started = time.monotonic()
                current_exit.set(None)
                gauge.inc()
                try:
                    result = await behaviour(request, context)
                except BaseException as exc:
                    done(context, started, exc)
                    raise
                finally:
                    gauge.dec()
                done(context, started, None)
                return result

            return writes

        async def gen(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.monotonic()
            current_exit.set(None)
            gauge.inc()
            items = behaviour(request, context)
            try:
                async for item in items:
                    yield item
            except BaseException as exc:
                done(context, started, exc)
                raise
            finally:
                gauge.dec()
                await items.aclose()
            done(context, started, None)

        return gen

    return rebuild(handler, unary_response=unary, stream_response=streaming)
