"""Reads on plain driver connections, for the hot query path.

SQLAlchemy and aiosqlite cost about 50 times the SQL of a small read (issue 17). A
:class:`Reader` runs the same SQL on the driver itself: on SQLite, one ``sqlite3`` connection
per reader thread (``query_only``, WAL, statements kept in sqlite3's statement cache) behind a
small executor; on PostgreSQL, an ``asyncpg`` pool whose connections prepare each statement
once. Both see committed data only, and a :meth:`Reader.chain` of reads runs in one snapshot.

SQL is written once with ``?`` placeholders; a list parameter is matched with :meth:`any_of`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.storage._store import Store

Row = tuple[Any, ...]
Query = tuple[str, Sequence[Any]]
# Given the rows of the previous read, the next read (None: stop here).
Step = Callable[[list[Row]], Query | None]

SQLITE_THREADS = 2
POSTGRES_CONNECTIONS = 4
_STATEMENTS = 256  # sqlite3's per-connection statement cache

_PLACEHOLDER = re.compile(r"\?")


class Reader:
    """Read-only SQL on the store's database, off SQLAlchemy (see the module docstring)."""

    dialect: str

    @staticmethod
    def of(store: Store, settings: Mapping[str, str] | None = None) -> Reader:
        """A reader on *store*'s database; connections are made on first use (on PostgreSQL
        with the session *settings*)."""
        url = store.engine.url
        if url.get_backend_name() == "sqlite":
            path = url.database or ""
            if path in ("", ":memory:"):
                raise ValueError("a reader needs a database file")
            return SqliteReader(path)
        dsn = url.set(drivername="postgresql").render_as_string(False)
        return PostgresReader(dsn, settings)

    def any_of(self, expr: str) -> str:
        """SQL true when *expr* equals one element of the list bound to its ``?``."""
        raise NotImplementedError

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of one read."""
        return (await self.chain((sql, params)))[0]

    async def chain(self, first: Query, *then: Step) -> list[list[Row]]:
        """*first*, then each step's read built from the rows before it, in one snapshot;
        the rows of each read run."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteReader(Reader):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(SQLITE_THREADS, thread_name_prefix="creditnode-reader")
        self._closed = False

    def any_of(self, expr: str) -> str:
        # One statement whatever the list's length, so it is prepared once.
        return f"{expr} IN (SELECT value FROM json_each(?))"  # noqa: S608 - expr is ours

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path,
                isolation_level=None,  # transactions are explicit (one snapshot per chain)
                check_same_thread=False,  # closed from the loop's thread at the end
                cached_statements=_STATEMENTS,
            )
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA temp_store=MEMORY")  # a sort's temp b-tree: no file
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def _run(self, first: Query, then: Sequence[Step]) -> list[list[Row]]:
        if self._closed:
            raise RuntimeError("the reader is closed")
        conn = self._connection()
        if not then:  # one statement is its own snapshot
            sql, params = first
            return [conn.execute(sql, [_sqlite_param(p) for p in params]).fetchall()]
        out: list[list[Row]] = []
        conn.execute("BEGIN")  # the reads of a chain share one snapshot
        try:
            query: Query | None = first
            steps = iter(then)
            while query is not None:
                sql, params = query
                out.append(conn.execute(sql, [_sqlite_param(p) for p in params]).fetchall())
                step = next(steps, None)
                query = None if step is None else step(out[-1])
        finally:
            conn.execute("COMMIT")  # nothing written: ends the read transaction
        return out

    async def chain(self, first: Query, *then: Step) -> list[list[Row]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, first, then)

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return value


class PostgresReader(Reader):
    dialect = "postgresql"

    def __init__(self, dsn: str, settings: Mapping[str, str] | None = None) -> None:
        self._dsn = dsn
        self._settings = dict(settings or {})
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._sql: dict[str, str] = {}

    def any_of(self, expr: str) -> str:
        return f"{expr} = ANY(?)"

    def _numbered(self, sql: str) -> str:
        done = self._sql.get(sql)
        if done is None:
            count = iter(range(1, 1 << 16))
            done = self._sql[sql] = _PLACEHOLDER.sub(lambda _m: f"${next(count)}", sql)
        return done

    async def _connections(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    import asyncpg  # only a PostgreSQL node loads the driver

                    # asyncpg prepares each statement once per connection and keeps it.
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=POSTGRES_CONNECTIONS,
                        server_settings=self._settings,
                    )
        return self._pool

    async def chain(self, first: Query, *then: Step) -> list[list[Row]]:
        pool = await self._connections()
        out: list[list[Row]] = []
        async with pool.acquire() as conn:
            if not then:  # one statement is its own snapshot
                sql, params = first
                rows = await conn.fetch(self._numbered(sql), *[_pg_param(p) for p in params])
                return [[tuple(r) for r in rows]]
            tx = conn.transaction(isolation="repeatable_read", readonly=True)
            async with tx:
                query: Query | None = first
                steps = iter(then)
                while query is not None:
                    sql, params = query
                    rows = await conn.fetch(self._numbered(sql), *[_pg_param(p) for p in params])
                    out.append([tuple(r) for r in rows])
                    step = next(steps, None)
                    query = None if step is None else step(out[-1])
        return out

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _pg_param(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
