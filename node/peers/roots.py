"""Peers' roots of trust as this node holds them, and telling peers that ours changed.

- :func:`fetch_root_updates` is the one way a newer version of a peer's root is taken: asked
  for with ``NodeService.GetRoot`` from the version held, verified as a chain from it
  (``TrustedRoot.update_chain``) and kept with ``PeerRepository.add_roots`` (one transaction
  per answer, which also bumps the enrollment generation so that running gates re-read it).
  The subscriber calls it before it verifies checkpoints; :class:`RootRefresher` calls it in
  the background.
- :class:`RootRefresher` fetches a peer's root when the peer says it changed
  (``NodeService.NotifyRoot``) or when the gate refused a certificate the held root does not
  list (a peer that has just rotated its certificate): at most once per
  :data:`REFRESH_INTERVAL_SECONDS` per peer, requests in between coalesced into one.
- :func:`notify_enrolled` tells every enrolled peer that this node published a root version
  (``keys rotate``, ``keys revoke``, ``keys publish-root``), best effort.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import structlog

from keys import NodeIdentity, load_certificate
from node.api import pb, rpc
from node.home import TlsMaterial
from node.keys.trusted import MAX_CHAIN, RootError, TrustedRoot
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer, PeerDirectory
from node.storage import PeerRecord, Store
from node.storage.peers import PeerRepository

log = structlog.get_logger("creditnode.roots")

ROOT_TIMEOUT_SECONDS = 10.0
# A peer's root is fetched in the background at most this often (a refused caller retrying
# in a loop, or a peer notifying in a loop, costs one GetRoot per interval).
REFRESH_INTERVAL_SECONDS = 2.0
NOTIFY_TIMEOUT_SECONDS = 5.0


class RootFetchError(Exception):
    """A peer's root could not be brought up to date; the held root is unchanged."""


class RootUnavailable(RootFetchError):
    """The peer could not be asked (unreachable, refused this node, did not answer)."""


@dataclass(frozen=True)
class RootUpdate:
    accepted: int  # versions verified (kept here, or found kept by another process)
    trusted: TrustedRoot | None  # the root held afterwards (None: the pin went meanwhile)


async def load_held_root(peers: PeerRepository, peer: NodeIdentity) -> TrustedRoot | None:
    """The newest version of *peer*'s root held here, checked as a self-signed root (each
    was verified against its predecessor before it was kept); None if none is pinned."""
    held = await peers.held_root(peer.node)
    if held is None:
        return None
    try:
        return TrustedRoot(held[1])
    except RootError as exc:
        raise RootFetchError(f"held root v{held[0]} of {peer.uri} is unusable: {exc}") from None


