"""Feed benchmarks (issue #3). Prints figures and writes bench/results/feed_sync.json.

    .venv/bin/python bench/feed_sync.py [--entries 1000000] [--latency-seconds 10]

(a) initial sync of N entries from one node to another on loopback, verified and durable, run
    as a real `creditnode sync` process, against a raw bulk insert of the same leaf rows into
    the same engine in the same run; (b) propagation latency from append at the origin to
    applied at a live subscriber at 100 changes/s; (c) the sync process's peak RSS, at N/10 and
    at N, to show it does not grow with the feed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.feeds.logstore import LEAVES  # noqa: E402
from node.feeds.subscriber import Subscriber, SyncProgress  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.storage import Store  # noqa: E402
from tests.feedutil import adds  # noqa: E402

CITIES = [("jinan", "370100"), ("lanzhou", "620100")]


async def fill(fed: LocalFederation, n: int) -> float:
    pub = fed["jinan"].publisher
    start = time.perf_counter()
    done = 0
    while done < n:
        k = min(5000, n - done)
        await pub.append(adds(k, start=done))
        done += k
        print(f"\r  origin log: {done:,}/{n:,}", end="", flush=True)
    await pub.sign_checkpoint()
    print()
    return n / (time.perf_counter() - start)


def sync_process(home: Path) -> tuple[float, int]:
    """Run `creditnode sync` as a child; return (seconds, peak RSS in KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "sync", "--home", str(home)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sync failed: {proc.stdout}\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before)


async def raw_insert_rate(base: Path, leaves: list[bytes]) -> float:
    """The limit: the same leaf rows bulk-inserted into the same engine, same batch size."""
    store = await Store.open(f"sqlite:///{base / 'raw.db'}")
    start = time.perf_counter()
    for i in range(0, len(leaves), 4096):
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(LEAVES),
                [
                    {"log_id": 1, "idx": i + j, "data": d}
                    for j, d in enumerate(leaves[i : i + 4096])
                ],
            )
    rate = len(leaves) / (time.perf_counter() - start)
    await store.close()
    return rate


async def initial_sync(base: Path, n: int) -> dict[str, float]:
    async with LocalFederation(base, CITIES, subscribe=False, heartbeat=False) as fed:
        fill_rate = await fill(fed, n)
        leaves = await fed["jinan"].publisher.log.read_leaves(0, n)
        lanzhou_home = fed["lanzhou"].home.paths.root
        await fed["lanzhou"].stop(0)  # the subscriber runs as its own process
        seconds, rss_kib = await asyncio.to_thread(sync_process, lanzhou_home)
        raw = await raw_insert_rate(base, leaves)
    rate = n / seconds
    return {
        "entries": n,
        "seconds": seconds,
        "entries_per_s": rate,
        "raw_insert_per_s": raw,
        "ratio_to_raw_insert": rate / raw,
        "subscriber_peak_rss_mb": rss_kib / 1024,
        "origin_append_per_s": fill_rate,
    }


async def latency(base: Path, seconds: float, rate: float) -> dict[str, float]:
    async with LocalFederation(base, CITIES, subscribe=False, heartbeat=False) as fed:
        jinan, lanzhou = fed["jinan"], fed["lanzhou"]
        await lanzhou.directory.refresh()
        peer = await lanzhou.directory.lookup("jinan")
        assert peer is not None
        sub = await Subscriber.open(lanzhou.home.tls, lanzhou.store, peer)
        applied_at: dict[int, float] = {}

        def applied(p: SyncProgress) -> None:
            applied_at.setdefault(p.size, time.perf_counter())

        follower = asyncio.create_task(sub.sync(follow=True, progress=applied))
        await asyncio.sleep(0.5)
        sent: dict[int, float] = {}
        total = int(seconds * rate)
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            t = time.perf_counter()
            size = await jinan.publisher.append(adds(1, start=i))
            sent[size] = t
        await asyncio.sleep(1.0)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    # A size is applied when the first applied size >= it was reached.
    marks = sorted(applied_at.items())
    lat = []
    j = 0
    for size, t_sent in sorted(sent.items()):
        while j < len(marks) and marks[j][0] < size:
            j += 1
        if j < len(marks):
            lat.append((marks[j][1] - t_sent) * 1000)
    lat.sort()
    return {
        "changes": total,
        "rate_per_s": rate,
        "delivered": len(lat),
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[int(len(lat) * 0.99) - 1],
        "max_ms": lat[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging("warning")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="creditnode-bench-") as tmp:
        print("(b) propagation latency at 100 changes/s")
        results["latency"] = asyncio.run(latency(Path(tmp) / "lat", args.latency_seconds, 100))
        print(json.dumps(results["latency"], indent=2))
        small = max(args.entries // 10, 1000)
        print(f"(a, c) initial sync of {small:,} entries")
        results["sync_small"] = asyncio.run(initial_sync(Path(tmp) / "small", small))
        print(json.dumps(results["sync_small"], indent=2))
        print(f"(a, c) initial sync of {args.entries:,} entries")
        results["sync"] = asyncio.run(initial_sync(Path(tmp) / "big", args.entries))
        print(json.dumps(results["sync"], indent=2))
    sync = results["sync"]
    assert isinstance(sync, dict)
    lat = results["latency"]
    assert isinstance(lat, dict)
    results["targets"] = {
        "entries_per_s >= 50000": sync["entries_per_s"] >= 50_000,
        "ratio_to_raw_insert >= 0.5": sync["ratio_to_raw_insert"] >= 0.5,
        "p99_ms <= 250": lat["p99_ms"] <= 250,
        "subscriber_peak_rss_mb <= 300": sync["subscriber_peak_rss_mb"] <= 300,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "feed_sync.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results["targets"], indent=2))
    print(f"written to {out / 'feed_sync.json'}")


if __name__ == "__main__":
    main()
