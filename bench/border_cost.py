"""The border's cost (issue #5). Prints figures and writes bench/results/border_cost_<backend>.json.

    .venv/bin/python bench/border_cost.py [--entries 10000] [--rounds 7] [--queries 2000]
                                          [--backend sqlite|postgresql]

Both figures compare the same path with the exit enforcing and with it bypassed *in this
harness only* (``Exit.let_out`` replaced on the running node by one that releases nothing and
records nothing), alternating runs in the same process so machine noise hits both alike.

(a) feed sync throughput: a subscriber whose agreement opens two committed fields per entry
    syncs N person entries; origin and subscriber share this process (and so the CPU), so
    every microsecond the exit spends shows in the figure. Target: enforcement costs at most
    10% of throughput.
(b) query latency: Lookup by alliance pseudonym, whose answer the exit renders (masked name,
    court-masked ID, pseudonym) and records durably before sending. Target: the exit adds at
    most 1 ms at p99. Also reported: the time spent inside the exit itself, and what part of
    it is the durable disclosure record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

from node.api import feeds, query, query_rpc  # noqa: E402
from node.border import Exit, ExitCall  # noqa: E402
from node.feeds.publisher import Event  # noqa: E402
from node.feeds.subscriber import Subscriber  # noqa: E402
from node.identity.codes import resident_id_check_char  # noqa: E402
from node.identity.pseudonym import own_pseudonym  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.peers.transport import secure_channel  # noqa: E402
from node.runtime import Node  # noqa: E402
from node.storage import Store  # noqa: E402
from tests.feedutil import person_entry  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402

CITIES = [("jinan", "370100"), ("lanzhou", "620100")]
AGREEMENT = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["enforcement"]

[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { person_name = "mask:name_surname", person_id = "mask:court_id", \
  person_pseudonym = "clear" }

[feed.list_entry]
person_id_masked = "clear"
person_pseudonym = "clear"
"""
NAMES = "张王李赵刘陈杨黄周吴"


def resident_id(i: int) -> str:
    body = f"370102{1950 + i % 50:04d}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    return body + resident_id_check_char(body)


