"""Named locks held across processes that share one database, for a change made of several
transactions (an import plans from what is published, then appends in chunks): a second
writer of the same thing waits for the first instead of planning from a stale view.

PostgreSQL: a session advisory lock on a connection of its own (released if the process
dies). SQLite: ``flock`` on a file beside the database (released likewise), polled so the
event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text

from node.storage._store import Store

# How often a waiting SQLite writer tries the lock file again.
POLL_SECONDS = 0.05


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for *name* (stable across processes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def lock_path(database: str, name: str) -> Path:
    """The lock file for *name* beside the SQLite database file *database*."""
    return Path(f"{database}.lock-{hashlib.sha256(name.encode()).hexdigest()[:16]}")


def list_lock(store: Store, list_name: str) -> contextlib.AbstractAsyncContextManager[None]:
    """The lock of one list of this node's own log (its name, as in ``own_entries``): held by
    every writer of the list's entries (import, removal, expiry, an objection's UPDATE or
    withdrawal), so none plans from a view another is changing."""
    return exclusive(store, f"list {list_name}")


@contextlib.asynccontextmanager
async def exclusive(store: Store, name: str) -> AsyncIterator[None]:
    """Hold the lock *name* for every process using *store*'s database; wait for it."""
    if store.backend == "postgresql":
        async with store.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(name)})
            await conn.commit()  # session-level: held after the transaction, not idle in one
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
                await conn.commit()
        return
    database = store.engine.url.database
    if not database or database == ":memory:":
        yield  # a private database: no other process can write it
        return
    fd = os.open(lock_path(database, name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing releases the lock
