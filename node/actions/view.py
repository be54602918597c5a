"""What the origin shows (``creditnode actions``): its own entries (with when its feed
published each, :mod:`node.actions.published`) and the verified records partners sent about
them, read from storage and judged by :func:`node.actions.followup.follow_up`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import and_, select

from node.actions.followup import OwnEntry, Seen, Status, follow_up
from node.actions.published import publication_times
from node.actions.pull import RECORDS
from node.api import feeds
from node.feeds.logstore import LOGS
from node.feeds.state import STATE
from node.storage import Store


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


async def own_entries(
    store: Store, own_uri: str, *, entry: str | None = None, list_code: str | None = None
) -> list[OwnEntry]:
    """This node's own entries (active and removed) with their measures and, where known,
    when its feed published them."""
    where = [LOGS.c.origin == own_uri, LOGS.c.peer.is_(None)]
    if entry is not None:
        where.append(STATE.c.entry_id == entry)
    if list_code is not None:
        where.append(STATE.c.list_code == list_code)
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(STATE.c.entry_id, STATE.c.list_code, STATE.c.listing_date,
                       STATE.c.status, STATE.c.entry)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(and_(*where))
            )
        ).all()  # fmt: skip
    published = await publication_times(
        store, own_uri, None if entry is None else [str(r[0]) for r in rows]
    )
    out = []
    for entry_id, code, listed, status, data in rows:
        measures: tuple[str, ...] = ()
        if data:
            measures = tuple(m.code for m in feeds.ListEntry.FromString(bytes(data)).measures)
        out.append(
            OwnEntry(
                str(entry_id), str(code or ""), _date(str(listed or "")), measures,
                active=int(status) == feeds.ENTRY_STATUS_ACTIVE,
                published=published.get(str(entry_id)),
            )
        )  # fmt: skip
    return out


async def seen_records(store: Store, entries: Sequence[str] | None = None) -> list[Seen]:
    """The verified records partners sent about this node's entries."""
    query = select(RECORDS)
    if entries is not None:
        query = query.where(RECORDS.c.entry.in_(list(entries)))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        Seen(
            peer=r["peer"],
            idx=int(r["idx"]),
            kind=r["kind"],
            entry=r["entry"],
            measure=r["measure"],
            action=r["action"],
            reason=r["reason"],
            department=r["department"],
            date=r["date"],
            at_us=int(r["at_us"]),
            purpose=r["purpose"],
        )
        for r in rows
    ]


async def origin_view(
    store: Store,
    own_uri: str,
    peers: Sequence[str],
    *,
    today: dt.date,
    days: Mapping[str, int],
    default_days: int,
    entry: str | None = None,
    list_code: str | None = None,
) -> list[Status]:
    entries = await own_entries(store, own_uri, entry=entry, list_code=list_code)
    seen = await seen_records(store, [e.entry for e in entries]) if entries else []
    return follow_up(entries, peers, seen, today=today, days=days, default_days=default_days)
