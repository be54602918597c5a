"""Name search over held list entries (own and mirrored) through the trigram index of
migration 0021, never a scan of ``list_state``.

The index proposes candidates; :func:`node.identity.names.rank_names` ranks them exactly as it
ranked every stored name before. What the index proposes (the documented difference from
ranking every name):

* a query whose distinctive part (:func:`node.identity.names.search_plan`) has three or more
  characters: names whose normalised form (``list_state.name_norm``) shares with it at least
  one *selective* three-character run, one held by at most :data:`COMMON_TRIGRAM` rows (a
  run found held by more is taken as common, uncounted, for :data:`COMMON_SECONDS`; on
  PostgreSQL a run its statistics put :data:`ESTIMATE_MARGIN` times above or below the bar
  is taken as their estimate says, uncounted, so a run near that estimate's error may be
  judged otherwise than a count would). A run
  every city's list repeats (济南市) would propose half the table and, on its own, never makes
  a look-alike (two names sharing only it score far below the bar); when every run of the
  query is that common, the first :data:`CANDIDATE_LIMIT` names holding all of them (a
  query such as 济南市 alone: which of its many look-alikes come back is the index's order,
  not the best). A look-alike sharing only two-character
  runs (a character inserted into a short name: 华为技术 / 华为X技术) is not found;
* a shorter query (one or two characters, which no trigram index serves): names whose
  normalised form begins with it, through the B-tree on ``name_norm``, at most
  :data:`PREFIX_LIMIT` rows (a name that only contains it further in is not found);
* at most :data:`CANDIDATE_LIMIT` candidates from selective runs, the shortest names first
  (selective runs propose at most a few thousand, so this rarely cuts).

Each step reads at most a bounded number of index entries, whatever the size of the table.
The reads run on the store's plain driver reader (:mod:`node.storage.reader`).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from node.errors import StorageError
from node.feeds.counts import NAME_NORM_MAX
from node.identity.names import (
    DEFAULT_MIN_SCORE,
    NameMatch,
    SearchPlan,
    normalise_name,
    rank_normalised,
    search_plan,
)
from node.storage import Store
from node.storage.reader import Query, Row

__all__ = [
    "CANDIDATE_LIMIT",
    "COMMON_SECONDS",
    "COMMON_TRIGRAM",
    "ESTIMATE_MARGIN",
    "PREFIX_LIMIT",
    "candidates",
    "count_query",
    "index_inserted",
    "index_read",
    "match_query",
    "prefix_query",
    "search_names",
    "selective",
]

COMMON_TRIGRAM = 1000
COMMON_SECONDS = 600.0  # how long a run found common is not counted again
_COMMON_KEPT = 100_000  # runs remembered common, per store, at most
CANDIDATE_LIMIT = 2000
PREFIX_LIMIT = 1000
_MAX_CHAR = "\U0010ffff"  # sorts after every character: prefix..prefix+_MAX_CHAR "begins with"

# How many rows hold a run, counted only up to COMMON_TRIGRAM + 1 (FTS5 and GIN both stop).
_SQLITE_COUNT = (
    "(SELECT count(*) FROM (SELECT 1 FROM list_state_names WHERE list_state_names MATCH ? LIMIT ?))"
)
_PG_COUNTS = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM list_state WHERE cn_trigrams(name_norm) @> "
    "ARRAY[g] LIMIT ?) AS s) FROM unnest(CAST(? AS text[])) WITH ORDINALITY AS t(g, o) "
    "ORDER BY o"
)
_SQLITE_MATCH = (
    "SELECT s.uscc, s.subject_name, s.name_norm FROM list_state_names AS f "
    "JOIN list_state AS s ON s.rowid = f.rowid WHERE list_state_names MATCH ? "
    "AND s.subject_name != '' ORDER BY length(s.name_norm), s.name_norm, s.uscc LIMIT ?"
)
_PG_ANY = (
    "SELECT uscc, subject_name, name_norm FROM list_state WHERE cn_trigrams(name_norm) && "
    "CAST(? AS text[]) AND subject_name != '' "
    "ORDER BY length(name_norm), name_norm, uscc LIMIT ?"
)
# Every run common: no ORDER BY, so the LIMIT stops the index walk (the first rows found).
_SQLITE_ALL = (
    "SELECT s.uscc, s.subject_name, s.name_norm FROM list_state_names AS f "
    "JOIN list_state AS s ON s.rowid = f.rowid WHERE list_state_names MATCH ? "
    "AND s.subject_name != '' LIMIT ?"
)
_PG_ALL = (
    "SELECT uscc, subject_name, name_norm FROM list_state WHERE cn_trigrams(name_norm) @> "
    "CAST(? AS text[]) AND subject_name != '' LIMIT ?"
)
# ANALYZE's most common elements of the trigram index's expression (a sample of 30,000 rows
# at the default statistics target), and the table's rows: each listed run's estimated rows.
_PG_ESTIMATES = (
    "SELECT CAST(CAST(s.most_common_elems AS text) AS text[]), s.most_common_elem_freqs, "
    # The rows now, as the planner reckons them: the last count's density times today's pages.
    "c.reltuples / NULLIF(c.relpages, 0) * (pg_relation_size(c.oid) / "
    "CAST(current_setting('block_size') AS integer)) "
    "FROM pg_stats AS s JOIN pg_class AS c ON c.oid = CAST('list_state' AS regclass) "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'ix_list_state_name_trigrams'"
)
# How far from COMMON_TRIGRAM an estimate must be to decide without a count. The sampling
# error at the bar is about 20% at 1M rows (30 sampled rows); the margin also covers the rows
# changed since the last ANALYZE (autovacuum analyzes again after about a tenth of them).
ESTIMATE_MARGIN = 2.0
# The search's reads are index reads by design, at any size: a LIMIT makes a sequential scan
# look cheap to PostgreSQL's planner, and a generic plan (chosen after a few runs of a
# prepared statement) cannot know how selective the runs are. Its reader's connections are
# set up so (each read then one round trip, not a transaction setting them first).
_PG_INDEX_ONLY = {"enable_seqscan": "off", "plan_cache_mode": "force_custom_plan"}
# The inner LIMIT walks the index in order and stops: bounded however common the prefix.
_PREFIX = (
    "SELECT uscc, subject_name, name_norm FROM (SELECT uscc, subject_name, name_norm "
    "FROM list_state WHERE name_norm >= ? AND name_norm < ? ORDER BY name_norm LIMIT ?) "
    "AS p WHERE subject_name != '' ORDER BY name_norm, subject_name, uscc"
)


# The rows just inserted hold the highest rowids, consecutively: a rowid table gives a new row
# max(rowid) + 1, and the inserting transaction holds the write lock from its first row on.
_SQLITE_INDEX_INSERTED = text(
    "INSERT INTO list_state_names(rowid, name_norm) SELECT rowid, name_norm FROM list_state "
    "WHERE rowid > (SELECT max(rowid) FROM list_state) - :n"
)


async def index_inserted(conn: AsyncConnection, n: int) -> None:
    """Add the *n* rows this transaction has just inserted into ``list_state`` (its last
    statement, and no insert since) to the name index (SQLite's FTS5 table; PostgreSQL's GIN
    index needs nothing). Migration 0024 says why this is not a trigger."""
    if n and conn.dialect.name == "sqlite":
        await conn.execute(_SQLITE_INDEX_INSERTED, {"n": n})


def _fts_phrase(trigram: str) -> str:
    return '"' + trigram.replace('"', '""') + '"'  # an FTS5 string; "" escapes a quote


def count_query(backend: str, trigrams: tuple[str, ...]) -> Query:
    """How many rows hold each of *trigrams*, up to :data:`COMMON_TRIGRAM` + 1 (SQLite: one
    row of counts; PostgreSQL: a row per run, in order)."""
    bar = COMMON_TRIGRAM + 1
    if backend == "sqlite":
        counts = ", ".join([_SQLITE_COUNT] * len(trigrams))
        return f"SELECT {counts}", [p for g in trigrams for p in (_fts_phrase(g), bar)]
    return _PG_COUNTS, [bar, list(trigrams)]


def match_query(backend: str, grams: tuple[str, ...], any_of: bool) -> Query:
    """The names holding any of *grams* (shortest first), or all of them (the first found)."""
    if backend == "sqlite":
        q = (" OR " if any_of else " AND ").join(_fts_phrase(g) for g in grams)
        return (_SQLITE_MATCH if any_of else _SQLITE_ALL), [q, CANDIDATE_LIMIT]
    return (_PG_ANY if any_of else _PG_ALL), [list(grams), CANDIDATE_LIMIT]


def prefix_query(prefix: str) -> Query:
    """The names whose normalised form begins with *prefix*, at most :data:`PREFIX_LIMIT`."""
    return _PREFIX, [prefix, prefix + _MAX_CHAR, PREFIX_LIMIT]


async def index_read(store: Store, query: Query) -> list[Row]:
    """*query*'s rows on a plain driver reader (about a third of a search's time went to
    SQLAlchemy's bridge and rows); on PostgreSQL one kept on the indexes (_PG_INDEX_ONLY)."""
    reader = store.reader_with(_PG_INDEX_ONLY)
    if reader is None:
        raise StorageError("name search needs a database file, not an in-memory database")
    return await reader.fetch(*query)


