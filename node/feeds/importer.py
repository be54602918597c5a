"""Importing one list of the catalogue: diff a file against what this node published before
and append only the changes (ADD, UPDATE, REMOVE); every row is imported or quarantined.

An import adds and updates. It removes only

- entries whose 公示截止日期 has passed (REMOVE, reason expiry: that is a fact, not a choice);
- entries a removals file names, each with its reason, date and document number;
- with ``full_export``, entries missing from the file, under one stated reason, date and
  document (``removal``) unless the removals file states theirs.

Everything is checked before anything is appended: a full export with a quarantined row, or
with no rows, a removal without a stated reason, a repair before the list's minimum period,
more removals than ``max_removals`` (default: 5% of the list's active entries or 10, whichever
is larger) or a number other than ``confirm_removals`` raises :class:`ImportRefused` and the
log is untouched. ``dry_run`` plans and reports the same and appends nothing.
"""

from __future__ import annotations

import csv as csvlib
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.list_csv import ListCsv, ListRow, Quarantined, parse_date, sniff_encoding
from node.api import feeds
from node.errors import InputError
from node.feeds import ids
from node.feeds.catalogue import KIND_LABELS, SEVERITY_NAMES, ListSpec
from node.feeds.dates import shanghai_today
from node.feeds.measures import MeasureCatalogue, packaged
from node.feeds.measures_store import keep as keep_measures_catalogue
from node.feeds.publisher import Event, Publisher
from node.feeds.state import STATE
from node.identity.codes import court_mask, normalise_code
from node.identity.pseudonym import own_pseudonym
from node.identity.pseudonym_key import PseudonymKey
from node.objections import store as objections_store
from node.policy.masks import PATTERNS
from node.storage import dialect
from node.storage.locks import list_lock
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
_LIST = {
    "black": feeds.LIST_TYPE_BLACK,
    "red": feeds.LIST_TYPE_RED,
    "watch": feeds.LIST_TYPE_WATCH,
    "abnormal": feeds.LIST_TYPE_ABNORMAL,
}
_SEVERITY = {
    "": feeds.SEVERITY_UNSPECIFIED,
    "minor": feeds.SEVERITY_MINOR,
    "general": feeds.SEVERITY_GENERAL,
    "serious": feeds.SEVERITY_SERIOUS,
}
# node.identity.validate.ID_TYPES -> IdType; "" (no ID) is unspecified.
ID_TYPES = {
    "": feeds.ID_TYPE_UNSPECIFIED,
    "resident_id": feeds.ID_TYPE_RESIDENT_ID,
    "resident_id_upgraded": feeds.ID_TYPE_RESIDENT_ID_UPGRADED,
    "hk_macao_residence_permit": feeds.ID_TYPE_HK_MACAO_RESIDENCE_PERMIT,
    "taiwan_residence_permit": feeds.ID_TYPE_TAIWAN_RESIDENCE_PERMIT,
}
REMOVAL_REASONS = {
    "repair": feeds.REMOVAL_REASON_REPAIR,
    "expiry": feeds.REMOVAL_REASON_EXPIRY,
    "correction": feeds.REMOVAL_REASON_CORRECTION,
    "revocation": feeds.REMOVAL_REASON_REVOCATION,
    "fulfilled": feeds.REMOVAL_REASON_FULFILLED,
}
REASON_NAMES = {v: k for k, v in REMOVAL_REASONS.items()}
# What an operator may state for entries missing from a full export (expiry is never stated:
# it follows from the dates).
STATED_REASONS = ("repair", "correction", "revocation", "fulfilled")
# 移出原因 cells of a removals file: the names above, or these.
_REASON_LABELS = {
    "信用修复": "repair",
    "修复": "repair",
    "公示期满": "expiry",
    "期满": "expiry",
    "更正": "correction",
    "撤销": "revocation",
    "履行完毕": "fulfilled",
}
PROVENANCES = {
    "authoritative": feeds.PROVENANCE_AUTHORITATIVE,
    "reference": feeds.PROVENANCE_REFERENCE,
}