async def fetch_root_updates(
    channel: grpc.aio.Channel,
    peers: PeerRepository,
    peer: KnownPeer,
    trusted: TrustedRoot,
    *,
    timeout: float = ROOT_TIMEOUT_SECONDS,
) -> RootUpdate:
    """Fetch *peer*'s root versions after *trusted* (which is updated in place), verify them
    as a chain from it and keep them. RootUnavailable if the peer could not be asked,
    RootFetchError if an answer is refused (nothing of that answer kept)."""
    stub = rpc.NodeServiceStub(channel)
    current: TrustedRoot | None = trusted
    accepted = 0
    while current is not None:
        try:
            resp = await stub.GetRoot(
                pb.GetRootRequest(from_version=current.version), timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise RootUnavailable(
                describe_rpc_error(peer.identity, peer.record.endpoint, err)
            ) from None
        roots = [bytes(r) for r in resp.roots]
        if not roots:
            break
        before = (current.version, current.root.raw)
        try:
            current.update_chain(roots, now=_now())
        except RootError as exc:
            raise RootFetchError(f"root update refused (held v{before[0]}): {exc}") from None
        kept = await peers.add_roots(
            peer.identity.node,
            after=before,
            roots=[(before[0] + i, data) for i, data in enumerate(roots, start=1)],
        )
        if not kept:  # re-pinned, or kept by another process meanwhile: take what is held
            current = await load_held_root(peers, peer.identity)
        accepted += len(roots)
        log.info(
            "peer root updated",
            peer=peer.identity.node,
            version=None if current is None else current.version,
            kept=kept,
        )
        if len(roots) < MAX_CHAIN:
            break
    return RootUpdate(accepted, current)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RootRefresher:
    """Background root fetches of enrolled peers, rate-limited per peer."""

    def __init__(
        self,
        tls: TlsMaterial,
        directory: PeerDirectory,
        *,
        interval: float = REFRESH_INTERVAL_SECONDS,
    ) -> None:
        self._tls = tls
        self._directory = directory
        self._interval = interval
        self._wanted: set[str] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._last: dict[str, float] = {}
        self._closed = False

    def schedule(self, name: str) -> None:
        """Fetch enrolled peer *name*'s newer root versions soon, in the background: now if
        none was fetched in the last interval, else once the interval has passed (requests
        meanwhile are one). Never raises, never waits."""
        if self._closed:
            return
        self._wanted.add(name)
        worker = self._workers.get(name)
        if worker is None or worker.done():
            self._workers[name] = asyncio.get_running_loop().create_task(
                self._work(name), name=f"root-refresh-{name}"
            )

    async def _work(self, name: str) -> None:
        # No await between the loop's test and the task's end: a schedule() seen after the
        # test finds the task done and starts another.
        while name in self._wanted:
            wait = self._last.get(name, -math.inf) + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wanted.discard(name)
            self._last[name] = time.monotonic()
            try:
                await self.refresh(name)
            except RootUnavailable as exc:
                log.info("peer root not fetched", peer=name, error=str(exc))
            except RootFetchError as exc:
                log.warning("peer root update refused", peer=name, error=str(exc))
            except Exception as exc:  # a database fault must not end the worker unseen
                log.warning("peer root refresh failed", peer=name, error=type(exc).__name__)

    async def refresh(self, name: str) -> int:
        """Fetch, verify and keep *name*'s newer root versions now; how many were accepted.
        The directory is re-read after an update, so the gate judges with the new root."""
        peer = self._directory.get(name)
        if peer is None:
            return 0
        repo = self._directory.repository
        trusted = await load_held_root(repo, peer.identity)
        if trusted is None:
            return 0
        async with peer.channel(self._tls) as channel:
            update = await fetch_root_updates(channel, repo, peer, trusted)
        if update.accepted:
            await self._directory.sync()
        return update.accepted

    async def close(self) -> None:
        """Stop every fetch (before the store closes)."""
        self._closed = True
        tasks = [t for t in self._workers.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)


@dataclass(frozen=True)
class Notified:
    peer: str
    ok: bool
    detail: str  # the version the peer held when notified, or why it could not be told


async def notify_peers(
    tls: TlsMaterial,
    peers: Sequence[KnownPeer],
    version: int,
    *,
    timeout: float = NOTIFY_TIMEOUT_SECONDS,
) -> list[Notified]:
    """Tell each of *peers* (at once) that this node's root is now *version*; never raises."""

    async def one(peer: KnownPeer) -> Notified:
        name = peer.identity.node
        try:
            async with peer.channel(tls) as channel:
                resp = await rpc.NodeServiceStub(channel).NotifyRoot(
                    pb.NotifyRootRequest(version=version), timeout=timeout
                )
        except grpc.aio.AioRpcError as err:
            return Notified(
                name, False, describe_rpc_error(peer.identity, peer.record.endpoint, err)
            )
        except Exception as exc:  # a malformed endpoint, say: reported, never raised
            return Notified(name, False, f"{peer.record.endpoint}: {type(exc).__name__}")
        held = resp.held_version
        return Notified(name, True, f"it held v{held}" if held else "it pins no root of ours")

    return list(await asyncio.gather(*(one(p) for p in peers)))


def known_peer(record: PeerRecord) -> KnownPeer:
    return KnownPeer(
        identity=NodeIdentity(record.federation, record.name),
        record=record,
        ca=load_certificate(record.ca_certificate.encode()),
    )


async def notify_enrolled(tls: TlsMaterial, store: Store, version: int) -> list[Notified]:
    """Tell every peer enrolled in *store* that this node's root is now *version*."""
    records = await PeerRepository(store).list()
    return await notify_peers(tls, [known_peer(r) for r in records], version)
