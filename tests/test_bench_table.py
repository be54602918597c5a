"""bench/table.py and bench/_results.py: the README's issue-17 table is built from result
files only (missing → "not measured", never a number) and replaces just what is between its
markers."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from bench import _results, table


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    monkeypatch.setattr(_results, "RESULTS", tmp_path)
    return _results, table


def line(text: str, figure: str) -> list[str]:
    row = next(r for r in text.splitlines() if r.startswith(f"| {figure} |"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_missing_results_read_not_measured(bench: tuple[ModuleType, ModuleType]) -> None:
    _, table = bench
    text = table.table()
    assert line(text, "`status` at 1M entries")[2:] == ["not measured", "not measured", "— / —"]
    assert not any(ch.isdigit() for ch in line(text, "name search at 1M entries, p99")[2])


def test_figures_and_verdicts_come_from_the_files(bench: tuple[ModuleType, ModuleType]) -> None:
    results, table = bench
    targets = {"status_ms": ("<=", 100.0)}
    results.write_result("status_sqlite", {"status_ms": 42.0}, targets,
                         backend="sqlite", params={"entries": 1_000_000})  # fmt: skip
    results.write_result("status_postgresql", {"status_ms": 250.0}, targets,
                         backend="postgresql", params={"entries": 100_000})  # fmt: skip
    doc = results.read_result("status_postgresql")
    assert doc["targets"]["status_ms"] == {"op": "<=", "value": 100.0, "met": False}
    cells = line(table.table(), "`status` at 1M entries")
    assert cells[2] == "42.0 ms"
    assert cells[3] == "250 ms (at 100,000 entries)"  # measured smaller than asked: said so
    assert cells[4] == "yes / **no**"


def test_readme_rewrite_touches_only_the_marked_part(bench: tuple[ModuleType, ModuleType]) -> None:
    _, table = bench
    readme = f"intro\n{table.BEGIN}\nold table\n{table.END}\noutro\n"
    assert table.rewrite_readme(readme, "NEW") == f"intro\n{table.BEGIN}\nNEW\n{table.END}\noutro\n"
    with pytest.raises(SystemExit):
        table.rewrite_readme("no markers here", "NEW")
