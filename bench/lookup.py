"""Lookup against a bare grpc.aio mutual-TLS echo (issue 17). Prints figures and writes
bench/results/lookup_<backend>.json.

    .venv/bin/python bench/lookup.py [--backend sqlite|postgresql] [--entries 10000]
                                     [--queries 2000]

One process runs two nodes; lanzhou asks jinan ``Lookup`` by pseudonym over mTLS, through
jinan's gate, border and audit log (the answer recorded durably before it is sent). The echo
is a grpc.aio server in the same process holding jinan's certificate and trust roots, called
from lanzhou's certificate over a channel built the same way, answering with the request's
bytes. At concurrency 1 and 16 the two alternate in blocks of 100 calls; throughput is calls
over the time of their blocks, latency the caller's. Targets: Lookup at least half the echo's
throughput at both concurrencies, and p99 at most 5 ms at concurrency 1.

The limit durability sets: at concurrency 1 a third mode alternates with them, one durable
commit of one small row on jinan's database (SQLite: the same file, a connection with the
node's settings, WAL and ``synchronous=FULL``; PostgreSQL: one commit round trip on its own
connection, the server restarted with fsync and synchronous commit on, as bench/sync.py
does). ``c1_commit_share`` is that commit's p50 over Lookup's: the part of a Lookup's
latency that is the disk's sync its audit record must wait for.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import echo_channel, percentile, start_echo  # noqa: E402
from bench._results import write_result  # noqa: E402
from bench.audit_cost import fill  # noqa: E402
from bench.border_cost import AGREEMENT, CITIES, Databases  # noqa: E402
from bench.sync import Databases as DurableServer  # noqa: E402
from bench.sync import fill as fill_orgs  # noqa: E402
from node.api import query, query_rpc  # noqa: E402
from node.audit.wire import new_asker  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.peers.transport import secure_channel  # noqa: E402
from node.storage import Store, dialect  # noqa: E402
from tests.feedutil import valid_uscc  # noqa: E402

BLOCK = 100
CONCURRENCY = (1, 16)
_SCRATCH = "CREATE TABLE IF NOT EXISTS bench_commit (id {key}, v {blob} NOT NULL)"


class RawCommit:
    """One durable commit of one small row per call on *store*'s database, off the node."""

    def __init__(self, store: Store) -> None:
        self.url = store.engine.url
        self.sqlite: sqlite3.Connection | None = None
        self.pg: Any = None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="bench-commit")

    async def open(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            conn = sqlite3.connect(
                self.url.database or "", isolation_level=None, check_same_thread=False
            )
            dialect.sqlite_pragmas(conn)  # the node's settings: WAL, synchronous=FULL
            conn.execute(_SCRATCH.format(key="INTEGER PRIMARY KEY", blob="BLOB"))
            self.sqlite = conn
        else:
            import asyncpg

            self.pg = await asyncpg.connect(
                self.url.set(drivername="postgresql").render_as_string(False)
            )
            await self.pg.execute(_SCRATCH.format(key="BIGSERIAL PRIMARY KEY", blob="BYTEA"))

    def _sqlite_once(self) -> float:
        assert self.sqlite is not None
        t0 = time.perf_counter()
        self.sqlite.execute("BEGIN IMMEDIATE")
        self.sqlite.execute("INSERT INTO bench_commit (v) VALUES (?)", (b"x" * 64,))
        self.sqlite.execute("COMMIT")
        return (time.perf_counter() - t0) * 1000

    async def once(self, lat: list[float]) -> None:
        if self.sqlite is not None:
            loop = asyncio.get_running_loop()
            lat.append(await loop.run_in_executor(self.thread, self._sqlite_once))
            return
        t0 = time.perf_counter()
        await self.pg.execute("INSERT INTO bench_commit (v) VALUES ($1)", b"x" * 64)
        lat.append((time.perf_counter() - t0) * 1000)

    async def close(self) -> None:
        self.thread.shutdown(wait=True)
        if self.sqlite is not None:
            self.sqlite.close()
        if self.pg is not None:
            await self.pg.close()


TARGETS = {
    "c1_ratio": (">=", 0.5),
    "c16_ratio": (">=", 0.5),
    "c1_lookup_p99_ms": ("<=", 5.0),
}


Ask = Callable[[random.Random], query.LookupRequest]


def by_pseudonym(pseudonyms: list[str]) -> Ask:
    return lambda rng: query.LookupRequest(
        purpose="enforcement", person_pseudonym=rng.choice(pseudonyms)
    )


def by_uscc(n: int, code: Callable[[int], str] = valid_uscc) -> Ask:
    """One of the fill's *n* USCCs (*code* of an index), made when drawn: 10M strings held
    would cost a gigabyte."""
    return lambda rng: query.LookupRequest(purpose="enforcement", uscc=code(rng.randrange(n)))


def admit(fed: LocalFederation) -> None:
    """Jinan's sharing agreement with lanzhou (AGREEMENT), in force."""
    agreements = fed["jinan"].home.paths.root / "agreements"
    agreements.mkdir(exist_ok=True)
    (agreements / "lanzhou.toml").write_text(AGREEMENT)
    fed["jinan"].border.refresh(force=True)


async def analyze(fed: LocalFederation, backend: str) -> None:
    """On PostgreSQL, statistics as autovacuum keeps them on a running node: on a fresh table
    the planner guesses it empty and joins the wrong way round."""
    if backend == "postgresql":
        async with fed["jinan"].store.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")


async def compare(
    fed: LocalFederation,
    ask: Ask,
    queries: int,
    engine_path: bool = False,
) -> dict[str, Any]:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    server, port = await start_echo(jinan)
    node_channel = secure_channel(
        lanzhou.home.tls, jinan.endpoint, jinan.home.identity, jinan.home.tls.ca_pem
    )
    echo_ch = echo_channel(lanzhou, jinan, port)
    rng = random.Random(17)
    raw = RawCommit(jinan.store)
    await raw.open()
    try:
        stub = query_rpc.QueryServiceStub(node_channel)
        echo = echo_ch.unary_unary("/bench.Echo/Echo")

        def request() -> query.LookupRequest:
            return ask(rng)

        async def lookup(lat: list[float]) -> None:
            req = request()
            t0 = time.perf_counter()
            resp = await stub.Lookup(req, metadata=new_asker().metadata())
            lat.append((time.perf_counter() - t0) * 1000)
            assert len(resp.answers) == 1

        async def echoed(lat: list[float]) -> None:
            data = request().SerializeToString()
            t0 = time.perf_counter()
            got = await echo(data)
            lat.append((time.perf_counter() - t0) * 1000)
            assert got == data

        calls = {"lookup": lookup, "echo": echoed, "commit": raw.once, "engine": lookup}
        for _ in range(50):  # warm up both connections and caches
            await lookup([])
            await echoed([])
            await raw.once([])
        out: dict[str, Any] = {}
        for c in CONCURRENCY:
            # The raw commit is one connection's: measured at concurrency 1 only.
            modes: tuple[str, ...] = ("lookup", "echo", "commit") if c == 1 else ("lookup", "echo")
            if engine_path:
                modes += ("engine",)
            lat: dict[str, list[float]] = {m: [] for m in modes}
            busy = dict.fromkeys(modes, 0.0)

            async def block(
                mode: str,
                c: int = c,
                lat: dict[str, list[float]] = lat,
                busy: dict[str, float] = busy,
            ) -> None:
                async def worker(n: int) -> None:
                    for _ in range(n):
                        await calls[mode](lat[mode])

                audit = jinan.audit
                writer = audit._group_writer()
                if mode == "engine":  # the audit record through SQLAlchemy, as before issue 17
                    audit._writer = None
                t0 = time.perf_counter()
                await asyncio.gather(*(worker(BLOCK // c + (i < BLOCK % c)) for i in range(c)))
                busy[mode] += time.perf_counter() - t0
                audit._writer = writer

            for b in range(max(1, queries // BLOCK)):
                for mode in modes if b % 2 == 0 else modes[::-1]:
                    await block(mode)
            for mode in modes:
                out[f"c{c}_{mode}_per_s"] = len(lat[mode]) / busy[mode]
                out[f"c{c}_{mode}_p50_ms"] = percentile(lat[mode], 0.50)
                out[f"c{c}_{mode}_p99_ms"] = percentile(lat[mode], 0.99)
            out[f"c{c}_ratio"] = out[f"c{c}_lookup_per_s"] / out[f"c{c}_echo_per_s"]
            print(
                f"  c={c:>2}: Lookup {out[f'c{c}_lookup_per_s']:,.0f}/s "
                f"(p50 {out[f'c{c}_lookup_p50_ms']:.2f} ms, p99 {out[f'c{c}_lookup_p99_ms']:.2f}"
                f" ms), echo {out[f'c{c}_echo_per_s']:,.0f}/s (p50 "
                f"{out[f'c{c}_echo_p50_ms']:.2f} ms): ratio {out[f'c{c}_ratio']:.2f}"
            )
            if engine_path:
                print(
                    f"        Lookup, records through the engine (before): "
                    f"{out[f'c{c}_engine_per_s']:,.0f}/s (p50 {out[f'c{c}_engine_p50_ms']:.2f} ms,"
                    f" p99 {out[f'c{c}_engine_p99_ms']:.2f} ms)"
                )
            if c == 1:
                out["c1_commit_share"] = out["c1_commit_p50_ms"] / out["c1_lookup_p50_ms"]
                print(
                    f"        one durable commit alone: p50 {out['c1_commit_p50_ms']:.2f} ms, "
                    f"p99 {out['c1_commit_p99_ms']:.2f} ms ({out['c1_commit_per_s']:,.0f}/s): "
                    f"{out['c1_commit_share']:.0%} of Lookup's p50"
                )
        return out
    finally:
        await raw.close()
        await node_channel.close()
        await echo_ch.close()
        await server.stop(0)


async def run(
    base: Path,
    entries: int,
    queries: int,
    dbs: Databases,
    engine_path: bool = False,
    subject: str = "person",
) -> dict[str, Any]:
    urls = {name: await dbs.url(name) for name, _ in CITIES}
    async with LocalFederation(
        base, CITIES, subscribe=False, heartbeat=False, database_url=urls.get
    ) as fed:
        admit(fed)
        gc.freeze()  # as `creditnode serve` does once its node has started
        t0 = time.perf_counter()
        if subject == "uscc":  # organisations, filled as bench/sync.py fills its origin
            await fill_orgs(fed, entries, valid_codes=True)
            ask = by_uscc(entries)
        else:
            ask = by_pseudonym(await fill(fed["jinan"], entries))
        print(f"{entries:,} entries published in {time.perf_counter() - t0:.1f} s")
        await analyze(fed, dbs.backend)
        print(f"{queries:,} calls per mode and concurrency, Lookup and echo alternating")
        return await compare(fed, ask, queries, engine_path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument(
        "--subject",
        choices=("person", "uscc"),
        default="person",
        help="ask by person pseudonym (entries filled with OPRF pseudonyms), or by USCC "
        "(organisations, filled several times faster: the 10M run)",
    )
    parser.add_argument("--name", help="result file stem (default lookup_<backend>)")
    parser.add_argument(
        "--engine-path",
        action="store_true",
        help="also alternate Lookup with its audit records committed through SQLAlchemy",
    )
    args = parser.parse_args()
    configure_logging("warning")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    with tempfile.TemporaryDirectory(prefix="creditnode-lookup-") as tmp:
        dbs = Databases(args.backend, Path(tmp))
        if dbs.pg is not None:
            # The tests' server runs without fsync: "durable" must mean a commit is on disk.
            DurableServer._make_durable(dbs)  # type: ignore[arg-type]
        try:
            figures = asyncio.run(
                run(Path(tmp), args.entries, args.queries, dbs, args.engine_path, args.subject)
            )
        finally:
            dbs.close()
    path = write_result(
        args.name or f"lookup_{args.backend}",
        figures,
        TARGETS,
        backend=args.backend,
        params={
            "entries": args.entries,
            "queries": args.queries,
            "block": BLOCK,
            "engine_path": args.engine_path,
            "subject": args.subject,
        },
    )
    print(json.dumps(json.loads(path.read_text())["targets"], indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
