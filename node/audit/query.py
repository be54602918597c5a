"""Finding entries in the audit log: filters on the ``audit_entries`` index, entries read from
the leaves themselves (the leaf is the record; the row only finds it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, select, true

from node.audit.entry import AuditEntry, parse_entry
from node.audit.log import ENTRIES, audit_origin
from node.feeds.logstore import LEAVES, read_cursor
from node.storage import Store

MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Filter:
    """Which entries: each set criterion must hold (times: *start* inclusive, *end* not)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    peer: str | None = None
    officer: str | None = None
    purpose: str | None = None
    subject: str | None = None
    outcome: str | None = None
    kind: str | None = None
    direction: str | None = None
    released_only: bool = False  # entries that let personal values out
    min_index: int | None = None

    def where(self) -> list[object]:
        c = ENTRIES.c
        conds: list[object] = []
        for name in ("peer", "officer", "purpose", "subject", "outcome", "kind", "direction"):
            value = getattr(self, name)
            if value is not None:
                conds.append(c[name] == value)
        if self.start is not None:
            conds.append(c.at >= self.start)
        if self.end is not None:
            conds.append(c.at < self.end)
        if self.released_only:
            conds.append(c["values"] > 0)
        if self.min_index is not None:
            conds.append(c.idx >= self.min_index)
        return conds


async def find_entries(
    store: Store, node_uri: str, flt: Filter, *, limit: int = MAX_ENTRIES
) -> list[tuple[int, AuditEntry]]:
    """The entries matching *flt*, oldest first, as their leaves say (at most *limit*)."""
    async with store.engine.connect() as conn:
        cursor = await read_cursor(conn, audit_origin(node_uri))
        if cursor is None:
            return []
        chosen = select(ENTRIES.c.idx).where(and_(true(), *flt.where()))  # type: ignore[arg-type]
        idxs = [int(i) for (i,) in await conn.execute(chosen.order_by(ENTRIES.c.idx).limit(limit))]
        out: list[tuple[int, AuditEntry]] = []
        for n in range(0, len(idxs), 500):
            chunk = idxs[n : n + 500]
            rows = await conn.execute(
                select(LEAVES.c.idx, LEAVES.c.data).where(
                    and_(LEAVES.c.log_id == cursor.log_id, LEAVES.c.idx.in_(chunk))
                )
            )
            leaves = {int(i): bytes(d) for i, d in rows}
            for i in chunk:
                if i in leaves:  # a row without its leaf is verify's finding, not an entry
                    out.append((i, parse_entry(leaves[i])))
    return out


async def released_per_peer(store: Store) -> list[tuple[str, int, int, dt.datetime | None]]:
    """Per peer: answers that let personal values out, how many values, the last one."""
    c = ENTRIES.c
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(c.peer, func.count(), func.sum(c["values"]), func.max(c.at))
            .where(and_(c["values"] > 0, c.direction == "in"))
            .group_by(c.peer)
            .order_by(c.peer)
        )
        return [(str(p), int(n), int(v or 0), last) for p, n, v, last in rows]
