"""`creditnode verify`: re-check everything the node stores and name the first bad index or
row of each log that fails (exit 7), or say what was checked (exit 0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from node.cli.console import data_text, line
from node.cli.render import emit_json
from node.errors import InputError, VerificationError
from node.home import load_home
from node.storage import Store
from node.text import plain
from node.verification.names import rebuild_name_index
from node.verification.runner import Report, verify_store

FORMATS = ("table", "json")


def report_json(report: Report) -> dict[str, Any]:
    return {
        "ok": not report.findings,
        "leaves": report.leaves,
        "logs": [
            {
                "log": r.label,
                "kind": r.kind,
                "origin": r.origin,
                "size": r.size,
                "leaves": r.leaves,
                "hashes": r.hashes,
                "checkpoints": r.checkpoints,
                "state_rows": r.state_rows,
                "openings": r.openings,
                "seconds": round(r.seconds, 3),
                "first_bad_index": r.first_bad_index,
                "unchecked": r.unchecked,
                "findings": [
                    {"kind": f.kind, "index": f.index, "row": f.row, "detail": f.detail}
                    for f in r.findings
                ],
            }
            for r in report.logs
        ],
    }


def print_report(report: Report, console: Console, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("log", "leaves", "hashes", "checkpoints", "state rows", "openings", "result"):
        table.add_column(col)
    for r in report.logs:
        if r.findings:
            first = r.first_bad_index
            result = line(
                (f"{len(r.findings)} finding(s)", "red"),
                f", first bad index {first}" if first is not None else "",
            )
        else:
            result = Text("ok", style="green")
        if r.unchecked:
            result.append(f" (not checked: {plain('; '.join(r.unchecked))})")
        table.add_row(
            data_text(r.label), str(r.leaves), str(r.hashes), str(r.checkpoints),
            str(r.state_rows), str(r.openings), result,
        )  # fmt: skip
    if not report.logs:
        table.add_row("(no logs yet)", "", "", "", "", "", "")
    console.print(table)
    findings = report.findings
    if findings:
        ft = Table(title="findings (first bad index or row of each)", title_justify="left")
        for col in ("log", "kind", "index", "row", "detail"):
            ft.add_column(col, overflow="fold")
        for f in findings:
            ft.add_row(
                data_text(f.log), data_text(f.kind), "" if f.index is None else str(f.index),
                data_text(f.row), data_text(f.detail),
            )  # fmt: skip
        console.print(ft)


async def verify_home(
    root: Path, out: Console, *, fmt: str = "table", rebuild_names: bool = False
) -> int:
    """Run one whole pass (after rebuilding the name index if *rebuild_names*); print it;
    the exit code (0 clean, 7 on any finding)."""
    if fmt not in FORMATS:
        raise InputError("--format must be table or json")
    home = load_home(root)
    rebuilt: int | None = None
    async with Store.opened(home.database_url) as store:
        if rebuild_names:
            rebuilt = await rebuild_name_index(store)
            if fmt == "table":
                out.print(
                    f"name index rebuilt from list_state: {rebuilt} row(s)"
                    if store.backend == "sqlite"
                    else "name index: PostgreSQL keeps its own (nothing to rebuild)",
                    highlight=False,
                )
        report = await verify_store(home, store, parallel=True)
    if fmt == "json":
        emit_json(report_json(report) | ({} if rebuilt is None else {"name_index_rows": rebuilt}))
    else:
        print_report(report, out, f"verify {home.identity.uri}")
    return VerificationError.exit_code if report.findings else 0
