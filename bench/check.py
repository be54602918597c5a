"""A federated check over three partners on loopback, one of them down (issue 14). Prints
figures and writes bench/results/check.json.

    .venv/bin/python bench/check.py [--checks 200] [--in-flight 1] [--deadline 0.5]

One process runs four nodes with SQLite: Jinan (the officer's node) and three partners. Lanzhou
black-lists the entity and Taiyuan red-lists it; Zhengzhou is *down*: its enrollment at Jinan
points at a listener that accepts TCP connections and never answers (a host that drops
packets, not one that refuses them at once), so it can only be reported at its deadline.

A Jinan officer runs ``Check`` over the officer listener (mutual TLS with a PKCS#12-issued
credential, the officer gate, the audit on every side, every report built, proved and signed).
Per check, Jinan's fan-out measures how long each partner took; the figures are the p50 and p99
of those times for the answering partners (target: p99 <= 50 ms), the time at which the down
partner was reported and its state (target: TIMED_OUT at the deadline), and the officer's
end-to-end latency (which waits for the slowest partner, so about the deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.api import feeds, officers  # noqa: E402
from node.cli.check import call_check  # noqa: E402
from node.feeds.publisher import Event  # noqa: E402
from node.home import load_home, set_setting  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.officers.issue import issue_officer  # noqa: E402
from node.peers.enrollment import enroll, export_bundle  # noqa: E402
from node.storage import Store  # noqa: E402
from tests.feedutil import org_entry  # noqa: E402

CITIES = [
    ("jinan", "370100"),
    ("lanzhou", "620100"),
    ("taiyuan", "140100"),
    ("zhengzhou", "410100"),
]
DEPARTMENT = "11370100MB0000174G"
AGREEMENT = """id = "{owner}-jinan"
version = 1
peers = ["jinan"]
purposes = ["licensing_review"]

[[rule]]
data_class = "list_entry"
purposes = ["licensing_review"]
fields = {{}}
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def black_hole() -> socket.socket:
    """A listener whose connections are accepted by the kernel and never answered."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def serve(root: Path, endpoint: str) -> subprocess.Popen[bytes]:
    """The node of *root* as its own `creditnode serve` process, on the port it had."""
    set_setting(root, "listen", endpoint)
    env = {**os.environ, "CREDITNODE_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--home", str(root)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def run(checks: int, in_flight: int, deadline: float, processes: bool) -> dict[str, Any]:
    configure_logging("warning")
    hole = black_hole()
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        base = Path(tmp)
        fed = LocalFederation(base, CITIES, heartbeat=False, subscribe=False, officers=True)
        async with fed:
            jinan = fed["jinan"]
            for owner in ("lanzhou", "taiyuan", "zhengzhou"):
                node = fed[owner]
                (node.home.paths.root / "agreements").mkdir(exist_ok=True)
                (node.home.paths.root / "agreements" / "jinan.toml").write_text(
                    AGREEMENT.format(owner=owner)
                )
                node.border.refresh(force=True)
            black = org_entry(7)
            red = org_entry(7, list_name="守信激励对象名单")
            red.list_type = feeds.LIST_TYPE_RED
            for node, entry in ((fed["lanzhou"], black), (fed["taiyuan"], red)):
                await node.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
                await node.publisher.sign_checkpoint()
            # Zhengzhou goes down: Jinan's enrollment of it now points at the black hole.
            bundle = export_bundle(load_home(fed["zhengzhou"].home.paths.root))
            moved = bundle.model_copy(update={"endpoint": f"127.0.0.1:{hole.getsockname()[1]}"})
            await enroll(jinan.home, jinan.store, moved, replace=True)
            await jinan.directory.refresh()
            await fed["zhengzhou"].stop(0)
            assert jinan.checker is not None
            jinan.checker.deadline = deadline
            async with Store.opened(jinan.home.database_url) as store:
                credential, _ = await issue_officer(
                    jinan.home, store, name="bench officer", department=DEPARTMENT,
                    ca_dir=fed.ca_dir,
                )  # fmt: skip
            request = officers.CheckRequest(
                purpose="licensing_review", matter="BENCH-1", uscc=black.uscc
            )
            procs: list[subprocess.Popen[bytes]] = []
            if processes:
                # Each answering partner in a process of its own, as in production; Jinan
                # (and the officer's client) stay in this one.
                for name in ("lanzhou", "taiyuan"):
                    node = fed[name]
                    endpoint, root = node.endpoint, node.home.paths.root
                    await node.stop(0)
                    procs.append(serve(root, endpoint))
                wait_until = time.perf_counter() + 60
                while True:
                    resp = await call_check(credential, jinan.officer_endpoint, request, 30)
                    up = [r for r in resp.reports if r.state == officers.PARTNER_STATE_ANSWERED]
                    if len(up) == 3 or time.perf_counter() > wait_until:
                        break
                    await asyncio.sleep(0.2)
            answering: list[float] = []
            down: list[float] = []
            total: list[float] = []
            states: dict[str, int] = {}
            outcomes: dict[str, int] = {}
            warmup = 10

            async def one(i: int) -> None:
                t = time.perf_counter()
                resp = await call_check(credential, jinan.officer_endpoint, request, timeout=30)
                took = time.perf_counter() - t
                if i < warmup:
                    return
                total.append(took * 1000)
                name = officers.CheckOutcome.Name(resp.outcome)
                outcomes[name] = outcomes.get(name, 0) + 1
                for r in resp.reports:
                    if r.partner == "jinan":
                        continue
                    state = officers.PartnerState.Name(r.state)
                    states[f"{r.partner}:{state}"] = states.get(f"{r.partner}:{state}", 0) + 1
                    (down if r.partner == "zhengzhou" else answering).append(r.seconds * 1000)

            started = time.perf_counter()
            queue = list(range(checks + warmup))

            async def worker() -> None:
                while queue:
                    await one(queue.pop(0))

            try:
                await asyncio.gather(*(worker() for _ in range(in_flight)))
            finally:
                for proc in procs:
                    proc.terminate()
                    proc.wait(30)
            wall = time.perf_counter() - started
    hole.close()
    return {
        "partners_in_own_processes": processes,
        "checks": checks,
        "in_flight": in_flight,
        "deadline_ms": deadline * 1000,
        "answering_partner_p50_ms": round(_percentile(answering, 0.5), 2),
        "answering_partner_p99_ms": round(_percentile(answering, 0.99), 2),
        "down_partner_reported_p50_ms": round(_percentile(down, 0.5), 2),
        "down_partner_reported_max_ms": round(max(down), 2),
        "officer_end_to_end_p50_ms": round(_percentile(total, 0.5), 2),
        "officer_end_to_end_p99_ms": round(_percentile(total, 0.99), 2),
        "answering_partner_slowest_ms": [round(v, 1) for v in sorted(answering)[-5:]],
        "checks_per_second": round((checks + warmup) / wall, 1),
        "partner_states": dict(sorted(states.items())),
        "outcomes": outcomes,
        "target_answering_p99_ms": 50,
        "answering_p99_met": _percentile(answering, 0.99) <= 50,
        "down_partner_at_deadline": all(
            k.endswith("TIMED_OUT") for k in states if k.startswith("zhengzhou")
        )
        and statistics.median(down) >= deadline * 1000 * 0.95,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=0.5, help="seconds per partner")
    parser.add_argument(
        "--one-process", action="store_true", help="run the partners in this process too"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.checks, args.in_flight, args.deadline, not args.one_process))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    out = ROOT / "bench" / "results" / "check.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
