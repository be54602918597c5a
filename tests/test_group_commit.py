"""The audit log's group-commit writer (issue 17): concurrent records share one transaction on
the writer's own connection, each caller returns only once its record is readable by another
connection, a failed commit fails its whole group with nothing written, and indexes follow
the order records were accepted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from keys import SigningKey
from node.audit.entry import AuditEntry, now_us, parse_entry, uuid7
from node.audit.log import AuditLog, verify_audit_log
from node.feeds.logstore import LEAVES, LOGS, LogStore, StaleCursor
from node.storage import Store
from node.storage.reader import Reader
from node.storage.writer import Insert, Statement, Update, Writer

URI = "creditnode://yellow-river/jinan"


def entry(n: int = 0) -> AuditEntry:
    return AuditEntry(
        exchange=uuid7(), at_us=now_us(), direction="in", kind="query", outcome="hit",
        peer="lanzhou", purpose="enforcement", seq=n,
    )  # fmt: skip


@pytest.fixture
async def other(store: Store) -> AsyncIterator[Reader]:
    """A separate connection on the same database: it sees committed rows only."""
    r = Reader.of(store)
    try:
        yield r
    finally:
        await r.close()


async def visible(reader: Reader, idx: int) -> bool:
    rows = await reader.fetch("SELECT count(*) FROM audit_entries WHERE idx = ?", [idx])
    leaves = await reader.fetch(
        "SELECT count(*) FROM log_leaves l JOIN logs g ON g.id = l.log_id "
        "WHERE g.origin = ? AND l.idx = ?",
        [URI + "/audit", idx],
    )
    return bool(rows[0][0] == 1 and leaves[0][0] == 1)


class Spy:
    """Counts the writer's transactions and the audit rows in each; holds the first one until
    released, so the records arriving meanwhile queue for the next."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> None:
        self.groups: list[int] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = fail
        real = Writer.commit
        spy = self

        async def commit(writer: Writer, statements: Sequence[Statement]) -> None:
            rows = [
                s for s in statements if isinstance(s, Insert) and s.table.name == "audit_entries"
            ]
            spy.groups.append(sum(len(s.rows) for s in rows))
            spy.started.set()
            if len(spy.groups) == 1:
                await spy.release.wait()
            if spy.fail:
                raise OSError("disk full")
            await real(writer, statements)

        monkeypatch.setattr(Writer, "commit", commit)


async def test_concurrent_records_share_one_commit_and_return_once_readable(
    store: Store, other: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey.generate(URI)
    log = await AuditLog.open(store, URI, key)
    spy = Spy(monkeypatch)
    seen: dict[int, bool] = {}

    async def one(e: AuditEntry) -> int:
        idx = await log.record(e)
        seen[idx] = await visible(other, idx)  # checked the moment the caller resumes
        return idx

    first = asyncio.create_task(one(entry()))
    await spy.started.wait()  # the first record's transaction has begun (and is held)
    rest = [asyncio.create_task(one(entry(n))) for n in range(1, 21)]
    await asyncio.sleep(0)  # each of them runs up to its wait
    assert len(log._pending) == 20
    assert not any(t.done() for t in [first, *rest])  # nobody returns before its commit
    assert not await visible(other, 0)
    spy.release.set()
    await asyncio.gather(first, *rest)
    assert spy.groups == [1, 20]  # the twenty waiting records: one transaction
    assert seen == dict.fromkeys(range(21), True)
    await log.close()
    assert await verify_audit_log(store, URI, key.verifying_key) == []


async def test_a_failed_commit_fails_its_whole_group_and_writes_nothing(
    store: Store, other: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await AuditLog.open(store, URI, SigningKey.generate(URI))
    assert await log.record(entry()) == 0
    spy = Spy(monkeypatch, fail=True)
    sent: list[int] = []

    async def one(e: AuditEntry) -> None:
        await log.record(e)
        sent.append(1)  # what a border would do next: send the answer

    tasks = [asyncio.create_task(one(entry(n))) for n in range(1, 6)]
    await spy.started.wait()
    spy.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results) and sent == []
    assert not await visible(other, 1)
    monkeypatch.undo()
    assert await log.record(entry()) == 1  # the tree did not move: nothing half-written
    await log.close()


async def test_indexes_follow_the_order_records_were_accepted(store: Store) -> None:
    log = await AuditLog.open(store, URI, SigningKey.generate(URI))
    made = [entry(n) for n in range(30)]
    tasks = [asyncio.create_task(log.record(e)) for e in made]
    indexes = await asyncio.gather(*tasks)
    assert indexes == list(range(30))
    leaves = await log.log.read_leaves(0, 30)
    assert [parse_entry(d) for d in leaves] == made
    await log.close()


async def test_the_writer_stores_rows_exactly_as_the_engine_does(store: Store) -> None:
    """The same entry through the writer and through the engine's path (an in-memory-style
    fallback) gives identical ``audit_entries`` rows bar the index and exchange."""
    log = await AuditLog.open(store, URI, SigningKey.generate(URI))
    e = entry()
    await log.record(e)
    log._writer, log._writer_made = None, True  # the engine's path from here on
    await log.record(e.replace(exchange=uuid7()))
    async with store.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT * FROM audit_entries ORDER BY idx")).all()
    a, b = (tuple(r) for r in rows)
    assert a[0] == 0 and b[0] == 1
    assert a[2:] == b[2:]
    await log.close()


async def test_an_update_matching_nothing_fails_the_commit_and_none_of_its_rows_are_written(
    store: Store, other: Reader
) -> None:
    """The cursor's compare-and-swap: on PostgreSQL the transaction is one statement whose
    inserts wait on the update's count, on SQLite a transaction rolled back."""
    log = await LogStore.open(store, URI)
    writer = Writer.of(store)
    assert writer is not None
    leaf = Insert(LEAVES, ("log_id", "idx", "data"), [(log.log_id, 0, b"leaf")])
    leaves = "SELECT idx FROM log_leaves WHERE log_id = ?"
    sizes = "SELECT size FROM logs WHERE id = ?"

    def moved(past: int) -> Update:
        return Update(LOGS, {"size": 1}, {"id": log.log_id, "size": past}, StaleCursor("moved"))

    try:
        with pytest.raises(StaleCursor):
            await writer.commit([moved(past=5), leaf])  # the log is at 0, not 5
        assert await other.fetch(leaves, [log.log_id]) == []
        assert await other.fetch(sizes, [log.log_id]) == [(0,)]
        await writer.commit([moved(past=0), leaf])
        assert await other.fetch(leaves, [log.log_id]) == [(0,)]
        assert await other.fetch(sizes, [log.log_id]) == [(1,)]
        if store.backend == "postgresql":  # a second update could not be undone: refused
            with pytest.raises(ValueError, match="at most one update"):
                await writer.commit([moved(past=1), moved(past=1)])
            assert await other.fetch(sizes, [log.log_id]) == [(1,)]
    finally:
        await writer.close()
