"""The one JSON shape every issue-17 benchmark writes to bench/results/<name>.json.

    {
      "name": "sync_sqlite",              # the file's stem
      "backend": "sqlite",                # "sqlite" | "postgresql" | null (engine-free)
      "measured_at": "2026-11-30T15:00:00Z",
      "machine": {"cpus": 2, "loadavg_1m": 1.3},
      "params": {"entries": 1000000, ...},        # what was run
      "figures": {"entries_per_s": 41234.5, ...}, # numbers only
      "targets": {"entries_per_s": {"op": ">=", "value": 40000, "met": true}, ...},
      "extra": {...}                      # anything else (per-round figures, notes)
    }

A target names a figure; ``met`` is computed here, never by hand, and is null when the figure
is missing. bench/table.py reads ``figures`` and ``targets`` only.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def judge(figures: Mapping[str, float], targets: Mapping[str, tuple[str, float]]) -> dict[str, Any]:
    """Each target with whether its figure meets it (None when the figure is absent)."""
    out: dict[str, Any] = {}
    for key, (op, value) in targets.items():
        got = figures.get(key)
        met = None if got is None else OPS[op](got, value)
        out[key] = {"op": op, "value": value, "met": met}
    return out


def write_result(
    name: str,
    figures: Mapping[str, float],
    targets: Mapping[str, tuple[str, float]],
    *,
    backend: str | None = None,
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write bench/results/<name>.json in the common shape; return its path."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    doc = {
        "name": name,
        "backend": backend,
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": load},
        "params": dict(params or {}),
        "figures": {k: float(v) for k, v in figures.items()},
        "targets": judge(figures, targets),
        "extra": dict(extra or {}),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    """A result file in the common shape, or None when absent or not in that shape."""
    path = RESULTS / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        return None
    return doc
