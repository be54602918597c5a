"""What ``apply_leaves`` derives for each list_state row besides the row (issue 17): the
normalised subject name and the suspect-code flag that conflicts are found by, and the
active-entry counters that `status` reads.

Counters. "Active" (``state.active``) depends on today's date: a row stops being active at
the midnight its ``disclosure_end`` passes, with no write to mark it. So the counters are kept
per ``(log, list, disclosure_end)`` bucket, counting the rows that are listed and hold a body
(the date-independent part of ``active``); the active count on a day is the sum of the buckets
whose end is empty or not before that day. A bucket is a day, not an entry, so a read sums a
few hundred rows at most however large the feed is, and stays exact on every date without any
job at midnight. (Counting per status and subtracting an indexed count of expired rows would
scan the expired rows, which grow with the feed.) Buckets whose day has passed are never read
again; they are kept, so a recount from list_state always equals the table.

Every write of list_state keeps the counters in its own transaction: ``apply_leaves`` (each
entry's prior bucket −1, its new bucket +1) and the purge of peers' expired bodies. Whoever
deletes list_state rows must adjust ``list_counts`` in the same transaction.

Conflict candidates. After writing rows, ``apply_leaves`` asks the indexes, for the written
USCCs only, whether a USCC now has two stored name variants or an organisation code two USCCs
(or a crosswalk mapping), and records those keys in ``conflict_candidates``; loading the
crosswalk does the same for its codes. Candidates are only added, never judged here: they are
a superset of the conflicts on any day, and ``find_conflicts`` reads the candidates' active
rows alone instead of every row.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.identity.names import normalise_name
from node.identity.validate import classify
from node.storage.models import ConflictCandidate, CrosswalkRecord, ListCount, ListStateRecord

STATE = ListStateRecord.__table__  # type: ignore[attr-defined]
COUNTS = ListCount.__table__  # type: ignore[attr-defined]
CANDIDATES = ConflictCandidate.__table__  # type: ignore[attr-defined]
CROSSWALK = CrosswalkRecord.__table__  # type: ignore[attr-defined]
# Literal 9s, not bound parameters: the planner uses an expression index only for the very
# expression it indexes (ix_list_state_org).
ORG = func.substr(STATE.c.uscc, literal_column("9"), literal_column("9"))

ACTIVE_STATUS = feeds.ENTRY_STATUS_ACTIVE
NAME_NORM_MAX = 600
"""Stored normalised names are cut here: it keeps an index entry within PostgreSQL's limit
(600 CJK characters are 1,800 bytes) whatever NFKC expands a 300-character name to."""

CountKey = tuple[str, str]  # (list_name, disclosure_end)
_CHUNK = 500


def name_norm_of(name: str) -> str | None:
    """The stored form of *name* for finding name conflicts; None for no name (which is no
    variant at all, unlike a name that normalises to the empty string)."""
    return normalise_name(name)[:NAME_NORM_MAX] if name else None


def suspect_code(uscc: str) -> bool:
    """A USCC that fails validation, lenient warnings included (a 重错码 candidate)."""
    if not uscc:
        return False
    check = classify(uscc)
    return check.status != "valid" or check.kind != "uscc"


def count_key(status: int, has_body: bool, list_name: str, disclosure_end: str) -> CountKey | None:
    """The bucket a row counts in, or None if it is not active on any day."""
    if status != ACTIVE_STATUS or not has_body:
        return None
    return list_name, disclosure_end


def row_key(row: Sequence[Any], columns: Sequence[str]) -> tuple[str, CountKey | None]:
    """(entry id, bucket) of a list_state row given as values in *columns* order."""
    at = columns.index
    return row[at("entry_id")], count_key(
        row[at("status")], bool(row[at("entry")]), row[at("list_name")], row[at("disclosure_end")]
    )


async def prior_keys(
    conn: AsyncConnection, log_id: int, entry_ids: Sequence[str]
) -> dict[str, CountKey | None]:
    """The buckets the stored rows of *entry_ids* count in now (absent: no row yet)."""
    out: dict[str, CountKey | None] = {}
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite and entry_ids:  # one prepared statement, whatever the batch's size
        rows = await conn.exec_driver_sql(
            "SELECT entry_id, status, length(entry), list_name, disclosure_end FROM list_state"
            " WHERE log_id = $1 AND entry_id = ANY($2::text[])",
            (log_id, list(entry_ids)),
        )
        for r in rows:
            v: Sequence[Any] = tuple(r)
            out[v[0]] = count_key(v[1], bool(v[2]), v[3], v[4])
        return out
    for i in range(0, len(entry_ids), _CHUNK):
        chunk = list(entry_ids[i : i + _CHUNK])
        # On the driver: SQLAlchemy's expanding IN and row processing cost more than the
        # primary-key searches, on the path every applied leaf takes.
        marks = ", ".join("?" if sqlite else f"${j + 2}" for j in range(len(chunk)))
        rows = await conn.exec_driver_sql(
            "SELECT entry_id, status, length(entry), list_name, disclosure_end FROM list_state"  # noqa: S608 - placeholders only
            f" WHERE log_id = {'?' if sqlite else '$1'} AND entry_id IN ({marks})",
            (log_id, *chunk),
        )
        for r in rows:  # entry_id, status, length(entry), list_name, disclosure_end
            w: Sequence[Any] = tuple(r)
            out[w[0]] = count_key(w[1], bool(w[2]), w[3], w[4])
    return out


def row_keys(
    rows: Iterable[Sequence[Any]], columns: Sequence[str]
) -> list[tuple[str, CountKey | None]]:
    """:func:`row_key` of each of *rows* (the columns looked up once, not per row)."""
    e, s, b, n, d = (
        columns.index(c) for c in ("entry_id", "status", "entry", "list_name", "disclosure_end")
    )
    return [(r[e], count_key(r[s], bool(r[b]), r[n], r[d])) for r in rows]


def deltas(
    prior: dict[str, CountKey | None], new: Iterable[tuple[str, CountKey | None]]
) -> Counter[CountKey]:
    """Counter changes for rows moving from their *prior* bucket to their *new* one."""
    out: Counter[CountKey] = Counter()
    for entry_id, key in new:
        old = prior.get(entry_id)
        if old == key:
            continue
        if old is not None:
            out[old] -= 1
        if key is not None:
            out[key] += 1
    return out


async def add_counts(conn: AsyncConnection, log_id: int, changes: Counter[CountKey]) -> None:
    """Apply *changes* to the log's counters, inside *conn*'s transaction."""
    rows = [(log_id, name, end, n) for (name, end), n in sorted(changes.items()) if n]
    if not rows:
        return
    # Straight to the driver: a batch moves up to one bucket per entry, and SQLAlchemy's
    # per-row parameter handling would cost more than the upserts. On PostgreSQL one
    # statement over arrays (the keys are distinct, as one ON CONFLICT statement requires).
    if conn.dialect.name != "sqlite":
        await conn.exec_driver_sql(
            "INSERT INTO list_counts (log_id, list_name, disclosure_end, n)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])"
            " ON CONFLICT (log_id, list_name, disclosure_end)"
            " DO UPDATE SET n = list_counts.n + excluded.n",
            (log_id, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]),
        )
        return
    marks = "?, ?, ?, ?"
    await conn.exec_driver_sql(
        f"INSERT INTO list_counts (log_id, list_name, disclosure_end, n) VALUES ({marks})"  # noqa: S608 - placeholders only
        " ON CONFLICT (log_id, list_name, disclosure_end)"
        " DO UPDATE SET n = list_counts.n + excluded.n",
        rows,
    )


def _live(today: dt.date) -> ColumnElement[bool]:
    return or_(COUNTS.c.disclosure_end == "", COUNTS.c.disclosure_end >= today.isoformat())


def active_per_log(today: dt.date) -> Select[int, int]:
    """SELECT log_id, n: the active entries of each log on *today*, from the counters."""
    return (
        select(COUNTS.c.log_id, func.sum(COUNTS.c.n).label("n"))
        .where(_live(today))
        .group_by(COUNTS.c.log_id)
    )


async def recount(conn: AsyncConnection) -> dict[tuple[int, str, str], int]:
    """The counters recomputed from list_state (a scan: for checks and tests, not for reads)."""
    rows = await conn.execute(
        select(STATE.c.log_id, STATE.c.list_name, STATE.c.disclosure_end, func.count())
        .where(and_(STATE.c.status == ACTIVE_STATUS, func.length(STATE.c.entry) > 0))
        .group_by(STATE.c.log_id, STATE.c.list_name, STATE.c.disclosure_end)
    )
    return {(int(a), b, c): int(n) for a, b, c, n in rows}


async def stored(conn: AsyncConnection) -> dict[tuple[int, str, str], int]:
    """The counters as stored, zero buckets left out."""
    rows = await conn.execute(
        select(COUNTS.c.log_id, COUNTS.c.list_name, COUNTS.c.disclosure_end, COUNTS.c.n).where(
            COUNTS.c.n != literal_column("0")
        )
    )
    return {(int(a), b, c): int(n) for a, b, c, n in rows}


def written_codes(
    rows: Sequence[Sequence[Any]], columns: Sequence[str]
) -> tuple[set[str], set[str]]:
    """(USCCs written with a name, all USCCs written) of list_state *rows* in *columns* order."""
    uscc, norm = columns.index("uscc"), columns.index("name_norm")
    named = {r[uscc] for r in rows if r[uscc] and r[norm] is not None}
    return named, {r[uscc] for r in rows if r[uscc]}


async def note_candidates(conn: AsyncConnection, named: set[str], usccs: set[str]) -> None:
    """Record which of the just-written *named* USCCs now have two name variants, and which
    organisation codes of *usccs* now name two USCCs or have a crosswalk mapping. Index
    searches for the written keys only (ix_list_state_name_norm, ix_list_state_org)."""
    found: set[tuple[str, str]] = set()
    for u in await _keyed(
        conn, sorted(named),
        "SELECT uscc FROM list_state WHERE uscc {keys} AND name_norm IS NOT NULL"
        " GROUP BY uscc HAVING min(name_norm) != max(name_norm)",
    ):  # fmt: skip
        found.add(("uscc", u))
    orgs = sorted({u[8:17] for u in usccs})
    for o in await _keyed(
        conn, orgs,
        "SELECT substr(uscc, 9, 9) FROM list_state WHERE substr(uscc, 9, 9) {keys}"
        " GROUP BY substr(uscc, 9, 9) HAVING min(uscc) != max(uscc)",
    ):  # fmt: skip
        found.add(("code", o))
    # Most nodes load no crosswalk: one look, not a search per chunk.
    if orgs and (await conn.execute(select(CROSSWALK.c.legacy).limit(1))).first() is not None:
        for o in await _keyed(
            conn, orgs, "SELECT DISTINCT legacy FROM crosswalk WHERE legacy {keys}"
        ):  # fmt: skip
            found.add(("code", o))
    await add_candidates(conn, found)


async def _keyed(conn: AsyncConnection, keys: Sequence[str], sql: str) -> list[str]:
    """The first column of *sql* run for *keys* (``{keys}`` becomes the membership test), on
    the driver: ``= ANY($1)`` on PostgreSQL (one prepared statement for any number of keys),
    ``IN (?, …)`` in chunks on SQLite. SQLAlchemy's expanding IN costs more than the searches
    on the path every applied leaf takes."""
    out: list[str] = []
    if not keys:
        return out
    if conn.dialect.name != "sqlite":
        rows = await conn.exec_driver_sql(sql.format(keys="= ANY($1::text[])"), (list(keys),))
        return [str(r[0]) for r in rows]
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows = await conn.exec_driver_sql(sql.format(keys=f"IN ({marks})"), tuple(chunk))
        out.extend(str(r[0]) for r in rows)
    return out


async def note_crosswalk_candidates(conn: AsyncConnection, legacies: set[str]) -> None:
    """After loading crosswalk mappings for *legacies*: record those now naming two USCCs in
    the crosswalk, or embedded in a USCC of list_state (which may differ from the mapping)."""
    found: set[tuple[str, str]] = set()
    keys = sorted(legacies)
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        rows = await conn.execute(
            select(CROSSWALK.c.legacy)
            .where(CROSSWALK.c.legacy.in_(chunk))
            .group_by(CROSSWALK.c.legacy)
            .having(func.min(CROSSWALK.c.uscc) != func.max(CROSSWALK.c.uscc))
        )
        found.update(("code", o) for o in rows.scalars())
        rows = await conn.execute(select(ORG).where(ORG.in_(chunk)).distinct())
        found.update(("code", o) for o in rows.scalars())
    await add_candidates(conn, found)


async def add_candidates(conn: AsyncConnection, found: set[tuple[str, str]]) -> None:
    if found:
        await conn.execute(
            text(
                "INSERT INTO conflict_candidates (kind, key) VALUES (:kind, :key)"
                " ON CONFLICT (kind, key) DO NOTHING"
            ),
            [{"kind": k, "key": v} for k, v in sorted(found)],
        )
