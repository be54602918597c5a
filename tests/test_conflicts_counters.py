"""Issue 17: conflicts found from indexes and active counts kept by apply_leaves give the same
answers as the scans they replace, and neither scans list_state at 100k rows."""

from __future__ import annotations

import datetime as dt
import random
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, event, func, insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement

from node.api import feeds
from node.cli.status import feed_rows
from node.feeds import counts, measures_store
from node.feeds.dates import shanghai_today
from node.feeds.expiry import purge_mirrors
from node.feeds.logstore import LOGS
from node.feeds.publisher import Event
from node.feeds.state import STATE, active
from node.identity.codes import org_code_check_char, uscc_check_char
from node.identity.registry import (
    candidate_queries,
    find_conflicts,
    find_conflicts_scan,
    load_crosswalk,
)
from node.storage import Store, dialect
from node.storage.models import utcnow
from tests.conftest import FederationFactory
from tests.feedutil import org_entry, wait_mirrored

ROWS = 100_000


def make_uscc(body: str, region: str = "370100", head: str = "91") -> str:
    first17 = head + region + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


PLANTED = make_uscc("MA3C8QAB")  # one code under many names in the 100k rows

# Spelling variants that normalise alike, and names that do not: brackets, widths, spaces,
# 有限责任公司, trailing punctuation, case, a name that normalises to nothing, no name.
TRICKY = [
    "济南示例科技有限公司", "济南示例科技有限责任公司", "济南 示例科技有限公司。",
    "济南示例科技（有限公司）", "济南示例科技(有限公司)", "ＡＢＣ贸易有限公司", "abc贸易有限公司",
    "ABC 贸易 有限公司", "。", "", "太原完全不同贸易有限公司", "阿里·巴巴", "阿里・巴巴",
    "华为【深圳】", "华为[深圳]", "x" * 300,
]  # fmt: skip


def _codes(rng: random.Random) -> list[str]:
    bodies = [f"MA{rng.randrange(10**6):06d}" for _ in range(6)]
    good = [make_uscc(b) for b in bodies]
    same_org = [make_uscc(bodies[0], region="140100"), make_uscc(bodies[1], head="92")]
    bad = [c[:17] + ("0" if c[17] != "0" else "1") for c in good[:2]]  # 重错码
    return [*good, *same_org, *bad, "91370100MA3C8QAB", "short", "", good[2].lower()]


def _events(rng: random.Random, codes: list[str], n: int) -> list[Event]:
    today = shanghai_today()
    ends = ["", (today - dt.timedelta(days=1)).isoformat(), today.isoformat(), "2029-01-15"]
    out = []
    for i in range(n):
        entry = org_entry(i, list_name=rng.choice(["失信联合惩戒对象名单", "重点关注名单"]))
        entry.uscc, entry.subject_name = rng.choice(codes), rng.choice(TRICKY)
        entry.disclosure_end = rng.choice(ends)
        out.append(Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry))
    return out


async def _direct_active(conn: AsyncConnection) -> dict[int, int]:
    rows = await conn.execute(
        select(STATE.c.log_id, func.count()).where(active(shanghai_today())).group_by("log_id")
    )
    return {int(a): int(n) for a, n in rows}


