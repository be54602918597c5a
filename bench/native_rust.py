"""Rust (PyO3) against mypyc against pure Python, on two compiled cores, alternating in one run
(issue 17: "measure both and choose"). Prints figures and writes bench/results/native_rust.json.

    .venv/bin/python bench/native_rust.py [--leaves 1000000] [--codes 300000] [--rounds 3]

``bench/rust_core`` is built first (``cargo build --release``, offline, from Debian's packaged
crates: ``apt-get install cargo librust-pyo3-dev librust-sha2-dev``, which ``make bench-rust``
does); the cdylib is loaded as a module the way maturin would install it (maturin only names and
copies it; it is not in the lock file). Each Rust function must give the same answers as the
node's on every input before it is timed:

- ``frontier_extend``: a batch of leaves hashed onto a Frontier (``Frontier.extend``), the same
  root;
- ``uscc_check``: ``check_uscc`` over tests/uscc_codes.py's realistic mix with the fast path's
  verdict from each variant (and the verdicts compared on those codes and on random strings).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._results import write_result  # noqa: E402
from bench.native import _compiled, _pure, alternate  # noqa: E402
from node.api import feeds  # noqa: E402
from node.feeds import leaf as leaf_module  # noqa: E402
from node.feeds import merkle  # noqa: E402
from node.identity import uscc_fast, validate  # noqa: E402
from tests.feedutil import org_entry  # noqa: E402
from tests.uscc_codes import realistic_mix  # noqa: E402

CRATE = ROOT / "bench" / "rust_core"
NEEDED = ("pyo3-0.17", "sha2-0.10")
REGISTRY = Path("/usr/share/cargo/registry")


def build() -> ModuleType | None:
    """The crate built and loaded, or None (and why, printed) when it cannot be built here."""
    have = {p.name for p in REGISTRY.iterdir()} if REGISTRY.is_dir() else set()
    missing = [n for n in NEEDED if not any(h.startswith(n) for h in have)]
    if shutil.which("cargo") is None or missing:
        print(
            "Rust not measured: needs cargo and Debian's crates "
            "(apt-get install cargo librust-pyo3-dev librust-sha2-dev; `make bench-rust`)"
        )
        return None
    subprocess.run(
        ["cargo", "build", "--release", "--quiet"], cwd=CRATE, check=True, env=None
    )  # fmt: skip
    built = CRATE / "target" / "release" / "libcreditnode_rust.so"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    target = Path(tempfile.mkdtemp(prefix="creditnode-rust-")) / f"creditnode_rust{suffix}"
    shutil.copy(built, target)
    spec = importlib.util.spec_from_file_location("creditnode_rust", target)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_codes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = "0123456789ABCDEFGHJKLMNPQRTUWXYIOSVZa济 "
    return [
        "".join(rng.choice(pool) for _ in range(rng.choice((17, 18, 18, 19)))) for _ in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--codes", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rust = build()
    if rust is None:
        return
    state = {
        "node.feeds.merkle": _compiled(merkle),
        "node.identity.uscc_fast": _compiled(uscc_fast),
    }
    print("mypyc-compiled:", state)
    leaves = [
        leaf_module.build_leaf(
            "creditnode://f/bench", f"e{i}", feeds.EVENT_TYPE_ADD, org_entry(i), recorded_at_unix=i
        )[0]
        for i in range(10_000)
    ]
    codes = realistic_mix(args.codes, seed=17)
    pure_merkle, pure_uscc = _pure("node.feeds.merkle"), _pure("node.identity.uscc_fast")

    # The same answers first.
    for verdicts in (codes, _random_codes(100_000, 9)):
        wrong = [c for c in verdicts if rust.uscc_verdict(c) != uscc_fast.uscc_verdict(c)]
        assert not wrong, f"Rust's verdict differs on {len(wrong)} codes, e.g. {wrong[0]!r}"

    def as_frontier(size: int, hashes: list[bytes]) -> Any:
        return merkle.Frontier.from_hashes(
            size, dict(zip(merkle.tree_hash_indexes(size), hashes, strict=True))
        )

    for a, b in ((0, 777), (300, 777), (1, 2), (5, 4101)):
        f = merkle.Frontier()
        f.extend(leaves[:b])
        g = merkle.Frontier()
        g.extend(leaves[:a])
        got = as_frontier(b, rust.frontier_extend(list(g.hashes), a, leaves[a:b]))
        assert got.root() == f.root(), f"Rust's frontier differs from {a} to {b}"

    def extend_with(m: ModuleType) -> Callable[[], bytes]:
        def run() -> bytes:
            f = m.Frontier()
            k = len(leaves)
            for lo in range(0, args.leaves, k):
                f.extend(leaves[: min(k, args.leaves - lo)])
            root: bytes = f.root()
            return root

        return run

    def extend_rust() -> bytes:
        hashes: list[bytes] = []
        size = 0
        k = len(leaves)
        for lo in range(0, args.leaves, k):
            batch = leaves[: min(k, args.leaves - lo)]
            hashes = rust.frontier_extend(hashes, size, batch)
            size += len(batch)
        root: bytes = as_frontier(size, hashes).root()
        return root

    def uscc_with(verdict: Callable[[str], int]) -> Callable[[], None]:
        def run() -> None:
            validate._verdict = verdict
            check = validate.check_uscc
            for code in codes:
                check(code)

        return run

    variants: dict[str, dict[str, Callable[[], Any]]] = {
        "pure": {
            "frontier_extend": extend_with(pure_merkle),
            "uscc_check": uscc_with(pure_uscc.uscc_verdict),
        },
        "mypyc": {
            "frontier_extend": extend_with(merkle),
            "uscc_check": uscc_with(uscc_fast.uscc_verdict),
        },
        "rust": {
            "frontier_extend": extend_rust,
            "uscc_check": uscc_with(rust.uscc_verdict),
        },
    }
    units = {"frontier_extend": args.leaves, "uscc_check": args.codes}
    seconds = alternate(variants, units, args.rounds)
    figures: dict[str, float] = {}
    for workload, n in units.items():
        rates = {v: n / statistics.median(seconds[v][workload]) for v in variants}
        for v, rate in rates.items():
            figures[f"{workload}_per_s_{v}"] = rate
        figures[f"{workload}_rust_over_mypyc"] = rates["rust"] / rates["mypyc"]
        figures[f"{workload}_us_saved_per_unit"] = 1e6 / rates["mypyc"] - 1e6 / rates["rust"]
    for key, value in figures.items():
        print(f"{key:40} {value:14,.3f}")
    path = write_result(
        "native_rust",
        figures,
        {},
        params={"leaves": args.leaves, "codes": args.codes, "rounds": args.rounds},
        extra={"mypyc_compiled": state, "seconds": seconds, "crates": "Debian's, offline"},
    )
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
