"""Periodic liveness checks of every enrolled peer, recorded for `status` and ListPeers."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from node.home import TlsMaterial
from node.peers.client import probe
from node.peers.directory import KnownPeer, PeerDirectory

log = structlog.get_logger("creditnode.heartbeat")


class Heartbeat:
    def __init__(self, tls: TlsMaterial, directory: PeerDirectory, interval: float) -> None:
        self._tls = tls
        self._directory = directory
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def beat_once(self) -> None:
        await self._directory.refresh()
        peers = self._directory.peers()
        await asyncio.gather(*(self._check(p) for p in peers))

    async def _check(self, peer: KnownPeer) -> None:
        result = await probe(
            self._tls,
            peer.identity,
            peer.record.endpoint,
            peer.record.ca_certificate.encode(),
            timeout=min(5.0, max(self._interval, 1.0)),
        )
        if result.state != peer.record.state:
            log.info("peer state", peer=peer.identity.node, state=result.state, error=result.error)
        await self._directory.repository.record_contact(
            peer.identity.node,
            state=result.state,
            error=result.error,
            seen=result.state != "unreachable",
            software_version=result.info.software_version if result.info else None,
            protocol_version=result.info.protocol_version if result.info else None,
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.beat_once()
            except Exception:  # a bad round must not end liveness checks for good
                log.exception("heartbeat round failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