async def selective(store: Store, trigrams: tuple[str, ...]) -> tuple[str, ...]:
    """The runs of *trigrams* held by at most :data:`COMMON_TRIGRAM` rows."""
    rows = await index_read(store, count_query(store.backend, trigrams))
    found = rows[0] if store.backend == "sqlite" else [r[0] for r in rows]
    return tuple(g for g, n in zip(trigrams, found, strict=True) if n <= COMMON_TRIGRAM)


class _Estimated(NamedTuple):
    """PostgreSQL's statistics of the trigram index: the estimated rows of each run it lists
    as most common, and at most how many a run it does not list holds (None: no statistics,
    every run is counted)."""

    rows: dict[str, float]
    unlisted: float | None


async def _pg_estimates(store: Store) -> _Estimated:
    found = await index_read(store, (_PG_ESTIMATES, ()))
    row = found[0] if found else None
    if row is None or row[0] is None or row[1] is None or not row[0]:
        return _Estimated({}, None)
    rows = max(float(row[2] or 0.0), 0.0)
    grams, freqs = list(row[0]), list(row[1])
    # The frequencies end with the least and greatest of them (and the nulls'): a run not
    # listed was seen in fewer of the sampled rows than the least listed one.
    least = float(freqs[len(grams)]) * rows if len(freqs) > len(grams) else None
    listed = zip(grams, freqs[: len(grams)], strict=True)
    return _Estimated({str(g): float(f) * rows for g, f in listed}, least)


