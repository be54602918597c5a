"""The node's actions log: its responses to partners' entries, its hits and its "measures
lifted" acknowledgements, a Merkle log of :mod:`node.actions.record` leaves on the feeds'
machinery (:class:`~node.feeds.logstore.LogStore`, RFC 6962, C2SP timed checkpoints) under the
origin ``<node uri>/actions``.

Checkpoints are signed by the feed key(s) valid now (partners already hold them: the peer
bundle, the root's feed role), at most every :data:`CHECKPOINT_SECONDS` while records arrive
and after each command that appends. Appends from several processes (a ``respond`` command
beside the running node) are serialised by the cursor's compare-and-swap: the loser reloads
and retries.

Lifted acknowledgements are derived, not pushed: :meth:`ActionsLog.acknowledge_removals`
appends a ``lifted`` response for each measure this node applied to an entry its mirror now
holds as removed, once. Idempotent and restartable: a crash between the removal and the
acknowledgement is caught up by the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from keys import SigningKey
from node.actions.record import ActionRecord, Response, parse_record
from node.api import feeds
from node.audit.entry import now_us
from node.feeds.dates import shanghai_today
from node.feeds.logstore import LOGS, LogStore, StaleCursor, sign_grown
from node.feeds.state import STATE
from node.storage import Store

log = structlog.get_logger("creditnode.actions")

ORIGIN_SUFFIX = "/actions"
CHECKPOINT_SECONDS = 1.0
_RETRIES = 8
REMOVED = feeds.ENTRY_STATUS_REMOVED


class Signers(Protocol):
    def signing_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]: ...


def actions_origin(node_uri: str) -> str:
    """The actions log's origin: the node's URI followed by ``/actions``."""
    return node_uri + ORIGIN_SUFFIX


@dataclass(frozen=True)
class Held:
    """An entry of a partner's feed as this node's mirror holds it."""

    origin: str
    entry: str
    status: int
    list_code: str


async def held_entry(store: Store, origin: str, entry: str) -> Held | None:
    """The partner entry (*origin*, *entry*) as mirrored here, or None if not held."""
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.status, STATE.c.list_code)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(
                    and_(
                        LOGS.c.origin == origin, LOGS.c.peer.is_not(None), STATE.c.entry_id == entry
                    )
                )
            )
        ).first()
    if row is None:
        return None
    return Held(origin, entry, int(row[0]), str(row[1] or ""))


class ActionsLog:
    """The actions log of one node (see the module docstring)."""

    def __init__(self, store: Store, log_: LogStore, signers: Signers) -> None:
        self.store = store
        self.log = log_
        self.signers = signers
        self._lock = asyncio.Lock()
        self._grew = asyncio.Event()
        # Measures applied and not yet lifted, from the records up to index _scanned.
        self._applied: dict[tuple[str, str, str], Response] = {}
        self._scanned = 0
        self._acknowledging = asyncio.Lock()  # one pass at a time, or a measure lifts twice

    @property
    def origin(self) -> str:
        return self.log.cursor.origin

    @classmethod
    async def open(cls, store: Store, node_uri: str, signers: Signers) -> ActionsLog:
        return cls(store, await LogStore.open(store, actions_origin(node_uri)), signers)

    async def append(self, records: Sequence[ActionRecord]) -> list[int]:
        """Append *records*; their indexes once durable (one transaction)."""
        leaves = [r.to_bytes() for r in records]
        if not leaves:
            return []
        async with self._lock:
            for attempt in range(_RETRIES):
                pending = self.log.prepare(leaves)
                try:
                    async with self.store.begin() as conn:
                        await self.log.write(conn, pending)
                except (StaleCursor, IntegrityError):
                    # Another writer (a `respond` command beside the node) appended first.
                    await self.log.reload()
                    log.info("actions log moved under us; retrying", attempt=attempt)
                    continue
                self.log.committed(pending)
                self._grew.set()
                return list(range(pending.start, pending.size))
        raise StaleCursor(f"could not append to {self.origin}: the log keeps moving")

    async def records(self, start: int = 0) -> list[tuple[int, ActionRecord]]:
        """Every record from *start* with its index (the stored leaves, parsed strictly)."""
        async with self._lock:  # not while an append is between its write and its commit
            await self.log.reload()
            size = self.log.cursor.size
        leaves = await self.log.read_leaves(start, size) if start < size else []
        return [(start + i, parse_record(d)) for i, d in enumerate(leaves)]

    async def acknowledge_removals(self) -> int:
        """Append a ``lifted`` response for each measure this node applied (and has not yet
        lifted) to a partner entry its mirror now holds as removed. Returns how many."""
        async with self._acknowledging:
            return await self._acknowledge()

    async def _acknowledge(self) -> int:
        # Only the records appended since the last pass are read (by any process).
        new = await self.records(self._scanned)
        for _, r in new:
            if isinstance(r, Response):
                key = (r.origin, r.entry, r.measure)
                if r.action == "applied":
                    self._applied[key] = r
                elif r.action == "lifted":
                    self._applied.pop(key, None)
        self._scanned += len(new)
        applied = dict(self._applied)
        if not applied:
            return 0
        origins = sorted({o for o, _, _ in applied})
        async with self.store.engine.connect() as conn:
            removed = {
                (str(o), str(e))
                for o, e in await conn.execute(
                    select(LOGS.c.origin, STATE.c.entry_id)
                    .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                    .where(
                        and_(
                            LOGS.c.origin.in_(origins),
                            LOGS.c.peer.is_not(None),
                            STATE.c.status == REMOVED,
                        )
                    )
                )
            }
        today, at = shanghai_today().isoformat(), now_us()
        lifted = [
            Response(
                origin=o,
                entry=e,
                measure=m,
                action="lifted",
                department=r.department,
                date=today,
                officer="",
                at_us=at,
                reason="the origin removed the entry",
            )
            for (o, e, m), r in sorted(applied.items())
            if (o, e) in removed
        ]
        await self.append(lifted)
        if lifted:
            log.info("measures lifted after removals", records=len(lifted))
        return len(lifted)

    async def sign_checkpoint(self) -> bytes:
        """Sign the committed tree if it grew since the last checkpoint; the newest signed note
        (b"" if none could be signed: no feed key valid now)."""
        signed, _ = await sign_grown(self.store, self.origin, self._keys)
        return signed

    def _keys(self, at: dt.datetime) -> tuple[SigningKey, ...]:
        keys = self.signers.signing_keys(at)
        if not keys:
            log.error("no feed key valid now: actions checkpoints are not signed")
        return keys

    async def run(self) -> None:
        """Acknowledge removals and sign a checkpoint about every :data:`CHECKPOINT_SECONDS`."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grew.wait(), CHECKPOINT_SECONDS)
            self._grew.clear()
            try:
                await self.acknowledge_removals()
                await self.sign_checkpoint()
            except Exception:  # a busy database must not end the loop
                log.exception("actions log pass failed")
