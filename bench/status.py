"""`creditnode status` on a home mirroring N entries (issue 17). Prints figures and writes
bench/results/status_<backend>.json.

    .venv/bin/python bench/status.py [--backend sqlite|postgresql] [--entries N] [--runs R]

An origin (this process) is filled with N entries; the subscriber's home mirrors them with a
real ``creditnode sync``. Then, alternately R times: (a) the status collection in this
process (``collect_status``, everything ``status`` computes, without interpreter start-up;
one warm-up call first, not counted), and (b) the whole command, ``creditnode status --format
json``, as a fresh process (wall time). The subscriber is not running while measured: the
serving probe answers "not running" at once, so the figures are the database work.
Target: (a) at most 100 ms at 1M entries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._results import write_result  # noqa: E402
from bench.sync import CITIES, ORIGIN, SUBSCRIBER, Databases, fill, run_child  # noqa: E402

TARGETS: dict[str, tuple[str, float]] = {"status_ms": ("<=", 100)}


def cli_status(home: Path) -> float:
    """Wall seconds of `creditnode status --format json` (exit 4: the node is not serving)."""
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "status", "--home", str(home), "--format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 4):
        raise SystemExit(f"status failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


async def measure(base: Path, backend: str, n: int, runs: int) -> dict[str, Any]:
    from node.cli.status import collect_status
    from node.home import set_setting
    from node.local_federation import LocalFederation

    dbs = Databases(backend)
    try:
        urls = {ORIGIN: await dbs.create("origin"), SUBSCRIBER: await dbs.create("status")}
        fed = LocalFederation(
            base, CITIES, subscribe=False, heartbeat=False, database_url=lambda name: urls[name]
        )
        async with fed:
            # Valid codes: with the generator's failing ones every entry would be a conflict
            # that status lists (1M of them), measuring the listing, not the collection.
            fill_rate = await fill(fed, n, valid_codes=True)
            home = fed[SUBSCRIBER].home.paths.root
            await fed[SUBSCRIBER].stop(0)
            sub_url = urls[SUBSCRIBER]
            if sub_url is not None:  # the home's own setting, for the child processes
                set_setting(home, "database_url", sub_url)
            sync_s, _, _ = await asyncio.to_thread(
                run_child, ["-m", "node.cli", "sync", "--home", str(home)]
            )
            print(f"  mirrored {n:,} entries in {sync_s:.1f} s")
            doc = await collect_status(home, timeout=2.0)  # warm-up: imports, first connect
            mirrored = sum(f["leaves"] for f in doc["feeds"] if not f["own"])
            if mirrored < n:
                raise SystemExit(f"status sees {mirrored} mirrored entries, expected {n}")
            inproc: list[float] = []
            cli: list[float] = []
            for _ in range(runs):
                start = time.perf_counter()
                await collect_status(home, timeout=2.0)
                inproc.append((time.perf_counter() - start) * 1000)
                cli.append(await asyncio.to_thread(cli_status, home) * 1000)
                print(f"  in-process {inproc[-1]:.1f} ms, command {cli[-1]:.0f} ms")
    finally:
        dbs.close()
    return {
        "figures": {
            "status_ms": statistics.median(inproc),
            "status_max_ms": max(inproc),
            "command_ms": statistics.median(cli),
            "origin_fill_per_s": fill_rate,
        },
        "runs": {"in_process_ms": inproc, "command_ms": cli},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from node.logs import configure_logging

    configure_logging("error")  # not the origin's "witness unreachable" lines
    print(f"status on a home mirroring {args.entries:,} entries, {args.backend}")
    with tempfile.TemporaryDirectory(prefix="creditnode-bench-") as tmp:
        result = asyncio.run(measure(Path(tmp), args.backend, args.entries, args.runs))
    path = write_result(
        f"status_{args.backend}", result["figures"], TARGETS, backend=args.backend,
        params={"entries": args.entries, "runs": args.runs},
        extra={"runs": result["runs"], "serving": "not running (probe excluded)"},
    )  # fmt: skip
    print(json.dumps(result["figures"], indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