async def test_conflicts_and_counts_equal_the_scans_on_a_federation(
    federation: FederationFactory, tmp_path: Path
) -> None:
    rng = random.Random(17)
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    codes = _codes(rng)
    for node in (jinan, lanzhou):
        events = _events(rng, codes, 60)
        await node.publisher.append(events)
        changed = []
        for ev in rng.sample(events, 15):  # renames, moves and removals of earlier entries
            entry = org_entry(0)
            entry.CopyFrom(ev.entry)
            entry.subject_name, entry.uscc = rng.choice(TRICKY), rng.choice(codes)
            entry.disclosure_end = rng.choice(["", "2029-01-15"])
            changed.append(Event(ev.entry_id, feeds.EVENT_TYPE_UPDATE, entry))
        for ev in rng.sample(events, 10):
            changed.append(
                Event(ev.entry_id, feeds.EVENT_TYPE_REMOVE, ev.entry, feeds.REMOVAL_REASON_REPAIR)
            )
        await node.publisher.append(changed)
    # Crosswalk: one organisation code mapped to two USCCs, and one mapped to a USCC other
    # than those embedding it.
    sheet = tmp_path / "crosswalk.csv"
    sheet.write_text(
        "组织机构代码,统一社会信用代码\n"
        f"{codes[5][8:17]},{codes[0]}\n{codes[5][8:17]},{codes[1]}\n{codes[3][8:17]},{codes[4]}\n",
        encoding="utf-8",
    )
    assert await load_crosswalk(lanzhou.store, sheet) == (3, [])
    for node, origin in ((jinan, lanzhou), (lanzhou, jinan)):
        await wait_mirrored(node, origin, origin.publisher.log.frontier.size)
    future = shanghai_today() + dt.timedelta(days=400)
    for step in ("synced", "purged"):
        for node in (jinan, lanzhou):
            new = await find_conflicts(node.store, node.name)
            assert new == await find_conflicts_scan(node.store, node.name), (step, node.name)
            assert {c.kind for c in new} == {"names", "legacy", "invalid_code"}
            async with node.store.engine.connect() as conn:
                assert await counts.stored(conn) == await counts.recount(conn)
                direct = await _direct_active(conn)
            shown = {r["origin"]: r["active"] for r in await feed_rows(node.store)}
            async with node.store.engine.connect() as conn:
                ids = {o: i for o, i in await conn.execute(select(LOGS.c.origin, LOGS.c.id))}
            assert {o: direct.get(ids[o], 0) for o in shown} == shown
            assert sum(int(str(n)) for n in shown.values()) > 0
        if step == "synced":  # purge peers' bodies as if 400 days had passed: counters follow
            assert await purge_mirrors(jinan.store, future) > 0
            assert await purge_mirrors(lanzhou.store, future) > 0


# -- 100k rows: structural "does not scan" checks ---------------------------------------------


async def _fill(store: Store, rows: int = ROWS) -> None:
    """*rows* list_state rows over an own log and a peer's, with a few planted conflicts; the
    counters as the migration builds them, the candidates as apply_leaves records them."""
    rng = random.Random(1)
    today = shanghai_today()
    async with store.begin() as conn:
        for origin, peer in (("own", None), ("peer", "p")):
            await conn.execute(
                insert(LOGS).values(origin=origin, peer=peer, size=rows, root=b"",
                                    checkpoint_size=0, checkpoint_note=b"", state="ok",
                                    state_detail="", updated_at=utcnow())
            )  # fmt: skip
        ids = {o: i for o, i in await conn.execute(select(LOGS.c.origin, LOGS.c.id))}
        batch: list[tuple[Any, ...]] = []
        written: list[tuple[Any, ...]] = []
        for i in range(rows):
            log_id = ids["own"] if i % 2 else ids["peer"]
            planted = i % 1000 == 3  # on the own log, listed
            uscc = PLANTED if planted else make_uscc(f"{i:08d}")
            name = f"冲突名称{i}" if planted else f"示例商贸有限公司{i}"
            if i % 5000 == 8:  # on the peer's log
                uscc = uscc[:17] + ("0" if uscc[17] != "0" else "1")  # a 重错码
            elif i % 5000 == 9:
                uscc = make_uscc(f"{i - 2:08d}", region="140100")  # shares an org code
            end = (today + dt.timedelta(days=rng.randrange(-200, 300))).isoformat()
            batch.append((
                log_id, uuid.uuid4().hex, f"list{i % 3}", 1, 2, name, uscc,
                feeds.ENTRY_STATUS_ACTIVE if i % 10 else feeds.ENTRY_STATUS_REMOVED, 0,
                "2026-01-01", 1, end, i, b"body", "", b"salt", counts.name_norm_of(name),
                int(log_id == ids["peer"] and counts.suspect_code(uscc)),
            ))  # fmt: skip
            if len(batch) == 10_000 or i == rows - 1:
                await dialect.bulk_insert(conn, STATE, _COLUMNS, batch)
                written.extend(batch)
                batch.clear()
        await conn.execute(
            text(
                "INSERT INTO list_counts (log_id, list_name, disclosure_end, n)"
                " SELECT log_id, list_name, disclosure_end, count(*) FROM list_state"
                " WHERE status = 1 AND length(entry) > 0"
                " GROUP BY log_id, list_name, disclosure_end"
            )
        )
    async with store.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    async with store.begin() as conn:  # as apply_leaves records them, once the planner knows
        for i in range(0, len(written), 10_000):
            chunk = written[i : i + 10_000]
            await counts.note_candidates(conn, *counts.written_codes(chunk, _COLUMNS))


