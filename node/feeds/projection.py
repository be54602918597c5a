"""The log is the truth; the list state is a projection of it (issue 17).

A mirror's sync transaction holds only the leaves, the frontier's hashes, the cursor and the
openings received with the leaves (``leaf_openings``). Folding applies the leaves after the
projection's cursor (``logs.projected_size``) in index order, a chunk per transaction: the list
state and openings through :func:`node.feeds.state.apply_leaves` (the one writer of
``list_state``), the chunk's ``leaf_openings`` rows deleted, and the cursor moved, all in one
transaction. So a reader sees the projection as of one index, and a crash anywhere loses
nothing: the next fold resumes at the cursor. The subscriber folds right after each durable
write; the origin applies its own leaves in their append's transaction (its projection never
lags).

:func:`compare` checks the stored projection against the log a chunk of leaves at a time
(:func:`decide` and :func:`first_difference`, pure): what ``creditnode verify`` reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.leaf import LeafError, open_leaf, parse_leaf
from node.feeds.logstore import LEAVES, LOGS, OPENINGS
from node.feeds.state import STATE, AppliedLeaf, apply_leaves
from node.feeds.verify import Tampered
from node.storage import Store, dialect

FOLD_EVERY = 4096  # leaves per projection transaction


@dataclass(frozen=True)
class Folded:
    """What one :func:`fold` did."""

    leaves: int  # leaves folded by this call
    projected: int  # the projection's cursor after it
    size: int  # the log's size it saw
    removed: bool  # a removal was folded (its openings and body were deleted)


def openings_bytes(leaf: feeds.FeedLeaf) -> bytes:
    """What is kept of a received leaf beside its bytes until it is folded: its body and
    disclosed fields (a FeedLeaf without its entry); b"" if it came with neither."""
    if not leaf.HasField("body") and not leaf.disclosures:
        return b""
    kept = feeds.FeedLeaf()
    kept.CopyFrom(leaf)  # in C: 2.5x faster than building the copy field by field
    kept.ClearField("entry")
    return kept.SerializeToString()


def applied_leaf(idx: int, data: bytes, openings: bytes | None) -> AppliedLeaf:
    """Open stored leaf *data* with its kept openings, checked again against the leaf's
    commitments (fail closed: a stored row changed since it was verified is refused)."""
    try:
        kept = feeds.FeedLeaf.FromString(openings) if openings else feeds.FeedLeaf()
        body = kept.body if kept.HasField("body") else None
        opened = open_leaf(data, list(kept.disclosures), body)
    except (LeafError, ValueError) as exc:
        raise Tampered(f"stored leaf {idx}: {exc}", index=idx, stored=True) from None
    return AppliedLeaf(idx, opened, list(kept.disclosures))


async def lag(conn: AsyncConnection, log_id: int) -> tuple[int, int]:
    """(size, projected size) of a log."""
    row = (
        await conn.execute(select(LOGS.c.size, LOGS.c.projected_size).where(LOGS.c.id == log_id))
    ).one()
    return int(row[0]), int(row[1])


async def fold(
    store: Store,
    log_id: int,
    *,
    upto: int | None = None,
    step: int | None = None,
    known: tuple[int, Sequence[AppliedLeaf]] | None = None,
) -> Folded:
    """Fold a mirror's leaves after its projection's cursor (up to *upto*, default the log's
    size), *step* leaves per transaction. Another process folding the same log at the same
    time is harmless: each chunk moves the cursor by compare-and-swap at the end of its
    transaction, and the loser's chunk is rolled back; it re-reads the cursor and goes on.

    *known*: (start, leaves) the caller just wrote and opened (the subscriber, in the same
    process): a chunk inside them is folded from memory instead of read back and opened
    again; anything else is read from the log."""
    step = FOLD_EVERY if step is None else step
    done = 0
    removed = False
    while True:
        try:
            folded_removal, start, end, size = await _fold_chunk(store, log_id, upto, step, known)
        except _Raced:
            continue  # folded by another process meanwhile: read the cursor again
        except _Collided as collided:
            # A row this chunk inserts was inserted first by another process folding the same
            # leaves: a race only if that process moved the cursor; anything else is an error.
            async with store.engine.connect() as conn:
                if (await lag(conn, log_id))[1] == collided.start:
                    raise collided.error from None
            continue
        if end <= start:
            return Folded(done, start, size, removed)
        done += end - start
        removed = removed or folded_removal
        if folded_removal:
            await dialect.erase_freed(store.engine)


class _Raced(Exception):
    """Another process moved the projection's cursor first (this chunk is rolled back)."""


