"""Applying verified leaves to the per-log list state and openings (own log and mirrors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.leaf import OpenedLeaf
from node.storage import dialect
from node.storage.models import DisclosureRecord, ListStateRecord

STATE = ListStateRecord.__table__  # type: ignore[attr-defined]
DISCLOSURES = DisclosureRecord.__table__  # type: ignore[attr-defined]
_STATE_UPDATE = [c.name for c in STATE.columns if c.name not in ("log_id", "entry_id")]


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
    touched = list(last)
    for i in range(0, len(touched), 500):
        await conn.execute(
            delete(DISCLOSURES).where(
                and_(
                    DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.entry_id.in_(touched[i : i + 500])
                )
            )
        )
    openings = [
        {
            "log_id": log_id,
            "idx": a.idx,
            "field": d.field,
            "entry_id": entry_id,
            "salt": d.salt,
            "value": d.value,
        }
        for entry_id, a in last.items()
        if a.opened.leaf.event != feeds.EVENT_TYPE_REMOVE
        for d in a.openings
    ]
    if openings:
        await conn.execute(insert(DISCLOSURES), openings)
    rows = []
    for entry_id, a in last.items():
        leaf = a.opened.leaf
        e = leaf.entry
        removed = leaf.event == feeds.EVENT_TYPE_REMOVE
        rows.append(
            {
                "log_id": log_id,
                "entry_id": entry_id,
                "list_name": e.list_name,
                "list_type": e.list_type,
                "subject_type": e.subject_type,
                "subject_name": e.subject_name,
                "uscc": e.uscc,
                "status": feeds.ENTRY_STATUS_REMOVED if removed else feeds.ENTRY_STATUS_ACTIVE,
                "removal_reason": leaf.removal_reason,
                "listing_date": e.listing_date,
                "severity": e.severity,
                "disclosure_end": e.disclosure_end,
                "last_idx": a.idx,
                "entry": e.SerializeToString(deterministic=True),
            }
        )
    stmt = dialect.upsert(conn.dialect.name, STATE, ["log_id", "entry_id"], _STATE_UPDATE)
    await conn.execute(stmt, rows)
