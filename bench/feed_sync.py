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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.feeds.logstore import LEAVES  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.storage import Store, dialect  # noqa: E402
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


PROFILE = os.environ.get("CREDITNODE_BENCH_PROFILE")  # cProfile output for the sync process


def _peak_rss_kib(pid: int) -> int:
    """The process's peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        with Path(f"/proc/{pid}/status").open() as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sync_process(home: Path) -> tuple[float, int]:
    """Run `creditnode sync` as a child; return (seconds, its peak RSS in KiB).

    The peak is read from the child's own VmHWM while it runs: getrusage(RUSAGE_CHILDREN)
    would count the parent's pages the child shares between fork and exec.
    """
    prof = ["-m", "cProfile", "-o", PROFILE] if PROFILE else []
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *prof, "-m", "node.cli", "sync", "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_kib(proc.pid))
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"sync failed: {out}\n{err}")
    return elapsed, peak


async def raw_insert_rate(base: Path, leaves: list[bytes]) -> float:
    """The limit: the same leaf rows bulk-inserted into the same engine by the same fastest
    path the node uses (the driver's executemany), in transactions of the same size."""
    store = await Store.open(f"sqlite:///{base / 'raw.db'}")
    start = time.perf_counter()
    for i in range(0, len(leaves), 4096):
        async with store.engine.begin() as conn:
            rows = [(1, i + j, d) for j, d in enumerate(leaves[i : i + 4096])]
            await dialect.bulk_insert(conn, LEAVES, ("log_id", "idx", "data"), rows)
    rate = len(leaves) / (time.perf_counter() - start)
    await store.close()
    return rate


async def initial_sync(base: Path, n: int) -> dict[str, float]:
    async with LocalFederation(base, CITIES, subscribe=False, heartbeat=False) as fed:
        fill_rate = await fill(fed, n)
        lanzhou_home = fed["lanzhou"].home.paths.root
        await fed["lanzhou"].stop(0)  # the subscriber runs as its own process
        seconds, rss_kib = await asyncio.to_thread(sync_process, lanzhou_home)
        # Process start, imports, TLS handshake and the checkpoint check, nothing to apply.
        overhead, _ = await asyncio.to_thread(sync_process, lanzhou_home)
        leaves = await fed["jinan"].publisher.log.read_leaves(0, n)
        raw = await raw_insert_rate(base, leaves)
    rate = n / max(seconds - overhead, 1e-9)
    return {
        "entries": n,
        "seconds": seconds,
        "process_overhead_s": overhead,
        "entries_per_s": rate,
        "entries_per_s_including_startup": n / seconds,
        "raw_insert_per_s": raw,
        "ratio_to_raw_insert": rate / raw,
        "subscriber_peak_rss_mb": rss_kib / 1024,
        "origin_append_per_s": fill_rate,
    }


def _watch_sizes(db: Path, origin: str, seen: dict[int, float], stop: threading.Event) -> None:
    """Record when each mirrored size first appears in the subscriber's database (every 5 ms)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    last = -1
    while not stop.is_set():
        row = conn.execute("SELECT size FROM logs WHERE origin = ?", (origin,)).fetchone()
        if row and row[0] != last:
            last = row[0]
            seen.setdefault(last, time.perf_counter())
        time.sleep(0.005)
    conn.close()


async def latency(base: Path, seconds: float, rate: float) -> dict[str, float]:
    """Origin appends in this process; the subscriber is a real `creditnode serve` process."""
    async with LocalFederation(base, CITIES, subscribe=False, heartbeat=False) as fed:
        jinan, lanzhou = fed["jinan"], fed["lanzhou"]
        home = lanzhou.home.paths.root
        await lanzhou.stop(0)
        env = {**os.environ, "CREDITNODE_LOG_LEVEL": "warning"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--home", str(home)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seen: dict[int, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(
            target=_watch_sizes,
            daemon=True,
            args=(home / "node.db", jinan.home.identity.uri, seen, stop),
        )
        try:
            await jinan.publisher.append(adds(1, start=10**6))  # warm the stream up
            deadline = time.perf_counter() + 30
            watcher.start()
            while 1 not in seen and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            sent: dict[int, float] = {}
            total = int(seconds * rate)
            start = time.perf_counter()
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                t = time.perf_counter()
                sent[await jinan.publisher.append(adds(1, start=i))] = t
            end = max(sent)
            deadline = time.perf_counter() + 10
            while max(seen, default=0) < end and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            proc.terminate()
            proc.wait(30)
    marks = sorted(seen.items())
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
        "p99_ms": lat[max(int(len(lat) * 0.99) - 1, 0)],
        "max_ms": lat[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-only", action="store_true", help="measure (b) alone")
    args = parser.parse_args()
    configure_logging("warning")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="creditnode-bench-") as tmp:
        print("(b) propagation latency at 100 changes/s")
        results["latency"] = asyncio.run(latency(Path(tmp) / "lat", args.latency_seconds, 100))
        print(json.dumps(results["latency"], indent=2))
        if args.latency_only:
            return
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
