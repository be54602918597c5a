"""Everything that differs between SQLite and PostgreSQL lives here."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any, cast

import structlog
from sqlalchemy import Insert, Table, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def normalise_url(url: str) -> URL:
    """Pick the async driver for a plain ``sqlite:`` or ``postgresql:`` URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"database URL {url!r} is not a URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"database URL {url!r}: only sqlite and postgresql are supported")


def engine_options(url: URL) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        # One writer at a time anyway; a small pool avoids "database is locked" storms.
        return {"pool_size": 5, "max_overflow": 0}
    return {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}


def configure(engine: AsyncEngine) -> None:
    """Per-connection settings: WAL, full fsync on commit, FK checks, a busy timeout."""
    if engine.url.get_backend_name() != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        sqlite_pragmas(dbapi_conn)


def sqlite_pragmas(dbapi_conn: Any) -> None:
    """The settings of every connection that writes (the engine's, the group-commit writer's)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit that returned is on disk; checkpoints are signed only after that.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # Deleted rows are zeroed, not left in free pages: a removed entry's body must not be
    # recoverable from a holder's database file.
    cur.execute("PRAGMA secure_delete=ON")
    # Statement journals (every upsert, every statement firing a trigger) and sorts in memory,
    # not in temp files: those would hold row contents (bodies) outside the database file, and
    # the fold's list-state writes took 44 µs a row with them against 28 µs without.
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


log = structlog.get_logger("creditnode.storage")

_ERASE_ATTEMPTS = 50
_ERASE_RETRY_SECONDS = 0.05


async def erase_freed(engine: AsyncEngine) -> None:
    """Make deleted data unrecoverable from the files now, not at some later checkpoint.

    SQLite (with ``secure_delete``): copy the WAL into the database and truncate it, so the old
    frames holding deleted rows are gone. PostgreSQL keeps dead tuples until VACUUM and its own
    WAL until recycled; that is the server's business (autovacuum), and not done here.
    """
    if engine.url.get_backend_name() != "sqlite":
        return
    for _ in range(_ERASE_ATTEMPTS):
        async with engine.connect() as conn:
            # (busy, frames in the WAL, frames copied): busy when a reader that began before
            # the checkpoint still needs the old frames; they are gone only once it is done.
            row = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).first()
        if row is None or not row[0]:
            return
        await asyncio.sleep(_ERASE_RETRY_SECONDS)
    log.warning("WAL not truncated: a reader kept it; deleted rows stay in it until the next "
                "checkpoint")  # fmt: skip


def journal_mode_sql(url: URL) -> str | None:
    """A query that reports the journal mode, where the engine has one."""
    return "PRAGMA journal_mode" if url.get_backend_name() == "sqlite" else None


def insert_ignore(dialect_name: str, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING``."""
    if dialect_name == "sqlite":
        return cast(Insert, sqlite_insert(table).on_conflict_do_nothing())
    if dialect_name == "postgresql":
        # SQLAlchemy's PostgreSQL dialect (25 ms to import) is loaded by a PostgreSQL engine
        # anyway; a SQLite home never needs it.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return cast(Insert, pg_insert(table).on_conflict_do_nothing())
    raise ValueError(f"no insert-ignore for dialect {dialect_name}")


# Below this, COPY's set-up round trips cost more than the prepared INSERT's per-row work.
COPY_MIN_ROWS = 64


async def bulk_insert(
    conn: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict_keys: Sequence[str] = (),
    update: Sequence[str] = (),
) -> None:
    """Insert many rows through the driver's own bulk path, inside *conn*'s transaction.

    The hot paths (leaves, tree hashes, mirror state) insert thousands of rows per
    transaction; SQLAlchemy's per-row parameter processing would cost more than the database.
    With *conflict_keys*, existing rows get *update* columns from the new row. On PostgreSQL,
    a plain insert of at least ``COPY_MIN_ROWS`` rows goes through ``COPY … FROM STDIN``
    (binary) instead of a prepared ``INSERT`` per row (bench/sync.py measures the two).
    """
    if not rows:
        return
    name = conn.dialect.name
    if name == "sqlite":
        marks = ", ".join("?" for _ in columns)
    elif name == "postgresql":
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    else:
        raise ValueError(f"no bulk insert for dialect {name}")
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})'  # noqa: S608 - names are ours
    if conflict_keys:
        keys = ", ".join(f'"{c}"' for c in conflict_keys)
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in update)
        sql += (
            f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
            if sets
            else f" ON CONFLICT ({keys}) DO NOTHING"
        )
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    if name == "postgresql" and not driver.is_in_transaction():
        # SQLAlchemy begins its asyncpg transaction lazily, at its first statement: make sure
        # these rows are inside it, not autocommitted beside it.
        await conn.exec_driver_sql("SELECT 1")
    try:
        if name == "postgresql" and not conflict_keys and len(rows) >= COPY_MIN_ROWS:
            # COPY has no ON CONFLICT, hence plain inserts only; a duplicate key still fails
            # the whole statement, and the rows stay inside the caller's transaction.
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        else:
            await driver.executemany(sql, rows)
    except Exception as exc:
        # The driver's own error bypasses SQLAlchemy: a duplicate key (another process
        # appended the same leaf index first) must still read as IntegrityError to callers.
        if _integrity_error(exc):
            raise IntegrityError(sql, None, exc) from exc
        raise


def is_integrity_error(exc: BaseException) -> bool:
    """Whether a driver's own error is a constraint violation (a duplicate key)."""
    return _integrity_error(exc)


def _integrity_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    # asyncpg is imported by its SQLAlchemy dialect when a PostgreSQL engine connects; a
    # process that never did (a SQLite home) cannot hold its error and need not import it.
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(exc, asyncpg.IntegrityConstraintViolationError)


async def fetch_rows(conn: AsyncConnection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The rows of a read-only query straight from the driver (tuples, or asyncpg records):
    for scans of millions of rows, where SQLAlchemy's per-row processing would cost more than
    the database. *sql* uses ``?`` placeholders and names only our own tables and columns."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    name = conn.dialect.name
    if name == "sqlite":
        cursor = await driver.execute(sql, tuple(params))
        try:
            return list(await cursor.fetchall())
        finally:
            await cursor.close()
    if name == "postgresql":
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))
        return list(await driver.fetch(numbered, *params))
    raise ValueError(f"no raw fetch for dialect {name}")
