"""Importing and removing records of the report's data classes (issue 14): penalties, licences,
credit evaluations and credit commitments, into the same feed as the lists.

The rules are the lists' (:mod:`node.feeds.importer`): every row is imported or quarantined
with its reason; an import appends only the difference (ADD, UPDATE); it removes only records
whose disclosure end has passed (REMOVE, reason expiry) and, with ``full_export``, records
missing from the file under one stated reason, date and document. Everything is checked before
anything is appended: a full export with a quarantined row or no rows, an unstated removal, a
removal dated before the decision, or more removals than ``max_removals`` (or other than
``confirm_removals``) raises :class:`ImportRefused` with the log untouched. ``dry_run`` plans
and appends nothing. A record's state rows carry its class label as the list name, its class
code as the list code, so ``own_entries``, ``list_state``, expiry and verification treat it as
they treat a listing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.list_csv import Quarantined
from adapters.record_csv import RecordCsv, RecordRow
from node.api import feeds
from node.feeds import ids
from node.feeds.classes import CLASSES
from node.feeds.dates import shanghai_today
from node.feeds.importer import (
    OWN,
    PROVENANCES,
    REMOVAL_REASONS,
    STATED_REASONS,
    Change,
    Held,
    ImportRefused,
    ImportSummary,
    Removal,
    _held,
    _Known,
    _known_entries,
    _lapsed_ids,
    _record,
    _refusal,
    content_hash,
    full_export_problems,
    keep_mark,
    mass_removal_problems,
    objected_entries,
)
from node.feeds.publisher import Event, Publisher
from node.feeds.state import STATE
from node.identity.codes import court_mask
from node.identity.pseudonym import own_pseudonym
from node.identity.pseudonym_key import PseudonymKey
from node.storage import dialect
from node.storage.locks import list_lock

__all__ = [
    "PROVENANCES",
    "STATED_REASONS",
    "find_records",
    "import_records",
    "record_entry",
    "remove_records",
]

_OWN_COLUMNS = ("list_name", "natural_key", "entry_id", "content_hash", "active")
CHUNK = 2000


def record_entry(row: RecordRow, provenance: int, key: PseudonymKey | None) -> feeds.ListEntry:
    """The full entry of a parsed record: the person's pseudonym and court-masked ID added
    (committed, never in the body)."""
    entry = feeds.ListEntry()
    entry.CopyFrom(row.entry)
    entry.provenance = provenance  # type: ignore[assignment]
    if entry.person_id:
        entry.person_id_masked = court_mask(entry.person_id) if len(entry.person_id) == 18 else ""
        if key is not None:
            entry.person_pseudonym = own_pseudonym(key, entry.person_id)
    return entry


def natural_key_hash(row: RecordRow) -> str:
    # Hashed: the key column never holds a raw ID number.
    return hashlib.sha256("\x1f".join(row.key).encode()).hexdigest()


@dataclass(frozen=True)
class _Planned:
    change: Change
    event: Event
    own: tuple[str, str, str, str, bool]


async def import_records(
    publisher: Publisher,
    path: Path,
    code: str,
    *,
    pseudonym_key: PseudonymKey | None,
    provenance: int = feeds.PROVENANCE_AUTHORITATIVE,
    full_export: bool = False,
    removal: Removal | None = None,
    max_removals: int | None = None,
    confirm_removals: int | None = None,
    dry_run: bool = False,
    today: dt.date | None = None,
) -> ImportSummary:
    """Import *path*, a CSV of data class *code* (``adapters.record_csv``); sign a checkpoint.

    The plan is made in full before anything is appended (changes are held in memory), so a
    refusal leaves the log untouched. With *dry_run* the plan is in ``summary.changes`` and a
    refusal in ``summary.refused``.
    """
    # One import of a list at a time on this database: each plans from what the other
    # published (the same file twice adds its rows once), instead of both adding them.
    async with list_lock(publisher.store, CLASSES[code].label):
        today = today or shanghai_today()
        cls = CLASSES[code]
        csv = RecordCsv.open(path, code)
        summary = ImportSummary(
            file=str(path), list_name=cls.label, list_code=code, encoding=csv.encoding
        )
        known = await _known_entries(publisher, cls.label)
        objected = await objected_entries(publisher)
        seen: set[str] = set()
        expired: set[str] = set()
        planned: list[_Planned] = []
        for item in csv.rows():
            summary.read += 1
            if isinstance(item, Quarantined):
                summary.quarantined.append(item)
                continue
            key = natural_key_hash(item)
            end = item.entry.disclosure_end
            if end and end < today.isoformat():
                # Past its publication or validity: never published, removed if it was.
                summary.expired += 1
                expired.add(key)
                continue
            seen.add(key)
            entry = record_entry(item, provenance, pseudonym_key)
            content = content_hash(entry)
            prior = known.get(key)
            if prior is not None and prior.active and prior.content == content:
                summary.unchanged += 1
                continue
            if prior is not None and prior.active:
                action, entry_id, why, kind = (
                    "update",
                    prior.entry_id,
                    "changed",
                    feeds.EVENT_TYPE_UPDATE,
                )
                summary.updated += 1
            else:
                action, entry_id, kind = "add", ids.entry_id(), feeds.EVENT_TYPE_ADD
                why = "again" if prior is not None else "new"
                summary.added += 1
            keep_mark(entry, entry_id, objected)  # after the content hash, as for the lists
            planned.append(
                _Planned(
                    Change(action, item.display, f"{why} (row {item.row})"),
                    Event(entry_id, kind, entry),
                    (cls.label, key, entry_id, content, True),
                )
            )
        problems = full_export_problems(path, summary) if full_export else []
        active = {k: v for k, v in known.items() if v.active}
        lapsed = await _lapsed_ids(publisher, cls.label, today)
        expiring = {
            k for k, v in active.items() if k not in seen and (k in expired or v.entry_id in lapsed)
        }
        absent = [k for k in active if full_export and k not in seen and k not in expiring]
        if absent and removal is None:
            problems.append(
                f"{len(absent)} {cls.label} records are missing from the full export and no "
                "removal is stated: give --removal-reason, --removal-date and --removal-doc"
            )
        held = await _held(publisher, {k: active[k] for k in (*expiring, *absent)})
        outs: list[tuple[Held, Removal]] = [
            (held[k], _expiry(held[k].entry, today)) for k in expiring
        ]
        stated = [(held[k], removal or Removal("", today, "")) for k in absent]
        problems += [
            f"{h.display}: removal date precedes the decision date"
            for h, r in stated
            if r.reason and h.entry.decision_date and r.date.isoformat() < h.entry.decision_date
        ]
        summary.stated_removals = len(stated)
        if not problems:
            problems += mass_removal_problems(
                len(stated), len(active), what=f"{cls.label} records", of=None,
                confirm_removals=confirm_removals, max_removals=max_removals,
            )  # fmt: skip
        outs += stated
        summary.removed = len(outs)
        if dry_run:
            summary.changes = [p.change for p in planned] + [
                Change("remove", h.display, r.reason or "missing from the full export; no removal")
                for h, r in outs
            ]
            summary.refused = _refusal(problems) if problems else ""
            summary.size = publisher.log.frontier.size
            return summary
        if problems:
            raise ImportRefused(_refusal(problems))
        events = [p.event for p in planned] + [_remove_event(code, h, r) for h, r in outs]
        own = [p.own for p in planned] + [
            (cls.label, h.key, h.entry_id, h.content, False) for h, _ in outs
        ]
        await _append(publisher, events, own)
        await _record(publisher, summary)
        await publisher.sign_checkpoint()
        summary.size = publisher.log.frontier.size
        return summary


def _expiry(entry: feeds.ListEntry, today: dt.date) -> Removal:
    try:
        day = dt.date.fromisoformat(entry.disclosure_end) + dt.timedelta(days=1)
    except ValueError:
        day = today
    return Removal("expiry", min(day, today), "")


def _remove_event(code: str, held: Held, removal: Removal) -> Event:
    return Event(
        held.entry_id, feeds.EVENT_TYPE_REMOVE, feeds.ListEntry(list_code=code),
        REMOVAL_REASONS[removal.reason], removal_date=removal.date.isoformat(),
        removal_doc_no=removal.doc_no,
    )  # fmt: skip


async def _append(
    publisher: Publisher, events: list[Event], own: list[tuple[str, str, str, str, bool]]
) -> None:
    for i in range(0, len(events), CHUNK):
        batch = own[i : i + CHUNK]

        async def write_own(
            c: AsyncConnection, batch: list[tuple[str, str, str, str, bool]] = batch
        ) -> None:
            await dialect.bulk_insert(
                c, OWN, _OWN_COLUMNS, batch, conflict_keys=_OWN_COLUMNS[:2],
                update=_OWN_COLUMNS[2:],
            )  # fmt: skip

        await publisher.append(events[i : i + CHUNK], extra=write_own)


async def find_records(
    publisher: Publisher, code: str, *, uscc: str = "", entry_id: str = ""
) -> list[Held]:
    """This node's active records of class *code* for a USCC, or with an entry id."""
    label = CLASSES[code].label
    cond = STATE.c.uscc == uscc if uscc else STATE.c.entry_id == entry_id
    async with publisher.store.engine.connect() as conn:
        ids = [
            r[0]
            for r in await conn.execute(
                select(STATE.c.entry_id).where(
                    and_(
                        STATE.c.log_id == publisher.log.log_id,
                        STATE.c.list_code == code,
                        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                        cond,
                    )
                )
            )
        ]
        known: dict[str, _Known] = {}
        if ids:
            rows = await conn.execute(
                select(OWN).where(and_(OWN.c.list_name == label, OWN.c.entry_id.in_(ids)))
            )
            known = {r.natural_key: _Known(r.entry_id, r.content_hash, r.active) for r in rows}
    held = await _held(publisher, {k: v for k, v in known.items() if v.active})
    return sorted(held.values(), key=lambda h: (h.entry.decision_date, h.entry_id))


async def remove_records(
    publisher: Publisher,
    code: str,
    held: list[Held],
    removal: Removal,
    *,
    today: dt.date | None = None,
) -> int:
    """Append one REMOVE per record in *held* with *removal*'s reason, date and document and
    sign a checkpoint; ImportRefused (nothing appended) for a date in the future or before a
    record's decision, or an expiry before its end."""
    today = today or shanghai_today()
    problems: list[str] = []
    if removal.date > today:
        problems.append("the removal date is in the future")
    for h in held:
        e = h.entry
        if e.decision_date and removal.date.isoformat() < e.decision_date:
            problems.append(f"{h.display}: removal date precedes the decision date")
        if removal.reason == "expiry" and not (
            e.disclosure_end and e.disclosure_end < removal.date.isoformat()
        ):
            problems.append(f"{h.display}: expiry before its end has passed")
    if problems:
        raise ImportRefused(_refusal(problems).replace("nothing imported", "nothing removed"))
    label = CLASSES[code].label
    await _append(
        publisher,
        [_remove_event(code, h, removal) for h in held],
        [(label, h.key, h.entry_id, h.content, False) for h in held],
    )
    await publisher.sign_checkpoint()
    return len(held)
