"""`creditnode verify` over a large own log (issue 13). Prints figures and writes
bench/results/verify.json.

    .venv/bin/python bench/verify.py [--leaves 1000000] [--backend sqlite]

The log is built fast (the publisher's own append path in large transactions, one signed
checkpoint at the end), then verified twice: in this process (``verify_store``, timed alone)
and as a real ``creditnode verify`` process (start-up included), with the process's peak RSS
to show memory does not grow with the log. The pass's name-index check (issue 17) is also timed
alone, against FTS5's own ``integrity-check`` of the same index (a write statement: the check
reads FTS5's per-row sizes instead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.feeds.publisher import Publisher  # noqa: E402
from node.home import init_home, load_home  # noqa: E402
from node.keys.signers import FeedSigners  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.storage import Store  # noqa: E402
from node.verification.names import name_index_diff  # noqa: E402
from node.verification.runner import _workers, verify_store  # noqa: E402
from tests.feedutil import adds  # noqa: E402

BATCH = 50_000


async def build(home_root: Path, n: int, url: str | None) -> float:
    home = load_home(home_root)
    async with Store.opened(url or home.database_url) as store:
        pub = await Publisher.open(store, home.identity.uri, FeedSigners.of_home(home))
        start = time.perf_counter()
        done = 0
        while done < n:
            k = min(BATCH, n - done)
            await pub.append(adds(k, start=done))
            done += k
            print(f"\r  building the log: {done:,}/{n:,}", end="", flush=True)
        await pub.sign_checkpoint()
        print()
        return time.perf_counter() - start


async def verify_in_process(
    home_root: Path, url: str | None, *, parallel: bool
) -> tuple[float, int, int]:
    home = load_home(home_root)
    async with Store.opened(url or home.database_url) as store:
        start = time.perf_counter()
        report = await verify_store(home, store, parallel=parallel)
        seconds = time.perf_counter() - start
    return seconds, report.leaves, len(report.findings)


async def name_index_seconds(home_root: Path) -> tuple[float, float]:
    """(the name-index check over the log, FTS5's integrity-check of the whole index)."""
    home = load_home(home_root)
    async with Store.opened(home.database_url) as store:
        async with store.engine.connect() as conn:
            log_id = (
                await conn.execute(
                    text("SELECT id FROM logs WHERE origin = :o"), {"o": home.identity.uri}
                )
            ).scalar_one()
        start = time.perf_counter()
        diff = await name_index_diff(store, int(log_id))
        check = time.perf_counter() - start
        assert diff is None, diff
        async with store.begin() as conn:
            start = time.perf_counter()
            await conn.execute(
                text(
                    "INSERT INTO list_state_names(list_state_names, rank) "
                    "VALUES('integrity-check', 1)"
                )
            )
            integrity = time.perf_counter() - start
    return check, integrity


def _peak_rss_kib(pid: int) -> int:
    try:
        with Path(f"/proc/{pid}/status").open() as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def verify_process(home: Path) -> tuple[float, int, int]:
    """`creditnode verify` as a child: (seconds, exit code, the largest peak RSS in KiB of it
    and each of its worker processes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "verify", "--home", str(home), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    peak = 0
    while proc.poll() is None:
        for pid in (proc.pid, *_children(proc.pid)):
            peak = max(peak, _peak_rss_kib(pid))
        time.sleep(0.05)
    proc.communicate()
    return time.perf_counter() - start, proc.returncode, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the home here")
    parser.add_argument("--serial", action="store_true", help="also time one process alone (slow)")
    args = parser.parse_args()
    configure_logging("warning")
    base = args.dir or Path(tempfile.mkdtemp(prefix="creditnode-verify-"))
    home = base / "jinan"
    if not (home / "creditnode.toml").exists():
        init_home(home, name="jinan", region="370100", listen="127.0.0.1:0")
        built = asyncio.run(build(home, args.leaves, None))
    else:
        built = 0.0
    load = os.getloadavg()[0]
    seconds, leaves, findings = asyncio.run(verify_in_process(home, None, parallel=True))
    print(f"  verify (in process, {_workers()} workers): {leaves:,} leaves in {seconds:.2f} s "
          f"({leaves / seconds:,.0f} leaves/s), {findings} findings")  # fmt: skip
    names, integrity = asyncio.run(name_index_seconds(home))
    print(f"  name-index check: {names:.2f} s (FTS5 integrity-check, holding the write lock: "
          f"{integrity:.2f} s)")  # fmt: skip
    serial = None
    if args.serial:
        serial, _, _ = asyncio.run(verify_in_process(home, None, parallel=False))
        print(f"  verify (one process): {serial:.2f} s")
    proc_seconds, code, rss = verify_process(home)
    print(
        f"  creditnode verify: {proc_seconds:.2f} s, exit {code}, "
        f"peak RSS {rss / 1024:.0f} MiB (largest of its processes)"
    )
    result = {
        "leaves": leaves,
        "build_seconds": round(built, 2),
        "verify_seconds": round(seconds, 2),
        "workers": _workers(),
        "serial_seconds": None if serial is None else round(serial, 2),
        "load_average_at_start": round(load, 2),
        "verify_leaves_per_second": round(leaves / seconds),
        "cli_seconds": round(proc_seconds, 2),
        "cli_exit": code,
        "cli_peak_rss_mib": round(rss / 1024),
        "findings": findings,
        "name_index_check_seconds": round(names, 3),
        "fts5_integrity_check_seconds": round(integrity, 3),
        "target_seconds": 10,
        "backend": "sqlite",
        "cpus": os.cpu_count(),
    }
    out = ROOT / "bench" / "results" / "verify.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