_COLUMNS = (
    "log_id", "entry_id", "list_name", "list_type", "subject_type", "subject_name", "uscc",
    "status", "removal_reason", "listing_date", "severity", "disclosure_end", "last_idx", "entry",
    "list_code", "body_salt", "name_norm", "code_suspect",
)  # fmt: skip


def _sql(conn: AsyncConnection, stmt: ClauseElement) -> str:
    return str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


async def _plan(conn: AsyncConnection, sql: str, params: Any = ()) -> list[str]:
    if conn.dialect.name == "sqlite":
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
        return [str(r[-1]) for r in rows]  # (id, parent, notused, detail)
    rows = await conn.exec_driver_sql("EXPLAIN " + sql, params)
    return [str(r[0]) for r in rows]


def _no_table_scan(plan: Sequence[str], backend: str) -> None:
    """list_state is only searched by an index, or read through the partial suspect index."""
    if backend == "sqlite":
        for line in plan:
            if "list_state" in line:
                assert line.startswith("SEARCH") or line.endswith(
                    "USING INDEX ix_list_state_suspect"
                ), plan
    else:
        joined = "\n".join(plan)
        assert "Seq Scan on list_state" not in joined, joined
        assert "list_state" not in joined or "Index" in joined, joined


@pytest.fixture
async def big(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url)
    try:
        await _fill(store)
        yield store
    finally:
        await store.close()


async def test_find_conflicts_reads_only_candidates_at_100k(big: Store) -> None:
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    event.listen(big.engine.sync_engine, "before_cursor_execute", record)
    try:
        found = await find_conflicts(big, "own")
    finally:
        event.remove(big.engine.sync_engine, "before_cursor_execute", record)
    assert found == await find_conflicts_scan(big, "own")
    kinds = {(c.kind, c.key) for c in found}
    assert ("names", PLANTED) in kinds
    assert {k for k, _ in kinds} == {"names", "legacy", "invalid_code"}
    reads = [(sql, p) for sql, p in seen if "list_state" in sql]
    assert reads
    async with big.engine.connect() as conn:
        with pytest.raises(AssertionError):  # the check tells a scan apart
            _no_table_scan(await _plan(conn, _sql(conn, _scan_names())), big.backend)
        for sql, params in reads:
            _no_table_scan(await _plan(conn, sql, params), big.backend)
        if big.backend == "sqlite":
            steps = sum([await _vm_steps(conn, sql, params) for sql, params in reads])
            scan = await _vm_steps(conn, _sql(conn, _scan_names()))
            assert scan > 10 * ROWS  # the measure sees a scan; find_conflicts is far below one
            assert steps * 50 < scan, (steps, scan)
        cands = {
            (str(r[0]), str(r[-1])) for r in await conn.execute(candidate_queries()["candidates"])
        }
    assert ("uscc", PLANTED) in cands and len(cands) < 100


def _scan_names() -> Select[Any]:
    return select(STATE.c.subject_name, STATE.c.uscc).where(active(shanghai_today()))


async def test_status_counts_read_the_counters_not_list_state_at_100k(big: Store) -> None:
    today = shanghai_today()
    async with big.engine.connect() as conn:
        plan = await _plan(conn, _sql(conn, counts.active_per_log(today)))
        assert not any("list_state" in line for line in plan), plan
        expected = await _direct_active(conn)
        got = {int(r[0]): int(r[1]) for r in await conn.execute(counts.active_per_log(today))}
        assert got == expected
        if big.backend == "sqlite":
            visits = await _vm_steps(conn, _sql(conn, counts.active_per_log(today)))
            scan = await _vm_steps(
                conn,
                _sql(
                    conn,
                    select(STATE.c.log_id, func.count()).where(active(today)).group_by("log_id"),
                ),
            )
            # The measure sees a scan; the counters (a bucket per list and day, 3,000 here)
            # cost a small fraction of one, and do not grow with the entries.
            assert scan > 10 * ROWS
            assert visits * 20 < scan
    shown = {r["origin"]: r["active"] for r in await feed_rows(big)}
    assert sorted(int(str(n)) for n in shown.values()) == sorted(expected.values())


