"""The origin side of a feed: append events to this node's log, sign checkpoints once the tree
is durable, and tell streaming subscribers when there is something new."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from keys import SigningKey
from node.api import feeds
from node.feeds import note
from node.feeds.leaf import OpenedLeaf, build_leaf, open_leaf
from node.feeds.logstore import (
    LogStore,
    StaleCursor,
    keep_checkpoint,
    read_cursor,
    read_sizes,
)
from node.feeds.state import AppliedLeaf, apply_leaves
from node.keys.signers import FeedSigners, describe_keys
from node.storage import Store

log = structlog.get_logger("creditnode.feeds")

# Commits coalesce into one checkpoint when they land within this window.
CHECKPOINT_BATCH_SECONDS = 0.02
# Attempts of one append against other processes' appends, and the longest pause between.
APPEND_ATTEMPTS = 20
RETRY_PAUSE_SECONDS = 0.05
# How often a serving node looks for appends made by another process (`creditnode import`).
EXTERNAL_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Event:
    """One change to one entry, with the entry's full values (personal ones included)."""

    entry_id: str
    event: int
    entry: feeds.ListEntry
    removal_reason: int = feeds.REMOVAL_REASON_UNSPECIFIED
    removal_date: str = ""  # YYYY-MM-DD, Shanghai; a removal only
    removal_doc_no: str = ""  # the deciding document; a removal only


ExtraWrite = Callable[[AsyncConnection], Awaitable[None]]


