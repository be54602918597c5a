"""The subscriber side of a feed: stream a peer's log, verify every checkpoint and leaf, and
write each verified group of leaves (with the openings received, the frontier's new hashes and
the cursor, compare-and-swap) in one transaction, so a crash or a replay never loses or doubles
an event; then fold it into the list state (:mod:`node.feeds.projection`, by its own cursor).

Whose signature a checkpoint needs: for a peer enrolled with a root (its bundle's root v1,
pinned in ``peer_roots``), at least one feed key that the peer's root held here lists as valid
*at the checkpoint's signed time* (``TrustedRoot.key_valid``; a note without a time is judged
at receipt), with that time neither far ahead of this node's clock nor earlier than the last
checkpoint verified (:func:`node.feeds.verify.verify_checkpoint`); for a peer enrolled without
one, its enrolled feed key.
The held root is brought up to date (``NodeService.GetRoot``, verified by
``TrustedRoot.update_chain``, each new version kept in one transaction) before streaming,
before a checkpoint when the last check is more than :data:`ROOT_REFRESH_SECONDS` old, and
whenever a checkpoint does not verify under the root held. A refused root update stalls the
feed.

A checkpoint that does not verify as the origin's (a malformed note, a bad signature, a key
not valid at its signed time, a backdated time: :class:`CheckpointRefused`) even under the
newest root the origin serves marks the feed ``tampered`` and keeps the note as evidence; a
time ahead of this node's clock, or a stream out of order, only stalls it. ``tampered`` and
``forked`` are never cleared by the subscriber: only an operator's ``creditnode evidence
clear`` (:func:`clear_feed_state`) does, after which the next sync judges the feed afresh.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message
from sqlalchemy import and_, insert, select, update

from keys import VerifyingKey
from node.api import feeds, feeds_rpc
from node.audit.local import out_entry
from node.audit.log import AuditLog
from node.audit.wire import Asker, new_asker
from node.feeds import measures_store, merkle, projection
from node.feeds.dates import shanghai_today
from node.feeds.leaf import LeafError, open_leaf
from node.feeds.logstore import (
    LEAVES,
    LOGS,
    LogStore,
    PendingAppend,
    StaleCursor,
    record_checkpoint,
)
from node.feeds.note import stored_checkpoint
from node.feeds.state import DISCLOSURES, OPENING_COLUMNS, STATE, AppliedLeaf, active
from node.feeds.verify import (
    CheckpointRefused,
    FeedError,
    ForkError,
    Tampered,
    VerifiedCheckpoint,
    verify_checkpoint,
    verify_leaves,
)
from node.home import TlsMaterial
from node.keys.trusted import TrustedRoot
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer
from node.peers.roots import RootFetchError, RootUnavailable, fetch_root_updates, load_held_root
from node.storage import Store, dialect
from node.storage.models import EvidenceRecord, utcnow
from node.storage.peers import PeerRepository
from node.witness.cosignature import note_body
from node.witness.store import keep_cosignatures
from node.witness.witness import verified_cosignatures

log = structlog.get_logger("creditnode.subscriber")
EVIDENCE = EvidenceRecord.__table__  # type: ignore[attr-defined]

APPLY_EVERY = 4096  # leaves per transaction during catch-up
# Durable groups whose fold into the list state may still be pending while the next group is
# written: the projection runs beside the log write, at most this many groups behind.
FOLD_BEHIND = 4
# Passes of one sync against other processes applying the same feed (each from the fresh
# cursor; the other's leaves were verified and are kept).
SYNC_ATTEMPTS = 10
DISCLOSE_STEP = 4096  # leaves per Disclose call (the origin's limit)
SUBSCRIBE = "/creditnode.v1.FeedService/Subscribe"
DISCLOSE = "/creditnode.v1.FeedService/Disclose"
# A following subscriber asks the origin for root updates before verifying a checkpoint at
# most this often (and at once when a checkpoint does not verify under the root held): how
# soon a revocation published by the origin reaches a subscriber that is streaming.
ROOT_REFRESH_SECONDS = 1.0


class ForkedPeer(Exception):
    """The peer's feed was found forked or rolled back earlier; it is no longer applied."""


class FeedUnavailable(FeedError):
    """The peer could not be asked (unreachable, refused this node, did not answer): nothing
    was received that failed verification."""


