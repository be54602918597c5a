"""Initial sync (issue 17). Prints figures and writes bench/results/sync_<backend>.json.

    .venv/bin/python bench/sync.py [--backend sqlite|postgresql] [--entries N] [--rounds R]
                                   [--latency-seconds S] [--name RESULT_NAME]

An origin (in this process, on the chosen engine) is filled with N entries straight through
its publisher, in large batches (timed, reported apart). Then, alternately for R rounds, each
into a fresh copy of the subscriber's home and database (same engine):

(a) verified, durable sync: a real ``creditnode sync`` process (every checkpoint and leaf
    verified, applied and committed);
(b) the unverified copy: a process of this script (``--copy-client``) with the same mTLS
    certificates that calls the same Subscribe RPC and bulk-inserts the leaf bytes it
    receives into the same leaf table (same transaction size, same bulk path: COPY on
    PostgreSQL), with no parsing, hashing or checks: the ceiling for (a).

Each rate is N over the process's wall time less that of the same process with nothing to
do (interpreter start, imports, TLS handshake), measured every round; the least of a
variant's no-op times is taken as its fixed cost. Peak RSS is
each child's own VmHWM, read from /proc while it runs. On SQLite, the propagation latency
from append at the origin to applied at a live subscriber at 100 changes/s (a real
``creditnode serve``) is also measured (--latency-seconds 0 skips it). On PostgreSQL, the
bulk apply through COPY is compared with the prepared INSERT on the same leaf rows (up to
200,000), alternately. The PostgreSQL server is durable (fsync and synchronous commit on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._results import write_result  # noqa: E402

CITIES = [("jinan", "370100"), ("lanzhou", "620100")]
ORIGIN, SUBSCRIBER = "jinan", "lanzhou"
COPY_LOG_ID = 2**31 - 1  # the copy's leaves: a log id no real log of a fresh home has
TARGETS: dict[str, tuple[str, float]] = {
    "entries_per_s": (">=", 40_000),
    "ratio_to_copy": (">=", 0.5),
    "peak_rss_mb": ("<=", 300),
    "latency_p99_ms": ("<=", 250),
}


class Databases:
    """Fresh databases on the chosen engine: SQLite files in the home, or databases on a
    throw-away PostgreSQL server (tests/pgserver.py, as the tests start it)."""

    def __init__(self, backend: str) -> None:
        from tests.pgserver import PgServer

        self.backend = backend
        self.pg: PgServer | None = None
        if backend == "postgresql":
            self.pg = PgServer.start()
            self._make_durable()

    def _make_durable(self) -> None:
        """Restart the server with fsync and synchronous commit on: the tests' server runs
        without them (fast, throw-away), but "durable" must mean a commit is on disk."""
        pg = self.pg
        assert pg is not None
        data = str(pg.directory / "data")
        opts = (
            f"-p {pg.port} -k {pg.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=200"
        )
        for args in (
            ("pg_ctl", "-D", data, "-m", "fast", "-w", "stop"),
            ("pg_ctl", "-D", data, "-o", opts, "-l", str(pg.directory / "log"), "-w", "start"),
        ):
            subprocess.run(pg._cmd(*args), check=True, capture_output=True)

    async def _admin(self, sql: str) -> None:
        import asyncpg

        assert self.pg is not None
        conn = await asyncpg.connect(self.pg.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self, label: str, template: str | None = None) -> str | None:
        """A new database's URL (None on SQLite: the home's own node.db); from *template*
        (a database name) when given."""
        if self.pg is None:
            return None
        name = f"{label}_{uuid.uuid4().hex[:6]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        await self._admin(f'CREATE DATABASE "{name}"{copy}')
        return self.pg.url(name)

    async def drop(self, url: str | None) -> None:
        if self.pg is not None and url is not None:
            await self._admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()


async def fill(fed: Any, n: int, *, valid_codes: bool = False) -> float:
    """Append N entries at the origin in large batches and sign a checkpoint; entries/s.
    *valid_codes*: USCCs with right check characters (the default's fail theirs, so every
    mirrored entry is also a 重错码 conflict that `status` lists)."""
    from tests.feedutil import adds

    pub = fed[ORIGIN].publisher
    start = time.perf_counter()
    done = 0
    while done < n:
        k = min(20_000, n - done)
        await pub.append(adds(k, start=done, valid_codes=valid_codes))
        done += k
        print(f"\r  origin log: {done:,}/{n:,}", end="", flush=True)
    await pub.sign_checkpoint()
    print()
    return n / (time.perf_counter() - start)


def peak_rss_kib(pid: int) -> int:
    """The process's peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        with Path(f"/proc/{pid}/status").open() as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(args: list[str]) -> tuple[float, int, str]:
    """Run a child process; (wall seconds, its own peak RSS in KiB, its stdout).

    The peak is read from the child's own VmHWM while it runs: getrusage(RUSAGE_CHILDREN)
    would count the parent's pages the child shares between fork and exec.
    """
    env = {**os.environ, "GRPC_VERBOSITY": "NONE", "CREDITNODE_LOG_LEVEL": "warning"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env=env,
    )  # fmt: skip
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_rss_kib(proc.pid))
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{args[:3]} failed ({proc.returncode}): {out[-2000:]}\n{err[-2000:]}")
    return elapsed, peak, out


