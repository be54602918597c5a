"""Small helpers for tests: clients with arbitrary certificates against in-process nodes."""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from keys import FederationCA, NodeIdentity, generate_tls_key, private_key_pem
from node.api import pb, rpc
from node.home import TlsMaterial
from node.peers.transport import secure_channel
from node.runtime import Node


def forged_tls(ca: FederationCA, identity: NodeIdentity) -> TlsMaterial:
    """Client TLS material for *identity*, certified by *ca* (which may be anyone's)."""
    key = generate_tls_key()
    cert = ca.issue_node_certificate(identity, key.public_key())
    return TlsMaterial(
        ca_pem=ca.certificate_pem,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=private_key_pem(key),
    )


def channel_to(node: Node, tls: TlsMaterial) -> grpc.aio.Channel:
    """A channel from a client holding *tls* to *node*, trusting the node's CA."""
    return secure_channel(tls, node.endpoint, node.home.identity, node.home.tls.ca_pem)


async def get_info(node: Node, tls: TlsMaterial, timeout: float = 5.0) -> pb.GetInfoResponse:
    async with channel_to(node, tls) as channel:
        return await rpc.NodeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=timeout)


def home_of(node: Node) -> Path:
    return node.home.paths.root


async def pseudonyms_from(
    node: Node, origin: Node, ids: list[str], purpose: str = "enforcement"
) -> list[str]:
    """*origin*'s pseudonyms of *ids*, as *node* obtains them: obliviously, over mTLS."""
    from node.identity.oblivious import pseudonyms_at

    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    return await pseudonyms_at(peer, node.home.tls, ids, purpose=purpose)


def list_entry_agreement(owner: str, peer: str) -> str:
    """An agreement of *owner* sharing list entries (no committed field) with *peer* for
    licensing review and procurement: the officers' and the console's federations."""
    return f"""id = "{owner}-{peer}"
version = 1
peers = ["{peer}"]
purposes = ["licensing_review", "procurement"]

[[rule]]
data_class = "list_entry"
purposes = ["licensing_review", "procurement"]
fields = {{}}
"""
