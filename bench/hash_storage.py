"""An origin's stored hashes (issue 17): today's rows (one per stored hash, tlog numbering) vs
C2SP tlog-tiles rows (256 hashes of one level per row; levels 0, 8, 16, ...; a hash of a level
in between is recomputed from the tile below). Measures the origin's append and inclusion
proof reads, both variants alternately in the same run, on plain sqlite3 (WAL, synchronous
NORMAL as the node opens it), and prints the ratios; JSON in bench/results/hash_storage.json.

    .venv/bin/python bench/hash_storage.py [--entries 200000] [--proofs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.feeds import merkle  # noqa: E402

BATCH = 4096  # leaves per append transaction, as the subscriber and importer group them
TILE = 256
sha = hashlib.sha256


def _db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _appends(leaves: list[bytes]) -> list[list[tuple[int, int, bytes]]]:
    """Per batch: every hash it completes, as (level, n, hash)."""
    stack: list[bytes] = []
    out = []
    size = 0
    for a in range(0, len(leaves), BATCH):
        made = []
        for data in leaves[a : a + BATCH]:
            h = sha(b"\x00" + data).digest()
            made.append((0, size, h))
            k, level, n = size, 0, size
            while k & 1:
                h = sha(b"\x01" + stack.pop() + h).digest()
                k >>= 1
                level += 1
                n >>= 1
                made.append((level, n, h))
            stack.append(h)
            size += 1
        out.append(made)
    return out


def rows_append(conn: sqlite3.Connection, batches: list[list[tuple[int, int, bytes]]]) -> float:
    conn.execute(
        "CREATE TABLE h (log_id INTEGER, idx INTEGER, hash BLOB, PRIMARY KEY (log_id, idx))"
    )
    t = time.perf_counter()
    for made in batches:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO h VALUES (1, ?, ?)",
            [(merkle.stored_hash_index(lv, n), h) for lv, n, h in made],
        )
        conn.execute("COMMIT")
    return time.perf_counter() - t


def tiles_append(conn: sqlite3.Connection, batches: list[list[tuple[int, int, bytes]]]) -> float:
    conn.execute(
        "CREATE TABLE t (log_id INTEGER, level INTEGER, n INTEGER, data BLOB,"
        " PRIMARY KEY (log_id, level, n))"
    )
    t = time.perf_counter()
    partial: dict[tuple[int, int], bytearray] = {}  # the open (right-most) tile per level
    for made in batches:
        touched: dict[tuple[int, int], bytearray] = {}
        for lv, n, h in made:
            if lv % 8:
                continue
            key = (lv // 8, n // TILE)
            tile = partial.setdefault(key, bytearray())
            tile += h
            touched[key] = tile
            if len(tile) == TILE * 32:
                del partial[key]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR REPLACE INTO t VALUES (1, ?, ?, ?)",
            [(k[0], k[1], bytes(v)) for k, v in touched.items()],
        )
        conn.execute("COMMIT")
    return time.perf_counter() - t


def rows_proofs(conn: sqlite3.Connection, size: int, targets: list[int]) -> float:
    t = time.perf_counter()
    for i in targets:
        want = merkle.inclusion_proof_indexes(size, i)
        marks = ",".join("?" * len(want))
        got = dict(
            conn.execute(f"SELECT idx, hash FROM h WHERE log_id = 1 AND idx IN ({marks})", want)
        )
        merkle.inclusion_proof(size, i, got)
    return time.perf_counter() - t


def _subtree(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        hashes = [
            sha(b"\x01" + hashes[j] + hashes[j + 1]).digest() for j in range(0, len(hashes), 2)
        ]
    return hashes[0]


def tiles_proofs(conn: sqlite3.Connection, size: int, targets: list[int]) -> float:
    t = time.perf_counter()
    for i in targets:
        want = merkle.inclusion_proof_indexes(size, i)
        where = [merkle.split_stored_hash_index(x) for x in want]
        keys = {(lv // 8, (n << (lv % 8)) // TILE) for lv, n in where}
        tiles: dict[tuple[int, int], bytes] = {}
        for tl, tn in keys:
            (data,) = conn.execute(
                "SELECT data FROM t WHERE log_id = 1 AND level = ? AND n = ?", (tl, tn)
            ).fetchone()
            tiles[(tl, tn)] = data
        got = {}
        for x, (lv, n) in zip(want, where, strict=True):
            r = lv % 8
            first = n << r
            data = tiles[(lv // 8, first // TILE)]
            off = first % TILE
            got[x] = _subtree([data[(off + j) * 32 : (off + j + 1) * 32] for j in range(1 << r)])
        merkle.inclusion_proof(size, i, got)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.entries - args.entries % BATCH or BATCH  # whole batches: complete tiles or not
    leaves = [os.urandom(180) for _ in range(n)]
    batches = _appends(leaves)
    rng = random.Random(7)
    targets = [rng.randrange(n) for _ in range(args.proofs)]
    runs: dict[str, list[float]] = {k: [] for k in ("rows_append", "tiles_append",
                                                       "rows_proofs", "tiles_proofs")}  # fmt: skip
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="creditnode-hashes-") as tmp:
        for r in range(args.rounds):
            for name in ("rows", "tiles") if r % 2 == 0 else ("tiles", "rows"):
                path = Path(tmp) / f"{name}{r}.db"
                conn = _db(path)
                append = rows_append if name == "rows" else tiles_append
                proofs = rows_proofs if name == "rows" else tiles_proofs
                runs[f"{name}_append"].append(n / append(conn, batches))
                runs[f"{name}_proofs"].append(len(targets) / proofs(conn, n, targets))
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
                sizes[name] = path.stat().st_size
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "entries": n,
        "proofs": len(targets),
        "rounds": args.rounds,
        "append_leaves_per_s": {"rows": med["rows_append"], "tiles": med["tiles_append"]},
        "inclusion_proofs_per_s": {"rows": med["rows_proofs"], "tiles": med["tiles_proofs"]},
        "append_ratio_tiles_to_rows": med["tiles_append"] / med["rows_append"],
        "proof_ratio_tiles_to_rows": med["tiles_proofs"] / med["rows_proofs"],
        "database_bytes": sizes,
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "hash_storage.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
