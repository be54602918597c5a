"""What this node holds about one subject, active today, for every origin: its own log and each
mirror (issue 14's report reads this). Lists and the report's data classes alike.

An item names its origin, entry id and the index of the entry's newest leaf in that origin's
log, so a report can carry an inclusion proof of the leaf to a checkpoint of the log held
(``log_id``). Only active items come back (:func:`node.feeds.state.active`): listed, with a
body, and not past the disclosure end on *today*; removed, repaired and expired entries never.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.classes import class_of
from node.feeds.logstore import LOGS
from node.feeds.state import DISCLOSURES, STATE, active

__all__ = ["HeldItem", "active_records"]

MAX_ITEMS = 1000  # per call: a subject with more is a data problem, not a report


@dataclass(frozen=True)
class HeldItem:
    """One active list entry or record about the subject, as this node holds it."""

    origin: str  # the origin's node URI (creditnode://FEDERATION/NODE)
    peer: str | None  # the enrolled peer's name for a mirror; None for this node's own log
    log_id: int  # the log held (own or mirror): its checkpoints prove the leaf
    log_state: str  # the log's state (ok, forked, tampered…): a report may flag the item
    entry_id: str
    leaf_index: int  # the entry's newest leaf in the origin's log
    kind: str  # "list", or the record class: penalty | licence | evaluation | commitment
    entry: feeds.ListEntry  # the body; personal fields only with openings=True, as held

    @property
    def own(self) -> bool:
        return self.peer is None


async def active_records(
    conn: AsyncConnection,
    *,
    uscc: str | None = None,
    pseudonym: str | None = None,
    today: dt.date,
    origin: str | None = None,
    openings: bool = False,
) -> list[HeldItem]:
    """Every active item about an organisation (*uscc*) or a person (*pseudonym*, as stored
    for its origin: pseudonyms are per origin, so pass *origin* with the one it was evaluated
    for) held for each origin, own and mirrored, newest decision first within an origin.

    Exactly one of *uscc* and *pseudonym*. With *openings* the personal fields this node holds
    openings for are filled in (all of them for its own log, what an agreement granted for a
    mirror): the caller then owns desensitising them; without, none is.
    """
    if (uscc is None) == (pseudonym is None) or not (uscc or pseudonym):
        raise ValueError("give exactly one of uscc and pseudonym")
    joined = STATE.join(LOGS, LOGS.c.id == STATE.c.log_id)
    where = [active(today)]
    if uscc is not None:
        where.append(STATE.c.uscc == uscc)
    else:
        joined = joined.join(
            DISCLOSURES,
            and_(
                DISCLOSURES.c.log_id == STATE.c.log_id,
                DISCLOSURES.c.idx == STATE.c.last_idx,  # the newest leaf's opening only
                DISCLOSURES.c.field == "person_pseudonym",
                DISCLOSURES.c.value == pseudonym,
            ),
        )
    if origin is not None:
        where.append(LOGS.c.origin == origin)
    rows = (
        await conn.execute(
            select(
                LOGS.c.origin,
                LOGS.c.peer,
                LOGS.c.state,
                STATE.c.log_id,
                STATE.c.entry_id,
                STATE.c.last_idx,
                STATE.c.entry,
            )
            .select_from(joined)
            .where(and_(*where))
            .order_by(LOGS.c.origin, STATE.c.listing_date.desc(), STATE.c.entry_id)
            .limit(MAX_ITEMS)
        )
    ).all()
    opened: dict[tuple[int, int], dict[str, str]] = {}
    if openings and rows:
        for log_id in {int(r.log_id) for r in rows}:
            idxs = [int(r.last_idx) for r in rows if int(r.log_id) == log_id]
            for idx, name, value in await conn.execute(
                select(DISCLOSURES.c.idx, DISCLOSURES.c.field, DISCLOSURES.c.value).where(
                    and_(DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.idx.in_(idxs))
                )
            ):
                opened.setdefault((log_id, int(idx)), {})[name] = value
    items: list[HeldItem] = []
    for r in rows:
        entry = feeds.ListEntry.FromString(bytes(r.entry))
        entry.status = feeds.ENTRY_STATUS_ACTIVE
        for name, value in opened.get((int(r.log_id), int(r.last_idx)), {}).items():
            setattr(entry, name, value)
        items.append(
            HeldItem(
                origin=r.origin, peer=r.peer, log_id=int(r.log_id), log_state=r.state,
                entry_id=r.entry_id, leaf_index=int(r.last_idx),
                kind=class_of(entry) or "list", entry=entry,
            )
        )  # fmt: skip
    return items
