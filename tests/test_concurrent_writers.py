"""Concurrent writers on one home (issue 16): two `creditnode import` processes, or two
`creditnode sync` processes, at the same time both succeed, and the logs they leave verify."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.samples import generate_rows, write_csv
from keys import FederationCA, SigningKey
from node.feeds import publisher
from node.feeds.importer import IMPORTS
from node.feeds.logstore import LEAVES, Cursor, LogStore, StaleCursor, read_cursor
from node.feeds.state import STATE
from node.storage import Store
from node.storage.locks import exclusive
from tests.conftest import DbUrlFactory
from tests.feedutil import adds

CLI = [sys.executable, "-m", "node.cli"]
PROCUREMENT = "政府采购严重违法失信行为记录名单"
TAX = "重大税收违法失信主体名单"


async def cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(*argv: str) -> str:
    code, out, err = await cli(*argv)
    assert code == 0, (argv, out, err)
    assert "Traceback" not in err
    return out


def sample(path: Path, n: int, name: str, seed: int) -> Path:
    rows = generate_rows(
        n, seed=seed, list_name=name, list_type="black", region="370100", today=dt.date.today()
    )
    write_csv(path, rows)
    return path


async def init(tmp_path: Path, name: str, region: str, database: str | None) -> Path:
    home = tmp_path / name
    await ok(
        "init", "--home", str(home), "--name", name, "--region", region,
        "--ca", str(tmp_path / "ca"), "--listen", f"127.0.0.1:{free_port()}",
        *(["--database", database] if database else []),
    )  # fmt: skip
    return home


def database_of(home: Path, database: str | None) -> str:
    return database or f"sqlite:///{home / 'node.db'}"


async def own_counts(url: str, origin: str, list_name: str) -> tuple[int, int, int]:
    """(log size, leaves stored, active entries of *list_name*) of *origin*'s log."""
    async with Store.opened(url) as store, store.engine.connect() as conn:
        cursor = await read_cursor(conn, origin)
        assert cursor is not None
        leaves = (
            await conn.execute(
                select(func.count()).select_from(LEAVES).where(LEAVES.c.log_id == cursor.log_id)
            )
        ).scalar_one()
        active = (
            await conn.execute(
                select(func.count())
                .select_from(STATE)
                .where(
                    and_(
                        STATE.c.log_id == cursor.log_id,
                        STATE.c.list_name == list_name,
                        STATE.c.status == 1,
                    )
                )
            )
        ).scalar_one()
    return cursor.size, int(leaves), int(active)


async def test_the_loser_of_an_append_race_sees_a_stale_cursor(db_url: str) -> None:
    """Two writers of one log at the same size (as two processes would be): the second fails
    on the cursor's compare-and-swap, before any leaf, and lands after reloading."""
    async with Store.opened(db_url) as store:
        first = await LogStore.open(store, "creditnode://t/x")
        second = await LogStore.open(store, "creditnode://t/x")  # the same row, not a second
        assert first.log_id == second.log_id
        a, b = first.prepare([b"a1", b"a2"]), second.prepare([b"b1"])
        async with store.begin() as conn:
            await first.write(conn, a)
        first.committed(a)
        with pytest.raises(StaleCursor):
            async with store.begin() as conn:
                await second.write(conn, b)
        await second.reload()
        b = second.prepare([b"b1"])
        async with store.begin() as conn:
            await second.write(conn, b)
        second.committed(b)
        assert await second.read_leaves(0, 3) == [b"a1", b"a2", b"b1"]
        await first.reload()
        assert first.cursor.root == second.cursor.root and first.cursor.size == 3


async def test_a_named_lock_queues_the_second_holder(db_url: str) -> None:
    """Each holder on its own connection or file handle, as in two processes."""
    async with Store.opened(db_url) as store:
        order: list[str] = []
        inside = asyncio.Event()

        async def hold(name: str) -> None:
            async with exclusive(store, "list 政府采购"):
                order.append(f"{name} in")
                inside.set()
                await asyncio.sleep(0.3)
                order.append(f"{name} out")

        first = asyncio.create_task(hold("first"))
        await inside.wait()
        await asyncio.gather(hold("second"), first)
        assert order == ["first in", "first out", "second in", "second out"]
        # Other names do not wait for each other.
        async with exclusive(store, "another list"), exclusive(store, "a third"):
            pass


@pytest.fixture
async def ca(tmp_path: Path) -> Path:
    FederationCA.create("yellow-river").save(tmp_path / "ca")
    return tmp_path / "ca"