class Publisher:
    """*key*: the signers (:meth:`FeedSigners.of_home`: the feed keys valid now in this node's
    own root, or ``keys/feed.key`` without a root), or one fixed key."""

    def __init__(self, store: Store, origin: str, key: SigningKey | FeedSigners) -> None:
        self.store = store
        self.origin = origin
        self.signers = key if isinstance(key, FeedSigners) else FeedSigners.fixed(key)
        self._unsigned_logged = False
        self.log: LogStore
        self._changed = asyncio.Event()
        self._latest = asyncio.Condition()
        self.latest_size = 0
        self.latest_note = b""
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, store: Store, origin: str, key: SigningKey | FeedSigners) -> Publisher:
        pub = cls(store, origin, key)
        pub.log = await LogStore.open(store, origin)
        pub.latest_size = pub.log.cursor.checkpoint_size
        pub.latest_note = pub.log.cursor.checkpoint_note
        if not pub.latest_note or pub.log.cursor.size > pub.latest_size:
            await pub.sign_checkpoint()  # subscribers always find a checkpoint, even of size 0
        return pub

    async def append(self, events: Sequence[Event], *, extra: ExtraWrite | None = None) -> int:
        """Append *events* durably in one transaction (with *extra* writes); return the size.

        Another process appending to this log at the same time (a second import, a removal
        beside a serving node) makes the cursor's compare-and-swap fail: the tree is read
        again and the same leaves are hashed onto it, until one attempt lands."""
        now = int(time.time())
        built: list[tuple[bytes, OpenedLeaf, Sequence[feeds.FieldDisclosure]]] = []
        for ev in events:
            # A removal carries no data of the entry: holders only need to drop it.
            data, openings = build_leaf(
                self.origin,
                ev.entry_id,
                ev.event,
                ev.entry,
                recorded_at_unix=now,
                removal_reason=ev.removal_reason,
                removal_date=ev.removal_date,
                removal_doc_no=ev.removal_doc_no,
            )
            # Our own leaves pass the same strict parser as a subscriber's, before any is
            # published: the origin fails closed too.
            built.append((data, open_leaf(data, openings.fields, openings.body), openings.fields))
        leaves = [data for data, _, _ in built]
        for attempt in range(APPEND_ATTEMPTS):
            pending = self.log.prepare(leaves)
            applied = [
                AppliedLeaf(pending.start + i, opened, fields)
                for i, (_, opened, fields) in enumerate(built)
            ]
            try:
                async with self.store.begin() as conn:
                    await self.log.write(conn, pending)
                    await apply_leaves(conn, self.log.log_id, applied, keep_history=True)
                    if extra is not None:
                        await extra(conn)
            except StaleCursor:
                # Another process appended first: take its tree and try again, after a short
                # random pause so that two writers in step do not collide again.
                await self.log.reload()
                log.info("log moved under us; retrying append", attempt=attempt)
                await asyncio.sleep(random.uniform(0, RETRY_PAUSE_SECONDS))  # noqa: S311
                continue
            self.log.committed(pending)
            self._changed.set()
            return pending.size
        raise StaleCursor(f"could not append to {self.origin}: the log keeps moving")

    def _keys(self, at: dt.datetime | None = None) -> tuple[SigningKey, ...]:
        keys = self.signers.signing_keys(dt.datetime.now(dt.UTC) if at is None else at)
        if not keys and not self._unsigned_logged:
            log.error(
                "no feed key valid now that this node holds: checkpoints are not signed "
                "until one is (keys rotate, or a root listing a held key)",
                origin=self.origin,
            )
        self._unsigned_logged = not keys
        return keys

    def signers_changed(self) -> bool:
        """True if the keys that sign now are not exactly those that signed the newest
        checkpoint (a rotation's new root was published, or an old key's window closed)."""
        if not self.latest_note:
            return False
        keys = self._keys()
        wanted = {(k.name, k.verifying_key.key_hash) for k in keys}
        return bool(keys) and wanted != note.signer_ids(self.latest_note)

    async def sign_checkpoint(self, *, resign: bool = False) -> bytes:
        """Sign the committed tree if it grew (or, with *resign*, again at the same size with
        the keys valid now); store the note; wake subscribers."""
        async with self.store.engine.connect() as conn:
            cursor = await read_cursor(conn, self.origin)
        assert cursor is not None
        if cursor.size == cursor.checkpoint_size and cursor.checkpoint_note and not resign:
            self._publish(cursor.checkpoint_size, cursor.checkpoint_note)
            return cursor.checkpoint_note
        at = note.signing_time(dt.datetime.now(dt.UTC), (cursor.checkpoint_note, self.latest_note))
        # The keys valid at the very time the checkpoint states, so a verifier judging them
        # at that time reaches the same answer.
        keys = self._keys(at)
        if not keys:
            return self.latest_note
        # cursor.size/root were read after their transaction committed: the tree is durable.
        cp = note.timed_checkpoint(self.origin, cursor.size, cursor.root, at)
        signed = note.sign_checkpoint(cp, keys)
        await keep_checkpoint(self.store, cursor, signed)
        self._publish(cursor.size, signed)
        return signed

    async def refresh(self) -> None:
        """Adopt a checkpoint another process (``creditnode import``) signed since the last
        poll, so a peer asking right after an import gets it."""
        async with self.store.engine.connect() as conn:
            cursor = await read_cursor(conn, self.origin)
        if cursor is not None and cursor.checkpoint_size > self.latest_size:
            self._publish(cursor.checkpoint_size, cursor.checkpoint_note)

    def _publish(self, size: int, signed: bytes) -> None:
        if size < self.latest_size:
            return
        self.latest_size, self.latest_note = size, signed

        async def wake() -> None:
            async with self._latest:
                self._latest.notify_all()

        task = asyncio.get_running_loop().create_task(wake())
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def wait_newer(self, size: int, timeout: float | None = None) -> bool:
        """Wait until a checkpoint larger than *size* exists; False on timeout."""
        async with self._latest:
            try:
                await asyncio.wait_for(
                    self._latest.wait_for(lambda: self.latest_size > size), timeout
                )
            except TimeoutError:
                return False
        return True

    async def run(self) -> None:
        """Sign within moments of each commit, and notice appends by other processes."""
        poll = asyncio.create_task(self._poll_external())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), EXTERNAL_POLL_SECONDS)
                if self._changed.is_set():
                    self._changed.clear()
                    await self.sign_checkpoint()
                    await asyncio.sleep(CHECKPOINT_BATCH_SECONDS)
                elif self.signers_changed():
                    # A new key, or a closed window, with nothing new to sign: the newest
                    # checkpoint is signed again so that whoever fetches it next can verify it.
                    await self.sign_checkpoint(resign=True)
                    log.info(
                        "checkpoint signed again with the keys valid now",
                        size=self.latest_size,
                        keys=describe_keys(self._keys()),
                    )
        finally:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll

    async def _poll_external(self) -> None:
        while True:
            await asyncio.sleep(EXTERNAL_POLL_SECONDS)
            try:
                if not await self._moved():
                    continue
                async with self.store.engine.connect() as conn:
                    cursor = await read_cursor(conn, self.origin)
            except Exception:  # a busy database must not end polling
                log.exception("polling own log failed")
                continue
            if cursor is None:
                continue
            if cursor.size > self.log.frontier.size:
                await self.log.reload()
            if cursor.size > cursor.checkpoint_size:
                self._changed.set()
            elif cursor.checkpoint_size > self.latest_size:
                self._publish(cursor.checkpoint_size, cursor.checkpoint_note)

    async def _moved(self) -> bool:
        """Whether the log's row may say what this process has not seen (grown, unsigned,
        signed elsewhere): twenty looks a second, each on the plain reader at a sixth of the CPU
        of the whole row through SQLAlchemy. The row is read only when this says so."""
        reader = self.store.reader
        if reader is None:  # an in-memory database: the row itself, each time
            return True
        sizes = await read_sizes(reader, self.origin)
        if sizes is None:
            return False
        size, signed = sizes
        return size > self.log.frontier.size or size > signed or signed > self.latest_size
