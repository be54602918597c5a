"""Reading this node's records into statistics events, and signing the document (the I/O
edge of :mod:`node.stats.count`: the database and the home's keys and root files).

Sources: the own feed's leaves (ADD / UPDATE / REMOVE with reason, dated by when they were
logged) with the listing dates its state keeps; ``action_records`` (partners' verified
responses and hits about this node's entries); this node's actions log
(:meth:`~node.actions.log.ActionsLog.records`); ``objections``; ``imports`` and their USCC
counters. Only counts and names of lists, measures, purposes, cities and departments leave
here; the document is checked for personal values before it is signed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keys import NodeIdentity, SigningKey
from node.actions.log import ActionsLog
from node.actions.record import Hit, Response
from node.api import feeds
from node.errors import VerificationError
from node.feeds.dates import SHANGHAI
from node.feeds.importer import IMPORTS, REASON_NAMES
from node.feeds.leaf import LeafError, parse_leaf
from node.feeds.logstore import LEAVES, read_cursor
from node.feeds.state import STATE
from node.home import Home
from node.keys.roles import format_time, tuf_key
from node.keys.signers import FeedSigners, RoleSigners
from node.keys.store import RootStore
from node.objections.core import FINAL, ObjectionError
from node.objections.store import OBJECTIONS, RAISED, RECEIVED
from node.objections.wire import history_from_json
from node.stats import count
from node.stats.count import (
    ActionEvent,
    Events,
    FeedEvent,
    ImportEvent,
    ObjectionEvent,
    Period,
)
from node.stats.signed import FORMAT, sign_file
from node.storage import Store
from node.storage.models import ActionRecordRow

ACTION_RECORDS = ActionRecordRow.__table__  # type: ignore[attr-defined]
CHUNK = 5000  # leaves per query
_EVENTS = {
    feeds.EVENT_TYPE_ADD: count.ADD,
    feeds.EVENT_TYPE_UPDATE: count.UPDATE,
    feeds.EVENT_TYPE_REMOVE: count.REMOVE,
}


def window(period: Period) -> tuple[dt.datetime, dt.datetime]:
    """The instants [start, end) of *period*'s Shanghai days."""
    start = dt.datetime.combine(period.first, dt.time(0), tzinfo=SHANGHAI)
    end = dt.datetime.combine(period.last + dt.timedelta(days=1), dt.time(0), tzinfo=SHANGHAI)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def day_of(at: dt.datetime) -> dt.date:
    if at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(SHANGHAI).date()


def _day_us(at_us: int) -> dt.date:
    return day_of(dt.datetime.fromtimestamp(at_us / 1_000_000, dt.UTC))


def _city(origin: str) -> str:
    try:
        return NodeIdentity.parse(origin.removesuffix("/actions")).node
    except ValueError:
        return ""


async def _feed_events(conn: AsyncConnection, origin: str, period: Period, into: Events) -> None:
    cursor = await read_cursor(conn, origin)
    if cursor is None:
        return
    start, end = window(period)
    lo, hi = int(start.timestamp()), int(end.timestamp())
    repairs: dict[str, list[int]] = {}  # entry id -> positions in into.feeds
    for first in range(0, cursor.size, CHUNK):
        rows = await conn.execute(
            select(LEAVES.c.data)
            .where(
                and_(
                    LEAVES.c.log_id == cursor.log_id,
                    LEAVES.c.idx >= first,
                    LEAVES.c.idx < min(first + CHUNK, cursor.size),
                )
            )
            .order_by(LEAVES.c.idx)
        )
        for (data,) in rows:
            try:
                leaf = parse_leaf(bytes(data))
            except LeafError:
                # Fail closed: a stored leaf of our own log that does not parse is damage.
                raise VerificationError(
                    "a leaf of this node's feed does not parse: run `creditnode verify`"
                ) from None
            at = leaf.recorded_at.seconds
            if not lo <= at < hi:
                continue
            event = _EVENTS[leaf.event]
            reason = REASON_NAMES.get(leaf.removal_reason, "") if event == count.REMOVE else ""
            removed = None
            if leaf.removal_date:
                try:
                    removed = dt.date.fromisoformat(leaf.removal_date)
                except ValueError:
                    removed = None
            if reason == count.REPAIR:
                repairs.setdefault(leaf.entry_id, []).append(len(into.feeds))
            into.feeds.append(
                FeedEvent(
                    day=_day_us(at * 1_000_000), event=event, list_code=leaf.list_code,
                    reason=reason, removed=removed,
                )
            )  # fmt: skip
    ids = sorted(repairs)
    for i in range(0, len(ids), 500):
        for entry_id, listing in await conn.execute(
            select(STATE.c.entry_id, STATE.c.listing_date).where(
                and_(STATE.c.log_id == cursor.log_id, STATE.c.entry_id.in_(ids[i : i + 500]))
            )
        ):
            try:
                listed = dt.date.fromisoformat(str(listing))
            except ValueError:
                continue
            for pos in repairs[str(entry_id)]:
                e = into.feeds[pos]
                into.feeds[pos] = FeedEvent(
                    e.day, e.event, e.list_code, e.reason, listed, e.removed
                )
    for code, name in await conn.execute(
        select(STATE.c.list_code, STATE.c.list_name)
        .where(STATE.c.log_id == cursor.log_id)
        .distinct()
    ):
        if code and name:
            into.list_names.setdefault(str(code), str(name))


