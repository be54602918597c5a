"""The officer listener: a gRPC server of its own (setting ``officer_listen``), mutual TLS with
this node's CA as the only client root, OfficerService only, behind the officer gate."""

from __future__ import annotations

import grpc

from node.api import officers_rpc
from node.audit.entry import AuditEntry, now_us, uuid7
from node.audit.log import AuditLog
from node.config import parse_hostport
from node.errors import ConfigError
from node.home import Home
from node.officers.check import Checker, OwnReport
from node.officers.gate import (
    OfficerDirectory,
    OfficerGate,
    OfficerGateInterceptor,
    OfficerRefused,
)
from node.officers.service import OfficerServicer
from node.peers.directory import PeerDirectory
from node.peers.transport import SERVER_OPTIONS, server_credentials
from node.storage import Store


async def start_officer_listener(
    home: Home,
    store: Store,
    peers: PeerDirectory,
    audit: AuditLog,
    secret: bytes,
    own_report: OwnReport,
) -> tuple[grpc.aio.Server, int, Checker]:
    """Bind officer_listen and serve; ConfigError naming the address if it cannot bind."""
    settings = home.settings
    gate = OfficerGate(home.identity, home.tls.ca_certificate, OfficerDirectory(store))

    async def refused(officer: str, method: str, refusal: OfficerRefused) -> None:
        await audit.record(
            AuditEntry(
                exchange=uuid7(), at_us=now_us(), direction="in", kind="refusal",
                outcome="refused", method=method[:200], officer=officer,
                reason=refusal.why[:300],
            )
        )  # fmt: skip

    gate.on_refuse = refused
    server = grpc.aio.server(interceptors=[OfficerGateInterceptor(gate)], options=SERVER_OPTIONS)
    checker = Checker(home, peers, audit, secret, own_report, settings.check_deadline_seconds)
    officers_rpc.add_OfficerServiceServicer_to_server(OfficerServicer(checker), server)
    # Trusts this node's CA only (never the peers' CAs); the node's own pair, rotated as the
    # peer port's is.
    creds = server_credentials(home.tls, lambda: home.tls.ca_pem, lambda: 0)
    listen = settings.officer_listen
    try:
        port = server.add_secure_port(listen, creds)
    except RuntimeError:
        port = 0
    if port == 0:
        host, want = parse_hostport(listen)
        raise ConfigError(f"cannot listen for officers on {listen} ({host}:{want} taken?)")
    await server.start()
    return server, port, checker
