"""The node's actions logs: its responses to partners' entries, its hits and its node-derived
records ("measures lifted", suspended on objection and resumed), Merkle logs of
:mod:`node.actions.record` leaves on the feeds' machinery (:class:`~node.feeds.logstore.LogStore`,
RFC 6962, C2SP timed checkpoints).

One log per partner the node responds to, origin ``<node uri>/actions/<partner name>``: every
leaf of it is about that partner's entries (its ``origin`` field is the partner's URI), and
only that partner is served it (``ActionsService.GetActions``). A partner, honest but curious,
learns nothing of what this node did about a third city's entries, not even how much. For the
same reason no witness cosigns these logs (a third city would learn their sizes).

Checkpoints are signed by the feed key(s) valid now (partners already hold them: the peer
bundle, the root's feed role), at most every :data:`CHECKPOINT_SECONDS` while records arrive
and after each command that appends. Appends from several processes (a ``respond`` command
beside the running node) are serialised by each log's compare-and-swap on its cursor: the loser
reloads and retries. An append of records for several partners is one transaction per log.

Derived records are not pushed but computed, once: :meth:`ActionsLog.acknowledge_removals`
appends, from the mirror's state of each entry whose measure this node applied,

* ``lifted`` when the origin removed the entry;
* ``suspended_objection`` when the origin marked it under objection (setting
  ``suspend_on_objection``), and ``applied`` again ("objection resolved") when the mark clears
  while the entry is still active (only for a suspension the node made itself).

Idempotent and restartable: each pass folds the records up to where it read, so a crash between
a mirror's change and the derived record is caught up by the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import structlog
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from keys import NodeIdentity, SigningKey, validate_label
from node.actions.record import (
    NODE_REASONS,
    ActionRecord,
    RecordError,
    Response,
    parse_record,
)
from node.api import feeds
from node.audit.entry import now_us
from node.feeds.dates import shanghai_today
from node.feeds.logstore import LOGS, LogStore, StaleCursor, read_cursor, sign_grown
from node.feeds.state import STATE
from node.storage import Store

log = structlog.get_logger("creditnode.actions")

ORIGIN_PART = "/actions/"
CHECKPOINT_SECONDS = 1.0
_RETRIES = 8
_CHUNK = 500  # entry ids per query
REMOVED = feeds.ENTRY_STATUS_REMOVED
ACTIVE = feeds.ENTRY_STATUS_ACTIVE
LIFTED_REASON = "the origin removed the entry"


class Signers(Protocol):
    def signing_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]: ...


def actions_origin(node_uri: str, partner: str) -> str:
    """The origin of *node_uri*'s actions log for *partner* (a node name):
    ``<node uri>/actions/<partner>``."""
    return node_uri + ORIGIN_PART + validate_label("node name", partner)


def partner_of(record: ActionRecord) -> str:
    """The partner whose log holds *record*: the node named by its origin."""
    return NodeIdentity.parse(record.origin).node


class Logged(NamedTuple):
    """A record of the actions logs, with the partner whose log holds it and its index."""

    partner: str
    idx: int
    record: ActionRecord


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


def derive(
    in_force: dict[tuple[str, str, str], Response],
    held: dict[tuple[str, str], tuple[int, bool | None]],
    *,
    suspend_on_objection: bool,
    today: str,
    at_us: int,
) -> list[Response]:
    """The node-derived records the mirror's state calls for (pure). *in_force* maps (origin,
    entry, measure) to the last ``applied`` or ``suspended_objection`` of a measure not lifted;
    *held* maps (origin, entry) to its status and whether it is under objection (None: the
    body is no longer held, so nothing is concluded from it)."""
    out: list[Response] = []
    for (o, e, m), r in sorted(in_force.items()):
        status, under = held.get((o, e), (None, None))
        action = ""
        if status == REMOVED:
            action = "lifted"
        elif status == ACTIVE and under is not None:
            if under and r.action == "applied" and suspend_on_objection:
                action = "suspended_objection"
            elif not under and r.action == "suspended_objection" and not r.officer:
                # Only a suspension the node made itself resumes on its own; an officer's
                # stays until an officer records otherwise.
                action = "applied"
        if action:
            out.append(
                Response(
                    origin=o, entry=e, measure=m, action=action, department=r.department,
                    date=today, officer="", at_us=at_us,
                    reason=LIFTED_REASON if action == "lifted" else NODE_REASONS[action],
                )
            )  # fmt: skip
    return out


def fold(in_force: dict[tuple[str, str, str], Response], r: ActionRecord) -> None:
    """Track *r* in *in_force* (see :func:`derive`): applied measures, suspended or not."""
    if not isinstance(r, Response):
        return
    key = (r.origin, r.entry, r.measure)
    if r.action == "applied" or (r.action == "suspended_objection" and key in in_force):
        in_force[key] = r
    elif r.action == "lifted":
        in_force.pop(key, None)


class ActionsLog:
    """The actions logs of one node, one per partner (see the module docstring)."""

    def __init__(
        self, store: Store, node_uri: str, signers: Signers, *, suspend_on_objection: bool = True
    ) -> None:
        self.store = store
        self.node_uri = node_uri
        self.signers = signers
        self.suspend_on_objection = suspend_on_objection
        self._logs: dict[str, LogStore] = {}
        self._lock = asyncio.Lock()
        self._grew = asyncio.Event()
        # Measures applied and not yet lifted, from each log's records up to _scanned[partner].
        self._in_force: dict[tuple[str, str, str], Response] = {}
        self._scanned: dict[str, int] = {}
        self._seen: tuple[object, ...] | None = None  # what the last pass decided on
        self._deriving = asyncio.Lock()  # one pass at a time, or a measure lifts twice

    @property
    def prefix(self) -> str:
        """The common start of this node's actions logs' origins."""
        return self.node_uri + ORIGIN_PART

    def origin_for(self, partner: str) -> str:
        return actions_origin(self.node_uri, partner)

    @classmethod
    async def open(
        cls, store: Store, node_uri: str, signers: Signers, *, suspend_on_objection: bool = True
    ) -> ActionsLog:
        return cls(store, node_uri, signers, suspend_on_objection=suspend_on_objection)

    async def partners(self) -> list[str]:
        """The partners this node keeps an actions log for (made by any process)."""
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(
                select(LOGS.c.origin).where(
                    and_(
                        LOGS.c.origin.startswith(self.prefix, autoescape=True),
                        LOGS.c.peer.is_(None),
                    )
                )
            )
            origins = [str(o) for (o,) in rows]
        return sorted(o[len(self.prefix) :] for o in origins)

    async def log_for(self, partner: str, *, create: bool = False) -> LogStore | None:
        """*partner*'s log (None if there is none and *create* is False)."""
        found = self._logs.get(partner)
        if found is not None:
            return found
        origin = self.origin_for(partner)
        if not create:
            async with self.store.engine.connect() as conn:
                if await read_cursor(conn, origin) is None:
                    return None
        try:
            opened = await LogStore.open(self.store, origin)
        except IntegrityError:  # another process made it first
            opened = await LogStore.open(self.store, origin)
        return self._logs.setdefault(partner, opened)

    async def append(self, records: Sequence[ActionRecord]) -> list[int]:
        """Append *records*, each to its partner's log; their indexes (in that log) once
        durable. One transaction per log: records for several partners may be kept in part if
        a later log fails (the caller learns it from the exception)."""
        groups: dict[str, list[int]] = {}
        for pos, r in enumerate(records):
            if r.origin == self.node_uri:
                raise RecordError("an actions record is about a partner's entry, not our own")
            groups.setdefault(partner_of(r), []).append(pos)
        out = [0] * len(records)
        async with self._lock:
            for partner, positions in groups.items():
                log_ = await self.log_for(partner, create=True)
                assert log_ is not None
                indexes = await self._append_one(log_, [records[p].to_bytes() for p in positions])
                for p, i in zip(positions, indexes, strict=True):
                    out[p] = i
        if groups:
            self._grew.set()
        return out

    async def _append_one(self, log_: LogStore, leaves: list[bytes]) -> list[int]:
        for attempt in range(_RETRIES):
            pending = log_.prepare(leaves)
            try:
                async with self.store.begin() as conn:
                    await log_.write(conn, pending)
            except (StaleCursor, IntegrityError):
                # Another writer (a `respond` command beside the node) appended first.
                await log_.reload()
                log.info("actions log moved under us; retrying", attempt=attempt)
                continue
            log_.committed(pending)
            return list(range(pending.start, pending.size))
        raise StaleCursor(f"could not append to {log_.cursor.origin}: the log keeps moving")

    async def _read(self, partner: str, start: int) -> list[tuple[int, ActionRecord]]:
        log_ = await self.log_for(partner)
        if log_ is None:
            return []
        async with self._lock:  # not while an append is between its write and its commit
            await log_.reload()
            size = log_.cursor.size
        leaves = await log_.read_leaves(start, size) if start < size else []
        return [(start + i, parse_record(d)) for i, d in enumerate(leaves)]

    async def records(self, partner: str | None = None) -> list[Logged]:
        """Every record (of *partner*'s log, or of all) with its log and index, parsed
        strictly; by partner, then index."""
        names = [partner] if partner is not None else await self.partners()
        return [Logged(p, i, r) for p in names for i, r in await self._read(p, 0)]

    async def acknowledge_removals(self) -> int:
        """Append the node-derived records the mirror's state calls for (``lifted``,
        ``suspended_objection``, ``applied`` again; see the module docstring). Returns how
        many."""
        async with self._deriving:
            return await self._derive()

    async def _derive(self) -> int:
        # Only the records appended since the last pass are read (by any process).
        grown = False
        for partner in await self.partners():
            start = self._scanned.get(partner, 0)
            new = await self._read(partner, start)
            for _, r in new:
                fold(self._in_force, r)
            self._scanned[partner] = start + len(new)
            grown = grown or bool(new)
        in_force = dict(self._in_force)
        if not in_force:
            return 0
        origins = sorted({o for o, _, _ in in_force})
        async with self.store.engine.connect() as conn:
            sizes = tuple(
                (await conn.execute(
                    select(LOGS.c.origin, LOGS.c.projected_size)
                    .where(and_(LOGS.c.origin.in_(origins), LOGS.c.peer.is_not(None)))
                    .order_by(LOGS.c.origin)
                )).all()
            )  # fmt: skip
        # Nothing to decide again while no record arrived and no mirrored entry changed: the
        # projection's size, not the log's (a durable write is folded into the list state
        # that _held reads a moment later; keyed on the log's, a pass in between would see
        # the old state and never look again). Read before the state: at worst a pass more.
        seen = (sizes, tuple(sorted(self._scanned.items())), self.suspend_on_objection)
        if not grown and seen == self._seen:
            return 0
        held = await self._held(in_force)
        derived = derive(
            in_force, held, suspend_on_objection=self.suspend_on_objection,
            today=shanghai_today().isoformat(), at_us=now_us(),
        )  # fmt: skip
        await self.append(derived)
        self._seen = seen if not derived else None
        if derived:
            log.info("node-derived actions recorded", records=len(derived))
        return len(derived)

    async def _held(
        self, in_force: dict[tuple[str, str, str], Response]
    ) -> dict[tuple[str, str], tuple[int, bool | None]]:
        """The mirror's status of each entry in *in_force*, and whether it is under objection."""
        by_origin: dict[str, list[str]] = {}
        for o, e in sorted({(o, e) for o, e, _ in in_force}):
            by_origin.setdefault(o, []).append(e)
        held: dict[tuple[str, str], tuple[int, bool | None]] = {}
        async with self.store.engine.connect() as conn:
            for origin, entries in by_origin.items():
                for i in range(0, len(entries), _CHUNK):
                    rows = await conn.execute(
                        select(STATE.c.entry_id, STATE.c.status, STATE.c.entry)
                        .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                        .where(
                            and_(
                                LOGS.c.origin == origin,
                                LOGS.c.peer.is_not(None),
                                STATE.c.entry_id.in_(entries[i : i + _CHUNK]),
                            )
                        )
                    )
                    for entry_id, status, body in rows:
                        under = (
                            feeds.ListEntry.FromString(bytes(body)).under_objection
                            if body
                            else None
                        )
                        held[(origin, str(entry_id))] = (int(status), under)
        return held

    async def sign_checkpoint(self) -> dict[str, bytes]:
        """Sign every log whose committed tree grew since its last checkpoint; the newest
        signed note of each, by partner (b"" if none could be signed: no feed key valid)."""
        return {p: await self.checkpoint(p) for p in await self.partners()}

    async def checkpoint(self, partner: str) -> bytes:
        """Sign *partner*'s log if it grew; its newest signed note (b"" if none)."""
        signed, _ = await sign_grown(self.store, self.origin_for(partner), self._keys)
        return signed

    def _keys(self, at: dt.datetime) -> tuple[SigningKey, ...]:
        keys = self.signers.signing_keys(at)
        if not keys:
            log.error("no feed key valid now: actions checkpoints are not signed")
        return keys

    async def run(self) -> None:
        """Derive records and sign checkpoints about every :data:`CHECKPOINT_SECONDS`."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grew.wait(), CHECKPOINT_SECONDS)
            self._grew.clear()
            try:
                await self.acknowledge_removals()
                await self.sign_checkpoint()
            except Exception:  # a busy database must not end the loop
                log.exception("actions log pass failed")