def _watch_mirror(db: Path, n: int, marks: dict[str, float], stop: threading.Event) -> None:
    """Record when the mirror's log first holds N leaves durably ("durable") and when its
    projection first covers them ("projected"), every 5 ms (SQLite: WAL readers never block)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    while not stop.is_set() and len(marks) < 2:
        try:
            size, projected = conn.execute(
                "SELECT max(size), max(projected_size) FROM logs"
            ).fetchone()
        except sqlite3.Error:  # busy for a moment (a checkpoint): look again
            size = projected = None
        now = time.perf_counter()
        if size is not None and size >= n:
            marks.setdefault("durable", now)
        if projected is not None and projected >= n:
            marks.setdefault("projected", now)
        time.sleep(0.005)
    conn.close()


def verified_sync(home: Path, n: int = 0) -> tuple[float, float, int, dict[str, float]]:
    """(seconds, seconds of a no-op re-run, peak RSS KiB, seconds from start until the log was
    durable and until the projection caught up (SQLite only)) of `creditnode sync`."""
    marks: dict[str, float] = {}
    stop = threading.Event()
    db = home / "node.db"
    watcher = threading.Thread(target=_watch_mirror, args=(db, n, marks, stop), daemon=True)
    start = time.perf_counter()
    if n and db.exists():
        watcher.start()
    seconds, peak, _ = run_child(["-m", "node.cli", "sync", "--home", str(home)])
    stop.set()
    if watcher.is_alive():
        watcher.join()
    overhead, _, _ = run_child(["-m", "node.cli", "sync", "--home", str(home)])
    return seconds, overhead, peak, {k: t - start for k, t in marks.items()}


def unverified_copy(home: Path, n: int) -> tuple[float, float, int, dict[str, Any]]:
    """(seconds, seconds with nothing to copy, peak RSS KiB, the child's own report)."""
    me = str(Path(__file__).resolve())
    seconds, peak, out = run_child([me, "--copy-client", "--home", str(home), "--entries", str(n)])
    overhead, _, _ = run_child([me, "--copy-client", "--home", str(home), "--entries", "0"])
    report = json.loads(out.strip().splitlines()[-1])
    if report["received"] != n:
        raise SystemExit(f"copy received {report['received']} of {n} leaves")
    return seconds, overhead, peak, report


async def copy_client(root: Path, n: int) -> None:
    """The unverified copy (a child process): Subscribe from 0 with the home's certificates
    and bulk-insert each received leaf's bytes, as received, APPLY_EVERY per transaction
    (one write in flight while the next arrives, as the subscriber does)."""
    from node.api import feeds, feeds_rpc
    from node.audit.wire import new_asker
    from node.feeds.logstore import LEAVES
    from node.feeds.subscriber import APPLY_EVERY
    from node.home import load_home
    from node.peers.directory import PeerDirectory
    from node.storage import Store, dialect

    home = load_home(root)
    async with Store.opened(home.database_url) as store:
        directory = PeerDirectory(store, home.settings.federation, home.tls.ca_pem)
        await directory.refresh()
        peer = next(p for p in directory.peers() if p.identity.node == ORIGIN)
        channel = peer.channel(home.tls)
        inflight: asyncio.Task[None] | None = None

        async def write(rows: list[tuple[int, int, bytes]]) -> None:
            async with store.begin() as conn:
                await dialect.bulk_insert(conn, LEAVES, ("log_id", "idx", "data"), rows)

        start = time.perf_counter()
        call = feeds_rpc.FeedServiceStub(channel).Subscribe(
            feeds.SubscribeRequest(from_size=0, checkpoint_size=0),
            metadata=new_asker().metadata(),
        )
        got = 0
        rows: list[tuple[int, int, bytes]] = []
        async for msg in call:
            if msg.HasField("batch"):
                first = msg.batch.start
                rows.extend(
                    (COPY_LOG_ID, first + i, x.entry) for i, x in enumerate(msg.batch.leaves)
                )
                got += len(msg.batch.leaves)
            if rows and (len(rows) >= APPLY_EVERY or got >= n):
                if inflight is not None:
                    await inflight
                inflight, rows = asyncio.create_task(write(rows)), []
            if got >= n:
                break
        call.cancel()
        if inflight is not None:
            await inflight
        elapsed = time.perf_counter() - start
        await channel.close()
    print(json.dumps({"received": got, "seconds": elapsed}))


async def copy_speedup(dbs: Databases, leaves: list[bytes], rounds: int) -> dict[str, float]:
    """PostgreSQL: the same leaf rows through COPY and through the prepared INSERT
    (executemany), in the subscriber's transaction size, alternately, each into a fresh
    database; rows/s of each (medians) and their ratio."""
    from node.feeds.logstore import LEAVES
    from node.feeds.subscriber import APPLY_EVERY
    from node.storage import Store, dialect

    rows = [(1, i, data) for i, data in enumerate(leaves)]
    rates: dict[bool, list[float]] = {True: [], False: []}
    threshold = dialect.COPY_MIN_ROWS
    try:
        for r in range(max(rounds, 2)):
            for use_copy in (True, False) if r % 2 == 0 else (False, True):
                url = await dbs.create("copy")
                assert url is not None
                store = await Store.open(url)
                dialect.COPY_MIN_ROWS = threshold if use_copy else len(rows) + APPLY_EVERY + 1
                start = time.perf_counter()
                for i in range(0, len(rows), APPLY_EVERY):
                    async with store.begin() as conn:
                        await dialect.bulk_insert(
                            conn, LEAVES, ("log_id", "idx", "data"), rows[i : i + APPLY_EVERY]
                        )
                rates[use_copy].append(len(rows) / (time.perf_counter() - start))
                await store.close()
                await dbs.drop(url)
    finally:
        dialect.COPY_MIN_ROWS = threshold
    copy, insert = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"  COPY {copy:,.0f} rows/s, INSERT {insert:,.0f} rows/s")
    return {"copy_rows_per_s": copy, "insert_rows_per_s": insert, "copy_speedup": copy / insert}


