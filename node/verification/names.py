"""SQLite's name index (the FTS5 table ``list_state_names``, migrations 0021 and 0024) against
one log's list state: name search finds only what the index holds, and since migration 0024 a
fold indexes its new rows in bulk (:func:`node.identity.name_search.index_inserted`) instead of
by trigger, so a writer that missed it would leave names that no search can find, silently.

Every row of the log must have an index entry holding as many trigrams as its stored
normalised name has (FTS5's own ``list_state_names_docsize`` table: one row per indexed row, its
token count as a varint). FTS5's ``integrity-check`` would also compare the tokens, but it is a
write statement: it holds the database's write lock (every sync and every ``Lookup`` record
waits) for about a second per million rows, while this is a read. A name replaced by another of
the same length without reindexing is not seen; index entries left by deleted rows are not
looked at (a search joins each entry with its row, so they find nothing).

:func:`rebuild_name_index` rebuilds the whole index from ``list_state`` (FTS5 ``rebuild``): the
index holds nothing but what the rows hold, so nothing is lost. PostgreSQL's trigram index is
an expression index that the server keeps itself: there is nothing to compare there.
"""

from __future__ import annotations

from sqlalchemy import text

from node.storage import Store

__all__ = ["name_index_diff", "rebuild_name_index"]

# The trigram tokenizer gives a name of n characters max(n - 2, 0) tokens (SQLite's length()
# and FTS5 both stop at a NUL); FTS5 stores that count as a varint, one byte below 128 and two
# up to 16,383 (a stored name has at most NAME_NORM_MAX = 600 characters).
_DIFF = text(
    "SELECT count(*), min(t.last_idx), t.entry_id, t.sz, t.want FROM ("
    "SELECT s.last_idx, s.entry_id, d.sz, "
    "max(coalesce(length(s.name_norm), 0) - 2, 0) AS want "
    "FROM list_state AS s LEFT JOIN list_state_names_docsize AS d ON d.id = s.rowid "
    "WHERE s.log_id = :log_id) AS t "
    "WHERE t.sz IS NULL OR hex(t.sz) != CASE WHEN t.want < 128 THEN printf('%02X', t.want) "
    "ELSE printf('%02X%02X', 128 | (t.want >> 7), t.want & 127) END"
)


def _varint(blob: bytes) -> int:
    """The first varint of an FTS5 record (SQLite's: seven bits a byte, most significant
    first, the high bit set on every byte but the last)."""
    n = 0
    for b in blob[:9]:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return n


async def name_index_diff(store: Store, log_id: int) -> tuple[str, str] | None:
    """The log's first list-state row (by leaf index) that the name index does not hold as it
    should, as (row, detail), or None when the index agrees or the store has no such index."""
    if store.backend != "sqlite":
        return None
    async with store.engine.connect() as conn:
        row = (await conn.execute(_DIFF, {"log_id": log_id})).one()
    bad, _, entry_id, sz, want = row
    if not bad:
        return None
    held = "not in it" if sz is None else f"{_varint(bytes(sz))} trigram(s) in it"
    return (
        f"list_state entry {entry_id}",
        f"the name index does not hold this row's name as stored ({held}, {want} in the "
        f"name); {bad} row(s) of this log so, which name search cannot find as they are. "
        "Rebuild the index: creditnode verify --rebuild-name-index",
    )


async def rebuild_name_index(store: Store) -> int:
    """Rebuild SQLite's name index from ``list_state`` in one transaction; the rows indexed
    (0 on a store with no such index)."""
    if store.backend != "sqlite":
        return 0
    async with store.begin() as conn:
        await conn.execute(text("INSERT INTO list_state_names(list_state_names) VALUES('rebuild')"))
        return int((await conn.execute(text("SELECT count(*) FROM list_state"))).scalar_one())
