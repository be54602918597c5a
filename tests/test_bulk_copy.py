"""dialect.bulk_insert: COPY for large plain inserts on PostgreSQL, inside the caller's
transaction; executemany for small batches and upserts (and always on SQLite)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from node.feeds.logstore import HASHES, LEAVES
from node.storage import Store, dialect

COLUMNS = ("log_id", "idx", "data")


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row count of every COPY the driver runs."""
    seen: list[int] = []
    original = asyncpg.connection.Connection.copy_records_to_table

    async def spy(self: Any, table: str, **kwargs: Any) -> Any:
        seen.append(len(kwargs["records"]))
        return await original(self, table, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "copy_records_to_table", spy)
    return seen


def leaf_rows(start: int, n: int, log_id: int = 1) -> list[tuple[int, int, bytes]]:
    # Bytes of every value, including NUL and high bytes, so a text-mode slip would show.
    return [(log_id, i, bytes([i % 256, 0, 255]) * (1 + i % 7)) for i in range(start, start + n)]


async def stored(store: Store, table: Any = LEAVES) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(table.c.log_id, table.c.idx, *table.c[2:]).order_by(
            table.c.log_id, table.c.idx
        ))  # fmt: skip
        return [tuple(r) for r in rows]


async def test_large_and_small_batches_store_the_same_rows(
    store: Store, backend: str, copies: list[int]
) -> None:
    big = leaf_rows(0, 5000)
    small = leaf_rows(5000, dialect.COPY_MIN_ROWS - 1)
    async with store.begin() as conn:
        await dialect.bulk_insert(conn, LEAVES, COLUMNS, big)
        await dialect.bulk_insert(conn, LEAVES, COLUMNS, small)
    assert await stored(store) == big + small
    # COPY for the large plain insert on PostgreSQL only; never for the small one.
    assert copies == ([5000] if backend == "postgresql" else [])


async def test_copy_rolls_back_with_the_transaction(
    store: Store, backend: str, copies: list[int]
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.begin() as conn:
            await dialect.bulk_insert(conn, LEAVES, COLUMNS, leaf_rows(0, 1000))
            raise Boom
    assert await stored(store) == []
    assert copies == ([1000] if backend == "postgresql" else [])
    # The connection is usable afterwards and a later transaction commits normally.
    async with store.begin() as conn:
        await dialect.bulk_insert(conn, LEAVES, COLUMNS, leaf_rows(0, 100))
    assert len(await stored(store)) == 100


async def test_duplicate_key_in_copy_is_an_integrity_error_and_keeps_nothing(
    store: Store,
) -> None:
    async with store.begin() as conn:
        await dialect.bulk_insert(conn, LEAVES, COLUMNS, leaf_rows(500, 1))
    with pytest.raises(IntegrityError):
        async with store.begin() as conn:
            await dialect.bulk_insert(conn, LEAVES, COLUMNS, leaf_rows(0, 1000))
    assert await stored(store) == leaf_rows(500, 1)


async def test_upserts_keep_the_conflict_path(
    store: Store, backend: str, copies: list[int]
) -> None:
    first = [(1, i, b"a" * 32) for i in range(200)]
    second = [(1, i, b"b" * 32) for i in range(100, 300)]
    async with store.begin() as conn:
        await dialect.bulk_insert(conn, HASHES, ("log_id", "idx", "hash"), first)
    async with store.begin() as conn:
        await dialect.bulk_insert(
            conn, HASHES, ("log_id", "idx", "hash"), second,
            conflict_keys=("log_id", "idx"), update=("hash",),
        )  # fmt: skip
    assert await stored(store, HASHES) == first[:100] + second
    # The plain insert of 200 rows goes through COPY; the upsert never does.
    assert copies == ([200] if backend == "postgresql" else [])
