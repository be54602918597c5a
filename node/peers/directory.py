"""The in-memory view of enrolled peers that the server and heartbeat consult on every call.

The database is the record. Every enrollment change (``peer add``, ``peer remove``, by this
process or another one on the same database) bumps the enrollment generation in its own
transaction; :meth:`PeerDirectory.sync` reads that one row and reloads the view when it moved,
and :meth:`PeerDirectory.watch` does so every 200 ms. Each reload that changes something tells
the listeners (the gate cuts the calls of a removed or re-keyed peer, the runtime rebuilds the
peer's feed follower) and, if the set of CAs changed, bumps :attr:`PeerDirectory.generation`,
which the TLS layer checks before each handshake.

The view also holds each peer's newest verified root (``peer_roots``; keeping a new version
bumps the same generation row), parsed once per version: the gate checks a peer's presented
certificate against the transport keys it lists (:meth:`PeerDirectory.root`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import grpc
import structlog
from cryptography import x509

from keys import NodeIdentity, load_certificate
from node.home import TlsMaterial
from node.keys.trusted import RootError, TrustedRoot
from node.peers.transport import secure_channel
from node.storage import PeerRecord, Store
from node.storage.peers import PeerRepository

log = structlog.get_logger("creditnode.peers")

# An unknown caller re-reads enrollment at most this often (a `peer add` by another process).
_MISS_REFRESH_SECONDS = 0.25
# How often a running node reads the enrollment generation (one primary-key read).
WATCH_SECONDS = 0.2
# The parts of a peer's record that, when they change, make it a different peer to talk to.
_RECORD_FIELDS = {
    "endpoint": "endpoint",
    "ca_certificate": "CA",
    "tls_certificate": "TLS certificate",
    "feed_key": "feed key",
    "root_v1_sha256": "root v1",
}
# A change of these means the peer's keys changed: its open calls are cut.
_KEY_FIELDS = frozenset({"CA", "feed key", "root v1"})


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


@dataclass(frozen=True)
class HeldRoot:
    """A peer's newest verified root version as held here; *trusted* is None (and *problem*
    says why) if it cannot be read back, which the gate treats as a refusal (fail closed)."""

    version: int
    sha256: str
    trusted: TrustedRoot | None
    problem: str = ""

    @classmethod
    def of(cls, version: int, data: bytes) -> HeldRoot:
        sha = hashlib.sha256(data).hexdigest()
        try:
            return cls(version, sha, TrustedRoot(data))
        except RootError as exc:
            return cls(version, sha, None, f"held root v{version} is unusable: {exc}")


@dataclass(frozen=True)
class DirectoryChange:
    """What one reload of the directory changed."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    # name -> what changed in its record ("endpoint", "CA", "TLS certificate", "feed key")
    changed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # peers whose newest held root changed (a newer version verified, or a re-pin)
    roots: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.roots)

    @property
    def rekeyed(self) -> frozenset[str]:
        """Peers re-enrolled with another CA, feed key or pinned root v1."""
        return frozenset(n for n, what in self.changed.items() if what & _KEY_FIELDS)


Listener = Callable[[DirectoryChange], None]


def _diff(old: Mapping[str, KnownPeer], new: Mapping[str, KnownPeer]) -> DirectoryChange:
    changed: dict[str, frozenset[str]] = {}
    for name in old.keys() & new.keys():
        a, b = old[name].record, new[name].record
        what = frozenset(
            label for attr, label in _RECORD_FIELDS.items() if getattr(a, attr) != getattr(b, attr)
        )
        if what:
            changed[name] = what
    return DirectoryChange(
        added=frozenset(new.keys() - old.keys()),
        removed=frozenset(old.keys() - new.keys()),
        changed=changed,
    )