async def _vm_steps(conn: AsyncConnection, sql: str, params: Any = ()) -> int:
    """SQLite virtual-machine steps to answer *sql*, counted by a progress handler."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    await driver.set_progress_handler(tick, 10)
    try:
        (await conn.exec_driver_sql(sql, params)).all()
    finally:
        await driver.set_progress_handler(None, 10)
    return steps[0] * 10


def test_counter_deltas_move_rows_between_buckets() -> None:
    prior: dict[str, counts.CountKey | None] = {"a": ("l", "2026-01-01"), "b": None, "c": ("l", "")}
    new = [("a", ("l", "2027-01-01")), ("b", ("l", "")), ("c", None), ("d", ("m", ""))]
    got = counts.deltas(prior, new)
    assert dict(got) == {
        ("l", "2026-01-01"): -1, ("l", "2027-01-01"): 1, ("l", ""): 0, ("m", ""): 1,
    }  # fmt: skip
    assert counts.count_key(feeds.ENTRY_STATUS_REMOVED, True, "l", "") is None
    assert counts.count_key(feeds.ENTRY_STATUS_ACTIVE, False, "l", "") is None
    assert counts.name_norm_of("") is None and counts.name_norm_of("。") == ""
    assert counts.suspect_code(make_uscc("MA3C8QAB")) is False
    assert counts.suspect_code("short") is True and counts.suspect_code("") is False


# -- migrations 0020 and 0025: backfill and downgrade---------------------------------------------


def _to(revision: str, down: bool = False) -> Any:
    def run(conn: Any) -> None:
        from alembic import command
        from alembic.config import Config

        from node.storage._store import MIGRATIONS

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)

    return run


async def _own_and_peer_logs(conn: AsyncConnection) -> dict[str, int]:
    """An own log and a peer's, in raw SQL (any schema revision): origin -> log id."""
    for origin, peer in (("own", None), ("peer", "p")):
        await conn.execute(
            text(
                "INSERT INTO logs (origin, peer, size, root, checkpoint_size,"
                " checkpoint_note, state, state_detail, updated_at)"
                " VALUES (:o, :p, 0, :r, 0, :r, 'ok', '', :t)"
            ),
            {"o": origin, "p": peer, "r": b"", "t": utcnow()},
        )
    return {o: i for o, i in await conn.execute(text("SELECT origin, id FROM logs"))}


async def test_migration_0020_backfills_names_flags_counters_and_candidates(db_url: str) -> None:
    store = await Store.open(db_url, migrate=False)
    engine = store.engine
    good, other = make_uscc("MA3C8QAB"), make_uscc("MA3C8QAB", region="140100")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to("0019"))
            ids = await _own_and_peer_logs(conn)
            rows = [  # (log, entry, name, uscc, status, body, end)
                ("own", "e1", "济南示例科技有限公司", good, 1, b"x", ""),
                ("peer", "e2", "济南示例科技（有限责任公司）", good, 1, b"x", "2099-01-01"),
                ("peer", "e3", "完全不同", good, 1, b"x", "2099-01-01"),
                ("peer", "e4", "错码", bad, 1, b"x", ""),
                ("own", "e5", "另一家", other, 1, b"x", "2000-01-01"),
                ("peer", "e6", "", "", 2, b"", ""),
            ]
            for log, entry, name, uscc, status, body, end in rows:
                await conn.execute(
                    text(
                        "INSERT INTO list_state (log_id, entry_id, list_name, list_type,"
                        " subject_type, subject_name, uscc, status, removal_reason, listing_date,"
                        " severity, disclosure_end, last_idx, entry, list_code)"
                        " VALUES (:l, :e, 'L', 1, 2, :n, :u, :s, 0, '', 1, :d, 0, :b, '')"
                    ),
                    {"l": ids[log], "e": entry, "n": name, "u": uscc, "s": status, "b": body,
                     "d": end},
                )  # fmt: skip
            await conn.run_sync(_to("0020"))
        async with engine.connect() as conn:
            got = {
                e: (n, s)
                for e, n, s in await conn.execute(
                    text("SELECT entry_id, name_norm, code_suspect FROM list_state")
                )
            }
            assert got == {
                "e1": ("济南示例科技有限公司", 0),
                "e2": ("济南示例科技(有限公司)", 0),
                "e3": ("完全不同", 0),
                "e4": ("错码", 1),  # a peer's failing code
                "e5": ("另一家", 0),
                "e6": (None, 0),
            }
            assert await counts.stored(conn) == await counts.recount(conn)
            assert await counts.stored(conn) == {
                (ids["own"], "L", ""): 1,
                (ids["peer"], "L", "2099-01-01"): 2,
                (ids["peer"], "L", ""): 1,
                (ids["own"], "L", "2000-01-01"): 1,
            }
            cands = {(str(r[0]), str(r[1])) for r in await conn.execute(text(
                "SELECT kind, key FROM conflict_candidates"))}  # fmt: skip
            assert cands == {("uscc", good), ("code", good[8:17])}
        assert await find_conflicts(store, "own") == await find_conflicts_scan(store, "own")
        async with engine.begin() as conn:
            await conn.run_sync(_to("0019", down=True))
            cols = await conn.execute(select(text("*")).select_from(text("list_state")).limit(1))
            names = set(cols.keys())
            assert "name_norm" not in names and "code_suspect" not in names and "uscc" in names
    finally:
        await store.close()


