"""The audit log's cost on a query (issue #13). Prints figures and writes
bench/results/audit_cost.json (or audit_cost_<backend>.json for PostgreSQL).

    .venv/bin/python bench/audit_cost.py [--entries 2000] [--queries 2000]
                                         [--backend sqlite|postgresql] [--in-flight N]

One process runs two nodes; lanzhou asks jinan Lookup by pseudonym (an answer the border
renders and releases) over mTLS, in alternating blocks of 100 queries:

- *audited*: as the node runs: jinan's border records the answer in its audit log (group
  commit, durable before the answer leaves, the audit index set in the answer and the hash of
  its exact bytes in the entry);
- *unaudited*: the same path with the record replaced, *in this harness only*, by a no-op
  (everything else at the border, release and rendering included, still runs).

The latency is the requester's, from the call to the answer. Target: the audit adds at most
2 ms at p99. One query at a time by default; ``--in-flight N`` keeps N in flight, where group
commit lets concurrent answers share one durable write. Also reported: the time inside
jinan's record, and the requester's own receipt (its ``out`` entry, one more durable commit
at lanzhou after the answer arrived, as ``creditnode query`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.border_cost import AGREEMENT, CITIES, NAMES, Databases, resident_id  # noqa: E402
from node.api import feeds, query, query_rpc  # noqa: E402
from node.audit.entry import AuditEntry  # noqa: E402
from node.audit.local import out_entry  # noqa: E402
from node.audit.log import Finish  # noqa: E402
from node.audit.wire import new_asker  # noqa: E402
from node.feeds.publisher import Event  # noqa: E402
from node.identity.pseudonym import own_pseudonym  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.peers.transport import secure_channel  # noqa: E402
from node.runtime import Node  # noqa: E402
from tests.feedutil import person_entry  # noqa: E402

LOOKUP = "/creditnode.v1.QueryService/Lookup"


async def fill(node: Node, n: int) -> list[str]:
    key = node.home.pseudonym_key
    found, events = [], []
    for i in range(n):
        idno = resident_id(i)
        entry = person_entry(i, person_id=idno, name=NAMES[i % 10] + "某" + NAMES[i // 10 % 10])
        entry.person_pseudonym = own_pseudonym(key, idno)
        found.append(entry.person_pseudonym)
        events.append(Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry))
    for i in range(0, n, 2000):
        await node.publisher.append(events[i : i + 2000])
    await node.publisher.sign_checkpoint()
    return found


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def query_cost(
    fed: LocalFederation, pseudonyms: list[str], n: int, concurrency: int = 1
) -> dict[str, Any]:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    real_record = jinan.exit.audit.record
    recording: list[float] = []

    async def timed_record(
        entry: AuditEntry, *, finish: Finish | None = None, fresh_on_replay: bool = False
    ) -> int:
        t0 = time.perf_counter()
        idx = await real_record(entry, finish=finish, fresh_on_replay=fresh_on_replay)
        recording.append((time.perf_counter() - t0) * 1000)
        return idx

    async def no_record(
        entry: AuditEntry, *, finish: Finish | None = None, fresh_on_replay: bool = False
    ) -> int:
        if finish is not None:
            finish(0)  # the answer is still serialized once more, as when audited
        return 0

    lat: dict[str, list[float]] = {"audited": [], "unaudited": []}
    receipt: list[float] = []  # the requester's own record, after the answer arrived
    rng = random.Random(13)
    channel = secure_channel(
        lanzhou.home.tls, jinan.endpoint, jinan.home.identity, jinan.home.tls.ca_pem
    )
    try:
        stub = query_rpc.QueryServiceStub(channel)
        for _ in range(50):  # warm up the connection and caches
            await stub.Lookup(query.LookupRequest(purpose="enforcement",
                                                  person_pseudonym=pseudonyms[0]))  # fmt: skip

        async def one(mode: str) -> None:
            asker = new_asker()
            req = query.LookupRequest(
                purpose="enforcement", person_pseudonym=rng.choice(pseudonyms)
            )
            t0 = time.perf_counter()
            resp = await stub.Lookup(req, metadata=asker.metadata())
            t1 = time.perf_counter()
            lat[mode].append((t1 - t0) * 1000)
            if mode == "audited":  # the requester's receipt, as `creditnode query` keeps
                await lanzhou.audit.record(out_entry(
                    asker, peer="jinan", method=LOOKUP, kind="query",
                    outcome="hit" if resp.answers else "no_hit", purpose=req.purpose,
                    response=resp.SerializeToString(), remote=resp.audit_index,
                ))  # fmt: skip
                receipt.append((time.perf_counter() - t1) * 1000)
            assert len(resp.answers) == 1

        for block in range(max(2, n // 100)):
            mode = "audited" if block % 2 == 0 else "unaudited"
            jinan.exit.audit.record = timed_record if mode == "audited" else no_record  # type: ignore[method-assign]
            for _ in range(100 // concurrency):
                await asyncio.gather(*(one(mode) for _ in range(concurrency)))
    finally:
        await channel.close()
        jinan.exit.audit.record = real_record  # type: ignore[method-assign]
    out: dict[str, Any] = {
        "queries": sum(len(v) for v in lat.values()),
        "in_flight": concurrency,
    }
    for mode, values in lat.items():
        out[f"{mode}_p50_ms"] = _pct(values, 0.50)
        out[f"{mode}_p99_ms"] = _pct(values, 0.99)
    out["added_p50_ms"] = out["audited_p50_ms"] - out["unaudited_p50_ms"]
    out["added_p99_ms"] = out["audited_p99_ms"] - out["unaudited_p99_ms"]
    out["requester_receipt_p50_ms"] = _pct(receipt, 0.50)
    out["requester_receipt_p99_ms"] = _pct(receipt, 0.99)
    out["responder_record_p50_ms"] = _pct(recording, 0.50)
    out["responder_record_p99_ms"] = _pct(recording, 0.99)
    out["audit_entries_jinan"] = jinan.audit.log.frontier.size
    return out


async def run(
    base: Path, entries: int, queries: int, in_flight: int, dbs: Databases
) -> dict[str, Any]:
    urls = {name: await dbs.url(name) for name, _ in CITIES}
    async with LocalFederation(
        base, CITIES, subscribe=False, heartbeat=False, database_url=urls.get
    ) as fed:
        agreements = fed["jinan"].home.paths.root / "agreements"
        agreements.mkdir(exist_ok=True)
        (agreements / "lanzhou.toml").write_text(AGREEMENT)
        fed["jinan"].border.refresh(force=True)
        pseudonyms = await fill(fed["jinan"], entries)
        print(f"{queries:,} queries, {in_flight} in flight, audited vs unaudited (alternating)")
        result = await query_cost(fed, pseudonyms, queries, concurrency=in_flight)
        print(json.dumps(result, indent=2))
    return {"query": result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--in-flight", type=int, default=1, choices=(1, 2, 4, 5, 10, 20))
    args = parser.parse_args()
    configure_logging("warning")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    with tempfile.TemporaryDirectory(prefix="creditnode-audit-") as tmp:
        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count()},
            "backend": args.backend,
            "entries": args.entries,
        }
        dbs = Databases(args.backend, Path(tmp))
        try:
            results.update(
                asyncio.run(run(Path(tmp), args.entries, args.queries, args.in_flight, dbs))
            )
        finally:
            dbs.close()
    results["targets"] = {"query added_p99_ms <= 2": results["query"]["added_p99_ms"] <= 2.0}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "audit_cost.json" if args.backend == "sqlite" else f"audit_cost_{args.backend}.json"
    (out / name).write_text(json.dumps(results, indent=2))
    print(json.dumps(results["targets"], indent=2))
    print(f"written to {out / name}")


if __name__ == "__main__":
    main()