class PeerDirectory:
    def __init__(self, store: Store, federation: str, own_ca_pem: bytes) -> None:
        self._repo = PeerRepository(store)
        self._federation = federation
        self._own_ca_pem = own_ca_pem
        self._peers: dict[str, KnownPeer] = {}
        self._roots: dict[str, HeldRoot] = {}
        self._lock = asyncio.Lock()
        self._last_refresh = 0.0
        self._listeners: list[Listener] = []
        # The enrollment generation this view reflects (None: never read).
        self._seen: int | None = None
        # Coalescing of concurrent sync() calls: the read in flight, and the number of calls
        # that had arrived when it began (each of them is answered by it).
        self._arrivals = 0
        self._read: asyncio.Future[None] | None = None
        self._read_covers = 0
        # Bumped when the set of trust roots changes; the TLS layer reloads them on a change.
        self.generation = 0

    @property
    def repository(self) -> PeerRepository:
        return self._repo

    def add_listener(self, listener: Listener) -> None:
        """Call *listener* (synchronously, under the reload's lock) after each reload that
        changed something."""
        self._listeners.append(listener)

    async def refresh(self) -> DirectoryChange:
        """Reload the view from the database and tell the listeners what changed."""
        async with self._lock:
            # The generation first: the rows read after it include at least its changes.
            seen = await self._repo.generation()
            rows = await self._repo.list()
            held = await self._repo.held_roots()
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
            roots: dict[str, HeldRoot] = {}
            for name, (version, data) in held.items():
                if name not in peers:
                    continue
                old = self._roots.get(name)
                same = old is not None and old.version == version
                if same and old is not None and old.sha256 == hashlib.sha256(data).hexdigest():
                    roots[name] = old  # parsed and checked once per version
                else:
                    roots[name] = HeldRoot.of(version, data)
                    if roots[name].trusted is None:
                        log.warning("held peer root unusable", peer=name, version=version)
            # An unchanged root is the same object (kept above); anything else moved.
            moved = frozenset(
                n
                for n in (roots.keys() | self._roots.keys()) & peers.keys()
                if roots.get(n) is not self._roots.get(n)
            )
            change = replace(_diff(self._peers, peers), roots=moved)
            self._peers = peers
            self._roots = roots
            self._seen = seen if self._seen is None else max(seen, self._seen)
            self._last_refresh = time.monotonic()
            if change:
                log.info(
                    "enrollment changed",
                    added=sorted(change.added),
                    removed=sorted(change.removed),
                    changed={n: sorted(w) for n, w in sorted(change.changed.items())},
                    roots={n: roots[n].version for n in sorted(change.roots) if n in roots},
                    generation=seen,
                )
                for listener in self._listeners:
                    try:
                        listener(change)
                    except Exception:  # one listener's fault must not hide the change
                        log.exception("enrollment listener failed")
            return change

    async def sync(self) -> None:
        """Bring the view up to the enrollment committed when this was called: one read of
        the enrollment generation, and a reload only if it moved. Concurrent callers share
        reads; each returns after a read that began after it was called."""
        self._arrivals += 1
        me = self._arrivals
        while True:
            read = self._read
            if read is None or read.done():
                self._read_covers = self._arrivals
                read = self._read = asyncio.ensure_future(self._sync_once())
                read.add_done_callback(_retrieve)
            covers = self._read_covers
            await asyncio.shield(read)
            if covers >= me:
                return

    async def _sync_once(self) -> None:
        if await self._repo.generation() != self._seen:
            await self.refresh()

    async def settle(self) -> None:
        """Wait for a read still in flight (its callers may have been cancelled): before the
        store closes."""
        if self._read is not None and not self._read.done():
            await asyncio.wait({self._read})

    async def watch(self, interval: float = WATCH_SECONDS) -> None:
        """Follow enrollment changes made anywhere (another process's ``peer add`` or ``peer
        remove``) until cancelled."""
        failing = False
        while True:
            try:
                await self.sync()
            except Exception:  # a busy or restarting database must not end the watch
                if not failing:  # once per outage, not five times a second
                    log.exception("reading the enrollment generation failed")
                failing = True
            else:
                if failing:
                    log.info("enrollment generation readable again")
                failing = False
            await asyncio.sleep(interval)

    async def lookup(self, name: str) -> KnownPeer | None:
        """The peer called *name*, re-reading the database (rate-limited) on a miss."""
        peer = self._peers.get(name)
        if peer is None and time.monotonic() - self._last_refresh >= _MISS_REFRESH_SECONDS:
            await self.refresh()
            peer = self._peers.get(name)
        return peer

    def get(self, name: str) -> KnownPeer | None:
        """The peer called *name* as this view has it (no database read)."""
        return self._peers.get(name)

    def root(self, name: str) -> HeldRoot | None:
        """*name*'s newest verified root as this view has it (None: enrolled without one)."""
        return self._roots.get(name)

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


def _retrieve(read: asyncio.Future[None]) -> None:
    """A failed read whose callers were all cancelled must not be reported as unretrieved."""
    if not read.cancelled():
        read.exception()