def row_to_entry(row: ListRow, provenance: int, key: PseudonymKey | None = None) -> feeds.ListEntry:
    """The full entry for a CSV row, personal fields included (they are committed, not sent).

    IDs arrive normalised (a 15-digit ID as its 18-digit upgrade, its type saying so), so the
    pseudonym and the masked form are over the 18-character ID whichever form was given.
    """
    person = row.subject_type == "natural_person"
    pseud = own_pseudonym(key, row.person_id) if person and key else ""
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
        person_id_type=ID_TYPES[row.person_id_type] if person else feeds.ID_TYPE_UNSPECIFIED,
        legal_rep_id_type=ID_TYPES[row.legal_rep_id_type],
        warnings=list(row.warnings),
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
    """What decides whether a row changed. The measures catalogue the entry was checked by is
    left out: a new catalogue version alone republishes nothing (the entry keeps naming the
    version it was published under)."""
    if entry.HasField("measures_catalogue"):
        bare = feeds.ListEntry()
        bare.CopyFrom(entry)
        bare.ClearField("measures_catalogue")
        entry = bare
    return hashlib.sha256(entry.SerializeToString(deterministic=True)).hexdigest()


def _key_hash(list_name: str, code: str, doc_no: str) -> str:
    return hashlib.sha256("\x1f".join((list_name, code, doc_no)).encode()).hexdigest()


@dataclass(frozen=True)
class Removal:
    """A stated removal: why (a REMOVAL_REASONS name), from when (a Shanghai date), and the
    deciding document's number."""

    reason: str
    date: dt.date
    doc_no: str


class ImportRefused(InputError):
    """An import or removal refused before anything was appended (exit 2)."""


@dataclass(frozen=True)
class Change:
    """One line of an import's plan. *key* never holds a raw resident ID: an organisation is
    shown by its USCC (public), a person by the masked form or the entry id."""

    action: str  # add | update | remove
    key: str
    why: str

    def __str__(self) -> str:
        return f"{self.action.upper():<6} {self.key}  {self.why}"


@dataclass
class ImportSummary:
    file: str
    list_name: str
    list_code: str = ""
    encoding: str = ""
    read: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    expired: int = 0
    withheld: int = 0  # minor entries of a list whose rule does not share them
    quarantined: list[Quarantined] = field(default_factory=list)
    size: int = 0
    stated_removals: int = 0  # removals other than expiry: what --confirm-removals confirms
    changes: list[Change] = field(default_factory=list)  # a dry run's plan
    refused: str = ""  # a dry run: why the import would be refused ("" if it would not)
    measures: str = ""  # the measures catalogue the rows were checked by ("national v1 + …")
    measures_sha256: str = ""  # its documents' digest
    # Subject USCCs checked / failed / passed only leniently (adapters.list_csv.UsccTally).
    uscc_checked: int = 0
    uscc_invalid: int = 0
    uscc_lenient: int = 0

    def count_usccs(self, csv: ListCsv | None) -> None:
        """Take the USCC counters of *csv*'s newest pass over the file."""
        if csv is not None:
            t = csv.uscc
            self.uscc_checked, self.uscc_invalid, self.uscc_lenient = (
                t.checked, t.invalid, t.lenient,
            )  # fmt: skip


@dataclass(frozen=True)
class _Known:
    entry_id: str
    content: str
    active: bool


@dataclass(frozen=True)
class Held:
    """An active entry this node published, as a removal needs it."""

    entry_id: str
    key: str  # natural key hash
    content: str
    entry: feeds.ListEntry

    @property
    def display(self) -> str:
        return _entry_display(self.entry, self.entry_id)


@dataclass(frozen=True)
class _Out:
    held: Held
    removal: Removal


ProgressFn = Callable[[int, int], None]


def _entry_display(entry: feeds.ListEntry, entry_id: str) -> str:
    if entry.uscc:
        return f"{entry.uscc} {entry.decision_doc_no}"
    return f"person entry {entry_id} {entry.decision_doc_no}"


def _row_display(row: ListRow, masked: str) -> str:
    if row.uscc:
        return f"{row.uscc} {row.decision_doc_no}"
    return f"person {masked or f'(row {row.row})'} {row.decision_doc_no}"


def _masked(spec: ListSpec, person_id: str) -> str:
    """The masked ID the list's rule publishes ("" if it publishes none or the ID does not fit
    the pattern: fail closed)."""
    if spec.id_mask == "none" or not person_id:
        return ""
    try:
        return PATTERNS[spec.id_mask](person_id)
    except ValueError:
        return ""


