"""The origin's side: record an objection a peer raised (marking the entry under objection
with an UPDATE), and resolve it (a correction UPDATE, a withdrawal REMOVE, or a rejection),
clearing the mark once no other objection to the entry is open."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.api import objections as pb
from node.errors import InputError
from node.feeds.catalogue import Catalogue, ListSpec
from node.feeds.dates import shanghai_today
from node.feeds.importer import (
    OWN,
    REMOVAL_REASONS,
    STATED_REASONS,
    Held,
    Removal,
    _Out,
    removal_problems,
)
from node.feeds.publisher import Event, Publisher
from node.feeds.state import STATE
from node.objections import store
from node.objections.core import Objection, ObjectionError, State, check_text
from node.objections.wire import from_message
from node.storage.locks import list_lock

# At most this many open objections from one peer: a peer cannot flood the origin's feed with
# UPDATEs, nor its operator with work.
MAX_OPEN_PER_PEER = 200
# A raiser's clock may run this far ahead of ours.
CLOCK_SKEW = dt.timedelta(minutes=5)
# The removal a withdrawal states when the operator names none, by the objection's grounds.
WITHDRAWAL_REASON = {
    "identity_mismatch": "correction",
    "content_error": "correction",
    "repaired_or_expired": "repair",
    "decision_revoked": "revocation",
}
MAX_CORRECTION_BYTES = 64 * 1024


class Refused(ObjectionError):
    """An objection the origin does not accept; *code* names the gRPC status to answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def receive(
    publisher: Publisher, message: pb.Objection, *, raised_by: str, now: dt.datetime
) -> Objection:
    """Record *message* from peer *raised_by* as under objection, and mark the entry; the
    stored objection if the same one arrives again (a retry)."""
    o = from_message(message, origin=publisher.origin, raised_by=raised_by)
    if len(o.history) != 1:
        raise Refused("invalid", "a new objection's history is its raising alone")
    if o.raised_at > now + CLOCK_SKEW:
        raise Refused("invalid", "the objection is raised in the future")
    [*known] = await store.find(publisher.store, ids=[o.id])
    if known:
        held = known[0].objection
        same = (held.raised_by, held.entry_id, held.grounds, held.evidence_sha256, held.due)
        if known[0].side == store.RECEIVED and same == (
            raised_by, o.entry_id, o.grounds, o.evidence_sha256, o.due,
        ):  # fmt: skip
            return held
        raise Refused("exists", "an objection with this id exists already")
    open_ = await store.find(publisher.store, side=store.RECEIVED, raised_by=raised_by,
                             open_only=True)  # fmt: skip
    if len(open_) >= MAX_OPEN_PER_PEER:
        raise Refused("exhausted", f"{MAX_OPEN_PER_PEER} objections of this peer are open")
    acked = o.acknowledge(max(now, o.raised_at))
    try:
        marked = await _marked(publisher, o.entry_id)
        event = await store.mark_event(publisher, o.entry_id, under=True)
    except ObjectionError:
        raise Refused("not_found", "this node holds no active entry with that id") from None

    async def write(conn: AsyncConnection) -> None:
        await store.save(conn, acked, store.RECEIVED)

    if marked:
        async with publisher.store.begin() as conn:
            await write(conn)  # marked already by another open objection: no new UPDATE
    else:
        await publisher.append([event], extra=write)
    return acked


async def _marked(publisher: Publisher, entry_id: str) -> bool:
    async with publisher.store.engine.connect() as conn:
        return (await store.own_entry(conn, publisher, entry_id)).under_objection


def read_correction(path: Path) -> feeds.ListEntry:
    """A correction file: a JSON object of the public fields to change (store.CORRECTABLE),
    each a bounded text value."""
    try:
        if path.stat().st_size > MAX_CORRECTION_BYTES:
            raise InputError(f"{path}: a correction file is at most {MAX_CORRECTION_BYTES} bytes")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: not a UTF-8 JSON object") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{path}: not a JSON object naming fields to correct")
    unknown = sorted(str(k)[:40] for k in raw if k not in store.CORRECTABLE)
    if unknown:
        raise InputError(
            f"{path}: fields that cannot be corrected: {', '.join(unknown)} "
            f"(correctable: {', '.join(store.CORRECTABLE)})"
        )
    entry = feeds.ListEntry()
    for name, value in raw.items():
        if not isinstance(value, str):
            raise InputError(f"{path}: {name} is not text")
        try:
            setattr(entry, name, check_text(value, name, 500))
        except ObjectionError as exc:
            raise InputError(f"{path}: {exc}") from None
    return entry


