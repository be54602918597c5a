"""Asking a peer for its pseudonyms of this node's own persons, obliviously (RFC 9497).

Only blinded elements leave: the peer learns nothing of the IDs, and this node learns the
peer's pseudonym of each, which finds the person in what the peer published (its mirrored feed
here, or a ``Lookup`` at the peer).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from node.api import pseudonyms, pseudonyms_rpc
from node.errors import PeerError
from node.home import TlsMaterial
from node.identity.oprf import OprfError
from node.identity.pseudonym import blind_id, finalize_id
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer

MAX_PER_CALL = 64


async def pseudonyms_at(
    peer: KnownPeer,
    tls: TlsMaterial,
    ids: Sequence[str],
    *,
    purpose: str,
    timeout: float = 10.0,
    metadata: Sequence[tuple[str, str | bytes]] = (),
    receipts: list[int] | None = None,
) -> list[str]:
    """*peer*'s pseudonym of each resident ID in *ids* (validated by the caller), in order.

    Raises PeerError if the peer is unreachable, refuses (purpose not allowed, over its rate
    limit) or answers with something that is not a valid evaluation; ValueError for an invalid
    ID (its message never contains the ID). *metadata* goes with each call (the audit
    exchange); each answer's audit index at the peer is appended to *receipts*.
    """
    out: list[str] = []
    async with peer.channel(tls) as channel:
        stub = pseudonyms_rpc.PseudonymServiceStub(channel)
        for i in range(0, len(ids), MAX_PER_CALL):
            part = ids[i : i + MAX_PER_CALL]
            blinds = [blind_id(idno) for idno in part]
            request = pseudonyms.EvaluateRequest(
                purpose=purpose, blinded_elements=[b for _, b in blinds]
            )
            try:
                resp = await stub.Evaluate(request, timeout=timeout, metadata=metadata)
            except grpc.aio.AioRpcError as err:
                raise PeerError(
                    describe_rpc_error(peer.identity, peer.record.endpoint, err)
                ) from None
            if receipts is not None:
                receipts.append(resp.audit_index)
            if len(resp.evaluated_elements) != len(part) or resp.key_version < 1:
                raise PeerError(f"{peer.identity.node}: pseudonym answer does not match the ask")
            try:
                out.extend(
                    finalize_id(idno, r, bytes(e), resp.key_version)
                    for idno, (r, _), e in zip(part, blinds, resp.evaluated_elements, strict=True)
                )
            except OprfError as exc:
                raise PeerError(
                    f"{peer.identity.node}: invalid pseudonym evaluation ({exc})"
                ) from None
    return out