async def test_migration_0025_records_the_catalogues_held_bodies_cite(db_url: str) -> None:
    store = await Store.open(db_url, migrate=False)
    engine = store.engine
    a, b = "a" * 64, "b" * 64

    def body(digest: str) -> bytes:
        entry = feeds.ListEntry(list_code="GP-BAN")
        entry.measures_catalogue.sha256 = digest
        return entry.SerializeToString()

    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to("0024"))
            ids = await _own_and_peer_logs(conn)
            rows = [  # (log, entry, body)
                ("own", "e1", body(a)),
                ("own", "e2", body(a)),
                ("peer", "e3", body(b)),
                ("peer", "e4", body("not a digest")),  # cites nothing usable
                ("peer", "e5", feeds.ListEntry(list_code="X").SerializeToString()),  # none
                ("peer", "e6", b""),  # removed: no body held
            ]
            for log, entry, data in rows:
                await conn.execute(
                    text(
                        "INSERT INTO list_state (log_id, entry_id, list_name, list_type,"
                        " subject_type, subject_name, uscc, status, removal_reason, listing_date,"
                        " severity, disclosure_end, last_idx, entry, list_code)"
                        " VALUES (:l, :e, 'L', 1, 2, '', '', 1, 0, '', 1, '', 0, :b, '')"
                    ),
                    {"l": ids[log], "e": entry, "b": data},
                )
            await conn.run_sync(_to("0025"))
        async with engine.connect() as conn:
            assert await measures_store.cited(conn, ids["own"]) == {a}
            assert await measures_store.cited(conn, ids["peer"]) == {b}
        async with engine.begin() as conn:
            await conn.run_sync(_to("0024", down=True))
            tables = await conn.run_sync(lambda c: sa_inspect(c).get_table_names())
            assert "measures_cited" not in tables and "list_state" in tables
    finally:
        await store.close()


async def test_migration_0026_drops_the_uscc_index_and_its_downgrade_restores_it(
    db_url: str,
) -> None:
    store = await Store.open(db_url)  # at head: 0026 applied

    def names(conn: Any) -> set[str]:
        with warnings.catch_warnings():  # SQLite skips the expression index
            warnings.simplefilter("ignore", SAWarning)
            return {str(i["name"]) for i in sa_inspect(conn).get_indexes("list_state")}

    try:
        async with store.engine.begin() as conn:
            assert "ix_list_state_uscc" not in await conn.run_sync(names)
            await conn.run_sync(_to("0025", down=True))
            assert "ix_list_state_uscc" in await conn.run_sync(names)
            await conn.run_sync(_to("0026"))
            assert "ix_list_state_uscc" not in await conn.run_sync(names)
    finally:
        await store.close()