@dataclass
class _Remembered:
    common: dict[str, float] = field(default_factory=dict)  # run -> until when
    estimated: _Estimated | None = None
    estimated_until: float = 0.0


class _CommonRuns:
    """What searches remember per store for :data:`COMMON_SECONDS`: the runs found common
    (counting a common run is most of a search's cost, and its verdict changes only once
    about :data:`COMMON_TRIGRAM` of its rows are gone), and on PostgreSQL the trigram index's
    statistics."""

    def __init__(self) -> None:
        self._by_store: weakref.WeakKeyDictionary[Store, _Remembered] = weakref.WeakKeyDictionary()
        self.clock = time.monotonic

    def unknown(self, store: Store, trigrams: tuple[str, ...]) -> tuple[str, ...]:
        """The runs of *trigrams* not known common now: to be counted."""
        known = self._by_store.get(store, _Remembered()).common
        now = self.clock()
        return tuple(g for g in trigrams if known.get(g, 0.0) <= now)

    def note(self, store: Store, common: Iterable[str]) -> None:
        known = self._by_store.setdefault(store, _Remembered()).common
        if len(known) > _COMMON_KEPT:  # bounded: forget them all, count again
            known.clear()
        until = self.clock() + COMMON_SECONDS
        for g in common:
            known[g] = until

    async def estimates(self, store: Store) -> _Estimated:
        """PostgreSQL's estimates, read again once they are :data:`COMMON_SECONDS` old."""
        held = self._by_store.setdefault(store, _Remembered())
        now = self.clock()
        if held.estimated is None or held.estimated_until <= now:
            held.estimated, held.estimated_until = await _pg_estimates(store), now + COMMON_SECONDS
        return held.estimated


