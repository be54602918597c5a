"""USCC validation on one core (issue 17): the fast path, pure and compiled, against the full
path, alternating in one run over the same fixed-seed realistic mix. Prints figures and writes
bench/results/uscc.json.

    .venv/bin/python bench/uscc.py [--codes 1000000] [--rounds 3]

``check_uscc`` is called once per code and its result dropped, as an import streams a column.
Every variant gives the same CodeCheck for every code (checked, untimed, before timing).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._results import write_result  # noqa: E402
from node import native  # noqa: E402
from node.identity import uscc_fast, validate  # noqa: E402
from tests.uscc_codes import realistic_mix  # noqa: E402

TARGET = 200_000


def _pure_verdict() -> Callable[[str], int]:
    """uscc_verdict from the pure source, whatever node.identity.uscc_fast loaded as."""
    path = native.source_path("node.identity.uscc_fast")
    spec = importlib.util.spec_from_file_location("_bench_pure_uscc_fast", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verdict: Callable[[str], int] = module.uscc_verdict
    return verdict


def _run(codes: list[str]) -> float:
    check = validate.check_uscc
    start = time.perf_counter()
    for code in codes:
        check(code)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core: the figure is per core
    compiled = not str(uscc_fast.__file__).endswith(".py")
    variants: dict[str, Callable[[str], int]] = {"reference": validate._full_path_only}
    variants["fast_pure"] = _pure_verdict()
    if compiled:
        variants["fast_compiled"] = uscc_fast.uscc_verdict
    codes = realistic_mix(args.codes, seed=args.seed)
    print(f"{len(codes):,} codes, core {cpu}, compiled fast path: {compiled}")

    # Same verdicts, checked untimed, in slices (a million CodeChecks at once is a lot).
    mismatches = 0
    for lo in range(0, len(codes), 50_000):
        chunk = codes[lo : lo + 50_000]
        outcomes = []
        for verdict in variants.values():
            validate._verdict = verdict
            outcomes.append([validate.check_uscc(c) for c in chunk])
        mismatches += sum(len(set(row)) != 1 for row in zip(*outcomes, strict=True))
    print(f"results differing between variants: {mismatches}")

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    saved = validate._verdict
    try:
        for r in range(args.rounds):
            for name, verdict in variants.items():
                validate._verdict = verdict
                gc.collect()
                s = _run(codes)
                seconds[name].append(s)
                print(f"  round {r + 1} {name:14} {len(codes) / s:12,.0f} codes/s")
    finally:
        validate._verdict = saved
    rate = {name: len(codes) / statistics.median(s) for name, s in seconds.items()}
    best = "fast_compiled" if compiled else "fast_pure"
    figures = {
        "codes_per_s": rate[best],
        "codes_per_s_reference": rate["reference"],
        "codes_per_s_fast_pure": rate["fast_pure"],
        "speedup_vs_reference": rate[best] / rate["reference"],
        "mismatches": float(mismatches),
    }
    if compiled:
        figures["codes_per_s_fast_compiled"] = rate["fast_compiled"]
    for key, value in figures.items():
        print(f"{key:28} {value:14,.2f}")
    path = write_result(
        "uscc",
        figures,
        {"codes_per_s": (">=", TARGET), "mismatches": ("<=", 0)},
        params={"codes": len(codes), "rounds": args.rounds, "seed": args.seed, "core": cpu},
        extra={
            "fast_path": best,
            "seconds_per_round": seconds,
            "mix": "tests/uscc_codes.realistic_mix: 88% valid, 4% wrong position 18, 4% a "
            "typo, 1% lower case, 1% spaced, 1% short, 1% a never-used letter",
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
