"""Command start-up (issue 16): wall time of `creditnode` commands in fresh processes.

    .venv/bin/python bench/startup.py [--runs 21]

Each command runs --runs times as a new process of .venv/bin/creditnode, the commands taken in
turn so that a burst of load on this shared machine falls on all of them alike. Reported: the
median and p90 wall time of each, and as the floor measured in the same run a bare
`python -c pass` and `python -c "import typer"` (the least any typer command can cost). The
target is a median under 0.5 s for --help, --version and `identity check`. `lists` runs on a
small home whose database is already at the newest migration (made and migrated once, before
timing), the case of every command but the first on a home. Also printed: the import time of
--help, --version, `identity check` and `lists` by package (python -X importtime), to see what
start-up pays for. Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.home import init_home  # noqa: E402
from node.identity.codes import org_code_check_char, uscc_check_char  # noqa: E402

BIN = ROOT / ".venv" / "bin"
CREDITNODE = str(BIN / "creditnode")
PYTHON = str(BIN / "python")
TARGET_SECONDS = 0.5
TARGETED = ("--help", "--version", "identity check")  # what the target names
BROKEN_DOWN = (*TARGETED, "lists (small home)")  # whose imports are printed by package


def sample_codes(path: Path) -> None:
    """A small CSV of valid USCCs for `identity check`."""
    rows = []
    for i in range(20):
        org = f"MA{i:06d}"
        body = f"91370100{org}{org_code_check_char(org)}"
        rows.append(body + uscc_check_char(body))
    path.write_text("统一社会信用代码\n" + "\n".join(rows) + "\n", encoding="utf-8")


def commands(work: Path) -> list[tuple[str, list[str]]]:
    codes = work / "codes.csv"
    sample_codes(codes)
    home = work / "jinan"
    init_home(home, name="jinan", region="370100", listen="127.0.0.1:0")
    # `lists` opens the database: the first run would create and migrate it.
    subprocess.run([CREDITNODE, "lists", "--home", str(home)], capture_output=True, check=True)
    return [
        ("python -c pass", [PYTHON, "-c", "pass"]),
        ("python -c 'import typer'", [PYTHON, "-c", "import typer"]),
        ("--version", [CREDITNODE, "--version"]),
        ("--help", [CREDITNODE, "--help"]),
        ("-h", [CREDITNODE, "-h"]),
        ("import --help", [CREDITNODE, "import", "--help"]),
        ("keys rotate --help", [CREDITNODE, "keys", "rotate", "--help"]),
        ("identity check", [CREDITNODE, "identity", "check", str(codes)]),
        ("lists (small home)", [CREDITNODE, "lists", "--home", str(home)]),
    ]


def run_once(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()}")
    return took


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def heaviest_imports(argv: list[str], top: int = 8) -> list[tuple[str, float]]:
    """Import time (-X importtime, each module's own) summed by top-level package, largest
    first: what a run pays for before its command starts."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(argv, capture_output=True, env=env, check=True, text=True)
    by_package: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        package = name.strip().split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + int(own) / 1e6
    return sorted(by_package.items(), key=lambda f: -f[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21, help="runs of each command")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="creditnode-startup-") as tmp:
        cmds = commands(Path(tmp))
        times: dict[str, list[float]] = {label: [] for label, _ in cmds}
        for _, argv in cmds:  # warm the file cache (and .pyc files) before timing
            run_once(argv)
        for _ in range(args.runs):
            for label, argv in cmds:
                times[label].append(run_once(argv))
        heavy = {label: heaviest_imports(argv) for label, argv in cmds if label in BROKEN_DOWN}
    floor = statistics.median(times["python -c pass"])
    typer_floor = statistics.median(times["python -c 'import typer'"])
    rows = {}
    print(f"  {'command':<26} {'median':>8} {'p90':>8} {'/ typer':>8}")
    for label, values in times.items():
        median = statistics.median(values)
        rows[label] = {
            "median_seconds": round(median, 4),
            "p90_seconds": round(p90(values), 4),
            "ratio_to_import_typer": round(median / typer_floor, 2),
        }
        print(f"  {label:<26} {median:>7.3f}s {p90(values):>7.3f}s {median / typer_floor:>7.2f}x")
    for label, packages in heavy.items():
        print(f"  imports of `creditnode {label}` by package (ms): " + ", ".join(
            f"{name} {seconds * 1000:.0f}" for name, seconds in packages))  # fmt: skip
    met = all(rows[t]["median_seconds"] < TARGET_SECONDS for t in TARGETED)
    print(f"  target: median under {TARGET_SECONDS} s for {', '.join(TARGETED)}: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip
    result = {
        "runs": args.runs,
        "commands": rows,
        "python_pass_median_seconds": round(floor, 4),
        "import_typer_median_seconds": round(typer_floor, 4),
        "import_seconds_by_package": {
            label: {n: round(s, 4) for n, s in packages} for label, packages in heavy.items()
        },
        "target_seconds": TARGET_SECONDS,
        "target_met": met,
        "load_average_at_start": round(load, 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    out = ROOT / "bench" / "results" / "startup.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"  written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
