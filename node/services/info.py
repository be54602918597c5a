"""NodeService: who this node is and how it sees its peers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from keys import certificate_fingerprint, load_certificate
from node import PROTOCOL_VERSION, __version__
from node.api import pb, rpc
from node.home import Home
from node.keys.store import RootStore
from node.peers.gate import current_caller
from node.peers.roots import RootRefresher
from node.storage.models import PeerRecord
from node.storage.peers import PeerRepository

_STATES = {
    "up": pb.PEER_STATE_UP,
    "unreachable": pb.PEER_STATE_UNREACHABLE,
    "refused": pb.PEER_STATE_REFUSED,
}


def timestamp(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def peer_status(row: PeerRecord, ca_fingerprint: str) -> pb.PeerStatus:
    msg = pb.PeerStatus(
        name=row.name,
        region_code=row.region,
        endpoint=row.endpoint,
        state=_STATES.get(row.state, pb.PEER_STATE_UNSPECIFIED),
        software_version=row.software_version,
        protocol_version=row.protocol_version,
        last_error=row.last_error,
        ca_fingerprint=ca_fingerprint,
    )
    if row.last_seen is not None:
        msg.last_seen.CopyFrom(timestamp(row.last_seen))
    return msg


class NodeServicer(rpc.NodeServiceServicer):
    def __init__(
        self,
        home: Home,
        peers: PeerRepository,
        started_at: dt.datetime,
        refresher: RootRefresher | None = None,
    ) -> None:
        self._home = home
        self._peers = peers
        self._started_at = started_at
        self._roots = RootStore(home.paths.root)
        self._refresher = refresher

    def info(self) -> pb.NodeInfo:
        s = self._home.settings
        return pb.NodeInfo(
            name=s.name,
            federation=s.federation,
            region_code=s.region,
            software_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            started_at=timestamp(self._started_at),
        )

    async def GetInfo(
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetInfoResponse:
        return pb.GetInfoResponse(node=self.info())

    async def ListPeers(
        self, request: pb.ListPeersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListPeersResponse:
        rows = await self._peers.list()
        return pb.ListPeersResponse(
            peers=[
                peer_status(r, certificate_fingerprint(load_certificate(r.ca_certificate.encode())))
                for r in rows
            ]
        )

    async def GetRoot(
        self, request: pb.GetRootRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetRootResponse:
        """This node's root versions after the caller's, exactly as signed; the caller
        verifies them (``TrustedRoot.update_chain``), so nothing is checked here."""
        return pb.GetRootResponse(roots=self._roots.after(request.from_version))

    async def NotifyRoot(
        self, request: pb.NotifyRootRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.NotifyRootResponse:
        """The caller published a new root: answer at once with the version held here, and
        fetch its newer versions in the background (verified there, rate-limited per peer).
        The requested version is only a hint to skip a fetch when nothing is newer."""
        caller = current_caller.get(None)
        if caller is None or caller.is_self:
            return pb.NotifyRootResponse()
        name = caller.identity.node
        held = await self._peers.held_root(name)
        if held is None:
            return pb.NotifyRootResponse()
        if request.version > held[0] and self._refresher is not None:
            self._refresher.schedule(name)
        return pb.NotifyRootResponse(held_version=held[0])