_common_runs = _CommonRuns()


def _far_from_bar(rows: float | None) -> bool | None:
    """An estimate's verdict: True common, False rare, None near the bar (or no estimate)."""
    if rows is None:
        return None
    if rows >= ESTIMATE_MARGIN * COMMON_TRIGRAM:
        return True
    return False if rows * ESTIMATE_MARGIN <= COMMON_TRIGRAM else None


async def _selective_runs(store: Store, trigrams: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`selective`, not counting again a run found common in the last
    :data:`COMMON_SECONDS`; on PostgreSQL, not counting a run its statistics estimate held by
    at least :data:`ESTIMATE_MARGIN` times :data:`COMMON_TRIGRAM` rows (common) or by at most
    that many times fewer (rare): a count there builds the bitmap of every row holding the
    run (GIN has no ordered scan to stop at the bar), 2-10 ms for a common run at 300k rows."""
    unknown = _common_runs.unknown(store, trigrams)
    rare: set[str] = set()
    if unknown and store.backend == "postgresql":
        est = await _common_runs.estimates(store)
        verdicts = {g: _far_from_bar(est.rows.get(g, est.unlisted)) for g in unknown}
        _common_runs.note(store, (g for g, v in verdicts.items() if v is True))
        rare = {g for g, v in verdicts.items() if v is False}
        unknown = tuple(g for g, v in verdicts.items() if v is None)
    if unknown:
        rare |= set(await selective(store, unknown))
    _common_runs.note(store, (g for g in unknown if g not in rare))
    return tuple(g for g in trigrams if g in rare)


async def candidates(store: Store, plan: SearchPlan) -> list[tuple[str, str, str]]:
    """``(uscc, name, normalised name)`` the index proposes for *plan*, each ``(uscc, name)``
    once, shortest name first. The normalised name is the stored one unless that may have been
    cut short (see :data:`node.feeds.counts.NAME_NORM_MAX`)."""
    if plan.trigrams:
        rare = await _selective_runs(store, plan.trigrams)
        query = match_query(store.backend, *((rare, True) if rare else (plan.trigrams, False)))
    else:
        query = prefix_query(plan.prefix)
    rows = await index_read(store, query)
    seen: dict[tuple[str, str], str] = {}
    for uscc, name, norm in rows:
        if (uscc, name) not in seen:
            whole = norm is not None and len(norm) < NAME_NORM_MAX
            seen[uscc, name] = norm if whole else normalise_name(name)
    return [(uscc, name, norm) for (uscc, name), norm in seen.items()]


async def search_names(
    store: Store, query: str, *, limit: int = 10, min_score: float = DEFAULT_MIN_SCORE
) -> list[NameMatch]:
    """Held names like *query*, ranked best first (a name alone never merges entities)."""
    plan = search_plan(query)
    if plan is None or limit <= 0:
        return []
    found = await candidates(store, plan)
    return rank_normalised(query, found, limit=limit, min_score=min_score)
