"""The in-memory view of enrolled peers that the server and heartbeat consult on every call.

The database is the record; this cache is reloaded when enrollment changes or an unknown
caller appears (at most four times a second), so ``peer add`` on a running node takes effect
without a restart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
from cryptography import x509

from keys import NodeIdentity, load_certificate
from node.home import TlsMaterial
from node.peers.transport import secure_channel
from node.storage import PeerRecord, Store
from node.storage.peers import PeerRepository

# An unknown caller re-reads enrollment at most this often (a `peer add` by another process).
_MISS_REFRESH_SECONDS = 0.25


@dataclass(frozen=True)
class KnownPeer:
    identity: NodeIdentity
    record: PeerRecord
    ca: x509.Certificate

    def channel(self, tls: TlsMaterial) -> grpc.aio.Channel:
        """An mTLS channel to this peer's endpoint that accepts only its enrolled certificate."""
        return secure_channel(
            tls, self.record.endpoint, self.identity, self.record.ca_certificate.encode()
        )


class PeerDirectory:
    def __init__(self, store: Store, federation: str, own_ca_pem: bytes) -> None:
        self._repo = PeerRepository(store)
        self._federation = federation
        self._own_ca_pem = own_ca_pem
        self._peers: dict[str, KnownPeer] = {}
        self._lock = asyncio.Lock()
        self._last_refresh = 0.0
        self.generation = 0

    @property
    def repository(self) -> PeerRepository:
        return self._repo

    async def refresh(self) -> None:
        async with self._lock:
            rows = await self._repo.list()
            peers = {
                r.name: KnownPeer(
                    identity=NodeIdentity(r.federation, r.name),
                    record=r,
                    ca=load_certificate(r.ca_certificate.encode()),
                )
                for r in rows
            }
            if {n: p.record.ca_certificate for n, p in peers.items()} != {
                n: p.record.ca_certificate for n, p in self._peers.items()
            }:
                self.generation += 1
            self._peers = peers
            self._last_refresh = time.monotonic()

    async def lookup(self, name: str) -> KnownPeer | None:
        """The peer called *name*, re-reading the database (rate-limited) on a miss."""
        peer = self._peers.get(name)
        if peer is None and time.monotonic() - self._last_refresh >= _MISS_REFRESH_SECONDS:
            await self.refresh()
            peer = self._peers.get(name)
        return peer

    def peers(self) -> list[KnownPeer]:
        return [self._peers[n] for n in sorted(self._peers)]

    def trust_roots_pem(self) -> bytes:
        """Own CA plus every enrolled peer's CA, each once."""
        pems = [self._own_ca_pem.strip()]
        for p in self.peers():
            pem = p.record.ca_certificate.encode().strip()
            if pem not in pems:
                pems.append(pem)
        return b"\n".join(pems) + b"\n"