class _Collided(Exception):
    """A list-state row this chunk inserts exists already (this chunk is rolled back)."""

    def __init__(self, start: int, error: IntegrityError) -> None:
        super().__init__(start)
        self.start, self.error = start, error


async def _fold_chunk(
    store: Store,
    log_id: int,
    upto: int | None,
    step: int,
    known: tuple[int, Sequence[AppliedLeaf]] | None,
) -> tuple[bool, int, int, int]:
    """Fold one chunk after the cursor in one transaction: (removal folded, start, end, size)."""
    async with store.begin() as conn:
        size, start = await lag(conn, log_id)
        end = min(size if upto is None else min(upto, size), start + step)
        if end <= start:
            return False, start, end, size
        kept_range = and_(
            OPENINGS.c.log_id == log_id, OPENINGS.c.idx >= start, OPENINGS.c.idx < end
        )
        if known is not None and known[0] <= start and end <= known[0] + len(known[1]):
            applied = list(known[1][start - known[0] : end - known[0]])
        else:
            applied = await _read_applied(conn, log_id, start, end)
        try:
            folded_removal = await apply_leaves(conn, log_id, applied, keep_history=False)
        except IntegrityError as exc:
            raise _Collided(start, exc) from None
        await conn.execute(delete(OPENINGS).where(kept_range))
        # The cursor moves last: the log's row is locked (PostgreSQL) only from here to
        # the commit, so the subscriber's next log write, which updates the same row,
        # runs beside this fold instead of waiting for all of it.
        moved = await conn.execute(
            update(LOGS)
            .where(and_(LOGS.c.id == log_id, LOGS.c.projected_size == start))
            .values(projected_size=end)
        )
        if moved.rowcount != 1:
            raise _Raced
    return folded_removal, start, end, size


async def _read_applied(
    conn: AsyncConnection, log_id: int, start: int, end: int
) -> list[AppliedLeaf]:
    """Leaves [start, end) as stored, opened again with the openings kept beside them."""
    leaves = (
        await conn.execute(
            select(LEAVES.c.idx, LEAVES.c.data)
            .where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx >= start, LEAVES.c.idx < end))
            .order_by(LEAVES.c.idx)
        )
    ).all()
    if len(leaves) != end - start:
        raise Tampered(
            f"log {log_id} is missing leaves in [{start}, {end})", index=start, stored=True
        )
    kept: dict[int, bytes] = {
        int(i): bytes(o)
        for i, o in await conn.execute(
            select(OPENINGS.c.idx, OPENINGS.c.openings).where(
                and_(OPENINGS.c.log_id == log_id, OPENINGS.c.idx >= start, OPENINGS.c.idx < end)
            )
        )
    }
    return [applied_leaf(int(i), bytes(d), kept.get(int(i))) for i, d in leaves]


# -- rebuild and compare ---------------------------------------------------------------------

# What the log alone decides of an entry's row: (last_idx, status, removal_reason, list_code).
Decided = tuple[int, int, int, str]
# A leaf's decision for its entry's row: (idx, entry id, what that leaf alone decides).
Decision = tuple[int, str, Decided]
STATE_LOOKUP = 500  # entry ids per IN (...) of a comparison's row reads
# The stored rows of some entries: the one "?" in the parentheses becomes one per entry id.
_ROWS_OF = (
    "SELECT entry_id, last_idx, status, removal_reason, list_code FROM list_state "
    "WHERE log_id = ? AND entry_id IN (?)"
)


def decide(leaves: Iterable[tuple[int, bytes]], *, checked: bool = False) -> list[Decision]:
    """What each leaf (index, bytes) decides of its entry's row if it is that entry's newest
    (pure; bodies and openings are checked against their commitments by ``creditnode
    verify``'s state check). *checked*: the caller has shown these to be the bytes that
    passed the strict parse on arrival (``verify``'s scan, against the tree and the signed
    checkpoint, in the same pass), so they are read plainly (a strict parse is 85% of a
    comparison's time)."""
    out: list[Decision] = []
    for idx, data in leaves:
        try:
            leaf = feeds.LeafEntry.FromString(data) if checked else parse_leaf(data)
        except DecodeError as exc:
            raise LeafError(f"leaf is not a LeafEntry ({exc})") from None
        if leaf.event == feeds.EVENT_TYPE_REMOVE:
            decided = (idx, feeds.ENTRY_STATUS_REMOVED, int(leaf.removal_reason), leaf.list_code)
        else:
            decided = (idx, feeds.ENTRY_STATUS_ACTIVE, 0, leaf.list_code)
        out.append((idx, leaf.entry_id, decided))
    return out


