"""Name search (`creditnode entity --name`) and organisation-code resolution at 10k/100k list
entries (1M with --million), through the indexes of migrations 0020/0021, against the old
full-table answers measured alternately in the same run. Prints figures and writes
bench/results/name_search_<backend>.json.

    .venv/bin/python bench/name_search.py [--backend sqlite|postgresql] [--entries N ...]
                                          [--million] [--queries Q] [--old-queries K]

Queries: whole stored names, their spelling variants and distinctive parts, typos and one-
and two-character prefixes (the bounded prefix path), drawn from the stored names. After the
fill, PostgreSQL's table is vacuumed and analyzed (as autovacuum leaves it), and the fill's
objects are frozen out of the collector (as `creditnode serve` freezes its start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from bench._results import write_result  # noqa: E402
from node.feeds.counts import name_norm_of  # noqa: E402
from node.feeds.state import STATE  # noqa: E402
from node.identity import name_search  # noqa: E402
from node.identity.codes import org_code_check_char, uscc_check_char  # noqa: E402
from node.identity.name_search import search_names  # noqa: E402
from node.identity.names import normalise_name, rank_names  # noqa: E402
from node.identity.registry import resolve  # noqa: E402
from node.storage import Store, dialect  # noqa: E402

TARGETS = {"p99_ms": ("<=", 10.0)}
BATCH = 50_000
REGIONS = ["济南市", "兰州市", "太原市", "郑州市", "西安市", "青岛市", "淄博市", "天水市", "洛阳市"]
# Characters common in trade names (字号): names drawn from them are about as varied as a
# real list's, where a brand's runs are rare and a city's or trade's runs are common.
BRAND = (
    "华为中兴腾讯阿里百度京东美团网易海尔格力长虹康佳联想浪潮方正同方紫光鲁信齐鲁泰山黄河"
    "金银宏达鑫源盛隆兴旺福瑞祥和恒丰泰安新兴华夏中天伟业永昌嘉禾富民宝利通达顺丰汇通"
    "远大明珠星光天成万家乐百佳鸿运德润博雅创新智联云峰海川东方红日月升荣昌佳信诚立德"
    "正大众合力联邦世纪金马龙腾凤凰麒麟松柏梅兰竹菊春夏秋冬晨曦朝阳晓光辉煌锦绣前程"
)
TRADES = ["科技", "贸易", "商贸", "建材", "食品", "物流", "电子", "置业", "农业", "传媒", "餐饮"]
FORMS = ["有限公司", "有限责任公司", "股份有限公司", "(有限合伙)", "集团有限公司", "分公司"]
COLUMNS = (
    "log_id", "entry_id", "list_name", "list_type", "subject_type", "subject_name", "uscc",
    "status", "removal_reason", "listing_date", "severity", "disclosure_end", "last_idx", "entry",
    "list_code", "name_norm",
)  # fmt: skip


def uscc_of(i: int) -> tuple[str, str]:
    """A valid USCC and the organisation code it embeds."""
    body = f"{i:08d}"
    org = body + org_code_check_char(body)
    first17 = "91370100" + org
    return first17 + uscc_check_char(first17), org


def gen_name(rng: random.Random) -> str:
    brand = "".join(rng.choice(BRAND) for _ in range(rng.randint(2, 4)))
    return rng.choice(REGIONS) + brand + rng.choice(TRADES) + rng.choice(FORMS)


async def fill(store: Store, n: int, rng: random.Random) -> list[str]:
    names: list[str] = []
    for start in range(0, n, BATCH):
        rows = []
        for i in range(start, min(n, start + BATCH)):
            name = gen_name(rng)
            names.append(name)
            uscc = uscc_of(i)[0]
            norm = name_norm_of(name)
            rows.append((1, f"e{i:09d}", "失信联合惩戒对象名单", 1, 2, name, uscc, 1, 0,
                         "2026-01-15", 1, "2029-01-15", i, b"x", "", norm))  # fmt: skip
        async with store.begin() as conn:
            await dialect.bulk_insert(conn, STATE, COLUMNS, rows)
            await name_search.index_inserted(conn, len(rows))
        print(f"\r  filling: {min(n, start + BATCH):,}/{n:,}", end="", flush=True)
    print()
    if store.backend == "postgresql":
        # As autovacuum leaves a table rows were added to: statistics, and the visibility map
        # that lets a count over the trigram index skip the rows' pages.
        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE) list_state"))
    return names


def queries(names: list[str], k: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    while len(out) < k:
        norm = normalise_name(rng.choice(names))
        kind = len(out) % 6
        if kind == 0:
            out.append(norm)
        elif kind == 1:
            out.append(norm.replace("有限公司", "有限责任公司"))
        elif kind == 2:
            out.append(norm[3:8])  # the distinctive part
        elif kind == 3:
            typo = list(norm)
            typo[rng.randrange(len(typo))] = "某"
            out.append("".join(typo))
        elif kind == 4:
            out.append(norm[3:5])  # two characters: the prefix path
        else:
            out.append(norm[:7])
    return out


async def old_search(store: Store, query: str) -> int:
    """The answer before migration 0021: every held name ranked."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            select(STATE.c.uscc, STATE.c.subject_name).distinct()
            .where(STATE.c.subject_name != "")
        )).all()  # fmt: skip
    return len(rank_names(query, [(u, n) for u, n in rows]))


