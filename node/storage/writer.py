"""The group-commit writer: durable records of the query path on a connection of their own.

A :class:`Writer` runs one transaction of :class:`Insert` and :class:`Update` statements on a
dedicated driver connection, off SQLAlchemy: on SQLite, one ``sqlite3`` connection in one
thread (WAL, ``synchronous=FULL``: the engine's settings, :func:`dialect.sqlite_pragmas`); on
PostgreSQL, one ``asyncpg`` connection. :meth:`Writer.commit` returns once the transaction is
durable, and raises (nothing committed) otherwise. Callers group their records first (the
audit log writes every pending entry in one call), so concurrent requests share one commit.

Values go through the column types' own bind processors for the store's dialect, so a row is
stored exactly as SQLAlchemy would store it. A duplicate key raises SQLAlchemy's
``IntegrityError``, as :func:`dialect.bulk_insert` does.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from node.storage import dialect
from node.storage._store import Store

_STATEMENTS = 64


@dataclass(frozen=True)
class Insert:
    """Rows into *table*, values in the order of *columns*."""

    table: Table
    columns: tuple[str, ...]
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Update:
    """``UPDATE table SET values WHERE where``; unless exactly *expect* rows match, the
    transaction is rolled back and *stale* raised. *where* names a key (at most *expect*
    rows): on PostgreSQL a match of fewer writes nothing, and one transaction holds at most
    one update."""

    table: Table
    values: Mapping[str, Any]
    where: Mapping[str, Any]
    stale: Exception
    expect: int = 1


Statement = Insert | Update


@dataclass
class _Bound:
    sql: str
    rows: list[tuple[Any, ...]]
    expect: int | None = None
    stale: Exception | None = None
    single: bool = field(init=False)

    def __post_init__(self) -> None:
        self.single = self.expect is not None


class Writer:
    """One dedicated connection's transactions (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._dialect: Dialect = store.engine.dialect
        self._store = store
        self._processors: dict[tuple[str, str], Callable[[Any], Any] | None] = {}
        self._sql: dict[tuple[object, ...], str] = {}

    @staticmethod
    def of(store: Store) -> Writer | None:
        """A writer on *store*'s database (None for an in-memory SQLite one, which no second
        connection can see); the connection is made on first use."""
        url = store.engine.url
        if url.get_backend_name() == "sqlite":
            path = url.database or ""
            if path in ("", ":memory:"):
                return None
            return SqliteWriter(store, path)
        return PostgresWriter(store, url.set(drivername="postgresql").render_as_string(False))

    def _processor(self, table: Table, column: str) -> Callable[[Any], Any] | None:
        key = (table.name, column)
        if key not in self._processors:
            col_type = table.c[column].type
            self._processors[key] = col_type.dialect_impl(self._dialect).bind_processor(
                self._dialect
            )
        return self._processors[key]

    def _values(self, table: Table, columns: Sequence[str], row: Sequence[Any]) -> tuple[Any, ...]:
        out = []
        for column, value in zip(columns, row, strict=True):
            proc = self._processor(table, column)
            out.append(value if proc is None or value is None else proc(value))
        return tuple(out)

    def _bind(self, statement: Statement) -> _Bound:
        """SQL (cached per shape) and driver values of *statement*, one statement each (the
        SQLite writer's; PostgreSQL's makes the transaction one statement)."""
        if isinstance(statement, Insert):
            key: tuple[object, ...] = ("i", statement.table.name, statement.columns)
            sql = self._sql.get(key)
            if sql is None:
                cols = ", ".join(f'"{c}"' for c in statement.columns)
                values = ", ".join(["?"] * len(statement.columns))
                sql = self._sql[key] = (
                    f'INSERT INTO "{statement.table.name}" ({cols}) VALUES ({values})'  # noqa: S608 - names are ours
                )
            rows = [self._values(statement.table, statement.columns, r) for r in statement.rows]
            return _Bound(sql, rows)
        sets, wheres = tuple(statement.values), tuple(statement.where)
        key = ("u", statement.table.name, sets, wheres)
        sql = self._sql.get(key)
        if sql is None:
            marks = ["?"] * (len(sets) + len(wheres))
            set_sql = ", ".join(f'"{c}" = {m}' for c, m in zip(sets, marks, strict=False))
            where_sql = " AND ".join(
                f'"{c}" = {m}' for c, m in zip(wheres, marks[len(sets) :], strict=True)
            )
            sql = self._sql[key] = (
                f'UPDATE "{statement.table.name}" SET {set_sql} WHERE {where_sql}'  # noqa: S608 - names are ours
            )
        columns = sets + wheres
        row = [*statement.values.values(), *statement.where.values()]
        return _Bound(
            sql,
            [self._values(statement.table, columns, row)],
            expect=statement.expect,
            stale=statement.stale,
        )

    async def commit(self, statements: Sequence[Statement]) -> None:
        """Run *statements* in one transaction and return once it is durable."""
        kept = [s for s in statements if isinstance(s, Update) or s.rows]
        # This process's other writers (SQLAlchemy's) queue behind the same lock, so the two
        # never meet in SQLite's busy handler.
        async with self._store.queued():
            try:
                await self._commit(kept)
            except Exception as exc:
                if dialect.is_integrity_error(exc):
                    raise IntegrityError("group commit", None, exc) from exc
                raise

    async def _commit(self, statements: list[Statement]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteWriter(Writer):
    def __init__(self, store: Store, path: str) -> None:
        super().__init__(store)
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="creditnode-writer")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path,
                isolation_level=None,  # BEGIN/COMMIT are ours
                check_same_thread=False,  # closed from the loop's thread at the end
                cached_statements=_STATEMENTS,
            )
            dialect.sqlite_pragmas(conn)
            self._conn = conn
        return self._conn

    def _run(self, bound: list[_Bound]) -> None:
        conn = self._connection()
        # IMMEDIATE: the write lock first, as SQLAlchemy's first UPDATE takes it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for b in bound:
                if b.single:
                    cur = conn.execute(b.sql, b.rows[0])
                    if cur.rowcount != b.expect:
                        assert b.stale is not None
                        raise b.stale
                else:
                    conn.executemany(b.sql, b.rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _commit(self, statements: list[Statement]) -> None:
        bound = [self._bind(s) for s in statements]
        await asyncio.get_running_loop().run_in_executor(self._thread, self._run, bound)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._thread.shutdown, True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresWriter(Writer):
    def __init__(self, store: Store, dsn: str) -> None:
        super().__init__(store)
        self._dsn = dsn
        self._conn: Any = None
        self._lock = asyncio.Lock()  # one transaction at a time on the one connection

    def _one_statement(self, statements: list[Statement]) -> tuple[str, list[Any], Update | None]:
        """The transaction as one statement, and its update: the update (a compare-and-swap,
        at most one) is a data-modifying CTE returning what it matched, and each insert, from
        column arrays (``unnest``), runs only if that is what the update expects; the
        statement returns the update's count. One round trip, committed when it returns (each
        statement was one, and BEGIN and COMMIT two more: most of a record's time on a server
        on the same machine)."""
        updates = [s for s in statements if isinstance(s, Update)]
        if len(updates) > 1:  # a second would not be undone when the first fails its check
            raise ValueError("a PostgreSQL group commit takes at most one update")
        update = updates[0] if updates else None
        inserts = [s for s in statements if isinstance(s, Insert)]
        args: list[Any] = []
        if update is not None:
            columns = (*update.values, *update.where)
            values = [*update.values.values(), *update.where.values()]
            args += self._values(update.table, columns, values)
        for i in inserts:
            rows = [self._values(i.table, i.columns, r) for r in i.rows]
            args += [list(column) for column in zip(*rows, strict=True)]
        key = (
            None
            if update is None
            else (update.table.name, tuple(update.values), tuple(update.where)),
            tuple((i.table.name, i.columns) for i in inserts),
        )
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = self._compose(update, inserts)
        return sql, args, update

    def _compose(self, update: Update | None, inserts: list[Insert]) -> str:
        # Table and column names are ours (the model's), never data: S608 does not apply.
        marks = iter(range(1, 1 << 16))
        parts, only, count = [], "", "0"
        if update is not None:
            sets = ", ".join(f'"{c}" = ${next(marks)}' for c in update.values)
            where = " AND ".join(f'"{c}" = ${next(marks)}' for c in update.where)
            cas = f'UPDATE "{update.table.name}" SET {sets} WHERE {where} RETURNING 1'  # noqa: S608
            parts.append(f"u AS ({cas})")
            count = "(SELECT count(*) FROM u)"
            only = f" WHERE {count} = {update.expect}"
        for n, i in enumerate(inserts):
            cols = ", ".join(f'"{c}"' for c in i.columns)
            arrays = ", ".join(
                f"CAST(${next(marks)} AS {i.table.c[c].type.compile(self._dialect)}[])"
                for c in i.columns
            )
            rows = f"SELECT * FROM unnest({arrays}){only}"  # noqa: S608
            parts.append(f'i{n} AS (INSERT INTO "{i.table.name}" ({cols}) {rows})')
        return f"WITH {', '.join(parts)} SELECT {count}"

    async def _commit(self, statements: list[Statement]) -> None:
        sql, args, update = self._one_statement(statements)
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                import asyncpg  # only a PostgreSQL node loads the driver

                self._conn = await asyncpg.connect(self._dsn)
            matched = await self._conn.fetchval(sql, *args)
        if update is not None and matched != update.expect:
            raise update.stale  # nothing was written: the inserts waited on this

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
