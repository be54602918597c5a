"""gRPC transport settings shared by server and client: mutual TLS and keepalive."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import cast

import grpc

from keys import NodeIdentity
from node.home import TlsMaterial

# Long-lived feed streams idle for minutes between changes; pings keep NATs and proxies from
# dropping them, and the server must accept pings on an idle stream instead of GOAWAY-ing.
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

SERVER_OPTIONS: list[tuple[str, int | str]] = [
    *KEEPALIVE_OPTIONS,
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    # Two nodes must never share a port silently.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


# The client-side seam, as httpx's transport is: tests and benchmarks put interceptors here to
# capture every byte a node receives from its peers. Empty in production.
client_interceptors: contextvars.ContextVar[Sequence[grpc.aio.ClientInterceptor]] = (
    contextvars.ContextVar("client_interceptors", default=())
)


def server_credentials(
    tls: TlsMaterial, roots: Callable[[], bytes], generation: Callable[[], int]
) -> grpc.ServerCredentials:
    """Mutual TLS requiring a client certificate; trust roots follow enrollment changes, and
    the node's own certificate follows ``keys rotate/renew`` replacing tls/node.pem and
    node.key (connections already open keep theirs)."""
    current = {"generation": generation(), "pair": tls.current()}

    def config(root_pem: bytes, pair: tuple[bytes, bytes]) -> grpc.ServerCertificateConfiguration:
        cert_pem, key_pem = pair
        return grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem)], root_certificates=root_pem
        )

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each handshake; None keeps the current configuration.
        gen, pair = generation(), tls.current()
        if gen == current["generation"] and pair is current["pair"]:
            return None
        current["generation"], current["pair"] = gen, pair
        return config(roots(), pair)

    # The stub says the fetcher may not return None; gRPC documents None as "unchanged".
    fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], fetch)
    return grpc.dynamic_ssl_server_credentials(
        config(roots(), tls.current()), fetcher, require_client_authentication=True
    )


def channel_credentials(tls: TlsMaterial, peer_ca_pem: bytes) -> grpc.ChannelCredentials:
    """Client credentials with the certificate in force now (a rotated one once replaced)."""
    cert_pem, key_pem = tls.current()
    return grpc.ssl_channel_credentials(
        root_certificates=peer_ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def secure_channel(
    tls: TlsMaterial, endpoint: str, peer: NodeIdentity, peer_ca_pem: bytes
) -> grpc.aio.Channel:
    """A channel that only accepts *peer*'s certificate from *peer_ca_pem*, whatever the address."""
    options: list[tuple[str, int | str]] = [
        *KEEPALIVE_OPTIONS,
        ("grpc.ssl_target_name_override", peer.dns_name),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        # No bandwidth-delay probing: it grows the HTTP/2 receive window without bound on a fast
        # link, letting a publisher push a whole feed into a subscriber that verifies more
        # slowly than the publisher reads. The default window keeps the subscriber's memory
        # independent of the feed's length.
        ("grpc.http2.bdp_probe", 0),
    ]
    interceptors = list(client_interceptors.get()) or None
    return grpc.aio.secure_channel(
        endpoint, channel_credentials(tls, peer_ca_pem), options, interceptors=interceptors
    )
