"""Recording a response at the holding city (``creditnode respond``): the entry must be a
partner's entry this node's mirror holds, the measure one the entry names, and the action
fit the entry's state (nothing but ``lifted`` on a removed entry)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, select

from keys import NodeIdentity
from node.actions.log import ActionsLog, held_entry, partner_of
from node.actions.record import RecordError, Response, check_entry_id
from node.api import feeds
from node.audit.entry import EntryError, now_us, officer_id
from node.audit.local import record_local
from node.audit.log import load_secret
from node.feeds.logstore import LOGS
from node.feeds.state import STATE
from node.home import Home
from node.keys.signers import FeedSigners
from node.storage import Store

RESPOND = "creditnode respond"


def entry_ref(text: str, federation: str) -> tuple[str, str]:
    """``ORIGIN:ID`` (ORIGIN a partner's name or its URI) as (origin URI, entry id)."""
    origin, sep, entry = text.rpartition(":")
    if not sep or not origin or not entry:
        raise RecordError("--entry is ORIGIN:ID (the partner's name or URI, then the entry id)")
    if "://" not in origin:
        try:
            origin = NodeIdentity(federation, origin).uri
        except ValueError:
            raise RecordError("--entry: the origin is not a node name") from None
    return origin, check_entry_id(entry)


async def _measures(store: Store, origin: str, entry: str) -> tuple[str, ...] | None:
    """The measures the held entry names (None when its body is no longer held)."""
    async with store.engine.connect() as conn:
        data = (
            await conn.execute(
                select(STATE.c.entry)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(and_(LOGS.c.origin == origin, STATE.c.entry_id == entry))
            )
        ).scalar()
    if not data:
        return None
    return tuple(m.code for m in feeds.ListEntry.FromString(bytes(data)).measures)


async def respond(
    home: Home,
    store: Store,
    *,
    entry: str,
    measure: str,
    action: str,
    department: str,
    officer: str,
    reason: str = "",
    date: dt.date,
) -> int:
    """Append the response to this node's actions log and sign a checkpoint; its index.
    Raises RecordError (or EntryError) for anything that cannot be recorded."""
    origin, entry_id = entry_ref(entry, home.identity.federation)
    if origin == home.identity.uri:
        raise RecordError("--entry names this node's own entry: respond to partners' entries")
    held = await held_entry(store, origin, entry_id)
    if held is None:
        raise RecordError("no such partner entry is held here (see `creditnode lists`)")
    if held.status != feeds.ENTRY_STATUS_ACTIVE and action != "lifted":
        raise RecordError("the entry is no longer active: only `lifted` can be recorded")
    measures = await _measures(store, origin, entry_id)
    if measures is not None and measure not in measures:
        raise RecordError("the entry does not name that measure")
    try:
        officer_key = officer_id(load_secret(home.paths.root), officer)
    except EntryError as exc:
        raise RecordError(str(exc)) from None
    record = Response(
        origin=origin, entry=entry_id, measure=measure, action=action, department=department,
        date=date.isoformat(), officer=officer_key, at_us=now_us(), reason=reason,
    )  # fmt: skip
    log = await ActionsLog.open(store, home.identity.uri, FeedSigners.of_home(home))
    (idx,) = await log.append([record])
    await log.checkpoint(partner_of(record))
    await record_local(home, store, kind="other", method=RESPOND, reason=f"actions leaf {idx}")
    return idx