@pytest.mark.timeout(300)
async def test_two_imports_in_parallel(
    tmp_path: Path, ca: Path, new_database: DbUrlFactory
) -> None:
    """Two lists at once (each retries on the other's appends), then one file twice at once
    (the second waits for the first and finds nothing new): both succeed every time."""
    database = await new_database("jinan")
    home = await init(tmp_path, "jinan", "370100", database)
    url = database_of(home, database)
    a = sample(tmp_path / "a.csv", 250, PROCUREMENT, seed=1)
    b = sample(tmp_path / "b.csv", 250, TAX, seed=2)

    await asyncio.gather(
        ok("import", "--home", str(home), "--list", "procurement-serious", str(a)),
        ok("import", "--home", str(home), "--list", "tax-major", str(b)),
    )
    origin = "creditnode://yellow-river/jinan"
    size, leaves, procurement = await own_counts(url, origin, PROCUREMENT)
    assert (size, leaves) == (500, 500)
    assert procurement == 250
    assert (await own_counts(url, origin, TAX))[2] == 250

    c = sample(tmp_path / "c.csv", 200, PROCUREMENT, seed=3)
    outs = await asyncio.gather(
        *(ok("import", "--home", str(home), "--list", "procurement-serious", str(c))
          for _ in range(2))
    )  # fmt: skip
    size, leaves, procurement = await own_counts(url, origin, PROCUREMENT)
    # The rows were added once: one import added them, the other found them unchanged.
    assert (size, leaves, procurement) == (700, 700, 450)
    async with Store.opened(url) as store, store.engine.connect() as conn:
        added = (await conn.execute(select(IMPORTS.c.added).order_by(IMPORTS.c.id))).scalars()
        assert sorted(added.all()[-2:]) == [0, 200], outs
    await ok("verify", "--home", str(home))


@pytest.mark.timeout(300)
async def test_two_syncs_in_parallel(tmp_path: Path, ca: Path, new_database: DbUrlFactory) -> None:
    """Two `sync` of one home against a serving origin, twice (a new mirror, then a grown
    one): both exit 0, the mirror holds the origin's log exactly once and verifies."""
    jinan_db, lanzhou_db = await new_database("jinan"), await new_database("lanzhou")
    jinan = await init(tmp_path, "jinan", "370100", jinan_db)
    lanzhou = await init(tmp_path, "lanzhou", "620100", lanzhou_db)
    for a, b in ((jinan, lanzhou), (lanzhou, jinan)):
        bundle = tmp_path / f"{a.name}.bundle.json"
        await ok("peer", "export", "--home", str(a), "--out", str(bundle))
        await ok("peer", "add", "--home", str(b), str(bundle))
    await ok(
        "import", "--home", str(jinan), "--list", "procurement-serious",
        str(sample(tmp_path / "a.csv", 400, PROCUREMENT, seed=1)),
    )  # fmt: skip
    serve = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--home", str(jinan),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_serving(jinan)
        origin = "creditnode://yellow-river/jinan"
        mirror = database_of(lanzhou, lanzhou_db)
        for more in (None, sample(tmp_path / "b.csv", 300, TAX, seed=2)):
            if more is not None:
                await ok("import", "--home", str(jinan), "--list", "tax-major", str(more))
            outs = await asyncio.gather(*(ok("sync", "--home", str(lanzhou)) for _ in range(2)))
            assert all(" ok " in o for o in outs), outs
            held = await own_counts(mirror, origin, PROCUREMENT)
            want = await own_counts(database_of(jinan, jinan_db), origin, PROCUREMENT)
            assert held == want
        assert held[0] == 700
        await ok("verify", "--home", str(lanzhou))
    finally:
        serve.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serve.wait(), 60)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_serving(home: Path) -> None:
    for _ in range(150):
        code, _, _ = await cli("status", "--home", str(home), "--timeout", "1")
        if code == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("node did not start serving")


async def test_a_serving_publisher_reads_its_row_only_when_another_writer_moved_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher's poll (twenty a second) looks at the log's two sizes on the plain
    reader; the whole row is read, and the append signed, only once another writer (here a
    second store, as another process) appended."""
    full_reads = 0
    whole_row = read_cursor

    async def counted(conn: AsyncConnection, origin: str) -> Cursor | None:
        nonlocal full_reads
        full_reads += 1
        return await whole_row(conn, origin)

    monkeypatch.setattr(publisher, "read_cursor", counted)
    origin, key = "creditnode://t/jinan", SigningKey.generate("j")
    async with Store.opened(db_url) as store, Store.opened(db_url) as elsewhere:
        serving = await publisher.Publisher.open(store, origin, key)
        run = asyncio.create_task(serving.run())
        try:
            settled, quiet = -1, 0
            for _ in range(200):  # the first signing, however slow the machine: 5 quiet polls
                await asyncio.sleep(publisher.EXTERNAL_POLL_SECONDS)
                quiet = quiet + 1 if full_reads == settled else 0
                settled = full_reads
                if quiet == 5:
                    break
            await asyncio.sleep(20 * publisher.EXTERNAL_POLL_SECONDS)
            assert full_reads == settled  # nothing moved: two sizes each time, on the reader
            other = await publisher.Publisher.open(elsewhere, origin, key)
            await other.append(adds(3))
            assert await serving.wait_newer(0, timeout=10)
            assert serving.log.frontier.size == serving.latest_size == 3
            assert full_reads > settled
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
