"""Every writer of one list's entries takes the list's lock (issue 16): `import`, `remove`,
the expiry sweep and an objection's withdrawal. An import racing a removal of the same list in
another process ends as one of the two orders, never a mix, and the log verifies."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import and_, select

from adapters.samples import generate_rows, write_csv
from node.api import feeds
from node.feeds.dates import shanghai_today
from node.feeds.expiry import expire_own
from node.feeds.importer import OWN
from node.feeds.logstore import LEAVES, read_cursor
from node.feeds.publisher import Event
from node.feeds.state import STATE
from node.storage import Store
from node.storage.locks import list_lock
from tests.conftest import DbUrlFactory, FederationFactory
from tests.feedutil import org_entry
from tests.test_concurrent_writers import PROCUREMENT, ca, cli, database_of, init, ok

__all__ = ["ca"]  # the fixture, used by name


async def test_the_expiry_sweep_waits_for_the_list_and_reads_it_again(
    federation: FederationFactory,
) -> None:
    """An entry past its end whose end an import extends while the sweep waits for the list:
    the sweep, once it has the lock, finds nothing due and removes nothing."""
    fed = await federation(1, subscribe=False)
    jinan = next(iter(fed.nodes.values()))
    today = shanghai_today()
    entry = org_entry(1)
    entry.disclosure_end = (today - dt.timedelta(days=1)).isoformat()
    eid = uuid.uuid4().hex
    await jinan.publisher.append([Event(eid, feeds.EVENT_TYPE_ADD, entry)])
    extended = feeds.ListEntry()
    extended.CopyFrom(entry)
    extended.disclosure_end = (today + dt.timedelta(days=365)).isoformat()
    async with list_lock(jinan.store, entry.list_name):  # an import of the list under way
        sweep = asyncio.create_task(expire_own(jinan.publisher, today))
        await asyncio.sleep(0.3)  # room for the sweep to run, were it not to wait
        assert not sweep.done()
        await jinan.publisher.append([Event(eid, feeds.EVENT_TYPE_UPDATE, extended)])
    assert await sweep == 0
    async with jinan.store.engine.connect() as conn:
        status = await conn.scalar(
            select(STATE.c.status).where(
                and_(STATE.c.log_id == jinan.publisher.log.log_id, STATE.c.entry_id == eid)
            )
        )
    assert status == feeds.ENTRY_STATUS_ACTIVE


async def _leaves(url: str, origin: str) -> list[feeds.LeafEntry]:
    async with Store.opened(url) as store, store.engine.connect() as conn:
        cursor = await read_cursor(conn, origin)
        assert cursor is not None
        rows = await conn.execute(
            select(LEAVES.c.data).where(LEAVES.c.log_id == cursor.log_id).order_by(LEAVES.c.idx)
        )
        return [feeds.LeafEntry.FromString(bytes(d)) for (d,) in rows]


async def _uscc_of(url: str, entry_id: str) -> str:
    async with Store.opened(url) as store, store.engine.connect() as conn:
        return str(await conn.scalar(select(STATE.c.uscc).where(STATE.c.entry_id == entry_id)))


async def _own_and_state(url: str, origin: str) -> tuple[dict[str, bool], dict[str, int]]:
    """Each own entry's ``active`` flag, and its status in the log's state."""
    async with Store.opened(url) as store, store.engine.connect() as conn:
        cursor = await read_cursor(conn, origin)
        assert cursor is not None
        own = {r.entry_id: bool(r.active) for r in await conn.execute(select(OWN))}
        state = {
            r.entry_id: int(r.status)
            for r in await conn.execute(
                select(STATE.c.entry_id, STATE.c.status).where(STATE.c.log_id == cursor.log_id)
            )
        }
    return own, state


@pytest.mark.timeout(300)
async def test_an_import_and_a_removal_of_one_list_at_once(
    tmp_path: Path, ca: Path, new_database: DbUrlFactory
) -> None:
    database = await new_database("jinan")
    home = await init(tmp_path, "jinan", "370100", database)
    url = database_of(home, database)
    origin = "creditnode://yellow-river/jinan"
    today = shanghai_today()
    rows = list(
        generate_rows(
            300, seed=5, list_name=PROCUREMENT, list_type="black", region="370100", today=today
        )
    )
    write_csv(tmp_path / "a.csv", rows)
    await ok(
        "import", "--home", str(home), "--list", "procurement-serious", str(tmp_path / "a.csv")
    )
    target = next(
        r["统一社会信用代码"]
        for r in rows
        if len(r["统一社会信用代码"]) == 18 and r["公示截止日期"] >= today.isoformat()
    )
    # Every row changed: the import UPDATEs every entry, the target's among them.
    for r in rows:
        r["列入原因"] += "（更正）"
    write_csv(tmp_path / "b.csv", rows)
    before = len(await _leaves(url, origin))
    n = sum((await _own_and_state(url, origin))[0].values())  # entries the import updates

    b = str(tmp_path / "b.csv")
    (import_code, _, import_err), (remove_code, _, remove_err) = await asyncio.gather(
        cli("import", "--home", str(home), "--list", "procurement-serious", b),
        cli(
            "remove", "--home", str(home), "--list", "procurement-serious", "--uscc", target,
            "--reason", "revocation", "--date", today.isoformat(), "--doc", "撤〔2026〕1号",
            "--yes",
        ),
    )  # fmt: skip
    assert import_code == 0, import_err
    assert "Traceback" not in import_err + remove_err
    leaves = await _leaves(url, origin)
    new = leaves[before:]
    removes = [leaf for leaf in new if leaf.event == feeds.EVENT_TYPE_REMOVE]
    active = n
    if remove_code == 0:
        # Removed before the import (which lists the organisation again, as a new entry) or
        # after it (removing the corrected entry): either way once, by one REMOVE.
        [gone] = removes
        assert gone.removal_reason == feeds.REMOVAL_REASON_REVOCATION
        position = new.index(gone)
        updates = [leaf for leaf in new if leaf.event == feeds.EVENT_TYPE_UPDATE]
        readded = [leaf for leaf in new if leaf.event == feeds.EVENT_TYPE_ADD]
        if position == 0:  # the removal first
            [again] = readded
            assert len(updates) == n - 1 and await _uscc_of(url, again.entry_id) == target
        else:  # the import first, whole
            assert position == len(new) - 1 and len(updates) == n and not readded
            active = n - 1
    else:
        # Its entry changed between showing it and removing it: nothing removed, one line.
        lines = [line for line in remove_err.splitlines() if line.strip()]
        assert remove_code == 2 and len(lines) == 1, remove_err
        assert "changed meanwhile" in lines[0] and not removes
        assert sum(leaf.event == feeds.EVENT_TYPE_UPDATE for leaf in new) == n
    # The import's UPDATEs and the REMOVE never interleave: no leaf follows an entry's REMOVE.
    removed_at: dict[str, int] = {}
    for i, leaf in enumerate(leaves):
        assert leaf.entry_id not in removed_at, f"leaf {i} changes a removed entry"
        if leaf.event == feeds.EVENT_TYPE_REMOVE:
            removed_at[leaf.entry_id] = i
    # This node's own rows agree with its log.
    own, state = await _own_and_state(url, origin)
    assert own == {eid: state[eid] == feeds.ENTRY_STATUS_ACTIVE for eid in own}
    assert sum(own.values()) == active
    await ok("verify", "--home", str(home))