async def resolve(
    publisher: Publisher, catalogue: Catalogue, objection_id: str, *, action: str, doc_no: str,
    reason: str = "", correction: feeds.ListEntry | None = None, now: dt.datetime,
) -> Objection:  # fmt: skip
    """Resolve a received objection: *action* is ``correct``, ``withdraw`` or ``reject``."""
    found = await store.find(publisher.store, ids=[objection_id], side=store.RECEIVED)
    if not found:
        raise InputError("no objection to this node's entries has that id")
    o = found[0].objection
    if o.state != State.UNDER_OBJECTION:
        raise InputError(f"the objection is {o.state.value} already")
    others = [
        h
        for h in await store.find(
            publisher.store,
            side=store.RECEIVED,
            origin=o.origin,
            entry_id=o.entry_id,
            open_only=True,
        )
        if h.objection.id != o.id
    ]
    keep_mark = bool(others)
    try:
        if action == "reject":
            done = o.reject(now, reason=reason, doc_no=doc_no)
        elif action == "correct":
            done = o.uphold(now, outcome="correction", doc_no=doc_no, reason=reason)
        elif action == "withdraw":
            done = o.uphold(now, outcome="withdrawal", doc_no=doc_no, reason=reason)
        else:
            raise InputError(f"unknown resolution {action!r}")
    except ObjectionError as exc:
        raise InputError(str(exc)) from None

    async def write(conn: AsyncConnection) -> None:
        try:
            await store.save_resolution(conn, done)
        except ObjectionError as exc:
            raise InputError(str(exc)) from None

    async def publish() -> Objection:
        if action == "withdraw":
            event = await _withdrawal(publisher, catalogue, o, reason, doc_no, now)

            async def write_both(conn: AsyncConnection) -> None:
                # The REMOVE and the resolution commit together or not at all.
                await conn.execute(
                    update(OWN).where(OWN.c.entry_id == o.entry_id).values(active=False)
                )
                await write(conn)

            await publisher.append([event], extra=write_both)
            await publisher.sign_checkpoint()
            return done
        try:
            event = await store.mark_event(
                publisher, o.entry_id, under=keep_mark,
                correction=correction if action == "correct" else None,
            )  # fmt: skip
        except ObjectionError:
            if action != "reject":
                raise InputError("the entry is no longer active here: reject instead") from None
            # Removed meanwhile (another objection's withdrawal, a repair): no mark to clear.
            async with publisher.store.begin() as conn:
                await write(conn)
            return done
        await publisher.append([event], extra=write)
        await publisher.sign_checkpoint()
        return done

    # The lock an import of the entry's list takes: the entry read for the REMOVE or UPDATE is
    # the one published, not one an import is replacing meanwhile.
    async with list_lock(publisher.store, await _list_of(publisher, o.entry_id)):
        return await publish()


async def _list_of(publisher: Publisher, entry_id: str) -> str:
    """The list of this node's entry *entry_id* ("" if it holds none)."""
    async with publisher.store.engine.connect() as conn:
        name = await conn.scalar(
            select(STATE.c.list_name).where(
                and_(STATE.c.log_id == publisher.log.log_id, STATE.c.entry_id == entry_id)
            )
        )
    return str(name or "")


async def _withdrawal(
    publisher: Publisher, catalogue: Catalogue, o: Objection, reason: str, doc_no: str,
    now: dt.datetime,
) -> Event:  # fmt: skip
    """The REMOVE withdrawing *o*'s entry: any active entry of this node (a listing, a report
    record, one added otherwise), checked against its list's rule when it is a listing."""
    why = reason or WITHDRAWAL_REASON[o.grounds]
    if why not in STATED_REASONS:
        raise InputError(f"a withdrawal's --reason is one of {', '.join(STATED_REASONS)}")
    async with publisher.store.engine.connect() as conn:
        try:
            entry = await store.own_entry(conn, publisher, o.entry_id)
        except ObjectionError:
            raise InputError("the entry is no longer active here") from None
    today = shanghai_today(now)
    removal = Removal(why, today, doc_no)
    problems = withdrawal_problems(catalogue.find(entry.list_code or entry.list_name), entry,
                                   o.entry_id, removal)  # fmt: skip
    if problems:
        raise InputError(f"{problems[0]}: nothing removed")
    return Event(
        o.entry_id, feeds.EVENT_TYPE_REMOVE, feeds.ListEntry(list_code=entry.list_code),
        REMOVAL_REASONS[why], removal_date=today.isoformat(), removal_doc_no=doc_no,
    )  # fmt: skip


def withdrawal_problems(
    spec: ListSpec | None, entry: feeds.ListEntry, entry_id: str, removal: Removal
) -> list[str]:
    """What forbids withdrawing *entry* by *removal*: the list's rule for a listing of the
    catalogue (a repair before its minimum period, a date before the decision); for any
    other entry (a report record), a date before its decision."""
    if spec is not None:
        return removal_problems(spec, [_Out(Held(entry_id, "", "", entry), removal)])
    if entry.decision_date and removal.date.isoformat() < entry.decision_date:
        return ["the removal date precedes the decision date"]
    return []
