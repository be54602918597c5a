"""Report RPC benchmark (issue 14). Prints figures and writes bench/results/report.json.

    .venv/bin/python bench/report.py [--calls 1000] [--seconds 5]

Two real in-process nodes over mutual TLS on loopback: lanzhou asks jinan for its signed report
about one USCC (``ReportService.GetReport``: the gate, the border's decision for the purpose,
the report built from the store with an inclusion proof per item, signed with DSSE by the
report key, checked and recorded at the exit before it is sent). Against it, in the same run
and alternating phase by phase, a bare ``grpc.aio`` unary echo served by a second server on
the same process with the same mTLS credentials and no interceptors, echoing a request of the
same size. At concurrency 1 and 16: p50, p99 and throughput, and the ratio report / echo.
Then an open loop at half the report's maximum rate (from concurrency 16) for --seconds:
p50 and p99 there. Client and servers share one event loop, as the tests run nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.api import feeds, reports, reports_rpc  # noqa: E402
from node.feeds.publisher import Event  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.peers.transport import SERVER_OPTIONS, secure_channel, server_credentials  # noqa: E402
from node.reports.build import ReportDeps  # noqa: E402

USCC = "91370100MA0000001X"
AGREEMENT = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["enforcement"]

[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { legal_rep_name = "mask:name_surname" }
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _entry(i: int, uscc: str, list_type: int) -> feeds.ListEntry:
    red = list_type == feeds.LIST_TYPE_RED
    return feeds.ListEntry(
        subject_name=f"示例商贸有限公司{i}", subject_type=feeds.SUBJECT_TYPE_LEGAL_PERSON,
        uscc=uscc, legal_rep_name="张三", list_type=list_type,  # type: ignore[arg-type]
        list_name="守信激励对象名单" if red else "失信联合惩戒对象名单",
        reason="拒不履行", legal_basis="《示例条例》第十条", decision_doc_no=f"济示〔2026〕{i}号",
        authority_name="济南市示例局", authority_uscc="11370100MB0000000X",
        listing_date="2026-01-15", severity=feeds.SEVERITY_SERIOUS, disclosure_end="2029-01-15",
        measures=[feeds.Measure(code="M01", mandatory=True)],
        provenance=feeds.PROVENANCE_AUTHORITATIVE, status=feeds.ENTRY_STATUS_ACTIVE,
    )  # fmt: skip


async def _phase(call: Any, concurrency: int, calls: int) -> dict[str, float]:
    latencies: list[float] = []
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"p50_ms": _pct(latencies, 0.5), "p99_ms": _pct(latencies, 0.99),
            "per_s": len(latencies) / elapsed}  # fmt: skip


async def _open_loop(call: Any, rate: float, seconds: float) -> dict[str, float]:
    """Calls started at *rate* per second whatever the answers (no coordinated omission)."""
    latencies: list[float] = []
    tasks = []

    async def one(planned: float) -> None:
        await call()
        latencies.append((time.perf_counter() - planned) * 1000)

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        planned = start + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(planned)))
    await asyncio.gather(*tasks)
    return {"rate_per_s": rate, "p50_ms": _pct(latencies, 0.5), "p99_ms": _pct(latencies, 0.99)}


async def run(calls: int, seconds: float) -> dict[str, Any]:
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        async with LocalFederation(
            Path(tmp), [("jinan", "370100"), ("lanzhou", "620100")], subscribe=False
        ) as fed:
            jinan, lanzhou = fed["jinan"], fed["lanzhou"]
            (jinan.home.paths.root / "agreements").mkdir(exist_ok=True)
            (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(AGREEMENT)
            jinan.border.threshold = 3_500
            jinan.border.refresh(force=True)
            # 2,000 entries of other subjects, and three of the one asked about.
            others = [
                Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD,
                      _entry(i, f"91370100MA{i + 10:07d}X", feeds.LIST_TYPE_BLACK))
                for i in range(2000)
            ]  # fmt: skip
            await jinan.publisher.append(others)
            kinds = (feeds.LIST_TYPE_BLACK, feeds.LIST_TYPE_BLACK, feeds.LIST_TYPE_RED)
            mine = [
                Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, _entry(1, USCC, t)) for t in kinds
            ]
            await jinan.publisher.append(mine)
            await jinan.publisher.sign_checkpoint()
            assert isinstance(jinan.report_deps, ReportDeps)

            echo = grpc.aio.server(options=SERVER_OPTIONS)
            echo.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}),))  # fmt: skip
            creds = server_credentials(
                jinan.home.tls, jinan.directory.trust_roots_pem, lambda: jinan.directory.generation
            )
            port = echo.add_secure_port("127.0.0.1:0", creds)
            await echo.start()
            request = reports.GetReportRequest(
                purpose="enforcement", uscc=USCC, matter="M-2026-1", officer="o-17"
            )
            tls, ident, ca = lanzhou.home.tls, jinan.home.identity, jinan.home.tls.ca_pem
            async with (
                secure_channel(tls, jinan.endpoint, ident, ca) as ch1,
                secure_channel(tls, f"127.0.0.1:{port}", ident, ca) as ch2,
            ):
                stub = reports_rpc.ReportServiceStub(ch1)
                raw = ch2.unary_unary("/bench.Echo/Echo")
                body = request.SerializeToString()
                sample = await stub.GetReport(request, timeout=10)
                envelope = json.loads(sample.envelope)
                payload = json.loads(base64.b64decode(envelope["payload"]))

                async def report() -> None:
                    await stub.GetReport(request, timeout=10)

                async def bare() -> None:
                    await raw(body, timeout=10)

                for _ in range(50):  # warm up both
                    await report()
                    await bare()
                out: dict[str, Any] = {
                    "report_response_bytes": sample.ByteSize(),
                    "report_items": sum(len(v) for v in payload["sections"].values()),
                    "echo_request_bytes": len(body),
                }  # fmt: skip
                for c in (1, 16):
                    r = await _phase(report, c, calls)
                    e = await _phase(bare, c, calls)
                    out[f"c{c}"] = {"report": r, "echo": e, "ratio": r["per_s"] / e["per_s"]}
                    print(f"concurrency {c}: report p50 {r['p50_ms']:.2f} ms p99 "
                          f"{r['p99_ms']:.2f} ms {r['per_s']:.0f}/s; echo p50 {e['p50_ms']:.2f}"
                          f" ms p99 {e['p99_ms']:.2f} ms {e['per_s']:.0f}/s; ratio "
                          f"{out[f'c{c}']['ratio']:.3f}")  # fmt: skip
                half = out["c16"]["report"]["per_s"] / 2
                out["half_max_rate"] = await _open_loop(report, half, seconds)
                h = out["half_max_rate"]
                print(f"open loop at {half:.0f}/s (half max): p50 {h['p50_ms']:.2f} ms, "
                      f"p99 {h['p99_ms']:.2f} ms")  # fmt: skip
            await echo.stop(0)
    return out


async def _echo(request: bytes, context: Any) -> bytes:
    return request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000, help="per phase")
    parser.add_argument("--seconds", type=float, default=5.0, help="of the open loop")
    args = parser.parse_args()
    results = asyncio.run(run(args.calls, args.seconds))
    results.update({
        "calls_per_phase": args.calls,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.machine(), "database": "sqlite"},
        "targets": {"ratio_min": 0.5, "p99_ms_at_half_max_rate": 20.0},
    })  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out / 'report.json'}")


if __name__ == "__main__":
    main()
