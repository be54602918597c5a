"""The routine reads of `status` at N list_state rows (issue 17): conflicts and active counts,
each the new way against the scan it replaces, alternately in the same run. Prints figures and
writes bench/results/routine.json (routine_postgresql.json on PostgreSQL).

    .venv/bin/python bench/routine.py [--backend sqlite|postgresql] [--sizes 10000,100000]
                                      [--million] [--rounds R]

For each size a fresh database is filled directly (an own log and a peer's, every 1000th USCC
under a second name, every 5000th a 重错码 or sharing an organisation code), with the derived
columns, counters and candidates apply_leaves keeps. Then R rounds, each timing in turn:
``find_conflicts`` (candidates), ``find_conflicts_scan`` (every active row, the old way), the
active counts from ``list_counts`` (what `status` reads) and the same counts by a scan of
list_state (the old query). Medians in ms; the answers are checked equal. Also the cost
``apply_leaves`` now pays per entry for them (µs): normalising the name and checking the code
(pure), and the counters' and candidates' statements for a batch of 1,000 new entries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench._results import write_result  # noqa: E402
from node.api import feeds  # noqa: E402
from node.feeds import counts  # noqa: E402
from node.feeds.dates import shanghai_today  # noqa: E402
from node.feeds.logstore import LOGS  # noqa: E402
from node.feeds.state import STATE, active  # noqa: E402
from node.identity.codes import org_code_check_char, uscc_check_char  # noqa: E402
from node.identity.registry import find_conflicts, find_conflicts_scan  # noqa: E402
from node.storage import Store, dialect  # noqa: E402
from node.storage.models import utcnow  # noqa: E402

COLUMNS = (
    "log_id", "entry_id", "list_name", "list_type", "subject_type", "subject_name", "uscc",
    "status", "removal_reason", "listing_date", "severity", "disclosure_end", "last_idx", "entry",
    "list_code", "body_salt", "name_norm", "code_suspect",
)  # fmt: skip
TARGETS: dict[str, tuple[str, float]] = {"conflicts_ms": ("<=", 20), "counts_ms": ("<=", 5)}


def make_uscc(body: str, region: str = "370100") -> str:
    first17 = "91" + region + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def row(i: int, ids: dict[str, int], today: dt.date, rng: random.Random) -> tuple[Any, ...]:
    log_id = ids["own"] if i % 2 else ids["peer"]
    uscc = make_uscc(f"{i // 1000 * 1000 + 3:08d}" if i % 1000 == 7 else f"{i:08d}")
    if i % 5000 == 8:
        uscc = uscc[:17] + ("0" if uscc[17] != "0" else "1")
    elif i % 5000 == 9:
        uscc = make_uscc(f"{i - 2:08d}", region="140100")
    name = f"示例商贸有限公司{i}"
    end = (today + dt.timedelta(days=rng.randrange(-365, 3 * 365))).isoformat()
    return (
        log_id, uuid.uuid4().hex, f"list{i % 3}", 1, 2, name, uscc,
        feeds.ENTRY_STATUS_ACTIVE if i % 10 else feeds.ENTRY_STATUS_REMOVED, 0, "2026-01-01", 1,
        end, i, b"body", "", b"salt", counts.name_norm_of(name),
        int(log_id == ids["peer"] and counts.suspect_code(uscc)),
    )  # fmt: skip


async def fill(store: Store, n: int) -> None:
    rng = random.Random(n)
    today = shanghai_today()
    async with store.begin() as conn:
        for origin, peer in (("own", None), ("peer", "p")):
            await conn.execute(
                insert(LOGS).values(origin=origin, peer=peer, size=n, root=b"", checkpoint_size=0,
                                    checkpoint_note=b"", state="ok", state_detail="",
                                    updated_at=utcnow())
            )  # fmt: skip
        ids = {o: i for o, i in await conn.execute(select(LOGS.c.origin, LOGS.c.id))}
    written: list[tuple[Any, ...]] = []
    for start in range(0, n, 50_000):
        batch = [row(i, ids, today, rng) for i in range(start, min(n, start + 50_000))]
        async with store.begin() as conn:
            await dialect.bulk_insert(conn, STATE, COLUMNS, batch)
        written.extend(batch)
    async with store.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO list_counts (log_id, list_name, disclosure_end, n)"
                " SELECT log_id, list_name, disclosure_end, count(*) FROM list_state"
                " WHERE status = 1 AND length(entry) > 0 GROUP BY log_id, list_name, disclosure_end"
            )
        )
    async with store.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    for start in range(0, n, 10_000):
        async with store.begin() as conn:
            chunk = written[start : start + 10_000]
            await counts.note_candidates(conn, *counts.written_codes(chunk, COLUMNS))


async def counts_new(store: Store) -> dict[int, int]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(counts.active_per_log(shanghai_today()))
        return {int(r[0]): int(r[1]) for r in rows}


async def counts_old(store: Store) -> dict[int, int]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(STATE.c.log_id, func.count())
            .where(active(shanghai_today()))
            .group_by(STATE.c.log_id)
        )
        return {int(r[0]): int(r[1]) for r in rows}


async def apply_cost(store: Store, ids: dict[str, int]) -> dict[str, float]:
    """µs per entry that apply_leaves adds for a batch of 1,000 new entries (rolled back)."""
    today, rng = shanghai_today(), random.Random(0)
    batch = [row(90_000_000 + i, ids, today, rng) for i in range(1000)]
    names = [r[5] for r in batch]
    codes = [r[6] for r in batch]
    start = time.perf_counter()
    for name, code in zip(names, codes, strict=True):
        counts.name_norm_of(name)
        counts.suspect_code(code)
    pure = time.perf_counter() - start
    async with store.engine.connect() as conn:
        await dialect.bulk_insert(conn, STATE, COLUMNS, batch)
        start = time.perf_counter()
        prior = await counts.prior_keys(conn, ids["own"], [r[1] for r in batch])
        new = (counts.row_key(r, COLUMNS) for r in batch)
        await counts.add_counts(conn, ids["own"], counts.deltas(prior, new))
        await counts.note_candidates(conn, *counts.written_codes(batch, COLUMNS))
        sql = time.perf_counter() - start
        await conn.rollback()
    return {"apply_pure_us": pure * 1e3, "apply_sql_us": sql * 1e3}


async def measure(url: str, n: int, rounds: int) -> dict[str, float]:
    store = await Store.open(url)
    try:
        start = time.perf_counter()
        await fill(store, n)
        print(f"  filled {n:,} rows in {time.perf_counter() - start:.1f} s", flush=True)
        async with store.engine.connect() as conn:
            ids = {o: i for o, i in await conn.execute(select(LOGS.c.origin, LOGS.c.id))}
        assert await find_conflicts(store, "own") == await find_conflicts_scan(store, "own")
        assert await counts_new(store) == await counts_old(store)
        times: dict[str, list[float]] = {k: [] for k in ("cn", "co", "kn", "ko")}
        for _ in range(rounds):  # alternately, so the machine's load hits all alike
            for key, call in (
                ("cn", lambda: find_conflicts(store, "own")),
                ("co", lambda: find_conflicts_scan(store, "own")),
                ("kn", lambda: counts_new(store)),
                ("ko", lambda: counts_old(store)),
            ):
                start = time.perf_counter()
                await call()
                times[key].append((time.perf_counter() - start) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        cost = await apply_cost(store, ids)
    finally:
        await store.close()
    return {
        f"conflicts_ms_{n}": med["cn"],
        f"conflicts_scan_ms_{n}": med["co"],
        f"conflicts_speedup_{n}": med["co"] / med["cn"],
        f"counts_ms_{n}": med["kn"],
        f"counts_scan_ms_{n}": med["ko"],
        f"counts_speedup_{n}": med["ko"] / med["kn"],
        f"apply_pure_us_{n}": cost["apply_pure_us"],
        f"apply_sql_us_{n}": cost["apply_sql_us"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--million", action="store_true", help="add 1,000,000 rows")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    pg = None
    if args.backend == "postgresql":
        from tests.pgserver import PgServer

        pg = PgServer.start()
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                print(f"{n:,} rows on {args.backend}", flush=True)
                if pg is None:
                    url = f"sqlite:///{Path(tmp) / f'routine{n}.db'}"
                else:
                    import asyncpg

                    conn = await asyncpg.connect(pg.admin_dsn)
                    await conn.execute(f'CREATE DATABASE "routine{n}"')
                    await conn.close()
                    url = pg.url(f"routine{n}")
                got = await measure(url, n, args.rounds)
                for key, value in got.items():
                    print(f"  {key:28} {value:10.2f}")
                figures.update(got)
    finally:
        if pg is not None:
            pg.stop()
    top = max(sizes)
    figures["conflicts_ms"] = figures[f"conflicts_ms_{top}"]
    figures["counts_ms"] = figures[f"counts_ms_{top}"]
    name = "routine" if args.backend == "sqlite" else "routine_postgresql"
    path = write_result(
        name, figures, TARGETS, backend=args.backend,
        params={"sizes": sizes, "rounds": args.rounds},
        extra={"note": "old = find_conflicts_scan / COUNT over list_state, same run, alternately"},
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
