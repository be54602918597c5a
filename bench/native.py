"""Compiled (mypyc) against pure-Python cores, alternating in one run (issue 17). Prints
figures and writes bench/results/native.json.

    .venv/bin/python bench/native.py [--leaves 1000000] [--rounds 3]

The pure variant of each module is loaded from its source under another name, beside the
module the node imports (compiled when ``make venv`` built it from the current source), so
both run on the same inputs in the same process:

- Merkle: leaf and node hashing onto a Frontier (``append(leaf_hash(...))``, and ``extend``
  where the Frontier has it), over *leaves* realistic leaves;
- proofs: inclusion and consistency proofs verified in a 65,536-leaf tree;
- leaf parse and checks: ``open_leaf`` on leaves built from tests/feedutil.py entries (only
  compared when node.feeds.leaf is a compiled core);
- name ranking: ``rank_normalised`` of 20 queries over *candidates* generated names (as
  bench/name_search.py draws them) with their normalised forms, as a name search ranks;
- USCC: ``check_uscc`` over tests/uscc_codes.py's realistic mix, the fast path's verdict
  compiled or pure.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._results import write_result  # noqa: E402
from bench.name_search import gen_name as name_gen  # noqa: E402
from node import native  # noqa: E402
from node.api import feeds  # noqa: E402
from node.feeds import leaf as leaf_module  # noqa: E402
from node.identity import names, validate  # noqa: E402
from tests.feedutil import org_entry  # noqa: E402
from tests.uscc_codes import realistic_mix  # noqa: E402


def _pure(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"_bench_pure_{name.replace('.', '_')}", native.source_path(name)
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _compiled(module: ModuleType) -> bool:
    return not str(getattr(module, "__file__", "")).endswith(".py")


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(
    variants: dict[str, dict[str, Callable[[], Any]]], units: dict[str, int], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Each workload of the first variant timed in every variant in turn, same round, same
    inputs, for *rounds* rounds: variant -> workload -> seconds. The USCC verdict the
    workloads swap in is put back."""
    seconds: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    saved = validate._verdict
    try:
        for r in range(rounds):
            for workload in next(iter(variants.values())):
                for label, work in variants.items():
                    s = _timed(work[workload])
                    seconds[label].setdefault(workload, []).append(s)
                    print(f"  round {r + 1} {workload:18} {label:8} {units[workload] / s:12,.0f}/s")
    finally:
        validate._verdict = saved
    return seconds


def merkle_workloads(m: ModuleType, leaves: list[bytes], n: int) -> dict[str, Callable[[], Any]]:
    def append() -> bytes:
        f = m.Frontier()
        leaf_hash, add = m.leaf_hash, f.append
        k = len(leaves)
        for i in range(n):
            add(leaf_hash(leaves[i % k]))
        root: bytes = f.root()
        return root

    work: dict[str, Callable[[], Any]] = {"frontier_append": append}
    if hasattr(m.Frontier, "extend"):

        def extend() -> bytes:
            f = m.Frontier()
            k = len(leaves)
            for lo in range(0, n, k):
                f.extend(leaves[: min(k, n - lo)])
            root: bytes = f.root()
            return root

        work["frontier_extend"] = extend
    return work