# A feed whose stream cannot be verified now (a checkpoint signed ahead of this node's clock,
# a root update refused, a stream out of order) is marked so in its log's state, for
# `status`, until a checkpoint verifies again.
STALLED = "stalled"
TAMPERED = "tampered"
FORKED = "forked"
# States only an operator clears (`creditnode evidence clear`), never the subscriber.
STICKY = (TAMPERED, FORKED)
# Refused checkpoints kept as evidence per feed: the first ones (a key that goes on signing
# adds one per checkpoint; the log names the rest).
MAX_REFUSED_RECORDS = 16
MAX_NOTE_BYTES = 64 * 1024
REFUSED_KIND = "refused-checkpoint"
# Evidence kinds that are not forks (`evidence export` hands forks only to a third party).
NOT_FORKS = ("tampered-leaf", "stored-mismatch", REFUSED_KIND)


@dataclass
class SyncProgress:
    peer: str
    start: int
    size: int
    target: int
    applied: int = 0
    checkpoints: int = 0
    state: str = "ok"
    error: str = ""


ProgressFn = Callable[[SyncProgress], None]


class Subscriber:
    def __init__(self, tls: TlsMaterial, store: Store, peer: KnownPeer) -> None:
        self.tls = tls
        self.store = store
        self.peer = peer
        self.origin = peer.identity.uri
        self.key = VerifyingKey.from_text(peer.record.feed_key)
        self.log: LogStore
        self.peers = PeerRepository(store)
        # The peer's root as held here (None: enrolled without one; the feed key decides).
        self.trusted: TrustedRoot | None = None
        self._root_checked = -float("inf")  # time.monotonic() of the last GetRoot
        # This node's audit log: each batch received and each disclosure is recorded (the
        # requester's receipts); None records nothing (a test's bare subscriber).
        self.audit: AuditLog | None = None
        # Measures catalogue digests asked for already (held, kept, refused or unavailable):
        # each cited one (recorded by the projection) is fetched once its leaves are folded.
        self.catalogues_done: set[str] = set()

    @classmethod
    async def open(
        cls, tls: TlsMaterial, store: Store, peer: KnownPeer, *, audit: AuditLog | None = None
    ) -> Subscriber:
        sub = cls(tls, store, peer)
        try:
            sub.log = await LogStore.open(store, sub.origin, peer=peer.identity.node)
        except ValueError as exc:  # the stored hashes do not give the stored root
            await record_tampered(store, sub.origin, Tampered(str(exc), index=None, stored=True))
            raise Tampered(str(exc), index=None, stored=True) from None
        sub.audit = audit
        c = sub.log.cursor
        if (
            c.checkpoint_note
            and c.size == c.checkpoint_size
            and stored_checkpoint(c.checkpoint_note).root != c.root
        ):
            found = Tampered(
                f"the stored leaves of size {c.size} do not give the verified root",
                index=None,
                stored=True,
            )
            await record_tampered(store, sub.origin, found, c.checkpoint_note)
            raise found
        return sub

    async def _received(
        self, asker: Asker, method: str, kind: str, seq: int, message: Message, **fields: Any
    ) -> None:
        """Record this node's receipt of one message from the origin (if it keeps a log)."""
        if self.audit is None:
            return
        await self.audit.record(
            out_entry(asker, peer=self.peer.identity.node, method=method, kind=kind,
                      outcome="received", seq=seq, response=message.SerializeToString(),
                      **fields)
        )  # fmt: skip

    # -- the peer's root --------------------------------------------------------------------

    async def load_root(self) -> None:
        """The newest version of the peer's root held here, checked as a self-signed root
        (each was verified against its predecessor before it was kept)."""
        try:
            self.trusted = await load_held_root(self.peers, self.peer.identity)
        except RootFetchError as exc:
            raise FeedError(str(exc)) from None

    async def update_root(self, channel: grpc.aio.Channel) -> int:
        """Fetch the peer's root versions after the one held, verify them as a chain from it
        and keep them (:func:`node.peers.roots.fetch_root_updates`). Returns how many were
        accepted. A refusal raises FeedError (nothing kept, the held root unchanged)."""
        if self.trusted is None:
            return 0
        try:
            update = await fetch_root_updates(channel, self.peers, self.peer, self.trusted)
        except RootUnavailable as exc:
            raise FeedUnavailable(str(exc)) from None
        except RootFetchError as exc:
            raise FeedError(str(exc)) from None
        self.trusted = update.trusted
        self._root_checked = time.monotonic()
        return update.accepted

    def verifiers(self) -> VerifyingKey | TrustedRoot:
        """What judges a checkpoint's signature: the root held (a feed key it lists, valid at
        the signed time), or the enrolled feed key for a peer without a root."""
        return self.key if self.trusted is None else self.trusted

    async def check_checkpoint(
        self,
        channel: grpc.aio.Channel,
        signed: feeds.SignedCheckpoint,
        verified: VerifiedCheckpoint | None,
    ) -> VerifiedCheckpoint:
        """Verify a checkpoint under the peer's root (brought up to date first if the last
        check is old, and again if the checkpoint does not verify) or its enrolled key."""
        if (
            self.trusted is not None
            and time.monotonic() - self._root_checked >= ROOT_REFRESH_SECONDS
        ):
            await self.update_root(channel)
        try:
            return verify_checkpoint(
                signed, self.verifiers(), self.origin, verified, now=dt.datetime.now(dt.UTC)
            )
        except ForkError:
            raise
        except FeedError:
            if self.trusted is None or not await self.update_root(channel):
                raise
        # A newer root arrived (a rotation published meanwhile): verify under it.
        return verify_checkpoint(
            signed, self.verifiers(), self.origin, verified, now=dt.datetime.now(dt.UTC)
        )

    # -- streaming ----------------------------------------------------------------------

    def _verified(self) -> VerifiedCheckpoint | None:
        c = self.log.cursor
        if not c.checkpoint_note:
            return None
        return VerifiedCheckpoint(stored_checkpoint(c.checkpoint_note), c.checkpoint_note)

    async def sync(
        self, *, follow: bool, progress: ProgressFn | None = None, timeout: float | None = None
    ) -> SyncProgress:
        """:meth:`_sync_once`, again from the fresh cursor whenever another process (a second
        `sync`, or the serving node's follower) applied leaves of this feed first."""
        start = self.log.cursor.size
        for attempt in range(SYNC_ATTEMPTS):
            try:
                status = await self._sync_once(follow=follow, progress=progress, timeout=timeout)
            except StaleCursor:
                await self.log.reload()
                log.info("feed moved under us; syncing again from its cursor",
                         peer=self.peer.identity.node, attempt=attempt)  # fmt: skip
                continue
            status.start = min(status.start, start)
            return status
        raise StaleCursor(f"{self.peer.identity.node}: the mirror keeps moving under this sync")

    async def _sync_once(
        self, *, follow: bool, progress: ProgressFn | None = None, timeout: float | None = None
    ) -> SyncProgress:
        """Stream from the cursor. Without *follow*, return once caught up with the first
        checkpoint; with it, keep applying the live tail until cancelled.

        While one verified group is written (in the database driver's thread), the next is
        received and verified: at most one write is in flight, and groups commit in order.
        Each durable group is then folded into the list state by a task of its own, in order,
        beside the next writes, at most :data:`FOLD_BEHIND` groups behind; a sync returns once
        the folds have caught up.
        """
        if self.log.cursor.state == "forked":
            raise ForkedPeer(
                f"{self.peer.identity.node}: feed stopped after {self.log.cursor.state_detail}"
            )
        cursor = self.log.cursor
        status = SyncProgress(
            self.peer.identity.node, cursor.size, cursor.size, cursor.checkpoint_size
        )
        verified = self._verified()
        frontier = self.log.frontier.copy()
        group: list[bytes] = []
        group_openings: list[tuple[int, bytes]] = []
        group_applied: list[AppliedLeaf] = []
        target: VerifiedCheckpoint | None = None
        inflight: asyncio.Task[None] | None = None
        # Each durable group's fold, in order (each awaits its write and the fold before it).
        folds: collections.deque[asyncio.Task[None]] = collections.deque()

        async def settle() -> None:
            """Wait for the log write in flight (durable)."""
            nonlocal inflight
            if inflight is not None:
                task, inflight = inflight, None
                await task

        async def caught_up() -> None:
            """Wait for the log write in flight and every fold after it (projection current)."""
            await settle()
            while folds:
                await folds.popleft()

        async def write(
            start: int,
            rows: list[bytes],
            openings: list[tuple[int, bytes]],
            snapshot: merkle.Frontier,
            cp: VerifiedCheckpoint,
        ) -> None:
            await self._apply(start, rows, openings, snapshot, cp)
            status.applied += len(rows)
            status.size = snapshot.size
            if progress:
                progress(status)

        async def fold_after(
            written: asyncio.Task[None],
            before: asyncio.Task[None] | None,
            start: int,
            applied: list[AppliedLeaf],
        ) -> None:
            # The projection of a group once it is durable and the groups before it are
            # folded, from the leaves opened here (not read back). It runs beside the next
            # group's log write and verification: "verified and durable" never waits for it.
            await written
            if before is not None:
                await before
            await self.fold(known=(start, applied), upto=start + len(applied))

        request = feeds.SubscribeRequest(
            from_size=cursor.size, checkpoint_size=verified.size if verified else 0
        )
        channel = self.peer.channel(self.tls)
        try:
            await self.load_root()
            await self.update_root(channel)
            await self.fold()  # what an earlier process wrote and did not fold (a crash)
            asker = new_asker()
            # No deadline on the stream: a first sync of millions of entries outlasts any
            # fixed one. *timeout* bounds the origin's silence instead (_messages).
            call = feeds_rpc.FeedServiceStub(channel).Subscribe(request, metadata=asker.metadata())
            seq = -1
            async for msg in self._messages(call, timeout):
                seq += 1  # every message of the stream, as the origin numbers them
                if msg.HasField("checkpoint"):
                    try:
                        new = await self.check_checkpoint(channel, msg.checkpoint, verified)
                    except ForkError as fork:
                        await settle()
                        await self._record_fork(fork)
                        raise
                    if msg.checkpoint.cosignatures:
                        await self._keep_cosignatures(new, msg.checkpoint.cosignatures)
                    if frontier.size > new.size:
                        raise FeedError("checkpoint is behind leaves already applied")
                    if frontier.size == new.size and frontier.root() != new.root:
                        raise Tampered(
                            "applied leaves do not match the checkpoint root", index=None,
                            stored=True,
                        )  # fmt: skip
                    if self.log.cursor.state == STALLED:
                        await self._set_state("ok", "")
                        log.info("peer feed verifies again", peer=self.peer.identity.node)
                    verified = target = new
                    status.target = new.size
                    status.checkpoints += 1
                    if frontier.size == new.size:
                        await (settle() if follow else caught_up())
                        await self._store_checkpoint(new)
                        await self._fetch_catalogues(channel)
                        if progress:
                            progress(status)
                        if not follow:
                            call.cancel()
                            return status
                    continue
                if target is None:
                    raise FeedError("leaves arrived before any checkpoint")
                start = frontier.size
                got = verify_leaves(
                    frontier, target, msg.batch, self.origin, projection.openings_bytes
                )
                group.extend(got.leaves)
                group_openings.extend(got.openings)
                group_applied.extend(
                    AppliedLeaf(i, o, leaf.disclosures)
                    for i, o, leaf in zip(
                        range(start, frontier.size), got.opened, msg.batch.leaves, strict=True
                    )
                )
                if msg.batch.leaves:
                    await self._received(
                        asker, SUBSCRIBE, "feed_range", seq, msg,
                        leaves=(start, start + len(msg.batch.leaves) - 1),
                    )  # fmt: skip
                if len(group) >= APPLY_EVERY or frontier.size == target.size:
                    snapshot = frontier.copy()
                    await settle()
                    first = snapshot.size - len(group)
                    inflight = asyncio.create_task(
                        write(first, group, group_openings, snapshot, target)
                    )
                    folds.append(asyncio.create_task(
                        fold_after(inflight, folds[-1] if folds else None, first, group_applied)
                    ))  # fmt: skip
                    group, group_openings, group_applied = [], [], []
                    # The projection's lag is bounded; a failed fold surfaces here at once.
                    while folds and (len(folds) > FOLD_BEHIND or folds[0].done()):
                        await folds.popleft()
                    if frontier.size == target.size:
                        await caught_up()  # the citing entries first, then their catalogue
                        await self._fetch_catalogues(channel)
                    if frontier.size == target.size and not follow:
                        await caught_up()
                        call.cancel()
                        return status
            await caught_up()
            if not follow:  # ended by the origin (stopping, or this node withdrawn) mid-sync
                raise FeedUnavailable(
                    f"{self.peer.identity.node}: the stream ended before the feed was caught "
                    "up (the node may be stopping); sync again to resume"
                )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED:
                await caught_up()
                return status
            raise FeedUnavailable(
                describe_rpc_error(self.peer.identity, self.peer.record.endpoint, err)
            ) from None
        except (ForkError, FeedUnavailable):
            raise
        except Tampered as exc:  # evidence kept, the feed marked; nothing of it applied
            await record_tampered(self.store, self.origin, exc, verified.note if verified else b"")
            raise
        except CheckpointRefused as exc:  # not the origin's checkpoint: evidence, tampered
            await record_refused(self.store, self.origin, exc, verified.note if verified else b"")
            await self.log.reload()
            raise
        except FeedError as exc:  # what the peer sent does not verify: nothing of it applied
            await self._set_state(STALLED, str(exc))
            raise
        finally:
            if inflight is not None:  # leaving on an error: let the last write finish or fail
                with contextlib.suppress(Exception):
                    await inflight
            for pending in folds:  # and the folds of the durable groups
                with contextlib.suppress(Exception):
                    await pending
            await channel.close()
        return status

    async def _messages(
        self, call: Any, silence: float | None
    ) -> AsyncIterator[feeds.SubscribeResponse]:
        """The stream's messages; with *silence*, the origin sending nothing for that many
        seconds (before its first message or between two) ends the sync as unanswered."""
        while True:
            try:
                msg = await asyncio.wait_for(call.read(), silence)
            except TimeoutError:
                call.cancel()
                raise FeedUnavailable(
                    f"{self.peer.identity.node} at {self.peer.record.endpoint} did not answer "
                    f"in time (nothing for {silence:g} s)"
                ) from None
            if msg is grpc.aio.EOF:
                return
            yield msg

    async def _fetch_catalogues(self, channel: grpc.aio.Channel) -> None:
        """Fetch and verify the measures catalogues the folded bodies cite and this subscriber
        has not asked for. Never stalls the feed; each digest is asked for at most once per
        subscriber (the next sync or reconnection asks again for one still not held)."""
        async with self.store.engine.connect() as conn:
            wanted = await measures_store.cited(conn, self.log.log_id) - self.catalogues_done
        if not wanted:
            return
        try:
            fetched = await measures_store.fetch_missing(
                channel, self.store, wanted, peer=self.peer.identity.node, audit=self.audit
            )
        except Exception:
            log.exception("measures catalogues not fetched", peer=self.peer.identity.node)
            return
        self.catalogues_done.update(
            fetched.held, fetched.kept, fetched.refused, fetched.unavailable
        )

    async def disclose(
        self, *, progress: ProgressFn | None = None, timeout: float | None = 60.0
    ) -> int:
        """Ask the origin for the openings its agreement now grants of leaves already held,
        verify each against the commitment in the held leaf, and keep those of entries still
        live. Returns how many openings were added."""
        if self.log.cursor.state == "forked":
            raise ForkedPeer(
                f"{self.peer.identity.node}: feed stopped after {self.log.cursor.state_detail}"
            )
        size = self.log.cursor.size
        status = SyncProgress(self.peer.identity.node, 0, 0, size)
        added = 0
        channel = self.peer.channel(self.tls)
        try:
            stub = feeds_rpc.FeedServiceStub(channel)
            for start in range(0, size, DISCLOSE_STEP):
                end = min(size, start + DISCLOSE_STEP)
                asker = new_asker()
                try:
                    resp = await stub.Disclose(
                        feeds.DiscloseRequest(start=start, end=end),
                        timeout=timeout,
                        metadata=asker.metadata(),
                    )
                except grpc.aio.AioRpcError as err:
                    raise FeedUnavailable(
                        describe_rpc_error(self.peer.identity, self.peer.record.endpoint, err)
                    ) from None
                await self._received(
                    asker, DISCLOSE, "disclosure", 0, resp, remote=resp.audit_index
                )
                added += await self._keep_disclosed(start, end, resp)
                status.size = status.applied = end
                if progress:
                    progress(status)
        finally:
            await channel.close()
        log.info("openings disclosed", peer=self.peer.identity.node, added=added)
        return added

    async def _keep_disclosed(self, start: int, end: int, resp: feeds.DiscloseResponse) -> int:
        indexes = [int(d.index) for d in resp.leaves]
        if any(not start <= i < end for i in indexes) or len(set(indexes)) != len(indexes):
            raise FeedError("disclosed leaves outside the range asked for, or repeated")
        if not indexes:
            return 0
        async with self.store.engine.connect() as conn:
            held: dict[int, bytes] = dict(
                (await conn.execute(
                    select(LEAVES.c.idx, LEAVES.c.data).where(and_(
                        LEAVES.c.log_id == self.log.log_id, LEAVES.c.idx.in_(indexes)))
                )).all()
            )  # fmt: skip
            live: dict[int, str] = dict(
                (await conn.execute(
                    select(STATE.c.last_idx, STATE.c.entry_id).where(and_(
                        STATE.c.log_id == self.log.log_id, STATE.c.last_idx.in_(indexes),
                        active(shanghai_today())))
                )).all()
            )  # fmt: skip
        rows: list[tuple[int, int, str, str, bytes, str]] = []
        for d in resp.leaves:
            data = held.get(d.index)
            if data is None:
                raise FeedError(f"opening for leaf {d.index}, which this node does not hold")
            try:
                opened = open_leaf(bytes(data), d.disclosures)  # the held, verified bytes
            except LeafError as exc:
                raise FeedError(f"leaf {d.index}: {exc}") from None
            entry_id = live.get(d.index)
            if entry_id is None or entry_id != opened.leaf.entry_id:
                continue  # superseded or removed since: nothing to keep
            rows.extend(
                (self.log.log_id, int(d.index), o.field, entry_id, o.salt, o.value)
                for o in d.disclosures
            )
        if rows:
            async with self.store.begin() as conn:
                await dialect.bulk_insert(
                    conn, DISCLOSURES, OPENING_COLUMNS, rows,
                    conflict_keys=("log_id", "idx", "field"), update=("salt", "value"),
                )  # fmt: skip
        return len(rows)

    async def _apply(
        self,
        start: int,
        leaves: list[bytes],
        openings: list[tuple[int, bytes]],
        frontier: merkle.Frontier,
        target: VerifiedCheckpoint,
    ) -> None:
        """The durable write of a verified group: the leaves, the openings received with
        them, the frontier's new hashes and the cursor, in one transaction. The list state is
        folded from them after (:meth:`fold`)."""
        pending = PendingAppend(
            start=start, leaves=leaves, frontier=frontier, hashes=frontier.stored(),
            openings=openings,
        )  # fmt: skip
        fields = {"checkpoint_size": target.size, "checkpoint_note": target.note}
        async with self.store.begin() as conn:
            await self.log.write(conn, pending, projected=False, all_hashes=False, **fields)
            await record_checkpoint(conn, self.log.log_id, target.size, target.note)
        self.log.committed(pending, projected=False, **fields)

    async def fold(
        self, known: tuple[int, Sequence[AppliedLeaf]] | None = None, upto: int | None = None
    ) -> projection.Folded:
        """Fold the leaves written and not yet projected into the list state (*known*, *upto*:
        see :func:`node.feeds.projection.fold`)."""
        done = await projection.fold(self.store, self.log.log_id, known=known, upto=upto)
        self.log.cursor = dataclasses.replace(self.log.cursor, projected_size=done.projected)
        return done

    async def _store_checkpoint(self, cp: VerifiedCheckpoint) -> None:
        if cp.note == self.log.cursor.checkpoint_note:
            return
        async with self.store.begin() as conn:
            # Only over a tree of that size: another process that applied more meanwhile
            # keeps its newer checkpoint (this sync starts again from its cursor).
            result = await conn.execute(
                update(LOGS)
                .where(and_(LOGS.c.id == self.log.log_id, LOGS.c.size == cp.size,
                            LOGS.c.checkpoint_size <= cp.size))
                .values(checkpoint_size=cp.size, checkpoint_note=cp.note, updated_at=utcnow())
            )  # fmt: skip
            if result.rowcount != 1:
                raise StaleCursor(f"{self.origin} moved past size {cp.size}")
            await record_checkpoint(conn, self.log.log_id, cp.size, cp.note)
        pending = PendingAppend(self.log.cursor.size, [], self.log.frontier, [])
        self.log.committed(
            pending, projected=False, checkpoint_size=cp.size, checkpoint_note=cp.note
        )

    async def _keep_cosignatures(self, cp: VerifiedCheckpoint, lines: Sequence[str]) -> None:
        """Keep the peers' cosignatures served with a verified checkpoint that verify under
        the cosigners' trust held here (best effort: a failure never stops the feed)."""
        try:
            body = note_body(cp.note)
            kept = await verified_cosignatures(self.peers, body, lines, skip=self.origin)
            await keep_cosignatures(self.store, self.origin, body, cp.size, kept)
        except Exception:
            log.exception("cosignatures not kept", peer=self.peer.identity.node)

    async def _set_state(self, state: str, detail: str) -> None:
        """Mark the mirror stalled (with why) or ok again. A ``forked`` or ``tampered`` mark
        (kept in the database, perhaps set meanwhile by another process) is never
        overwritten: only an operator clears it (:func:`clear_feed_state`)."""
        if self.log.cursor.state == state and self.log.cursor.state_detail == detail[:500]:
            return
        if state == STALLED:
            log.warning("peer feed stalled", peer=self.peer.identity.node, reason=detail)
        async with self.store.begin() as conn:
            await conn.execute(
                update(LOGS)
                .where(and_(LOGS.c.id == self.log.log_id, LOGS.c.state.not_in(STICKY)))
                .values(state=state, state_detail=detail[:500], updated_at=utcnow())
            )
            state, detail = (
                await conn.execute(
                    select(LOGS.c.state, LOGS.c.state_detail).where(LOGS.c.id == self.log.log_id)
                )
            ).one()
        self.log.cursor = dataclasses.replace(
            self.log.cursor, state=state, state_detail=detail[:500]
        )

    async def _record_fork(self, fork: ForkError) -> None:
        log.error(
            "peer feed forked", peer=self.peer.identity.node, kind=fork.kind, detail=fork.detail
        )
        async with self.store.begin() as conn:
            await conn.execute(
                insert(EVIDENCE).values(
                    log_id=self.log.log_id,
                    kind=fork.kind,
                    detail=fork.detail[:500],
                    earlier_note=fork.earlier,
                    later_note=fork.later,
                    proof=fork.proof,
                    recorded_at=utcnow(),
                )
            )
            await conn.execute(
                update(LOGS)
                .where(LOGS.c.id == self.log.log_id)
                .values(
                    state="forked",
                    state_detail=f"{fork.kind}: {fork.detail}"[:500],
                    updated_at=utcnow(),
                )
            )
        await self.log.reload()