async def fresh_home(
    template: Path, dbs: Databases, template_db: str | None, dest: Path
) -> str | None:
    """A copy of the subscriber's home (enrolled, nothing mirrored) with its own database."""
    from node.home import set_setting

    shutil.copytree(template, dest)
    if template_db is None:
        return None
    url = await dbs.create("sub", template=template_db.rsplit("/", 1)[1])
    assert url is not None
    set_setting(dest, "database_url", url)
    return url


async def lookup_on_origin(fed: Any, backend: str, n: int, queries: int) -> dict[str, Any]:
    """bench/lookup.py's comparison, by USCC, against this run's filled origin (a 10M fill is
    paid once for both figures)."""
    from bench.lookup import admit, analyze, by_uscc, compare
    from tests.feedutil import org_entry

    admit(fed)
    await analyze(fed, backend)
    print(f"Lookup by USCC at {n:,} entries: {queries:,} calls per mode and concurrency")
    return await compare(fed, by_uscc(n, lambda i: org_entry(i).uscc), queries)


async def initial_sync(
    base: Path, backend: str, n: int, rounds: int, lookup_queries: int = 0
) -> dict[str, Any]:
    from node.local_federation import LocalFederation

    dbs = Databases(backend)
    try:
        urls = {ORIGIN: await dbs.create("origin"), SUBSCRIBER: await dbs.create("template")}
        fed = LocalFederation(
            base, CITIES, subscribe=False, heartbeat=False, database_url=lambda name: urls[name]
        )
        async with fed:
            fill_rate = await fill(fed, n)
            bulk: dict[str, float] = {}
            if backend == "postgresql":
                leaves = await fed[ORIGIN].publisher.log.read_leaves(0, min(n, 200_000))
                bulk = await copy_speedup(dbs, leaves, rounds)
                del leaves
            template = fed[SUBSCRIBER].home.paths.root
            await fed[SUBSCRIBER].stop(0)  # the subscribers run as their own processes
            per_round: list[dict[str, Any]] = []
            for r in range(rounds):
                row: dict[str, Any] = {}
                # Alternate which goes first, so drift in the machine's load hits both alike.
                order = ["verified", "copy"] if r % 2 == 0 else ["copy", "verified"]
                for variant in order:
                    home = base / f"{variant}-{r}"
                    url = await fresh_home(template, dbs, urls[SUBSCRIBER], home)
                    if variant == "verified":
                        secs, over, peak, marks = await asyncio.to_thread(verified_sync, home, n)
                        row["marks_s"] = marks
                    else:
                        secs, over, peak, rep = await asyncio.to_thread(unverified_copy, home, n)
                        row["copy_in_process_per_s"] = n / rep["seconds"]
                    row[variant] = {"seconds": secs, "overhead_s": over, "peak_rss_mb": peak / 1024}
                    print(f"  round {r + 1} {variant:8}: {json.dumps(row[variant])}")
                    shutil.rmtree(home, ignore_errors=True)
                    await dbs.drop(url)
                per_round.append(row)
            looked = (
                await lookup_on_origin(fed, backend, n, lookup_queries) if lookup_queries else {}
            )
    finally:
        dbs.close()
    # The fixed cost is the least of the variant's no-op runs: noise only ever adds time.
    for variant in ("verified", "copy"):
        over = min(rd[variant]["overhead_s"] for rd in per_round)
        for rd in per_round:
            net = rd[variant]["seconds"] - over
            if net < over:  # too few entries to tell from the noise: the gross rate, a floor
                print(f"  note: {variant} moved {n:,} entries in less than its start-up time; "
                      "its rate is gross (start-up included); use more entries")  # fmt: skip
                net = rd[variant]["seconds"]
                rd[variant]["gross"] = True
            rd[variant]["entries_per_s"] = n / net
    for rd in per_round:
        rd["ratio"] = rd["verified"]["entries_per_s"] / rd["copy"]["entries_per_s"]
    # Issue 17: "verified and durable" is the log's figure; the projection (which `sync` waits
    # for) may finish after it. Both from the watcher's marks (SQLite), start-up excepted.
    over = min(rd["verified"]["overhead_s"] for rd in per_round)
    marked = [rd["marks_s"] for rd in per_round if len(rd.get("marks_s", {})) == 2]
    durable: dict[str, float] = {}
    if marked:
        durable = {
            "durable_entries_per_s": statistics.median(
                n / max(m["durable"] - over, 1e-9) for m in marked
            ),
            "projection_after_durable_s": statistics.median(
                m["projected"] - m["durable"] for m in marked
            ),
        }
    verified = statistics.median(rd["verified"]["entries_per_s"] for rd in per_round)
    copied = statistics.median(rd["copy"]["entries_per_s"] for rd in per_round)
    return {
        "figures": {
            "entries_per_s": verified,
            "copy_entries_per_s": copied,
            "ratio_to_copy": statistics.median(r["ratio"] for r in per_round),
            "best_entries_per_s": max(r["verified"]["entries_per_s"] for r in per_round),
            "peak_rss_mb": max(r["verified"]["peak_rss_mb"] for r in per_round),
            "copy_peak_rss_mb": max(r["copy"]["peak_rss_mb"] for r in per_round),
            "copy_in_process_per_s": statistics.median(
                r["copy_in_process_per_s"] for r in per_round
            ),
            "origin_fill_per_s": fill_rate,
            **durable,
            **bulk,
        },
        "rounds": per_round,
        "lookup": looked,
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
    from node.local_federation import LocalFederation
    from tests.feedutil import adds

    async with LocalFederation(base, CITIES, subscribe=False, heartbeat=False) as fed:
        jinan, lanzhou = fed[ORIGIN], fed[SUBSCRIBER]
        home = lanzhou.home.paths.root
        await lanzhou.stop(0)
        env = {**os.environ, "CREDITNODE_LOG_LEVEL": "warning"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--home", str(home)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        seen: dict[int, float] = {}
        sent: dict[int, float] = {}
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
        "changes": len(sent),
        "delivered": len(lat),
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[max(int(len(lat) * 0.99) - 1, 0)],
        "max_ms": lat[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--name", help="result file stem (default sync_<backend>)")
    parser.add_argument(
        "--lookup-queries",
        type=int,
        default=0,
        help="then measure Lookup by USCC against the filled origin (bench/lookup.py)",
    )
    parser.add_argument("--lookup-name", help="its result file stem")
    parser.add_argument("--copy-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from node.logs import configure_logging

    configure_logging("error")  # not the origin's "witness unreachable" lines
    if args.copy_client:
        asyncio.run(copy_client(args.home, args.entries))
        return
    name = args.name or f"sync_{args.backend}"
    with tempfile.TemporaryDirectory(prefix="creditnode-bench-") as tmp:
        print(f"initial sync of {args.entries:,} entries on {args.backend}, {args.rounds} rounds")
        result = asyncio.run(
            initial_sync(
                Path(tmp) / "sync", args.backend, args.entries, args.rounds, args.lookup_queries
            )
        )
        figures = result["figures"]
        lat: dict[str, float] = {}
        if args.latency_seconds > 0 and args.backend == "sqlite":
            print("propagation latency at 100 changes/s")
            lat = asyncio.run(latency(Path(tmp) / "lat", args.latency_seconds, 100))
            figures["latency_p50_ms"] = lat["p50_ms"]
            figures["latency_p99_ms"] = lat["p99_ms"]
    path = write_result(
        name, figures, TARGETS, backend=args.backend,
        params={"entries": args.entries, "rounds": args.rounds,
                "latency_seconds": args.latency_seconds},
        extra={"rounds": result["rounds"], "latency": lat},
    )  # fmt: skip
    print(json.dumps(figures, indent=2))
    print(f"written to {path}")
    if result["lookup"]:
        from bench.lookup import TARGETS as LOOKUP_TARGETS

        path = write_result(
            args.lookup_name or f"lookup_{args.backend}_at_sync",
            result["lookup"],
            LOOKUP_TARGETS,
            backend=args.backend,
            params={"entries": args.entries, "queries": args.lookup_queries, "subject": "uscc"},
            extra={"note": "on bench/sync.py's filled origin"},
        )
        print(f"written to {path}")


if __name__ == "__main__":
    main()
