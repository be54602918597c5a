"""Objections in the database (migration 0016), and the origin's marks on its entries.

Both sides keep each objection: the raiser (side "raised") and the origin (side "received").
At the origin, recording, acknowledging and resolving an objection happen in the same
transaction as the UPDATE or REMOVE it publishes, so the feed and the objection never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.leaf import COMMITTED_FIELDS
from node.feeds.publisher import Event, Publisher
from node.feeds.state import STATE, read_openings
from node.objections.core import Objection, ObjectionError, State
from node.objections.wire import history_from_json, history_json
from node.storage import Store

RAISED = "raised"  # this node raised it to a peer's entry
RECEIVED = "received"  # a peer raised it to this node's entry
MAX_LISTED = 1000

# A table of its own metadata: created by migration 0016, never by create_all.
_META = MetaData()
OBJECTIONS = Table(
    "objections",
    _META,
    Column("id", String(36), primary_key=True),
    Column("side", String(8), nullable=False),
    Column("origin", String(200), nullable=False),
    Column("entry_id", String(64), nullable=False),
    Column("grounds", String(24), nullable=False),
    Column("evidence_sha256", String(64), nullable=False),
    Column("due", String(10), nullable=False),
    Column("raised_by", String(63), nullable=False),
    Column("officer", String(32), nullable=False),
    Column("state", String(20), nullable=False),
    Column("history", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Held:
    """An objection as stored, with the side this node is on."""

    side: str
    objection: Objection


async def save(conn: AsyncConnection, o: Objection, side: str) -> None:
    """Insert or replace *o* (a replaced one keeps its side)."""
    await conn.execute(delete(OBJECTIONS).where(OBJECTIONS.c.id == o.id))
    await conn.execute(
        insert(OBJECTIONS).values(
            id=o.id, side=side, origin=o.origin, entry_id=o.entry_id, grounds=o.grounds,
            evidence_sha256=o.evidence_sha256, due=o.due.isoformat(), raised_by=o.raised_by,
            officer=o.officer, state=o.state.value, history=history_json(o.history),
            updated_at=o.history[-1].at,
        )
    )  # fmt: skip


async def save_resolution(conn: AsyncConnection, done: Objection) -> None:
    """Store *done*, the resolution of an objection this node received, only if it is still
    open as read: ObjectionError otherwise (resolved meanwhile by another command), so the
    transaction publishing its UPDATE or REMOVE rolls back with it."""
    result = await conn.execute(
        update(OBJECTIONS)
        .where(
            and_(
                OBJECTIONS.c.id == done.id,
                OBJECTIONS.c.side == RECEIVED,
                OBJECTIONS.c.state == State.UNDER_OBJECTION.value,
            )
        )
        .values(
            state=done.state.value,
            history=history_json(done.history),
            updated_at=done.history[-1].at,
        )
    )
    if result.rowcount != 1:
        raise ObjectionError("the objection was resolved meanwhile: nothing published")


def _row(r: Any) -> Held:
    try:
        o = Objection(
            id=r.id, origin=r.origin, entry_id=r.entry_id, grounds=r.grounds,
            evidence_sha256=r.evidence_sha256, due=dt.date.fromisoformat(r.due),
            raised_by=r.raised_by, officer=r.officer,
            history=history_from_json(r.history),
        )  # fmt: skip
    except ValueError as exc:
        raise ObjectionError(f"a stored objection does not verify: {exc}") from None
    return Held(r.side, o)


async def find(
    store: Store | AsyncConnection,
    *,
    ids: Sequence[str] = (),
    side: str | None = None,
    raised_by: str | None = None,
    origin: str | None = None,
    entry_id: str | None = None,
    open_only: bool = False,
) -> list[Held]:
    """Stored objections matching every filter given, oldest first (at most MAX_LISTED)."""
    conds: list[ColumnElement[bool]] = []
    if ids:
        conds.append(OBJECTIONS.c.id.in_(list(ids)))
    if side is not None:
        conds.append(OBJECTIONS.c.side == side)
    if raised_by is not None:
        conds.append(OBJECTIONS.c.raised_by == raised_by)
    if origin is not None:
        conds.append(OBJECTIONS.c.origin == origin)
    if entry_id is not None:
        conds.append(OBJECTIONS.c.entry_id == entry_id)
    if open_only:
        conds.append(OBJECTIONS.c.state.in_([State.RAISED.value, State.UNDER_OBJECTION.value]))
    q = select(OBJECTIONS).where(and_(true(), *conds)).order_by(OBJECTIONS.c.id).limit(MAX_LISTED)
    if isinstance(store, AsyncConnection):
        rows = (await store.execute(q)).all()
    else:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
    return [_row(r) for r in rows]


async def objected_entries(conn: AsyncConnection, origin: str) -> frozenset[str]:
    """Ids of *origin*'s entries with an objection open here (received, not yet resolved):
    the entries whose UPDATEs must keep the under-objection mark."""
    rows = await conn.execute(
        select(OBJECTIONS.c.entry_id)
        .where(
            and_(
                OBJECTIONS.c.side == RECEIVED,
                OBJECTIONS.c.origin == origin,
                OBJECTIONS.c.state.in_([State.RAISED.value, State.UNDER_OBJECTION.value]),
            )
        )
        .distinct()
    )
    return frozenset(str(r[0]) for r in rows)


async def own_entry(conn: AsyncConnection, publisher: Publisher, entry_id: str) -> feeds.ListEntry:
    """This node's active entry *entry_id* with every value (the personal ones from their
    openings), as an UPDATE of it must carry them; ObjectionError if it holds none."""
    row = (
        await conn.execute(
            select(STATE.c.entry, STATE.c.last_idx).where(
                and_(
                    STATE.c.log_id == publisher.log.log_id,
                    STATE.c.entry_id == entry_id,
                    STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                )
            )
        )
    ).first()
    if row is None or not row.entry:
        raise ObjectionError("this node holds no active entry with that id")
    entry = feeds.ListEntry.FromString(bytes(row.entry))
    idx = int(row.last_idx)
    opened = await read_openings(conn, publisher.log.log_id, idx, idx + 1, COMMITTED_FIELDS)
    for name, (_salt, value) in opened.get(idx, {}).items():
        setattr(entry, name, value)
    return entry


async def mark_event(
    publisher: Publisher, entry_id: str, *, under: bool, correction: feeds.ListEntry | None = None
) -> Event:
    """The UPDATE that sets (or clears) the entry's under-objection mark, with *correction*'s
    public values applied when given."""
    async with publisher.store.engine.connect() as conn:
        entry = await own_entry(conn, publisher, entry_id)
    if correction is not None:
        apply_correction(entry, correction)
    entry.under_objection = under
    return Event(entry_id, feeds.EVENT_TYPE_UPDATE, entry)


# The public fields a correction may change: what the entry says about the listing. The
# subject's codes, list and dates that decide identity and lifecycle stay (a wrong subject or
# list is a withdrawal and a new listing, not a correction).
CORRECTABLE = (
    "subject_name", "reason", "legal_basis", "decision_doc_no", "authority_name",
    "authority_uscc", "disclosure_end",
)  # fmt: skip


def apply_correction(entry: feeds.ListEntry, correction: feeds.ListEntry) -> None:
    for name in CORRECTABLE:
        value = getattr(correction, name)
        if value:
            setattr(entry, name, value)
