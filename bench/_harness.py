"""Pieces the query benchmarks share: percentiles, and a bare grpc.aio mutual-TLS echo to
compare a node's answer with (same certificates, same process, same loop)."""

from __future__ import annotations

from typing import Any

import grpc

from node.peers.transport import SERVER_OPTIONS, secure_channel, server_credentials
from node.runtime import Node

ECHO = "/bench.Echo/Echo"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _echo(request: bytes, context: Any) -> bytes:
    return request


async def start_echo(server_node: Node) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server holding *server_node*'s certificate and trust roots (mutual TLS,
    client certificate required) whose one method answers with the request's bytes."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.unary_unary_rpc_method_handler(_echo)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    directory = server_node.directory
    creds = server_credentials(
        server_node.home.tls, directory.trust_roots_pem, lambda: directory.generation
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    return server, port


def echo_channel(client: Node, server_node: Node, port: int) -> grpc.aio.Channel:
    """A channel from *client* to the echo, built as the node builds its peer channels."""
    return secure_channel(
        client.home.tls, f"127.0.0.1:{port}", server_node.home.identity, server_node.home.tls.ca_pem
    )