async def old_resolve(store: Store, org: str) -> int:
    """The resolve query before: substr with bound parameters, which no index serves."""
    async with store.engine.connect() as conn:
        return len((await conn.execute(
            select(STATE.c.uscc).distinct().where(func.substr(STATE.c.uscc, 9, 9) == org)
        )).all())  # fmt: skip


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[98] if len(xs) > 1 else xs[0]


async def measure(url: str, n: int, k: int, k_old: int) -> dict[str, float]:
    rng = random.Random(n)
    store = await Store.open(url)
    try:
        names = await fill(store, n, rng)
        qs = queries(names, k, rng)
        gc.freeze()  # the fill's leftovers, as a serving process freezes its start-up
        orgs = [uscc_of(rng.randrange(n))[1] for _ in range(k)]
        for q in qs[:5]:  # warm caches and prepared statements
            await search_names(store, q)
        new_ms, new_res_ms, old_ms, old_res_ms = [], [], [], []
        for i, (q, org) in enumerate(zip(qs, orgs, strict=True)):
            new_ms.append(await timed(lambda q=q: search_names(store, q)))  # type: ignore[misc]
            new_res_ms.append(await timed(lambda org=org: resolve(store, org)))  # type: ignore[misc]
            if i < k_old:  # alternately, in the same run
                old_ms.append(await timed(lambda q=q: old_search(store, q)))  # type: ignore[misc]
                old_res_ms.append(await timed(lambda org=org: old_resolve(store, org)))  # type: ignore[misc]
        figures = {
            "p50_ms": statistics.median(new_ms),
            "p99_ms": p99(new_ms),
            "resolve_p50_ms": statistics.median(new_res_ms),
            "resolve_p99_ms": p99(new_res_ms),
        }
        if old_ms:
            figures |= {
                "old_p50_ms": statistics.median(old_ms),
                "old_resolve_p50_ms": statistics.median(old_res_ms),
                "speedup_p50": statistics.median(old_ms) / statistics.median(new_ms),
                "resolve_speedup_p50": (
                    statistics.median(old_res_ms) / statistics.median(new_res_ms)
                ),
            }
        return figures
    finally:
        await store.close()


async def run(backend: str, sizes: list[int], k: int, k_old: int, tmp: Path) -> dict[int, Any]:
    out: dict[int, Any] = {}
    pg = None
    if backend == "postgresql":
        from tests.pgserver import PgServer

        pg = PgServer.start()
    try:
        for n in sizes:
            print(f"{n:,} entries, {backend}")
            if pg is None:
                url = f"sqlite:///{tmp / f'names_{n}.db'}"
            else:
                import asyncpg

                conn = await asyncpg.connect(pg.admin_dsn)
                await conn.execute(f'CREATE DATABASE "names_{n}"')
                await conn.close()
                url = pg.url(f"names_{n}")
            out[n] = await measure(url, n, k, k_old)
            print(json.dumps(out[n], indent=2))
    finally:
        if pg is not None:
            pg.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--entries", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 entries")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--old-queries", type=int, default=5, help="old answers, alternately")
    args = parser.parse_args()
    sizes = sorted(set(args.entries) | ({1_000_000} if args.million else set()))
    with tempfile.TemporaryDirectory(prefix="creditnode-bench-") as tmp:
        by_size = asyncio.run(run(args.backend, sizes, args.queries, args.old_queries, Path(tmp)))
    largest = sizes[-1]
    figures = dict(by_size[largest])
    for n, f in by_size.items():
        figures |= {f"{key}_{n}": v for key, v in f.items()}
    path = write_result(
        f"name_search_{args.backend}", figures, TARGETS, backend=args.backend,
        params={"entries": largest, "sizes": sizes, "queries": args.queries,
                "old_queries": args.old_queries},
    )  # fmt: skip
    print(f"written to {path}")


if __name__ == "__main__":
    main()
