"""Client interceptors that keep every response a node receives, as bytes, for canary search."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import Message


class WireTap:
    """Records (method, serialized response) for every unary and server-streaming call made
    through channels built with :attr:`interceptors` (gRPC files each interceptor object under
    one call kind only, hence one object per kind)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.interceptors: list[grpc.aio.ClientInterceptor] = [_Unary(self), _Stream(self)]

    def keep(self, details: grpc.aio.ClientCallDetails, response: Any) -> None:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        data = response.SerializeToString() if isinstance(response, Message) else bytes(response)
        self.seen.append((method, data))

    def methods(self) -> set[str]:
        return {m for m, _ in self.seen}


class _Unary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, tap: WireTap) -> None:
        self.tap = tap

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        call = await continuation(details, request)
        self.tap.keep(details, await call)
        return call


class _Stream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, tap: WireTap) -> None:
        self.tap = tap

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> AsyncIterator[Any]:
        call = await continuation(details, request)

        async def responses() -> AsyncIterator[Any]:
            async for item in call:
                self.tap.keep(details, item)
                yield item

        return responses()
