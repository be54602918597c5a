"""Rebuilding a gRPC method handler around wrapped behaviours: the one way this node's server
interceptors (the gate, the border) change what a handler does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

Behaviour = Callable[..., Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the stubs
# (behaviour, whether the request is a stream) -> the behaviour to run instead
Wrap = Callable[[Behaviour, bool], Behaviour]


def rebuild(
    handler: Handler,
    *,
    unary_response: Wrap,
    stream_response: Wrap,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> Handler:
    """*handler* with its behaviour wrapped by the wrapper for its response kind, and, if
    given, its response serializer replaced."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": response_serializer or handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary_response(handler.unary_unary, False), **kwargs
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream_response(cast(Behaviour, handler.unary_stream), False), **kwargs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            unary_response(handler.stream_unary, True), **kwargs
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        stream_response(handler.stream_stream, True), **kwargs
    )


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that rebuilds every handler the server has with :meth:`wrap`."""

    def wrap(self, handler: Handler, method: str) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self.wrap(handler, handler_call_details.method)
