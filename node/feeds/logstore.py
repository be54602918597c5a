"""A Merkle log in the database: leaves, stored hashes and the cursor row, for the node's own
log and for every mirrored peer log. The tree math is in ``merkle``; this module only moves
hashes between it and storage, in O(log n) reads per append or proof."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keys import SigningKey
from node.feeds import merkle, note
from node.storage import Store, dialect
from node.storage.models import (
    CheckpointRecord,
    LeafOpenings,
    LogHash,
    LogLeaf,
    LogRecord,
    utcnow,
)
from node.storage.reader import Reader

LOGS = LogRecord.__table__  # type: ignore[attr-defined]
LEAVES = LogLeaf.__table__  # type: ignore[attr-defined]
HASHES = LogHash.__table__  # type: ignore[attr-defined]
CHECKPOINTS = CheckpointRecord.__table__  # type: ignore[attr-defined]
OPENINGS = LeafOpenings.__table__  # type: ignore[attr-defined]


# A node's logs beside its list feed, by the suffix of their origin: the audit log and the
# actions log of a version before per-partner ones. Views of the lists leave them out.
SIDE_LOG_SUFFIXES: tuple[str, ...] = ("/audit", "/actions")
# ... and by a path segment: the per-partner actions logs ``<uri>/actions/<partner>``. A list
# feed's origin is a bare node URI, whose node name cannot hold a "/".
SIDE_LOG_SEGMENTS: tuple[str, ...] = ("/actions/",)


def is_side_log(origin: str) -> bool:
    return origin.endswith(SIDE_LOG_SUFFIXES) or any(s in origin for s in SIDE_LOG_SEGMENTS)


def list_feeds() -> ColumnElement[bool]:
    """A clause on ``logs`` selecting list feeds only (own and mirrored), no side logs."""
    return and_(
        *(~LOGS.c.origin.endswith(s) for s in SIDE_LOG_SUFFIXES),
        *(~LOGS.c.origin.contains(s, autoescape=True) for s in SIDE_LOG_SEGMENTS),
    )


class StaleCursor(Exception):
    """The log moved under us (another writer appended or applied first)."""


@dataclass(frozen=True)
class Cursor:
    log_id: int
    origin: str
    peer: str | None
    size: int
    root: bytes
    checkpoint_size: int
    checkpoint_note: bytes
    state: str
    state_detail: str
    projected_size: int = 0  # the list state is folded up to here (``node.feeds.projection``)


@dataclass
class PendingAppend:
    start: int
    leaves: Sequence[bytes]
    frontier: merkle.Frontier
    hashes: list[tuple[int, bytes]]
    # (index, serialized FeedLeaf without its entry) of leaves that came with openings: kept
    # with the leaves until the projection folds them.
    openings: Sequence[tuple[int, bytes]] = ()

    @property
    def size(self) -> int:
        return self.frontier.size

    @property
    def root(self) -> bytes:
        return self.frontier.root()


async def read_cursor(conn: AsyncConnection, origin: str) -> Cursor | None:
    row = (await conn.execute(select(LOGS).where(LOGS.c.origin == origin))).mappings().first()
    if row is None:
        return None
    return Cursor(
        log_id=row["id"],
        origin=row["origin"],
        peer=row["peer"],
        size=row["size"],
        root=row["root"],
        checkpoint_size=row["checkpoint_size"],
        checkpoint_note=row["checkpoint_note"],
        state=row["state"],
        state_detail=row["state_detail"],
        projected_size=row["projected_size"],
    )


_SIZES = f"SELECT size, checkpoint_size FROM {LOGS.name} WHERE origin = ?"  # noqa: S608


async def read_sizes(reader: Reader, origin: str) -> tuple[int, int] | None:
    """The committed and the signed size of *origin*'s log through a plain reader: a poll's
    cheap look (None: no such log)."""
    rows = await reader.fetch(_SIZES, [origin])
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


async def read_hashes(
    conn: AsyncConnection, log_id: int, indexes: Sequence[int]
) -> dict[int, bytes]:
    if not indexes:
        return {}
    rows = await conn.execute(
        select(HASHES.c.idx, HASHES.c.hash).where(
            and_(HASHES.c.log_id == log_id, HASHES.c.idx.in_(sorted(set(indexes))))
        )
    )
    found = {int(i): bytes(h) for i, h in rows}
    missing = set(indexes) - found.keys()
    if missing:
        raise LookupError(f"log {log_id} is missing stored hashes {sorted(missing)[:5]}")
    return found


@dataclass(frozen=True)
class AppendRows:
    """What one append writes: the cursor's new values (set only where the ``logs`` row still
    has id *log_id* and size *start*) and the leaf, hash and openings rows."""

    log_id: int
    start: int
    cursor: dict[str, object]
    leaves: list[tuple[int, int, bytes]]
    hashes: list[tuple[int, int, bytes]]
    openings: list[tuple[int, int, bytes]]


def append_rows(
    log_id: int,
    pending: PendingAppend,
    *,
    projected: bool = True,
    all_hashes: bool = True,
    **cursor_fields: object,
) -> AppendRows:
    """The rows :meth:`LogStore.write` writes for *pending* (pure; shared with the audit
    log's group-commit writer so the two cannot drift)."""
    if projected:
        cursor_fields = {**cursor_fields, "projected_size": pending.size}
    cursor = {"size": pending.size, "root": pending.root, "updated_at": utcnow(), **cursor_fields}
    if not pending.leaves:
        return AppendRows(log_id, pending.start, cursor, [], [], [])
    hashes = pending.hashes
    if not all_hashes:
        # A frontier hash made by an earlier append was on the frontier when that append
        # committed (a node leaves the frontier for good once merged): kept then.
        keep = set(merkle.Frontier.indexes_for_size(pending.size))
        made = merkle.stored_hash_index(0, pending.start)  # by this append
        hashes = [(i, h) for i, h in hashes if i in keep and i >= made]
    return AppendRows(
        log_id,
        pending.start,
        cursor,
        [(log_id, pending.start + i, data) for i, data in enumerate(pending.leaves)],
        [(log_id, i, h) for i, h in hashes],
        [(log_id, i, o) for i, o in pending.openings],
    )


class LogStore:
    """One log's tree state in memory (its frontier) over its rows in the database."""

    def __init__(self, store: Store, cursor: Cursor, frontier: merkle.Frontier) -> None:
        self.store = store
        self.cursor = cursor
        self.frontier = frontier

    @property
    def log_id(self) -> int:
        return self.cursor.log_id

    @classmethod
    async def open(cls, store: Store, origin: str, *, peer: str | None = None) -> LogStore:
        async with store.begin() as conn:
            cursor = await read_cursor(conn, origin)
            if cursor is None:
                # Another process (a second `sync` or import) may create it at the same
                # moment: whichever row lands first is the log, for both.
                await conn.execute(
                    dialect.insert_ignore(conn.dialect.name, LOGS).values(
                        origin=origin,
                        peer=peer,
                        size=0,
                        root=merkle.empty_root(),
                        checkpoint_size=0,
                        checkpoint_note=b"",
                        state="ok",
                        state_detail="",
                        updated_at=utcnow(),
                    )
                )
                cursor = await read_cursor(conn, origin)
                assert cursor is not None
            hashes = await read_hashes(
                conn, cursor.log_id, merkle.Frontier.indexes_for_size(cursor.size)
            )
        frontier = merkle.Frontier.from_hashes(cursor.size, hashes)
        if frontier.root() != cursor.root:
            raise ValueError(f"log {origin}: stored hashes do not give the recorded root")
        return cls(store, cursor, frontier)

    async def reload(self) -> None:
        fresh = await LogStore.open(self.store, self.cursor.origin, peer=self.cursor.peer)
        self.cursor, self.frontier = fresh.cursor, fresh.frontier

    def prepare(
        self, leaves: Sequence[bytes], frontier: merkle.Frontier | None = None
    ) -> PendingAppend:
        """Hash *leaves* onto a copy of the frontier (or onto *frontier*, already a copy)."""
        base = frontier if frontier is not None else self.frontier.copy()
        start = base.size
        hashes: list[tuple[int, bytes]] = []
        for data in leaves:
            hashes.extend(base.append(merkle.leaf_hash(data)))
        return PendingAppend(start=start, leaves=leaves, frontier=base, hashes=hashes)

    async def write(
        self,
        conn: AsyncConnection,
        pending: PendingAppend,
        *,
        projected: bool = True,
        all_hashes: bool = True,
        **cursor_fields: object,
    ) -> None:
        """Move the cursor, if nobody moved it first, then insert the leaves and hashes.

        *projected*: the caller folds the leaves' list state in this same transaction (the
        origin, side logs with none), so the projection's cursor moves with the log's; a
        mirror leaves that to :mod:`node.feeds.projection`. Without *all_hashes* (a mirror,
        which serves no proofs) only the hashes on the new frontier are kept: all that
        reopening the log needs.

        The compare-and-swap comes first so that a writer that lost the race (another process
        appended or applied at the same size) learns it as :class:`StaleCursor`, and retries on
        a fresh cursor, rather than failing on the leaves' unique index. It also takes the
        cursor row's write lock (PostgreSQL) or the database's (SQLite) before anything else:
        two writers of one log queue there instead of deadlocking on the leaves."""
        rows = append_rows(
            self.log_id, pending, projected=projected, all_hashes=all_hashes, **cursor_fields
        )
        result = await conn.execute(
            update(LOGS)
            .where(and_(LOGS.c.id == rows.log_id, LOGS.c.size == rows.start))
            .values(**rows.cursor)
        )
        if result.rowcount != 1:
            raise StaleCursor(f"log {self.cursor.origin} moved past size {pending.start}")
        await dialect.bulk_insert(conn, LEAVES, ("log_id", "idx", "data"), rows.leaves)
        await dialect.bulk_insert(conn, HASHES, ("log_id", "idx", "hash"), rows.hashes)
        await dialect.bulk_insert(conn, OPENINGS, ("log_id", "idx", "openings"), rows.openings)

    def committed(
        self, pending: PendingAppend, *, projected: bool = True, **cursor_fields: object
    ) -> None:
        """Adopt *pending* after its transaction committed (*projected*: as :meth:`write`)."""
        self.frontier = pending.frontier.copy()  # the caller may keep extending its own
        fields = {
            **self.cursor.__dict__,
            "size": pending.size,
            "root": pending.root,
            **({"projected_size": pending.size} if projected else {}),
            **cursor_fields,
        }
        self.cursor = Cursor(**fields)  # type: ignore[arg-type]

    async def consistency_proof(self, t1: int, t2: int) -> list[bytes]:
        async with self.store.engine.connect() as conn:
            hashes = await read_hashes(conn, self.log_id, merkle.consistency_proof_indexes(t1, t2))
        return merkle.consistency_proof(t1, t2, hashes)

    async def inclusion_proof(self, t: int, n: int) -> list[bytes]:
        async with self.store.engine.connect() as conn:
            hashes = await read_hashes(conn, self.log_id, merkle.inclusion_proof_indexes(t, n))
        return merkle.inclusion_proof(t, n, hashes)

    async def read_leaves(self, start: int, end: int) -> list[bytes]:
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(
                select(LEAVES.c.idx, LEAVES.c.data)
                .where(
                    and_(LEAVES.c.log_id == self.log_id, LEAVES.c.idx >= start, LEAVES.c.idx < end)
                )
                .order_by(LEAVES.c.idx)
            )
            out = [bytes(d) for _, d in rows]
        if len(out) != end - start:
            raise LookupError(f"log {self.cursor.origin} is missing leaves in [{start}, {end})")
        return out

    async def read_batches(
        self, start: int, size: int, *, max_leaves: int, max_bytes: int, window: int = 4096
    ) -> list[tuple[int, list[bytes], list[bytes]]]:
        """Leaves from *start* (up to *window* of them) cut into batches of at most *max_leaves*
        and *max_bytes*, each with its consistency proof to *size*: two queries in all."""
        end = min(start + window, size)
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(
                select(LEAVES.c.data)
                .where(
                    and_(LEAVES.c.log_id == self.log_id, LEAVES.c.idx >= start, LEAVES.c.idx < end)
                )
                .order_by(LEAVES.c.idx)
            )
            leaves = [bytes(d) for (d,) in rows]
            if len(leaves) != end - start:
                raise LookupError(f"log {self.cursor.origin} is missing leaves in [{start}, {end})")
            cuts: list[tuple[int, int]] = []
            pos = start
            while pos < end:
                stop, total = pos, 0
                while stop < end and stop - pos < max_leaves:
                    total += len(leaves[stop - start])
                    if stop > pos and total > max_bytes:
                        break
                    stop += 1
                cuts.append((pos, stop))
                pos = stop
            needed = [
                i for _, b in cuts if b < size for i in merkle.consistency_proof_indexes(b, size)
            ]
            hashes = await read_hashes(conn, self.log_id, needed)
        return [
            (a, leaves[a - start : b - start],
             merkle.consistency_proof(b, size, hashes) if b < size else [])
            for a, b in cuts
        ]  # fmt: skip


async def sign_grown(
    store: Store,
    origin: str,
    keys_at: Callable[[dt.datetime], Sequence[SigningKey]],
) -> tuple[bytes, bool]:
    """Sign *origin*'s committed tree if it grew since its kept checkpoint, with the keys
    *keys_at* gives for the signing time, and keep the note. Returns the newest note (b"" if
    none) and whether a new one was signed (False too when no key is valid)."""
    async with store.engine.connect() as conn:
        cursor = await read_cursor(conn, origin)
    assert cursor is not None
    if cursor.size == cursor.checkpoint_size and cursor.checkpoint_note:
        return cursor.checkpoint_note, False
    # Never earlier than the kept checkpoint's time: verifiers refuse a backdated one.
    at = note.signing_time(dt.datetime.now(dt.UTC), (cursor.checkpoint_note,))
    keys = keys_at(at)
    if not keys:
        return cursor.checkpoint_note, False
    signed = note.sign_checkpoint(note.timed_checkpoint(origin, cursor.size, cursor.root, at), keys)
    await keep_checkpoint(store, cursor, signed)
    return signed, True


async def keep_checkpoint(store: Store, cursor: Cursor, signed: bytes) -> None:
    """Make *signed* (a checkpoint of *cursor*'s committed tree) the log's newest, unless a
    larger one was kept meanwhile, and add it to the log's checkpoint history."""
    async with store.begin() as conn:
        await conn.execute(
            update(LOGS)
            .where(and_(LOGS.c.id == cursor.log_id, LOGS.c.checkpoint_size <= cursor.size))
            .values(checkpoint_size=cursor.size, checkpoint_note=signed, updated_at=utcnow())
        )
        await record_checkpoint(conn, cursor.log_id, cursor.size, signed)


async def record_checkpoint(conn: AsyncConnection, log_id: int, size: int, signed: bytes) -> None:
    """Keep a signed checkpoint (made or verified) in the log's history; once per size."""
    await conn.execute(
        dialect.insert_ignore(conn.dialect.name, CHECKPOINTS),
        {"log_id": log_id, "size": size, "note": signed, "recorded_at": utcnow()},
    )