def proof_workload(
    m: ModuleType, size: int, count: int, seed: int
) -> tuple[Callable[[], None], Callable[[], None]]:
    store: dict[int, bytes] = {}
    f = m.Frontier()
    for i in range(size):
        store.update(f.append(m.leaf_hash(i.to_bytes(8, "big"))))
    root = f.root()
    rng = random.Random(seed)
    inclusion = []
    for _ in range(count):
        k = rng.randrange(size)
        inclusion.append((m.inclusion_proof(size, k, store), k, m.leaf_hash(k.to_bytes(8, "big"))))
    consistency = []
    for _ in range(count // 4):
        t1 = rng.randrange(1, size)
        consistency.append((m.consistency_proof(t1, size, store), t1, m.tree_hash(t1, store)))

    def verify_inclusion() -> None:
        check = m.verify_inclusion
        for proof, k, h in inclusion:
            check(proof, size, root, k, h)

    def verify_consistency() -> None:
        check = m.verify_consistency
        for proof, t1, r1 in consistency:
            check(proof, t1, r1, size, root)

    return verify_inclusion, verify_consistency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=50_000)
    parser.add_argument("--codes", type=int, default=300_000)
    parser.add_argument("--opened", type=int, default=20_000)
    parser.add_argument("--candidates", type=int, default=1_300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    merkle = importlib.import_module("node.feeds.merkle")
    uscc_fast = importlib.import_module("node.identity.uscc_fast")
    state = {name: _compiled(importlib.import_module(name)) for name in native.MODULES}
    print("compiled:", state)

    # Realistic leaf bytes: an origin's ADD leaves for tests/feedutil.py entries.
    built = [
        leaf_module.build_leaf(
            "creditnode://f/bench", f"e{i}", feeds.EVENT_TYPE_ADD, org_entry(i), recorded_at_unix=i
        )
        for i in range(args.opened)
    ]
    leaves = [b for b, _ in built[:10_000]]
    codes = realistic_mix(args.codes, seed=17)

    variants: dict[str, dict[str, Callable[[], Any]]] = {}
    for label, m, u in (
        ("pure", _pure("node.feeds.merkle"), _pure("node.identity.uscc_fast")),
        ("compiled", merkle, uscc_fast),
    ):
        work = merkle_workloads(m, leaves, args.leaves)
        work["verify_inclusion"], work["verify_consistency"] = proof_workload(
            m, 1 << 16, args.proofs, seed=5
        )

        def uscc(verdict: Callable[[str], int] = u.uscc_verdict) -> None:
            validate._verdict = verdict
            check = validate.check_uscc
            for code in codes:
                check(code)

        work["uscc_check"] = uscc
        variants[label] = work
    # Name ranking: a name search's thousand-odd candidates, with their stored normalised forms.
    rng = random.Random(3)
    ranked = [(f"k{i}", name_gen(rng)) for i in range(args.candidates)]
    normed = [(k, n, names.normalise_name(n)) for k, n in ranked]
    for label, nm in (("pure", _pure("node.identity.names")), ("compiled", names)):

        def rank(nm: ModuleType = nm) -> None:
            for query in ranked[:20]:
                nm.rank_normalised(query[1], normed)

        variants[label]["name_rank"] = rank
    if "node.feeds.leaf" in native.MODULES:  # only when the leaf checks are compiled too
        pure_leaf = _pure("node.feeds.leaf")
        for label, lm in (("pure", pure_leaf), ("compiled", leaf_module)):

            def open_all(lm: ModuleType = lm) -> None:
                for data, op in built:
                    lm.open_leaf(data, op.fields, op.body)

            variants[label]["leaf_open"] = open_all
    else:

        def open_pure() -> None:
            for data, op in built:
                leaf_module.open_leaf(data, op.fields, op.body)

        print(f"leaf_open (not compiled): {args.opened / _timed(open_pure):,.0f} leaves/s")

    units = {
        "frontier_append": args.leaves,
        "frontier_extend": args.leaves,
        "verify_inclusion": args.proofs,
        "verify_consistency": args.proofs // 4,
        "uscc_check": args.codes,
        "leaf_open": args.opened,
        "name_rank": 20 * args.candidates,
    }
    seconds = alternate(variants, units, args.rounds)
    figures: dict[str, float] = {}
    for workload in variants["pure"]:
        pure_rate = units[workload] / statistics.median(seconds["pure"][workload])
        comp_rate = units[workload] / statistics.median(seconds["compiled"][workload])
        figures[f"{workload}_per_s_pure"] = pure_rate
        figures[f"{workload}_per_s_compiled"] = comp_rate
        figures[f"{workload}_speedup"] = comp_rate / pure_rate
    for key, value in figures.items():
        print(f"{key:36} {value:14,.2f}")
    path = write_result(
        "native",
        figures,
        {},
        params={
            "leaves": args.leaves,
            "proofs": args.proofs,
            "codes": args.codes,
            "opened": args.opened,
            "candidates": args.candidates,
            "rounds": args.rounds,
        },
        extra={"compiled": state, "seconds": seconds, "rust": "bench/native_rust.py"},
    )
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
