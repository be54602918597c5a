"""Applying verified leaves to the per-log list state and openings (own log and mirrors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.leaf import OpenedLeaf
from node.storage import dialect
from node.storage.models import DisclosureRecord, ListStateRecord

STATE = ListStateRecord.__table__  # type: ignore[attr-defined]
DISCLOSURES = DisclosureRecord.__table__  # type: ignore[attr-defined]
_STATE_COLUMNS = (
    "log_id", "entry_id", "list_name", "list_type", "subject_type", "subject_name", "uscc",
    "status", "removal_reason", "listing_date", "severity", "disclosure_end", "last_idx", "entry",
)  # fmt: skip
OPENING_COLUMNS = ("log_id", "idx", "field", "entry_id", "salt", "value")


@dataclass(frozen=True)
class AppliedLeaf:
    idx: int
    opened: OpenedLeaf
    openings: Sequence[feeds.FieldDisclosure]


async def apply_leaves(conn: AsyncConnection, log_id: int, leaves: Sequence[AppliedLeaf]) -> None:
    """Upsert each entry's newest state; keep only the newest openings of live entries.

    A removal deletes every opening of the entry: a repaired record stops being shared, not
    merely hidden.
    """
    last: dict[str, AppliedLeaf] = {}
    for applied in leaves:
        last[applied.opened.leaf.entry_id] = applied  # insertion order kept; value = newest
    if not last:
        return
    # An entry first added in this group has no earlier openings to drop.
    touched = [e for e, a in last.items() if a.opened.leaf.event != feeds.EVENT_TYPE_ADD]
    for i in range(0, len(touched), 500):
        await conn.execute(
            delete(DISCLOSURES).where(
                and_(
                    DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.entry_id.in_(touched[i : i + 500])
                )
            )
        )
    openings = [
        (log_id, a.idx, d.field, entry_id, d.salt, d.value)
        for entry_id, a in last.items()
        if a.opened.leaf.event != feeds.EVENT_TYPE_REMOVE
        for d in a.openings
    ]
    await dialect.bulk_insert(conn, DISCLOSURES, OPENING_COLUMNS, openings)
    rows = []
    for entry_id, a in last.items():
        leaf = a.opened.leaf
        e = leaf.entry
        removed = leaf.event == feeds.EVENT_TYPE_REMOVE
        rows.append((
            log_id, entry_id, e.list_name, int(e.list_type), int(e.subject_type), e.subject_name,
            e.uscc, feeds.ENTRY_STATUS_REMOVED if removed else feeds.ENTRY_STATUS_ACTIVE,
            int(leaf.removal_reason), e.listing_date, int(e.severity), e.disclosure_end, a.idx,
            e.SerializeToString(deterministic=True),
        ))  # fmt: skip
    await dialect.bulk_insert(
        conn, STATE, _STATE_COLUMNS, rows, conflict_keys=("log_id", "entry_id"),
        update=_STATE_COLUMNS[2:],
    )  # fmt: skip


async def read_openings(
    conn: AsyncConnection, log_id: int, start: int, end: int, fields: frozenset[str]
) -> dict[int, dict[str, tuple[bytes, str]]]:
    """Stored openings of leaves [start, end) for *fields*: idx -> field -> (salt, value)."""
    out: dict[int, dict[str, tuple[bytes, str]]] = {}
    if not fields:
        return out
    rows = await conn.execute(
        select(DISCLOSURES.c.idx, DISCLOSURES.c.field, DISCLOSURES.c.salt, DISCLOSURES.c.value)
        .where(and_(DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.idx >= start,
                    DISCLOSURES.c.idx < end, DISCLOSURES.c.field.in_(sorted(fields))))
    )  # fmt: skip
    for idx, field, salt, value in rows:
        out.setdefault(int(idx), {})[field] = (bytes(salt), value)
    return out