def check_row(row: ListRow, spec: ListSpec) -> Quarantined | None:
    """The catalogue's checks of one parsed row: its list, kind, decision date and disclosure
    window (reasons name the rule, never a value of the row)."""
    if row.list_name != spec.name:
        return Quarantined(
            row.row, "名单名称", f"名单名称: row is for another list, importing {spec.name}"
        )
    if row.list_type != spec.kind:
        return Quarantined(
            row.row,
            "名单类型",
            f"名单类型: {spec.name} is a {KIND_LABELS[spec.kind]} in the list catalogue",
        )
    if row.decision_date is None and spec.requires_decision_date:
        return Quarantined(
            row.row,
            "认定日期",
            f"认定日期: must not be empty: {spec.name}'s periods run from the decision "
            f"({spec.citation})",
        )
    problem = spec.window_problem(row.severity, _decided(row), row.disclosure_end)
    if problem:
        return Quarantined(row.row, problem.split(":", 1)[0], problem)
    return None


def check_measures(
    row: ListRow, spec: ListSpec, measures: MeasureCatalogue, provenance: int
) -> Quarantined | None:
    """The measures catalogue's checks of one row's 惩戒措施: every code known and applicable to
    the list, and no 强制 on an entry given for reference."""
    problem = measures.problem(
        ((m.code, m.marked and m.mandatory) for m in row.measures),
        list_code=spec.code,
        list_kind=spec.kind,
        reference=provenance == feeds.PROVENANCE_REFERENCE,
    )
    return Quarantined(row.row, "惩戒措施", problem) if problem else None


def _decided(row: ListRow) -> dt.date:
    return row.decision_date or row.listing_date