async def follow_forever(
    tls: TlsMaterial,
    store: Store,
    peer: KnownPeer,
    *,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    audit: AuditLog | None = None,
) -> None:
    """Keep a peer's mirror current: subscribe, and on any failure reconnect with jittered
    exponential backoff from the stored cursor. A fork stops it for good."""
    delay = base_delay
    while True:
        try:
            sub = await Subscriber.open(tls, store, peer, audit=audit)
            await sub.sync(follow=True)
            delay = base_delay
        except (ForkError, ForkedPeer) as exc:
            log.error("stopped applying peer feed", peer=peer.identity.node, reason=str(exc))
            return
        except FeedError as exc:
            log.warning("feed interrupted", peer=peer.identity.node, reason=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:  # storage hiccups: retry from the durable cursor
            log.exception("feed failed", peer=peer.identity.node)
        await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
        delay = min(delay * 2, max_delay)


async def record_tampered(store: Store, origin: str, found: Tampered, note: bytes = b"") -> None:
    """Keep evidence that a feed does not verify (the verified checkpoint it was checked
    against, and the leaf bytes received, which carry commitments only) and mark the feed
    ``tampered`` (a fork is never overwritten). The same finding twice keeps one record."""
    detail = f"sync: {found}"[:500]
    kind = "stored-mismatch" if found.stored else "tampered-leaf"
    log.error("peer feed does not verify", origin=origin, kind=kind, detail=str(found))
    async with store.begin() as conn:
        row = (
            await conn.execute(
                select(LOGS.c.id, LOGS.c.state, LOGS.c.state_detail).where(LOGS.c.origin == origin)
            )
        ).first()
        if row is None or (row.state == TAMPERED and row.state_detail == detail):
            return
        await conn.execute(
            insert(EVIDENCE).values(
                log_id=row.id,
                kind=kind,
                detail=str(found)[:500],
                earlier_note=note,
                later_note=b"",
                proof=found.leaf,
                recorded_at=utcnow(),
            )
        )
        await conn.execute(
            update(LOGS)
            .where(and_(LOGS.c.id == row.id, LOGS.c.state != "forked"))
            .values(state=TAMPERED, state_detail=detail, updated_at=utcnow())
        )


async def record_refused(
    store: Store, origin: str, refused: CheckpointRefused, verified: bytes = b""
) -> None:
    """Keep a checkpoint that does not verify as the origin's (the note received, beside the
    last verified one, and why) and mark the feed ``tampered`` (a fork is never overwritten).
    The same note twice keeps one record; at most :data:`MAX_REFUSED_RECORDS` per feed."""
    detail = f"sync: {refused}"[:500]
    note = refused.note if len(refused.note) <= MAX_NOTE_BYTES else b""
    log.error("peer checkpoint does not verify", origin=origin, detail=str(refused))
    async with store.begin() as conn:
        row = (
            await conn.execute(select(LOGS.c.id, LOGS.c.state).where(LOGS.c.origin == origin))
        ).first()
        if row is None:
            return
        kept = (
            await conn.execute(
                select(EVIDENCE.c.later_note).where(
                    and_(EVIDENCE.c.log_id == row.id, EVIDENCE.c.kind == REFUSED_KIND)
                )
            )
        ).all()
        if len(kept) < MAX_REFUSED_RECORDS and all(bytes(k) != note for (k,) in kept):
            await conn.execute(
                insert(EVIDENCE).values(
                    log_id=row.id,
                    kind=REFUSED_KIND,
                    detail=str(refused)[:500],
                    earlier_note=verified,
                    later_note=note,
                    proof=b"",
                    recorded_at=utcnow(),
                )
            )
        await conn.execute(
            update(LOGS)
            .where(and_(LOGS.c.id == row.id, LOGS.c.state != FORKED))
            .values(state=TAMPERED, state_detail=detail, updated_at=utcnow())
        )


@dataclass(frozen=True)
class Cleared:
    """What :func:`clear_feed_state` changed."""

    origin: str
    state: str  # the state it had
    detail: str
    evidence: int  # records kept (never deleted)


async def clear_feed_state(store: Store, origin: str) -> Cleared:
    """The operator's decision that a ``tampered`` or ``forked`` feed may be judged afresh:
    its state goes back to ``ok`` (the evidence stays). The next sync re-verifies from the
    checkpoint held, so a fork or a bad checkpoint still served is found, and marked, again.
    Raises ValueError if the feed is not marked, or a standing ``verify`` finding marks it
    (a clean pass of ``creditnode verify`` clears that)."""
    async with store.begin() as conn:
        row = (
            await conn.execute(
                select(LOGS.c.id, LOGS.c.state, LOGS.c.state_detail).where(LOGS.c.origin == origin)
            )
        ).first()
        if row is None:
            raise ValueError("no feed of it is held")
        if row.state not in STICKY:
            raise ValueError(f"its feed is {row.state}, not tampered or forked: nothing to clear")
        if str(row.state_detail).startswith("verify: "):
            raise ValueError(
                "its stored data has standing `creditnode verify` findings; a clean pass of "
                "`creditnode verify` clears them"
            )
        count = len(
            (await conn.execute(select(EVIDENCE.c.id).where(EVIDENCE.c.log_id == row.id))).all()
        )
        await conn.execute(
            update(LOGS)
            .where(and_(LOGS.c.id == row.id, LOGS.c.state == row.state))
            .values(state="ok", state_detail="", updated_at=utcnow())
        )
    return Cleared(origin, str(row.state), str(row.state_detail), count)
