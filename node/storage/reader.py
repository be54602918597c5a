"""Reads on plain driver connections, for the hot query path.

SQLAlchemy and aiosqlite cost about 50 times the SQL of a small read (issue 17). A
:class:`Reader` runs the same SQL on the driver itself: on SQLite, one ``sqlite3`` connection
per reader thread (``query_only``, WAL, statements kept in sqlite3's statement cache) behind a
small executor; on PostgreSQL, an ``asyncpg`` pool whose connections prepare each statement
once. Both see committed data only; a read is one statement, its own snapshot (a read that
needs another's rows joins them: one round trip).

SQL is written once with ``?`` placeholders (numbered for PostgreSQL).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.storage._store import Store

Row = tuple[Any, ...]
Query = tuple[str, Sequence[Any]]  # SQL and its parameters

SQLITE_THREADS = 2
POSTGRES_CONNECTIONS = 4
_STATEMENTS = 256  # sqlite3's per-connection statement cache

_PLACEHOLDER = re.compile(r"\?")


class Reader:
    """Read-only SQL on the store's database, off SQLAlchemy (see the module docstring)."""

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

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of one read."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteReader(Reader):
    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(SQLITE_THREADS, thread_name_prefix="creditnode-reader")
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path,
                isolation_level=None,  # autocommit: each statement is its own snapshot
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

    def _run(self, sql: str, params: Sequence[Any]) -> list[Row]:
        if self._closed:
            raise RuntimeError("the reader is closed")
        return self._connection().execute(sql, params).fetchall()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, sql, params)

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


class PostgresReader(Reader):
    def __init__(self, dsn: str, settings: Mapping[str, str] | None = None) -> None:
        self._dsn = dsn
        self._settings = dict(settings or {})
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._sql: dict[str, str] = {}

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
                        reset=_nothing_to_reset,
                    )
        return self._pool

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        pool = await self._connections()
        async with pool.acquire() as conn:
            rows = await conn.fetch(self._numbered(sql), *[_pg_param(p) for p in params])
        return [tuple(r) for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _nothing_to_reset(conn: Any) -> None:
    """A reader's connection runs single read-only statements and changes no session state:
    there is nothing to reset on release, where asyncpg's default reset is one more round
    trip to the server on every read."""


def _pg_param(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