def first_difference(
    decisions: Sequence[Decision],
    rows: Mapping[str, Decided],
    named: Iterable[tuple[str, int]],
) -> tuple[int, str] | None:
    """The lowest leaf index at which the stored projection disagrees with the leaves of one
    stretch of the log, and what differs; None if it agrees (pure).

    *decisions* are the stretch's leaves (:func:`decide`); *rows* the stored rows of their
    entries (entry id -> last_idx, status, removal_reason, list_code); *named* every stored
    row (entry id, last_idx) whose last_idx falls in the stretch. Over every stretch of the
    log this finds what a rebuild of the whole projection would: each entry's row names its
    newest leaf (a leaf after it: stale; no row: missing) and says what that leaf does, and no
    row names a leaf of another entry (or of none)."""
    found: list[tuple[int, str]] = []
    entry_at = {idx: entry_id for idx, entry_id, _ in decisions}
    for idx, entry_id, want in decisions:
        have = rows.get(entry_id)
        if have is None:
            found.append((idx, f"the entry of leaf {idx} has no row"))
        elif have[0] < idx:
            found.append((have[0], f"last_idx differ from leaf {idx}"))
        elif have[0] == idx and have != want:
            names = ("status", "removal_reason", "list_code")
            wrong = [n for n, a, b in zip(names, want[1:], have[1:], strict=True) if a != b]
            found.append((idx, f"{', '.join(wrong)} differ from leaf {idx}"))
    for entry_id, last_idx in named:
        if entry_at.get(last_idx) != entry_id:
            found.append((last_idx, f"a row names leaf {last_idx}, another entry's"))
    return min(found) if found else None


async def compare(
    store: Store, log_id: int, *, chunk: int = 8192, checked: bool = False
) -> tuple[int, str] | None:
    """Compare the stored projection of a log with its leaves up to its projected size, a
    chunk of leaves at a time (memory bounded by *chunk*, whatever the log's length): the
    first difference (see :func:`first_difference`) or None. *checked*: see :func:`decide`."""
    best: tuple[int, str] | None = None
    async with store.engine.connect() as conn:
        _, projected = await lag(conn, log_id)
        beyond = (
            await conn.execute(
                select(STATE.c.last_idx)
                .where(and_(STATE.c.log_id == log_id, STATE.c.last_idx >= projected))
                .order_by(STATE.c.last_idx)
                .limit(1)
            )
        ).first()
        if beyond is not None:
            best = (int(beyond[0]), f"a row names leaf {beyond[0]}, past the projected size")
        # Every chunk is read: a stale row is found at its entry's newer leaf, possibly in a
        # later chunk than the leaf it names (the index it is reported at).
        for a in range(0, projected, chunk):
            b = min(a + chunk, projected)
            leaves = await dialect.fetch_rows(
                conn,
                "SELECT idx, data FROM log_leaves WHERE log_id = ? AND idx >= ? AND idx < ? "
                "ORDER BY idx",
                (log_id, a, b),
            )
            try:
                decisions = decide(((int(i), bytes(d)) for i, d in leaves), checked=checked)
            except LeafError as exc:
                broken = (a, f"a leaf in [{a}, {b}) does not parse: {exc}")
                return broken if best is None or a <= best[0] else best
            entries = sorted({e for _, e, _ in decisions})
            rows: dict[str, Decided] = {}
            for i in range(0, len(entries), STATE_LOOKUP):
                part = entries[i : i + STATE_LOOKUP]
                for e, n, st, r, c in await dialect.fetch_rows(
                    conn,
                    _ROWS_OF.replace("?)", ", ".join("?" * len(part)) + ")"),
                    (log_id, *part),
                ):
                    rows[str(e)] = (int(n), int(st), int(r), str(c))
            named = [
                (str(e), int(n))
                for e, n in await dialect.fetch_rows(
                    conn,
                    "SELECT entry_id, last_idx FROM list_state "
                    "WHERE log_id = ? AND last_idx >= ? AND last_idx < ?",
                    (log_id, a, b),
                )
            ]
            found = first_difference(decisions, rows, named)
            if found is not None and (best is None or found < best):
                best = found
    return best
