"""Importing a full export of one list: diff against what this node published before and
append only the changes (ADD, UPDATE, REMOVE); every row is either imported or quarantined."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.list_csv import ListCsv, ListRow, Quarantined
from node.api import feeds
from node.feeds.publisher import Event, Publisher
from node.feeds.state import STATE
from node.identity.alliance import AllianceKey
from node.identity.codes import court_mask
from node.identity.pseudonym import pseudonym
from node.storage import dialect
from node.storage.models import ImportRecord, OwnEntryRecord, QuarantineRecord, utcnow

OWN = OwnEntryRecord.__table__  # type: ignore[attr-defined]
IMPORTS = ImportRecord.__table__  # type: ignore[attr-defined]
QUARANTINE = QuarantineRecord.__table__  # type: ignore[attr-defined]

_OWN_COLUMNS = ("list_name", "natural_key", "entry_id", "content_hash", "active")
CHUNK = 2000  # events per transaction

_SUBJECT = {
    "legal_person": feeds.SUBJECT_TYPE_LEGAL_PERSON,
    "sole_trader": feeds.SUBJECT_TYPE_SOLE_TRADER,
    "natural_person": feeds.SUBJECT_TYPE_NATURAL_PERSON,
}
_LIST = {"black": feeds.LIST_TYPE_BLACK, "red": feeds.LIST_TYPE_RED, "watch": feeds.LIST_TYPE_WATCH}
_SEVERITY = {
    "": feeds.SEVERITY_UNSPECIFIED,
    "minor": feeds.SEVERITY_MINOR,
    "general": feeds.SEVERITY_GENERAL,
    "serious": feeds.SEVERITY_SERIOUS,
}
REMOVAL_REASONS = {
    "repair": feeds.REMOVAL_REASON_REPAIR,
    "expiry": feeds.REMOVAL_REASON_EXPIRY,
    "correction": feeds.REMOVAL_REASON_CORRECTION,
    "withdrawal": feeds.REMOVAL_REASON_WITHDRAWAL,
}
PROVENANCES = {
    "authoritative": feeds.PROVENANCE_AUTHORITATIVE,
    "reference": feeds.PROVENANCE_REFERENCE,
}


def row_to_entry(row: ListRow, provenance: int, key: AllianceKey | None = None) -> feeds.ListEntry:
    """The full entry for a CSV row, personal fields included (they are committed, not sent)."""
    person = row.subject_type == "natural_person"
    pseud = pseudonym(key.secret, key.version, row.person_id) if person and key else ""
    return feeds.ListEntry(
        subject_name="" if person else row.subject_name,
        subject_type=_SUBJECT[row.subject_type],
        uscc=row.uscc,
        person_name=row.subject_name if person else "",
        person_id=row.person_id if person else "",
        person_id_masked=court_mask(row.person_id) if person else "",
        person_pseudonym=pseud,
        legal_rep_name=row.legal_rep_name,
        legal_rep_id=row.legal_rep_id,
        list_type=_LIST[row.list_type],
        list_name=row.list_name,
        reason=row.reason,
        legal_basis=row.legal_basis,
        decision_doc_no=row.decision_doc_no,
        authority_name=row.authority_name,
        authority_uscc=row.authority_uscc,
        listing_date=row.listing_date.isoformat(),
        severity=_SEVERITY[row.severity],
        disclosure_end=row.disclosure_end.isoformat() if row.disclosure_end else "",
        measures=[feeds.Measure(code=m.code, mandatory=m.mandatory) for m in row.measures],
        provenance=provenance,  # type: ignore[arg-type]
        status=feeds.ENTRY_STATUS_ACTIVE,
    )


def natural_key_hash(row: ListRow) -> str:
    # Hashed so the key column never holds a raw ID number in clear.
    return hashlib.sha256("\x1f".join(row.natural_key()).encode()).hexdigest()


def content_hash(entry: feeds.ListEntry) -> str:
    return hashlib.sha256(entry.SerializeToString(deterministic=True)).hexdigest()


@dataclass
class ImportSummary:
    file: str
    list_name: str
    encoding: str = ""
    read: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    expired: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    size: int = 0


@dataclass(frozen=True)
class _Known:
    entry_id: str
    content: str
    active: bool


ProgressFn = Callable[[int, int], None]


async def import_list(
    publisher: Publisher,
    path: Path,
    list_name: str,
    *,
    alliance_key: AllianceKey | None,
    removal_reason: int = feeds.REMOVAL_REASON_WITHDRAWAL,
    provenance: int = feeds.PROVENANCE_AUTHORITATIVE,
    today: dt.date | None = None,
    progress: ProgressFn | None = None,
) -> ImportSummary:
    """Import a full export of *list_name* from *path*; sign a checkpoint at the end.

    *alliance_key* is required (None only for a home without one): an import without it would
    see every person's entry as changed, since the pseudonym is part of the entry.
    """
    today = today or dt.date.today()
    csv = ListCsv.open(path)
    summary = ImportSummary(file=str(path), list_name=list_name, encoding=csv.encoding)
    engine = publisher.store.engine
    async with engine.connect() as conn:
        rows = await conn.execute(select(OWN).where(OWN.c.list_name == list_name))
        known = {r.natural_key: _Known(r.entry_id, r.content_hash, r.active) for r in rows}
    seen: set[str] = set()
    events: list[Event] = []
    own_rows: list[tuple[str, str, str, str, bool]] = []

    async def flush() -> None:
        if not events:
            return
        batch = list(own_rows)

        async def write_own(c: AsyncConnection) -> None:
            await dialect.bulk_insert(
                c, OWN, _OWN_COLUMNS, batch, conflict_keys=_OWN_COLUMNS[:2],
                update=_OWN_COLUMNS[2:],
            )  # fmt: skip

        summary.size = await publisher.append(events, extra=write_own)
        events.clear()
        own_rows.clear()

    for item in csv.rows():
        summary.read += 1
        if isinstance(item, ListRow) and item.list_name != list_name:
            item = Quarantined(
                item.row,
                "名单名称",
                f"名单名称: row is for list {item.list_name!r}, importing {list_name!r}",
            )
        if isinstance(item, Quarantined):
            summary.quarantined.append(item)
            continue
        key = natural_key_hash(item)
        if item.disclosure_end is not None and item.disclosure_end < today:
            # Past its disclosure period: publication and sharing stop (NDRC Order 2025 No. 36).
            # Not shared; if it was, the removal below (key unseen) says "expiry".
            summary.expired += 1
            continue
        seen.add(key)
        entry = row_to_entry(item, provenance, alliance_key)
        content = content_hash(entry)
        prior = known.get(key)
        if prior is not None and prior.active and prior.content == content:
            summary.unchanged += 1
            continue
        if prior is not None and prior.active:
            events.append(Event(prior.entry_id, feeds.EVENT_TYPE_UPDATE, entry))
            entry_id = prior.entry_id
            summary.updated += 1
        else:
            entry_id = uuid.uuid4().hex  # a re-listing is a new listing
            events.append(Event(entry_id, feeds.EVENT_TYPE_ADD, entry))
            summary.added += 1
        own_rows.append((list_name, key, entry_id, content, True))
        if len(events) >= CHUNK:
            await flush()
        if progress is not None and summary.read % 1000 == 0:
            progress(csv.bytes_read(), csv.size_bytes())

    gone = {k: v for k, v in known.items() if v.active and k not in seen}
    for key, entry in await _public_entries(publisher, gone):
        ended = bool(entry.disclosure_end) and entry.disclosure_end < today.isoformat()
        reason = feeds.REMOVAL_REASON_EXPIRY if ended else removal_reason
        events.append(Event(gone[key].entry_id, feeds.EVENT_TYPE_REMOVE, entry, reason))
        own_rows.append((list_name, key, gone[key].entry_id, gone[key].content, False))
        summary.removed += 1
        if len(events) >= CHUNK:
            await flush()
    await flush()
    await _record(publisher, summary)
    await publisher.sign_checkpoint()
    summary.size = publisher.log.frontier.size
    if progress is not None:
        progress(csv.size_bytes(), csv.size_bytes())
    return summary


async def _public_entries(
    publisher: Publisher, gone: dict[str, _Known]
) -> Iterable[tuple[str, feeds.ListEntry]]:
    by_id = {v.entry_id: k for k, v in gone.items()}
    out: list[tuple[str, feeds.ListEntry]] = []
    ids = list(by_id)
    async with publisher.store.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            rows = await conn.execute(
                select(STATE.c.entry_id, STATE.c.entry).where(
                    and_(
                        STATE.c.log_id == publisher.log.log_id,
                        STATE.c.entry_id.in_(ids[i : i + 500]),
                    )
                )
            )
            out.extend((by_id[e], feeds.ListEntry.FromString(b)) for e, b in rows)
    return out


async def _record(publisher: Publisher, s: ImportSummary) -> None:
    async with publisher.store.begin() as conn:
        result = await conn.execute(
            insert(IMPORTS).values(
                list_name=s.list_name,
                file=s.file[:1000],
                encoding=s.encoding,
                read=s.read,
                added=s.added,
                updated=s.updated,
                removed=s.removed,
                unchanged=s.unchanged,
                quarantined=len(s.quarantined),
                finished_at=utcnow(),
            )
        )
        import_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        if s.quarantined:
            await conn.execute(
                insert(QUARANTINE),
                [
                    {
                        "import_id": import_id,
                        "file": s.file[:1000],
                        "row": q.row,
                        "column": q.column or "",
                        "reason": q.reason[:500],
                    }
                    for q in s.quarantined
                ],
            )
