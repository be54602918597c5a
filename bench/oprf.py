"""OPRF pseudonym benchmarks (issue 11). Prints figures and writes bench/results/oprf.json.

    .venv/bin/python bench/oprf.py [--seconds 2] [--repeats 5] [--round-trips 2000]

All on one core, in this process: (a) the origin's local OPRF Evaluate per second, against one
HMAC-SHA256 of the same input (today's alliance pseudonym) measured in the same run, as a
ratio; (b) the origin's BlindEvaluate per second (its cost per partner request, without the
network); (c) the partner's client side, Blind + Finalize, per second. Inputs are 18-byte
strings shaped like normalised resident IDs. Each figure is the median of --repeats timed runs
of about --seconds each.

(d) one blinded evaluation round trip between two real in-process nodes over mutual TLS
(``PseudonymService.Evaluate``: the border's decision, the rate limit, the evaluation and the
durable disclosure record), p50 and p99 over --round-trips calls, against a bare round trip of
``NodeService.GetInfo`` on the same channel in the same run, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.api import pb, pseudonyms, pseudonyms_rpc, rpc  # noqa: E402
from node.cli.demo import JINAN_LANZHOU  # noqa: E402
from node.home import set_setting  # noqa: E402
from node.identity import oprf  # noqa: E402
from node.identity.pseudonym import blind_id  # noqa: E402
from node.local_federation import LocalFederation  # noqa: E402
from node.logs import configure_logging  # noqa: E402
from node.peers.transport import secure_channel  # noqa: E402

AGREEMENT = JINAN_LANZHOU  # the demo's agreement: the pseudonym for enforcement

IDS = [f"110105{19490101 + i:08d}{i % 1000:03d}X".encode("ascii") for i in range(1024)]


def rate(op: Callable[[bytes], object], seconds: float, repeats: int) -> float:
    """Median operations per second of *op* over the sample IDs."""
    batch = 256
    # Calibrate: how many batches fit in *seconds*.
    start = time.perf_counter()
    for x in IDS[:batch]:
        op(x)
    per_batch = max(time.perf_counter() - start, 1e-9)
    batches = max(1, int(seconds / per_batch))
    rates = []
    for _ in range(repeats):
        n = 0
        start = time.perf_counter()
        for b in range(batches):
            base = (b * batch) % len(IDS)
            for x in IDS[base : base + batch]:
                op(x)
                n += 1
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def round_trips(n: int) -> dict[str, float]:
    """p50/p99 (ms) of Evaluate and of a bare GetInfo between two nodes over mTLS."""
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix="bench-oprf-") as tmp:
        base = Path(tmp)
        async with LocalFederation(base, [("jinan", "370100"), ("lanzhou", "620100")]) as fed:
            jinan = fed["jinan"]
            (jinan.home.paths.root / "agreements").mkdir(exist_ok=True)
            (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(AGREEMENT)
            set_setting(jinan.home.paths.root, "pseudonym_rate", 1e9)  # measure, not limit
            set_setting(jinan.home.paths.root, "pseudonym_burst", 10**9)
            await jinan.stop(0)
            jinan = await fed.start_node("jinan", "370100")
            await fed.enroll_pairwise()
            lanzhou = fed["lanzhou"]
            element = blind_id("11010519491231002X")[1]
            ask = pseudonyms.EvaluateRequest(purpose="enforcement", blinded_elements=[element])
            evaluate_ms: list[float] = []
            bare_ms: list[float] = []
            async with secure_channel(
                lanzhou.home.tls, jinan.endpoint, jinan.home.identity, jinan.home.tls.ca_pem
            ) as channel:
                evaluate_stub = pseudonyms_rpc.PseudonymServiceStub(channel)
                info_stub = rpc.NodeServiceStub(channel)
                for i in range(n + 50):  # the first 50 of each warm up
                    t = time.perf_counter()
                    await evaluate_stub.Evaluate(ask, timeout=10)
                    e = time.perf_counter() - t
                    t = time.perf_counter()
                    await info_stub.GetInfo(pb.GetInfoRequest(), timeout=10)
                    b = time.perf_counter() - t
                    if i >= 50:
                        evaluate_ms.append(e * 1000)
                        bare_ms.append(b * 1000)
    return {
        "evaluate_p50_ms": _percentile(evaluate_ms, 0.5),
        "evaluate_p99_ms": _percentile(evaluate_ms, 0.99),
        "bare_getinfo_p50_ms": _percentile(bare_ms, 0.5),
        "bare_getinfo_p99_ms": _percentile(bare_ms, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=2000)
    args = parser.parse_args()

    sk, _ = oprf.derive_key_pair(os.urandom(32), b"bench")
    hmac_key = os.urandom(32)
    r, blinded = oprf.blind(IDS[0])
    evaluated = oprf.blind_evaluate(sk, blinded)
    assert oprf.finalize(IDS[0], r, evaluated) == oprf.evaluate(sk, IDS[0])

    def hmac_sha256(x: bytes) -> bytes:
        return hmac.new(hmac_key, x, hashlib.sha256).digest()

    def evaluate(x: bytes) -> bytes:
        return oprf.evaluate(sk, x)

    def blind_evaluate(_: bytes) -> bytes:
        return oprf.blind_evaluate(sk, blinded)

    def client(x: bytes) -> bytes:
        blind, element = oprf.blind(x)
        # No server here: Finalize is given the blinded element itself, a valid element whose
        # unblinding costs the same as the real answer's, so this times the partner alone.
        return oprf.finalize(x, blind, element)

    print(f"(a) HMAC-SHA256 of one {len(IDS[0])}-byte ID")
    hmac_rate = rate(hmac_sha256, args.seconds, args.repeats)
    print(f"  {hmac_rate:,.0f}/s")
    print("(a) OPRF Evaluate (the origin's own pseudonyms)")
    eval_rate = rate(evaluate, args.seconds, args.repeats)
    print(f"  {eval_rate:,.0f}/s, {hmac_rate / eval_rate:,.0f}x the cost of one HMAC")
    print("(b) OPRF BlindEvaluate (the origin's work per partner request)")
    be_rate = rate(blind_evaluate, args.seconds, args.repeats)
    print(f"  {be_rate:,.0f}/s")
    print("(c) client Blind + Finalize (the partner's work per person)")
    client_rate = rate(client, args.seconds, args.repeats)
    print(f"  {client_rate:,.0f}/s")

    print(f"(d) blinded evaluation round trip over mTLS, {args.round_trips} calls")
    trips = asyncio.run(round_trips(args.round_trips))
    print(
        f"  Evaluate p50 {trips['evaluate_p50_ms']:.2f} ms, p99 {trips['evaluate_p99_ms']:.2f} ms; "
        f"bare GetInfo p50 {trips['bare_getinfo_p50_ms']:.2f} ms, "
        f"p99 {trips['bare_getinfo_p99_ms']:.2f} ms"
    )

    results = {
        "round_trips": args.round_trips,
        **trips,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.machine(),
        },
        "input_bytes": len(IDS[0]),
        "seconds_per_run": args.seconds,
        "repeats": args.repeats,
        "hmac_sha256_per_s": hmac_rate,
        "oprf_evaluate_per_s": eval_rate,
        "evaluate_cost_in_hmacs": hmac_rate / eval_rate,
        "oprf_blind_evaluate_per_s": be_rate,
        "client_blind_finalize_per_s": client_rate,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "oprf.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out / 'oprf.json'}")


if __name__ == "__main__":
    main()
