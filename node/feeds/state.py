"""Applying verified leaves to the per-log list state and openings (own log and mirrors), and
the one rule for what counts as active."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import ColumnElement, RowMapping, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds import counts, measures_store
from node.feeds.leaf import OpenedLeaf
from node.identity import name_search
from node.storage import dialect
from node.storage.models import DisclosureRecord, ListStateRecord

STATE = ListStateRecord.__table__  # type: ignore[attr-defined]
DISCLOSURES = DisclosureRecord.__table__  # type: ignore[attr-defined]
_STATE_COLUMNS = (
    "log_id", "entry_id", "list_name", "list_type", "subject_type", "subject_name", "uscc",
    "status", "removal_reason", "listing_date", "severity", "disclosure_end", "last_idx", "entry",
    "list_code", "body_salt", "name_norm", "code_suspect",
)  # fmt: skip
OPENING_COLUMNS = ("log_id", "idx", "field", "entry_id", "salt", "value")


class AppliedLeaf(NamedTuple):
    """A verified leaf to apply: its index, what it opened to, the openings that came with it.
    (A tuple: one is made per received leaf, and a dataclass costs several times more.)"""

    idx: int
    opened: OpenedLeaf
    openings: Sequence[feeds.FieldDisclosure]


def active(today: dt.date) -> ColumnElement[bool]:
    """The state rows that are active on *today* (a Shanghai date): listed, with a body, and
    not past their disclosure end. Every view and answer uses this, so an entry whose period
    has ended is gone on its day even if its origin is down and its REMOVE never came."""
    return and_(
        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
        STATE.c.entry != b"",
        or_(STATE.c.disclosure_end == "", STATE.c.disclosure_end >= today.isoformat()),
    )


async def apply_leaves(
    conn: AsyncConnection, log_id: int, leaves: Sequence[AppliedLeaf], *, keep_history: bool
) -> bool:
    """Upsert each entry's newest state; keep only the newest openings of live entries.

    On a holder (*keep_history* false) a removal deletes every opening of the entry and its
    body: a repaired record stops being shared and is no longer held, only its id, list and
    removal. The origin keeps its own history. Returns True if anything was removed.
    """
    last: dict[str, AppliedLeaf] = {}
    for applied in leaves:
        last[applied.opened.leaf.entry_id] = applied  # insertion order kept; value = newest
    if not last:
        return False
    # An entry first added in this group has no earlier openings to drop; at the origin a
    # removal keeps the openings it has.
    touched = [
        e
        for e, a in last.items()
        if a.opened.leaf.event == feeds.EVENT_TYPE_UPDATE
        or (a.opened.leaf.event == feeds.EVENT_TYPE_REMOVE and not keep_history)
    ]
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
    # Counters (node/feeds/counts.py): each entry leaves the bucket its stored row counts in.
    prior = await counts.prior_keys(conn, log_id, list(last))
    gone = [e for e, a in last.items() if a.opened.leaf.event == feeds.EVENT_TYPE_REMOVE]
    before = await _stored_rows(conn, log_id, gone)
    rows = []
    for entry_id, a in last.items():
        leaf = a.opened.leaf
        body = a.opened.body
        if leaf.event == feeds.EVENT_TYPE_REMOVE:
            rows.append(_removed_row(log_id, entry_id, a, before.get(entry_id), keep_history))
            continue
        e = a.opened.entry
        rows.append((
            log_id, entry_id, e.list_name, int(e.list_type), int(e.subject_type), e.subject_name,
            e.uscc, feeds.ENTRY_STATUS_ACTIVE, 0, e.listing_date, int(e.severity),
            e.disclosure_end, a.idx, bytes(body.entry) if body else b"", leaf.list_code,
            bytes(body.salt) if body else None, counts.name_norm_of(e.subject_name),
            int(not keep_history and counts.suspect_code(e.uscc)),
        ))  # fmt: skip
    # Rows of entries with no stored row are plain inserts (COPY on PostgreSQL), indexed by
    # name in one statement after; only the others pay for ON CONFLICT. A row another writer
    # inserted meanwhile fails as IntegrityError (the fold takes that as a race, and retries).
    new = [r for r in rows if r[1] not in prior]
    await dialect.bulk_insert(
        conn, STATE, _STATE_COLUMNS, [r for r in rows if r[1] in prior],
        conflict_keys=("log_id", "entry_id"), update=_STATE_COLUMNS[2:],
    )  # fmt: skip
    await dialect.bulk_insert(conn, STATE, _STATE_COLUMNS, new)
    await name_search.index_inserted(conn, len(new))
    moved = counts.deltas(prior, counts.row_keys(rows, _STATE_COLUMNS))
    await counts.add_counts(conn, log_id, moved)
    await counts.note_candidates(conn, *counts.written_codes(rows, _STATE_COLUMNS))
    await measures_store.note_cited(
        conn,
        log_id,
        measures_store.cited_in(a.opened.entry for a in last.values() if a.opened.body is not None),
    )
    return bool(gone)


async def _stored_rows(
    conn: AsyncConnection, log_id: int, entry_ids: Sequence[str]
) -> dict[str, RowMapping]:
    """The stored rows of *entry_ids* (one statement per 500, not one per entry)."""
    out: dict[str, RowMapping] = {}
    for i in range(0, len(entry_ids), 500):
        rows = await conn.execute(
            select(STATE).where(
                and_(STATE.c.log_id == log_id, STATE.c.entry_id.in_(entry_ids[i : i + 500]))
            )
        )
        out.update((r["entry_id"], r) for r in rows.mappings())
    return out


def _removed_row(
    log_id: int, entry_id: str, a: AppliedLeaf, prior: RowMapping | None, keep_history: bool
) -> tuple[object, ...]:
    leaf = a.opened.leaf
    reason = int(leaf.removal_reason)
    gone = feeds.ENTRY_STATUS_REMOVED
    list_name = prior["list_name"] if prior is not None else ""
    list_type = prior["list_type"] if prior is not None else 0
    if keep_history and prior is not None:
        p = prior
        return (
            log_id, entry_id, list_name, list_type, p["subject_type"], p["subject_name"],
            p["uscc"], gone, reason, p["listing_date"], p["severity"], p["disclosure_end"],
            a.idx, p["entry"], leaf.list_code, p["body_salt"], p["name_norm"], p["code_suspect"],
        )  # fmt: skip
    # A holder keeps that the entry existed and why it left, nothing of what it said.
    return (
        log_id, entry_id, list_name, list_type, 0, "", "", gone, reason, "", 0, "", a.idx, b"",
        leaf.list_code, None, None, 0,
    )  # fmt: skip


async def read_bodies(
    conn: AsyncConnection, log_id: int, start: int, end: int, today: dt.date
) -> dict[int, feeds.EntryBody]:
    """The bodies of leaves [start, end) that may travel today: the newest leaf of each entry
    that is active and inside its disclosure period. idx -> body."""
    rows = await conn.execute(
        select(STATE.c.last_idx, STATE.c.body_salt, STATE.c.entry).where(
            and_(
                STATE.c.log_id == log_id,
                STATE.c.last_idx >= start,
                STATE.c.last_idx < end,
                active(today),
            )
        )
    )
    return {
        int(idx): feeds.EntryBody(salt=bytes(salt), entry=bytes(body))
        for idx, salt, body in rows
        if salt is not None
    }


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