async def fill(node: Node, n: int) -> list[str]:
    key = node.home.pseudonym_key
    pseudonyms = []
    done = 0
    while done < n:
        events = []
        for i in range(done, min(n, done + 2000)):
            idno = resident_id(i)
            entry = person_entry(i, person_id=idno, name=NAMES[i % 10] + "某" + NAMES[i // 10 % 10])
            entry.person_pseudonym = own_pseudonym(key, idno)
            pseudonyms.append(entry.person_pseudonym)
            events.append(Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry))
        await node.publisher.append(events)
        done += len(events)
        print(f"\r  origin log: {done:,}/{n:,}", end="", flush=True)
    await node.publisher.sign_checkpoint()
    print()
    return pseudonyms


LetOut = Callable[[ExitCall, Message], Awaitable[None]]


def bypassing(exit_: Exit) -> LetOut:
    """The harness-only bypass: mark the message as released, judge and record nothing."""

    async def let_out(call: ExitCall, message: Message) -> None:
        call.released[id(message)] = message

    return let_out


class Databases:
    """Fresh databases on the chosen engine: SQLite files, or a throw-away PostgreSQL server."""

    def __init__(self, backend: str, base: Path) -> None:
        self.backend = backend
        self.base = base
        self.pg: PgServer | None = None
        if backend == "postgresql":
            self.pg = PgServer.start()

    async def url(self, label: str) -> str:
        name = f"{label}_{uuid.uuid4().hex[:6]}"
        if self.pg is None:
            return f"sqlite:///{self.base / (name + '.db')}"
        conn = await asyncpg.connect(self.pg.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.pg.url(name)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()


async def sync_once(fed: LocalFederation, dbs: Databases, label: str) -> float:
    lanzhou = fed["lanzhou"]
    peer = await lanzhou.directory.lookup("jinan")
    assert peer is not None
    store = await Store.open(await dbs.url(label))
    try:
        sub = await Subscriber.open(lanzhou.home.tls, store, peer)
        start = time.perf_counter()
        status = await sub.sync(follow=False)
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    return status.applied / elapsed


async def feed_cost(fed: LocalFederation, dbs: Databases, n: int, rounds: int) -> dict[str, Any]:
    jinan = fed["jinan"]
    enforced_let_out, bypass = jinan.exit.let_out, bypassing(jinan.exit)
    rates: dict[str, list[float]] = {"enforced": [], "bypassed": []}
    for r in range(rounds):
        for mode in ("enforced", "bypassed") if r % 2 == 0 else ("bypassed", "enforced"):
            jinan.exit.let_out = enforced_let_out if mode == "enforced" else bypass  # type: ignore[method-assign]
            rate = await sync_once(fed, dbs, mode)
            rates[mode].append(rate)
            print(f"  round {r + 1} {mode}: {rate:,.0f} entries/s")
    jinan.exit.let_out = enforced_let_out  # type: ignore[method-assign]
    enforced, bypassed = statistics.median(rates["enforced"]), statistics.median(rates["bypassed"])
    return {
        "entries": n,
        "rounds": rounds,
        "enforced_entries_per_s": enforced,
        "bypassed_entries_per_s": bypassed,
        "all_runs": rates,
        "cost_fraction": 1 - enforced / bypassed,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def query_cost(fed: LocalFederation, pseudonyms: list[str], n: int) -> dict[str, Any]:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    enforced_let_out, bypass = jinan.exit.let_out, bypassing(jinan.exit)
    inside: list[float] = []  # all of let_out
    recording: list[float] = []  # the durable record's part of it
    policy: list[float] = []  # the rest: decision, rendering, the schema walk
    record = jinan.exit.audit.record

    async def timed_record(entry: Any, **kw: Any) -> int:
        t0 = time.perf_counter()
        idx = await record(entry, **kw)
        recording.append((time.perf_counter() - t0) * 1000)
        return idx

    async def timed_let_out(call: ExitCall, message: Message) -> None:
        before = len(recording)
        t0 = time.perf_counter()
        await enforced_let_out(call, message)
        total = (time.perf_counter() - t0) * 1000
        inside.append(total)
        policy.append(total - sum(recording[before:]))

    jinan.exit.audit.record = timed_record  # type: ignore[method-assign]
    lat: dict[str, list[float]] = {"enforced": [], "bypassed": []}
    rng = random.Random(5)
    channel = secure_channel(
        lanzhou.home.tls, jinan.endpoint, jinan.home.identity, jinan.home.tls.ca_pem
    )
    try:
        stub = query_rpc.QueryServiceStub(channel)
        for _ in range(50):  # warm up the connection and caches
            await stub.Lookup(query.LookupRequest(purpose="enforcement",
                                                  person_pseudonym=pseudonyms[0]))  # fmt: skip
        for block in range(n // 100):
            mode = "enforced" if block % 2 == 0 else "bypassed"
            jinan.exit.let_out = timed_let_out if mode == "enforced" else bypass  # type: ignore[method-assign]
            for _ in range(100):
                req = query.LookupRequest(
                    purpose="enforcement", person_pseudonym=rng.choice(pseudonyms)
                )
                t0 = time.perf_counter()
                resp = await stub.Lookup(req)
                lat[mode].append((time.perf_counter() - t0) * 1000)
                assert len(resp.answers) == 1
                if mode == "enforced":
                    assert resp.answers[0].entry.person_id.count("*") == 4
    finally:
        await channel.close()
        jinan.exit.let_out = enforced_let_out  # type: ignore[method-assign]
        jinan.exit.audit.record = record  # type: ignore[method-assign]
    out: dict[str, Any] = {"queries": n}
    for mode, values in lat.items():
        out[f"{mode}_p50_ms"] = _pct(values, 0.50)
        out[f"{mode}_p99_ms"] = _pct(values, 0.99)
    out["added_p50_ms"] = out["enforced_p50_ms"] - out["bypassed_p50_ms"]
    out["added_p99_ms"] = out["enforced_p99_ms"] - out["bypassed_p99_ms"]
    out["exit_inside_p50_ms"] = _pct(inside, 0.50)
    out["exit_inside_p99_ms"] = _pct(inside, 0.99)
    out["exit_policy_p50_ms"] = _pct(policy, 0.50)
    out["exit_policy_p99_ms"] = _pct(policy, 0.99)
    out["record_p50_ms"] = _pct(recording, 0.50)
    out["record_p99_ms"] = _pct(recording, 0.99)
    return out


async def run(
    base: Path, entries: int, rounds: int, queries: int, dbs: Databases
) -> dict[str, Any]:
    urls = {name: await dbs.url(name) for name, _ in CITIES}
    async with LocalFederation(
        base, CITIES, subscribe=False, heartbeat=False, database_url=urls.get
    ) as fed:
        agreements = fed["jinan"].home.paths.root / "agreements"
        agreements.mkdir(exist_ok=True)
        (agreements / "lanzhou.toml").write_text(AGREEMENT)
        fed["jinan"].border.refresh(force=True)
        await fed["lanzhou"].directory.refresh()
        pseudonyms = await fill(fed["jinan"], entries)
        print(f"(a) feed sync of {entries:,} entries, enforced vs bypassed")
        feed = await feed_cost(fed, dbs, entries, rounds)
        print(json.dumps(feed, indent=2))
        print(f"(b) {queries:,} queries, enforced vs bypassed")
        q = await query_cost(fed, pseudonyms, queries)
        print(json.dumps(q, indent=2))
    return {"feed": feed, "query": q}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    configure_logging("warning")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    with tempfile.TemporaryDirectory(prefix="creditnode-border-") as tmp:
        results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "backend": args.backend}
        dbs = Databases(args.backend, Path(tmp))
        try:
            results.update(
                asyncio.run(run(Path(tmp), args.entries, args.rounds, args.queries, dbs))
            )
        finally:
            dbs.close()
    results["targets"] = {
        "feed cost_fraction <= 0.10": results["feed"]["cost_fraction"] <= 0.10,
        "query added_p99_ms <= 1": results["query"]["added_p99_ms"] <= 1.0,
        "query exit_policy_p99_ms <= 1 (without the durable record)": (
            results["query"]["exit_policy_p99_ms"] <= 1.0
        ),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    target = out / f"border_cost_{args.backend}.json"
    target.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["targets"], indent=2))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
