"""Calling a peer: one mTLS channel per call site, errors turned into one clear line."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from keys import NodeIdentity
from node.api import pb, rpc
from node.errors import PeerError
from node.home import TlsMaterial
from node.peers.transport import secure_channel


@dataclass(frozen=True)
class Probe:
    state: str  # up | unreachable | refused
    info: pb.NodeInfo | None
    latency_ms: float
    error: str


def describe_rpc_error(peer: NodeIdentity, endpoint: str, err: grpc.aio.AioRpcError) -> str:
    code = err.code()
    details = (err.details() or "").splitlines()[0] if err.details() else ""
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"{peer.node} at {endpoint} refused this node: {details}"
    if code == grpc.StatusCode.UNAVAILABLE:
        # Only a failed certificate check means "wrong certificate"; a handshake cut short by
        # a peer going down is just unreachable.
        if "certificate" in details.lower():
            return (
                f"{peer.node} at {endpoint}: its certificate does not verify against the CA "
                "enrolled for it (wrong certificate or CA)"
            )
        return f"{peer.node} at {endpoint} is unreachable ({details or 'no answer'})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{peer.node} at {endpoint} did not answer in time"
    return f"{peer.node} at {endpoint}: {code.name} {details}".strip()


async def probe(
    tls: TlsMaterial, peer: NodeIdentity, endpoint: str, peer_ca_pem: bytes, *, timeout: float
) -> Probe:
    """Call the peer's GetInfo and classify the outcome; never raises for network faults."""
    start = time.perf_counter()
    async with secure_channel(tls, endpoint, peer, peer_ca_pem) as channel:
        try:
            resp = await rpc.NodeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            state = "refused" if err.code() == grpc.StatusCode.PERMISSION_DENIED else "unreachable"
            return Probe(
                state,
                None,
                (time.perf_counter() - start) * 1000,
                describe_rpc_error(peer, endpoint, err),
            )
    elapsed = (time.perf_counter() - start) * 1000
    if resp.node.name != peer.node or resp.node.federation != peer.federation:
        return Probe(
            "refused",
            None,
            elapsed,
            f"{endpoint} answered as {resp.node.federation}/{resp.node.name}",
        )
    return Probe("up", resp.node, elapsed, "")


async def fetch_peers(
    tls: TlsMaterial, peer: NodeIdentity, endpoint: str, peer_ca_pem: bytes, *, timeout: float
) -> list[pb.PeerStatus]:
    async with secure_channel(tls, endpoint, peer, peer_ca_pem) as channel:
        try:
            resp = await rpc.NodeServiceStub(channel).ListPeers(
                pb.ListPeersRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise PeerError(describe_rpc_error(peer, endpoint, err)) from None
    return list(resp.peers)
