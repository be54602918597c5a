"""OPRF pseudonym benchmarks (issue 11). Prints figures and writes bench/results/oprf.json.

    .venv/bin/python bench/oprf.py [--seconds 2] [--repeats 5]

All on one core, in this process: (a) the origin's local OPRF Evaluate per second, against one
HMAC-SHA256 of the same input (today's alliance pseudonym) measured in the same run, as a
ratio; (b) the origin's BlindEvaluate per second (its cost per partner request, without the
network); (c) the partner's client side, Blind + Finalize, per second. Inputs are 18-byte
strings shaped like normalised resident IDs. Each figure is the median of --repeats timed runs
of about --seconds each.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.identity import oprf  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="per timed run")
    parser.add_argument("--repeats", type=int, default=5)
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

    results = {
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
