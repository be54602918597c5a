"""Issue 17's table from bench/results/*.json: printed as Markdown and written into README.md
between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``.

    .venv/bin/python bench/table.py [--no-readme]

A figure whose file is missing (or not in bench/_results.py's shape) reads "not measured",
never a number; a figure measured at fewer entries than the row asks says so. Whether a
target is met is judged here, from the figure, the same way for every row.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import OPS, read_result

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SQLITE, PG = "sqlite", "postgresql"


@dataclass(frozen=True)
class Row:
    """One line: *result* is the file stem ({b} = the backend), *key* a figure in it."""

    figure: str
    target: str
    result: str
    key: str
    unit: str
    op: str | None = None  # None: reported, no threshold
    value: float = 0.0
    entries: int | None = None  # the size the row asks for
    backends: tuple[str, ...] = (SQLITE, PG)


ROWS = [
    Row("initial sync of 1M entries, verified and durable", "≥ 40,000 entries/s",
        "sync_{b}", "entries_per_s", "/s", ">=", 40_000, 1_000_000),
    Row("… against an unverified copy (same leaves, same mTLS stream, bulk insert)", "≥ 0.5×",
        "sync_{b}", "ratio_to_copy", "×", ">=", 0.5, 1_000_000),
    Row("peak RSS during that sync", "≤ 300 MB",
        "sync_{b}", "peak_rss_mb", " MB", "<=", 300, 1_000_000),
    Row("`Lookup` at concurrency 1, against a bare mTLS echo", "≥ 0.5×",
        "lookup_{b}", "c1_ratio", "×", ">=", 0.5),
    Row("`Lookup` at concurrency 16, against a bare mTLS echo", "≥ 0.5×",
        "lookup_{b}", "c16_ratio", "×", ">=", 0.5),
    Row("`Lookup` p99 at concurrency 1", "≤ 5 ms",
        "lookup_{b}", "c1_lookup_p99_ms", " ms", "<=", 5),
    Row("name search at 1M entries, p99", "≤ 10 ms",
        "name_search_{b}", "p99_ms", " ms", "<=", 10, 1_000_000),
    Row("`status` at 1M entries", "≤ 100 ms",
        "status_{b}", "status_ms", " ms", "<=", 100, 1_000_000),
    Row("USCC validation, one core (no database)", "≥ 200,000 codes/s",
        "uscc", "codes_per_s", "/s", ">=", 200_000, backends=(SQLITE,)),
    Row("sync at 10M entries (COPY for bulk apply)", "reported",
        "sync_postgresql_10m", "entries_per_s", "/s", entries=10_000_000, backends=(PG,)),
    Row("`Lookup` at 10M entries (by USCC), concurrency 1, against the echo", "reported",
        "lookup_postgresql_10m", "c1_ratio", "×", entries=10_000_000, backends=(PG,)),
]  # fmt: skip


def number(x: float, unit: str) -> str:
    if unit == "×":
        return f"{x:.2f}×"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    return f"{x:.1f}{unit}" if abs(x) >= 10 else f"{x:.2f}{unit}"


def cell(row: Row, backend: str) -> tuple[str, bool | None]:
    """The cell's text and whether the target is met (None: not measured or no target)."""
    if backend not in row.backends:
        return "—", None
    doc = read_result(row.result.format(b=backend))
    got = None if doc is None else doc["figures"].get(row.key)
    if not isinstance(got, int | float):
        return "not measured", None
    text = number(float(got), row.unit)
    params: dict[str, Any] = doc.get("params", {}) if doc else {}
    entries = params.get("entries")
    if row.entries and isinstance(entries, int) and entries < row.entries:
        text += f" (at {entries:,} entries)"
    met = None if row.op is None else OPS[row.op](float(got), row.value)
    return text, met


def verdict(cells: list[tuple[str, bool | None]], row: Row) -> str:
    """Met or not, per backend the row applies to."""
    if row.op is None:
        return "reported" if any(t not in ("—", "not measured") for t, _ in cells) else "—"
    marks = {True: "yes", False: "**no**", None: "—"}
    applies = [m for b, (_, m) in zip((SQLITE, PG), cells, strict=True) if b in row.backends]
    return " / ".join(marks[m] for m in applies)


def table() -> str:
    lines = [
        "| figure | target | SQLite | PostgreSQL | met? (SQLite / PostgreSQL) |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        cells = [cell(row, SQLITE), cell(row, PG)]
        lines.append(
            f"| {row.figure} | {row.target} | {cells[0][0]} | {cells[1][0]} | "
            f"{verdict(cells, row)} |"
        )
    return "\n".join(lines)


def rewrite_readme(text: str, body: str) -> str:
    """*text* with everything between the markers replaced by *body*."""
    head, sep, rest = text.partition(BEGIN)
    if not sep or END not in rest:
        raise SystemExit(f"README.md has no {BEGIN} … {END} markers")
    return f"{head}{BEGIN}\n{body}\n{END}{rest.split(END, 1)[1]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    body = table()
    print(body)
    if not args.no_readme:
        README.write_text(rewrite_readme(README.read_text(encoding="utf-8"), body), "utf-8")
        print(f"written to {README}")


if __name__ == "__main__":
    main()