async def _partner_actions(conn: AsyncConnection, period: Period, into: Events) -> None:
    start, end = window(period)
    lo, hi = int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000
    rows = await conn.execute(
        select(
            ACTION_RECORDS.c.peer, ACTION_RECORDS.c.kind, ACTION_RECORDS.c.measure,
            ACTION_RECORDS.c.action, ACTION_RECORDS.c.purpose, ACTION_RECORDS.c.department,
            ACTION_RECORDS.c.at_us,
        ).where(and_(ACTION_RECORDS.c.at_us >= lo, ACTION_RECORDS.c.at_us < hi))
    )  # fmt: skip
    for peer, kind, measure, action, purpose, department, at_us in rows:
        into.actions.append(
            ActionEvent(
                day=_day_us(int(at_us)), direction=count.RECEIVED, city=str(peer),
                kind=count.HIT if kind == "hit" else count.RESPONSE, measure=str(measure),
                action=str(action), purpose=str(purpose), department=str(department),
            )
        )  # fmt: skip


async def _own_actions(store: Store, home: Home, period: Period, into: Events) -> None:
    log = await ActionsLog.open(store, home.identity.uri, FeedSigners.of_home(home))
    for logged in await log.records():
        r = logged[-1]  # the record, whichever log of this node holds it
        day = _day_us(r.at_us)
        if not period.contains(day):
            continue
        if isinstance(r, Response):
            into.actions.append(ActionEvent(
                day=day, direction=count.GIVEN, city=_city(r.origin), kind=count.RESPONSE,
                measure=r.measure, action=r.action, department=r.department,
            ))  # fmt: skip
        elif isinstance(r, Hit):
            into.actions.append(ActionEvent(
                day=day, direction=count.GIVEN, city=_city(r.origin), kind=count.HIT,
                purpose=r.purpose, department=r.department,
            ))  # fmt: skip


async def _objections(conn: AsyncConnection, into: Events) -> None:
    rows = await conn.execute(select(OBJECTIONS.c.side, OBJECTIONS.c.due, OBJECTIONS.c.history))
    for side, due, history in rows:
        try:
            steps = history_from_json(str(history))
            due_day = dt.date.fromisoformat(str(due))
        except (ObjectionError, ValueError):
            raise VerificationError("a stored objection does not parse") from None
        if not steps or side not in (RAISED, RECEIVED):
            raise VerificationError("a stored objection does not parse")
        final = steps[-1] if steps[-1].state in FINAL else None
        into.objections.append(
            ObjectionEvent(
                side=count.RECEIVED if side == RECEIVED else count.RAISED,
                raised=day_of(steps[0].at), due=due_day,
                resolved=None if final is None else day_of(final.at),
            )
        )  # fmt: skip


async def _imports(conn: AsyncConnection, period: Period, into: Events) -> None:
    start, end = window(period)
    rows = await conn.execute(
        select(
            IMPORTS.c.list_name, IMPORTS.c.finished_at, IMPORTS.c.uscc_checked,
            IMPORTS.c.uscc_invalid, IMPORTS.c.uscc_lenient,
        ).where(and_(IMPORTS.c.finished_at >= start, IMPORTS.c.finished_at < end))
    )  # fmt: skip
    for name, finished, checked, invalid, lenient in rows:
        into.imports.append(
            ImportEvent(day_of(finished), str(name), int(checked), int(invalid), int(lenient))
        )


async def collect(store: Store, home: Home, period: Period) -> Events:
    """This node's events of *period* (a superset is harmless: the core filters by day)."""
    events = Events()
    async with store.engine.connect() as conn:
        await _feed_events(conn, home.identity.uri, period, events)
        await _partner_actions(conn, period, events)
        await _objections(conn, events)
        await _imports(conn, period, events)
    await _own_actions(store, home, period, events)
    return events


def document(home: Home, period: Period, events: Events, *, at: dt.datetime) -> dict[str, Any]:
    """The statistics document (unsigned), checked for personal values."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "issuer": home.identity.uri,
        "issuer_city": home.settings.name,
        "issued_at": format_time(at),
        "period": count.period_json(period),
        "counts": count.tally(events, period),
    }
    count.check_no_personal(doc)
    return doc


def sign(home: Home, doc: dict[str, Any], *, at: dt.datetime) -> bytes:
    """The signed statistics file of *doc*: the report keys the node's root lists valid at
    *at* (before root-init, the feed key, as reports), with the root chain."""
    signers = RoleSigners.of_home(home, "report")
    root = signers.root
    keys = signers.signing_keys(at) if root is not None else (home.signing_key,)
    signing: list[tuple[SigningKey, str]] = []
    for k in keys:
        keyid = root.keyid_of(k.verifying_key) if root is not None else None
        signing.append((k, keyid or tuf_key(k.verifying_key).keyid))
    store = RootStore(home.paths.root)
    chain = [store.read(v) for v in sorted(store.versions())]
    return sign_file(doc, signing, chain)


async def statistics(
    store: Store, home: Home, period: Period, *, now: dt.datetime | None = None
) -> tuple[dict[str, Any], bytes]:
    """The document of *period* and its signed file."""
    at = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    doc = document(home, period, await collect(store, home, period), at=at)
    return doc, sign(home, doc, at=at)
