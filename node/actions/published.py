"""When each of this node's entries was published: the signed time of the first checkpoint of
its own feed covering the entry's ADD leaf. A partner cannot respond before it could receive
the entry, so the follow-up's deadline runs from this time (``node.actions.followup``).

The own log is read once, incrementally: each ADD leaf's index and its covering checkpoint's
time are kept in ``entry_published`` (migration 0018), and ``published_scans`` says how far the
log has been read. Only leaves under the newest signed checkpoint are read, so every ADD found
has its covering checkpoint. :func:`first_adds` and :func:`covering` are the pure core.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds import note
from node.feeds.leaf import parse_leaf
from node.feeds.logstore import CHECKPOINTS, LEAVES, LOGS
from node.storage import Store, dialect

BATCH = 5000  # leaves read per transaction

# Tables of their own metadata: created by migration 0018, never by create_all.
_META = MetaData()
PUBLISHED = Table(
    "entry_published",
    _META,
    Column("log_id", Integer, primary_key=True),
    Column("entry_id", String(64), primary_key=True),
    Column("add_idx", BigInteger, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
)
SCANS = Table(
    "published_scans",
    _META,
    Column("log_id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
)


def first_adds(leaves: Iterable[tuple[int, bytes]]) -> dict[str, int]:
    """entry id → index of its ADD leaf, for the ADD leaves among *leaves* (index, bytes);
    the first one wins. A leaf that does not parse is skipped (verification reports it)."""
    found: dict[str, int] = {}
    for idx, data in leaves:
        try:
            leaf = parse_leaf(data)
        except ValueError:
            continue
        if leaf.event == feeds.EVENT_TYPE_ADD and leaf.entry_id not in found:
            found[leaf.entry_id] = idx
    return found


def covering(
    adds: dict[str, int], checkpoints: Sequence[tuple[int, dt.datetime | None]]
) -> dict[str, dt.datetime | None]:
    """entry id → the time of the first of *checkpoints* (size, signed time; by size) whose
    tree holds its ADD leaf; None without such a checkpoint or for one without a time."""
    sizes = [size for size, _ in checkpoints]
    out: dict[str, dt.datetime | None] = {}
    for entry_id, idx in adds.items():
        i = bisect.bisect_right(sizes, idx)  # the first size > idx: the tree holds leaf idx
        out[entry_id] = checkpoints[i][1] if i < len(checkpoints) else None
    return out


def _time(signed: bytes) -> dt.datetime | None:
    try:
        return note.checkpoint_time(note.stored_checkpoint(signed))
    except ValueError:
        return None


async def _scanned(conn: AsyncConnection, log_id: int) -> int:
    size = (await conn.execute(select(SCANS.c.size).where(SCANS.c.log_id == log_id))).scalar()
    return int(size or 0)


async def catch_up(store: Store, origin: str) -> None:
    """Read the own log *origin* past what was read before, up to its newest checkpoint."""
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(LOGS.c.id, LOGS.c.checkpoint_size).where(LOGS.c.origin == origin)
            )
        ).first()
        if row is None:
            return
        log_id, end = int(row[0]), int(row[1])
        start = await _scanned(conn, log_id)
        if start >= end:
            return
        notes = (
            await conn.execute(
                select(CHECKPOINTS.c.size, CHECKPOINTS.c.note)
                .where(
                    and_(
                        CHECKPOINTS.c.log_id == log_id,
                        CHECKPOINTS.c.size > start,
                        CHECKPOINTS.c.size <= end,
                    )
                )
                .order_by(CHECKPOINTS.c.size)
            )
        ).all()
    checkpoints = [(int(size), _time(bytes(signed))) for size, signed in notes]
    while True:
        async with store.begin() as conn:
            # Re-read: another process may have read some meanwhile (its rows are the same).
            lo = await _scanned(conn, log_id)
            if lo >= end:
                return
            hi = min(lo + BATCH, end)
            leaves = await conn.execute(
                select(LEAVES.c.idx, LEAVES.c.data).where(
                    and_(LEAVES.c.log_id == log_id, LEAVES.c.idx >= lo, LEAVES.c.idx < hi)
                )
            )
            adds = first_adds((int(i), bytes(d)) for i, d in leaves)
            times = covering(adds, checkpoints)
            if adds:
                await conn.execute(
                    dialect.insert_ignore(conn.dialect.name, PUBLISHED),
                    [
                        {"log_id": log_id, "entry_id": e, "add_idx": i, "published_at": times[e]}
                        for e, i in adds.items()
                    ],
                )
            moved = await conn.execute(
                update(SCANS)
                .where(and_(SCANS.c.log_id == log_id, SCANS.c.size < hi))
                .values(size=hi)
            )
            if moved.rowcount == 0:
                await conn.execute(
                    dialect.insert_ignore(conn.dialect.name, SCANS), {"log_id": log_id, "size": hi}
                )


async def publication_times(
    store: Store, origin: str, entry_ids: Sequence[str] | None = None
) -> dict[str, dt.datetime]:
    """entry id → when this node's feed *origin* published it (the entries whose publication
    time is known; all of them without *entry_ids*)."""
    await catch_up(store, origin)
    query = (
        select(PUBLISHED.c.entry_id, PUBLISHED.c.published_at)
        .select_from(PUBLISHED.join(LOGS, LOGS.c.id == PUBLISHED.c.log_id))
        .where(and_(LOGS.c.origin == origin, PUBLISHED.c.published_at.is_not(None)))
    )
    out: dict[str, dt.datetime] = {}
    async with store.engine.connect() as conn:
        if entry_ids is None:
            rows = list(await conn.execute(query))
        else:
            ids = list(entry_ids)
            rows = []
            for i in range(0, len(ids), 500):
                rows += list(
                    await conn.execute(query.where(PUBLISHED.c.entry_id.in_(ids[i : i + 500])))
                )
    for entry_id, at in rows:
        # SQLite hands back a naive time: it was stored in UTC.
        out[str(entry_id)] = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return out