def max_removals_default(active: int) -> int:
    """5% of the list's active entries or 10, whichever is larger."""
    return max(10, active * 5 // 100)


def full_export_problems(path: object, summary: ImportSummary) -> list[str]:
    """Why a full export (one that removes what it does not hold) must not go ahead: it has
    no rows, or rows were quarantined. A wrong file must not empty a list."""
    problems: list[str] = []
    if summary.read == 0:
        problems.append(
            f"{path}: has a header and no rows; a full export without rows would remove every entry"
        )
    if summary.quarantined:
        q = summary.quarantined[0]
        problems.append(
            f"{path}: {len(summary.quarantined)} of {summary.read} rows quarantined (first: "
            f"row {q.row}: {q.reason}); a full export must be clean before it may remove "
            "anything"
        )
    return problems


def mass_removal_problems(
    removing: int,
    active: int,
    *,
    what: str,
    of: str | None,
    confirm_removals: int | None,
    max_removals: int | None,
) -> list[str]:
    """Why an import that would remove *removing* of *active* *what* (entries, records) of
    *of* must not go ahead unconfirmed: a confirmation for another number, or more than the
    limit without one. A wrong file must not empty a list."""
    if not removing:
        return []
    if confirm_removals is not None:
        if confirm_removals == removing:
            return []
        return [
            f"the import would remove {removing} {what}, not the {confirm_removals} "
            "confirmed (--confirm-removals)"
        ]
    limit = max_removals if max_removals is not None else max_removals_default(active)
    if removing <= limit:
        return []
    return [
        f"the import would remove {removing} of {active} active {what}"
        f"{'' if of is None else f' of {of}'}, more than "
        f"--max-removals {limit}; check with --dry-run, then confirm with "
        f"--confirm-removals {removing}"
    ]


class _Import:
    """One import of one file into one list: scanning, planning, appending."""

    def __init__(
        self,
        publisher: Publisher,
        spec: ListSpec,
        csv: ListCsv | None,
        known: dict[str, _Known],
        summary: ImportSummary,
        *,
        today: dt.date,
        pseudonym_key: PseudonymKey | None,
        provenance: int,
        progress: ProgressFn | None,
        measures: MeasureCatalogue,
        objected: frozenset[str] = frozenset(),
    ) -> None:
        self.publisher = publisher
        self.measures = measures
        self.objected = objected  # entry ids with an objection open: their mark stays
        self.spec = spec
        self.csv = csv
        self.known = known
        self.summary = summary
        self.today = today
        self.pseudonym_key = pseudonym_key
        self.provenance = provenance
        self.progress = progress
        self.seen: set[str] = set()
        self.expired: set[str] = set()
        self.events: list[Event] = []
        self.own_rows: list[tuple[str, str, str, str, bool]] = []

    def entry(self, row: ListRow) -> feeds.ListEntry:
        entry = row_to_entry(row, self.provenance, self.pseudonym_key)
        entry.list_code = self.spec.code
        entry.list_type = self.spec.list_type  # type: ignore[assignment]
        entry.decision_date = _decided(row).isoformat()
        if entry.person_id:
            entry.person_id_masked = _masked(self.spec, entry.person_id)
        # An unmarked measure takes the catalogue's default; a reference entry none mandatory.
        reference = self.provenance == feeds.PROVENANCE_REFERENCE
        for out, m in zip(entry.measures, row.measures, strict=True):
            marked = m.mandatory if m.marked else None
            out.mandatory = self.measures.mandatory(m.code, marked, reference=reference)
        # Published with the entry (committed in its leaf): subscribers see what it was
        # checked by.
        entry.measures_catalogue.label = self.measures.label
        entry.measures_catalogue.sha256 = self.measures.sha256
        return entry

    def _walk(self) -> Iterator[tuple[ListRow | Quarantined, str, str]]:
        """(row, verdict, natural key) for every row: quarantined, expired, withheld or live."""
        assert self.csv is not None
        for n, item in enumerate(self.csv.rows(), 1):
            if self.progress is not None and n % 1000 == 0:
                self.progress(self.csv.bytes_read(), self.csv.size_bytes())
            if isinstance(item, Quarantined):
                yield item, "quarantined", ""
                continue
            refused = check_row(item, self.spec) or check_measures(
                item, self.spec, self.measures, self.provenance
            )
            if refused is not None:
                yield refused, "quarantined", ""
                continue
            key = natural_key_hash(item)
            if item.disclosure_end is not None and item.disclosure_end < self.today:
                # Past its disclosure period: publication and sharing stop (NDRC Order 2025
                # No. 36). If it was shared, it is removed with reason expiry.
                yield item, "expired", key
            elif not self.spec.shared(item.severity):
                yield item, "withheld", key
            else:
                yield item, "live", key
        if self.progress is not None:
            self.progress(self.csv.size_bytes(), self.csv.size_bytes())

    def _tally(self, item: ListRow | Quarantined, verdict: str, key: str) -> bool:
        """Count one row's verdict (both passes count alike); True for a live row."""
        s = self.summary
        s.read += 1
        if verdict == "quarantined":
            assert isinstance(item, Quarantined)
            s.quarantined.append(item)
        elif verdict == "expired":
            s.expired += 1
            self.expired.add(key)
        elif verdict == "withheld":
            s.withheld += 1
        else:
            self.seen.add(key)
            return True
        return False

    def scan_keys(self) -> None:
        """The cheap first pass of a full export: keys and verdicts, no entries built."""
        for item, verdict, key in self._walk():
            self._tally(item, verdict, key)

    async def scan(self, *, append: bool) -> None:
        """Diff every row against what was published: append (or, in a dry run, plan)."""
        s = self.summary
        for item, verdict, key in self._walk():
            if not self._tally(item, verdict, key):
                continue
            assert isinstance(item, ListRow)
            entry = self.entry(item)
            content = content_hash(entry)
            prior = self.known.get(key)
            if prior is not None and prior.active and prior.content == content:
                s.unchanged += 1
                continue
            if prior is not None and prior.active:
                action, entry_id, why = "update", prior.entry_id, "changed"
                s.updated += 1
            else:
                # A re-listing is a new listing.
                action, entry_id = "add", ids.entry_id()
                why = "listed again" if prior is not None else "new"
                s.added += 1
            if not append:
                display = _row_display(item, entry.person_id_masked)
                s.changes.append(Change(action, display, f"{why} (row {item.row})"))
                continue
            kind = feeds.EVENT_TYPE_UPDATE if action == "update" else feeds.EVENT_TYPE_ADD
            # After the content hash: the mark is the objection's, not the file's, so the
            # same file again stays unchanged.
            keep_mark(entry, entry_id, self.objected)
            self.events.append(Event(entry_id, kind, entry))
            self.own_rows.append((self.spec.name, key, entry_id, content, True))
            if len(self.events) >= CHUNK:
                await self.flush()

    async def flush(self) -> None:
        if not self.events:
            return
        batch = list(self.own_rows)

        async def write_own(c: AsyncConnection) -> None:
            await dialect.bulk_insert(
                c, OWN, _OWN_COLUMNS, batch, conflict_keys=_OWN_COLUMNS[:2],
                update=_OWN_COLUMNS[2:],
            )  # fmt: skip

        self.summary.size = await self.publisher.append(self.events, extra=write_own)
        self.events.clear()
        self.own_rows.clear()

    async def plan_removals(
        self,
        explicit: dict[str, tuple[str, Removal]],
        absent: Removal | None,
        *,
        full_export: bool,
    ) -> tuple[list[_Out], list[_Out], list[str]]:
        """(expiry removals, stated removals, problems) given what the scan saw."""
        active = {k: v for k, v in self.known.items() if v.active}
        lapsed = await _lapsed_ids(self.publisher, self.spec.name, self.today)
        expiring = {
            k
            for k, v in active.items()
            if k not in self.seen
            and k not in explicit
            and (k in self.expired or v.entry_id in lapsed)
        }
        problems: list[str] = []
        stated: dict[str, Removal] = {}
        for key, (where, removal) in explicit.items():
            if key not in active:
                problems.append(f"{where}: no active entry of {self.spec.name} has this key")
            elif key in self.seen:
                problems.append(f"{where}: the entry is also in the imported file")
            else:
                stated[key] = removal
        absentees = [
            k for k in active if full_export and k not in self.seen and k not in expiring
            and k not in stated
        ]  # fmt: skip
        if absentees and absent is None:
            problems.append(
                f"{len(absentees)} entries of {self.spec.name} are missing from the full export "
                "and no removal is stated: give --removal-reason, --removal-date and "
                "--removal-doc, or list them in --removals"
            )
        # Without a stated removal they are still planned (a dry run lists them), never made.
        stated.update(dict.fromkeys(absentees, absent or Removal("", self.today, "")))
        held = await _held(self.publisher, {k: active[k] for k in (*expiring, *stated)})
        expiry_outs = [_Out(held[k], _expiry(held[k].entry, self.today)) for k in expiring]
        stated_outs = [_Out(held[k], r) for k, r in stated.items()]
        problems += removal_problems(self.spec, stated_outs)
        return expiry_outs, stated_outs, problems

    async def remove(self, outs: Iterable[_Out]) -> None:
        for out in outs:
            h, r = out.held, out.removal
            self.events.append(
                Event(
                    h.entry_id, feeds.EVENT_TYPE_REMOVE, h.entry, REMOVAL_REASONS[r.reason],
                    removal_date=r.date.isoformat(), removal_doc_no=r.doc_no,
                )
            )  # fmt: skip
            self.own_rows.append((self.spec.name, h.key, h.entry_id, h.content, False))
            self.summary.removed += 1
            if len(self.events) >= CHUNK:
                await self.flush()


def keep_mark(entry: feeds.ListEntry, entry_id: str, objected: frozenset[str]) -> None:
    """Set the under-objection mark on an UPDATE of an entry with an objection open: a changed
    row must not clear it (only the objection's resolution does)."""
    if entry_id in objected:
        entry.under_objection = True


def _expiry(entry: feeds.ListEntry, today: dt.date) -> Removal:
    """An expiry takes effect the day after the disclosure end (today, if that is unknown)."""
    try:
        day = dt.date.fromisoformat(entry.disclosure_end) + dt.timedelta(days=1)
    except ValueError:
        day = today
    return Removal("expiry", min(day, today), "")


def removal_problems(spec: ListSpec, outs: Iterable[_Out]) -> list[str]:
    """What the list's rule forbids in these removals: a repair before the list's minimum
    period, a removal dated before the decision, an expiry before the disclosure end."""
    problems: list[str] = []
    for out in outs:
        entry, r = out.held.entry, out.removal
        if not r.reason:
            continue  # unstated: refused as such
        decided = _entry_decided(entry)
        where = out.held.display
        if decided is not None and r.date < decided:
            problems.append(f"{where}: removal date precedes the decision date")
        elif r.reason == "repair" and decided is not None:
            severity = SEVERITY_NAMES.get(int(entry.severity), "")
            earliest = spec.repair_from(severity, decided)
            if r.date < earliest:
                problems.append(
                    f"{where}: repair is possible from {earliest.isoformat()}, "
                    f"{spec.repair_months(severity)} months after the decision "
                    f"({spec.name}: {spec.citation})"
                )
        elif r.reason == "expiry" and not (
            entry.disclosure_end and entry.disclosure_end < r.date.isoformat()
        ):
            problems.append(f"{where}: expiry before its 公示截止日期 has passed")
    return problems


def _entry_decided(entry: feeds.ListEntry) -> dt.date | None:
    for text in (entry.decision_date, entry.listing_date):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            continue
    return None


def _refusal(problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}: nothing imported"


async def import_list(
    publisher: Publisher,
    path: Path | None,
    spec: ListSpec,
    *,
    pseudonym_key: PseudonymKey | None,
    provenance: int = feeds.PROVENANCE_AUTHORITATIVE,
    full_export: bool = False,
    removal: Removal | None = None,
    removals: Path | None = None,
    max_removals: int | None = None,
    confirm_removals: int | None = None,
    dry_run: bool = False,
    today: dt.date | None = None,
    progress: ProgressFn | None = None,
    measures: MeasureCatalogue | None = None,
) -> ImportSummary:
    """Import *path* (a list CSV; None: removals only) into *spec*'s list; sign a checkpoint.

    Without *full_export* the file only adds and updates. *removal* states the reason, date and
    document of entries missing from a full export; *removals* is a CSV naming entries to
    remove (see :func:`read_removals`). Raises ImportRefused, with nothing appended, for the
    cases in the module docstring; with *dry_run* the refusal is in ``summary.refused`` and
    the plan in ``summary.changes``.

    *pseudonym_key* is this origin's key in force: each person's pseudonym is part of the
    entry (None only in tests that import no person). *measures* is the measures catalogue
    rows are checked by (None: the packaged national one; every row is checked).
    """
    # One import of a list at a time on this database: each plans from what the other
    # published (the same file twice adds its rows once), instead of both adding them.
    async with list_lock(publisher.store, spec.name):
        measures = measures or packaged()
        if full_export and path is None:
            raise InputError("a full export needs the exported file")
        today = today or shanghai_today()
        csv = ListCsv.open(path) if path is not None else None
        summary = ImportSummary(
            file=str(path or removals or ""),
            list_name=spec.name,
            list_code=spec.code,
            encoding=csv.encoding if csv else "",
            measures=measures.label,
            measures_sha256=measures.sha256,
        )
        explicit: dict[str, tuple[str, Removal]] = {}
        problems: list[str] = []
        if removals is not None:
            explicit, problems = read_removals(removals, spec, removal, today=today)
        known = await _known_entries(publisher, spec.name)
        if not dry_run:
            # Kept before any entry citing it is published: partners fetch it by its digest.
            async with publisher.store.begin() as conn:
                await keep_measures_catalogue(conn, measures)
        run = _Import(
            publisher, spec, csv, known, summary, today=today, pseudonym_key=pseudonym_key,
            provenance=provenance, progress=progress, measures=measures,
            objected=await objected_entries(publisher),
        )  # fmt: skip
        two_pass = csv is not None and not dry_run and (full_export or bool(explicit))
        digest = ""
        if csv is not None and dry_run:
            await run.scan(append=False)
        elif two_pass:
            assert path is not None
            digest = _digest(path)
            run.scan_keys()
        if full_export:
            problems += full_export_problems(path, summary)
        # A plain import (no full export, no removals file) has nothing to refuse after reading
        # its rows: it plans its expiries after its single pass.
        expiry: list[_Out] = []
        stated: list[_Out] = []
        if csv is None or dry_run or two_pass:
            expiry, stated, found = await run.plan_removals(
                explicit, removal, full_export=full_export
            )
            problems += found
        summary.stated_removals = len(stated)
        active = sum(1 for v in known.values() if v.active)
        if not problems:
            problems += mass_removal_problems(
                len(stated), active, what="entries", of=spec.name,
                confirm_removals=confirm_removals, max_removals=max_removals,
            )  # fmt: skip
        summary.count_usccs(csv)
        if dry_run:
            for out in (*expiry, *stated):
                r = out.removal
                why = (
                    "expiry"
                    if r.reason == "expiry"
                    else f"{r.reason} {r.date} {r.doc_no}"
                    if r.reason
                    else "missing from the full export; no removal stated"
                )
                summary.changes.append(Change("remove", out.held.display, why))
            summary.removed = len(expiry) + len(stated)
            summary.refused = _refusal(problems) if problems else ""
            summary.size = publisher.log.frontier.size
            return summary
        if problems:
            raise ImportRefused(_refusal(problems))
        if csv is not None:
            if two_pass:
                assert path is not None
                if _digest(path) != digest:
                    raise ImportRefused(
                        f"{path}: changed while it was being imported: nothing imported"
                    )
                summary.read, summary.expired, summary.withheld = 0, 0, 0
                summary.quarantined = []
                run.seen.clear()
                await run.scan(append=True)
            else:
                await run.scan(append=True)
                expiry, _, _ = await run.plan_removals({}, None, full_export=False)
        summary.count_usccs(csv)
        await run.remove(expiry)
        await run.remove(stated)
        await run.flush()
        await _record(publisher, summary)
        # Signed here, not left to a running `serve`: a `sync` right after the import sees it.
        await publisher.sign_checkpoint()
        summary.size = publisher.log.frontier.size
        return summary


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_removals(
    path: Path, spec: ListSpec, default: Removal | None, *, today: dt.date
) -> tuple[dict[str, tuple[str, Removal]], list[str]]:
    """The entries a removals file names, by natural key, with where each was named.

    Columns (any order; UTF-8 or GB18030): 统一社会信用代码 and/or 证件号码 (one per row),
    认定文书号, optional 名单名称 (if given, the list's), and optional 移出原因 (repair,
    correction, revocation, fulfilled, expiry, or 信用修复, 更正, 撤销, 履行完毕, 公示期满),
    移出日期 and 移出文书号; an empty or missing cell takes *default*'s value. Problems name
    the file, line and column, never a cell's value.
    """
    try:
        encoding = sniff_encoding(path)
        with Path(path).open(encoding=encoding, newline="") as f:
            records = list(csvlib.reader(f))
    except (OSError, UnicodeDecodeError, csvlib.Error) as exc:
        raise InputError(f"{path}: cannot read removals ({exc})") from None
    records = [r for r in records if any(c.strip() for c in r)]
    if not records:
        raise InputError(f"{path}: is empty")
    header = [c.strip().lstrip("\ufeff") for c in records[0]]
    col = {name: i for i, name in reversed(list(enumerate(header)))}
    if "认定文书号" not in col or not ({"统一社会信用代码", "证件号码"} & col.keys()):
        raise InputError(f"{path}: needs columns 认定文书号 and 统一社会信用代码 or 证件号码")
    found: dict[str, tuple[str, Removal]] = {}
    problems: list[str] = []
    for line, record in enumerate(records[1:], 2):
        where = f"{path}:{line}"

        def cell(name: str, record: list[str] = record) -> str:
            i = col.get(name)
            return record[i].strip() if i is not None and i < len(record) else ""

        codes = [normalise_code(cell(c)) for c in ("统一社会信用代码", "证件号码")]
        code = [c for c in codes if c]
        doc = cell("认定文书号")
        named = cell("名单名称")
        reason_text = cell("移出原因")
        reason = reason_text if reason_text in REMOVAL_REASONS else _REASON_LABELS.get(reason_text)
        date = parse_date(cell("移出日期"))
        doc_no = cell("移出文书号") or (default.doc_no if default else "")
        bad: list[str] = []
        if len(code) != 1:
            bad.append("统一社会信用代码/证件号码: give exactly one")
        if not doc:
            bad.append("认定文书号: must not be empty")
        if named and named != spec.name:
            bad.append(f"名单名称: is not {spec.name}")
        if not reason_text and default is not None:
            reason = default.reason
        if reason is None:
            bad.append(
                "移出原因: must be one of " + ", ".join(REMOVAL_REASONS)
                if reason_text
                else "移出原因: must be stated (or give --removal-reason)"
            )
        if date is None and default is not None:
            date = default.date
        if date is None:
            bad.append("移出日期: must be stated (or give --removal-date)")
        elif isinstance(date, str):
            bad.append(f"移出日期: {date}")
        elif date > today:
            bad.append("移出日期: is in the future")
        if not doc_no and reason != "expiry":
            bad.append("移出文书号: must be stated (or give --removal-doc)")
        if bad or reason is None or not isinstance(date, dt.date):
            problems.append(f"{where}: " + "; ".join(bad))
            continue
        key = _key_hash(spec.name, code[0], doc)
        if key in found:
            problems.append(f"{where}: names the same entry as {found[key][0]}")
            continue
        found[key] = (where, Removal(reason, date, doc_no))
    return found, problems


async def objected_entries(publisher: Publisher) -> frozenset[str]:
    """This node's entries with an objection open (node.objections.store)."""
    async with publisher.store.engine.connect() as conn:
        return await objections_store.objected_entries(conn, publisher.origin)


async def _known_entries(publisher: Publisher, list_name: str) -> dict[str, _Known]:
    async with publisher.store.engine.connect() as conn:
        rows = await conn.execute(select(OWN).where(OWN.c.list_name == list_name))
        return {r.natural_key: _Known(r.entry_id, r.content_hash, r.active) for r in rows}


async def _lapsed_ids(publisher: Publisher, list_name: str, today: dt.date) -> set[str]:
    """Entry ids of this list, in this node's own log, still active past their end."""
    async with publisher.store.engine.connect() as conn:
        rows = await conn.execute(
            select(STATE.c.entry_id).where(
                and_(
                    STATE.c.log_id == publisher.log.log_id,
                    STATE.c.list_name == list_name,
                    STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                    STATE.c.disclosure_end != "",
                    STATE.c.disclosure_end < today.isoformat(),
                )
            )
        )
        return {r[0] for r in rows}


async def _held(publisher: Publisher, wanted: dict[str, _Known]) -> dict[str, Held]:
    return {
        key: Held(wanted[key].entry_id, key, wanted[key].content, entry)
        for key, entry in await _public_entries(publisher, wanted)
    }


async def find_held(
    publisher: Publisher, spec: ListSpec, *, uscc: str = "", entry_id: str = ""
) -> list[Held]:
    """This node's active entries of *spec* for a USCC or with an entry id."""
    cond = STATE.c.uscc == uscc if uscc else STATE.c.entry_id == entry_id
    async with publisher.store.engine.connect() as conn:
        ids = [
            r[0]
            for r in await conn.execute(
                select(STATE.c.entry_id).where(
                    and_(
                        STATE.c.log_id == publisher.log.log_id,
                        STATE.c.list_name == spec.name,
                        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                        cond,
                    )
                )
            )
        ]
        known: dict[str, _Known] = {}
        if ids:
            rows = await conn.execute(select(OWN).where(OWN.c.entry_id.in_(ids)))
            known = {r.natural_key: _Known(r.entry_id, r.content_hash, r.active) for r in rows}
    held = await _held(publisher, {k: v for k, v in known.items() if v.active})
    return sorted(held.values(), key=lambda h: (h.entry.listing_date, h.entry_id))


async def remove_entries(
    publisher: Publisher,
    spec: ListSpec,
    held: list[Held],
    removal: Removal,
    *,
    today: dt.date | None = None,
) -> int:
    """Append one REMOVE per entry in *held*, with *removal*'s reason, date and document, and
    sign a checkpoint; ImportRefused (nothing appended) if the list's rule forbids it. The
    caller holds the list's lock (:func:`node.storage.locks.list_lock`) from reading *held*."""
    today = today or shanghai_today()
    outs = [_Out(h, removal) for h in held]
    problems = removal_problems(spec, outs)
    if removal.date > today:
        problems.insert(0, "the removal date is in the future")
    if problems:
        raise ImportRefused(_refusal(problems).replace("nothing imported", "nothing removed"))
    summary = ImportSummary(file="", list_name=spec.name, list_code=spec.code)
    run = _Import(
        publisher, spec, None, {}, summary, today=today, pseudonym_key=None,
        provenance=feeds.PROVENANCE_AUTHORITATIVE, progress=None, measures=packaged(),
    )  # fmt: skip
    await run.remove(outs)
    await run.flush()
    await publisher.sign_checkpoint()
    return summary.removed


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
                uscc_checked=s.uscc_checked,
                uscc_invalid=s.uscc_invalid,
                uscc_lenient=s.uscc_lenient,
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
