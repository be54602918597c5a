"""``creditnode stats``: this node's signed statistics for one month or quarter (the counts
the plans ask for: entries and removals, responses and hits, turnaround, the 重错码 rate), as
tables or JSON, exported with ``--out``; ``stats verify`` checks a saved file offline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from node.cli.console import data_text
from node.cli.options import FormatOpt, err, out, quiet_logs, run_coro
from node.cli.render import emit_json
from node.errors import InputError
from node.text import plain

stats_app = typer.Typer(
    help="Signed statistics for a month or quarter: show, export, verify.",
    invoke_without_command=True,
)


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        # Names came from records (hostile): literal text, never markup.
        table.add_row(*(data_text("-" if v is None else v) for v in row))
    return table


def _print_tables(doc: Mapping[str, Any]) -> None:
    from node.stats.count import GIVEN, RAISED, RECEIVED

    c, period = doc["counts"], doc["period"]
    out.print(
        plain(
            f"statistics of {doc['issuer_city']} for {period['label']} "
            f"({period['first']} – {period['last']}, {period['time_zone']})"
        )
    )
    e = c["entries"]
    lists: list[tuple[object, ...]] = [
        (x["list_code"], x["list_name"], x["added"], x["updated"], x["removed"],
         ", ".join(f"{k} {v}" for k, v in x["removed_by_reason"].items()))
        for x in e["by_list"]
    ]  # fmt: skip
    lists.append(("total", "", e["added"], e["updated"], e["removed"],
                  ", ".join(f"{k} {v}" for k, v in e["removed_by_reason"].items())))  # fmt: skip
    tables = [_table("entries by list", ("list", "name", "added", "updated", "removed", "reasons"),
                     lists)]  # fmt: skip
    for direction, title in ((RECEIVED, "from partners"), (GIVEN, "by this node")):
        r = c["responses"][direction]
        rows: list[tuple[object, ...]] = [
            (x["measure"], x["city"], x["action"], x["count"]) for x in r["by_measure_city"]
        ]
        rows.append(("total", "", "", r["total"]))
        tables.append(_table(f"responses {title} (联合奖惩案例)",
                             ("measure", "city", "action", "count"), rows))  # fmt: skip
        h = c["hits"][direction]
        hits: list[tuple[object, ...]] = [("purpose", k, v) for k, v in h["by_purpose"].items()]
        hits += [("department", k or "(none)", v) for k, v in h["by_department"].items()]
        hits.append(("total", "", h["total"]))
        tables.append(_table(f"hits {title}", ("by", "", "count"), hits))
    t = c["turnaround"]
    turn: list[tuple[object, ...]] = [
        ("repair (listing → removal)", t["repair"]["count"], t["repair"]["median_days"],
         t["repair"]["max_days"], "", ""),
    ]  # fmt: skip
    for side, what in ((RECEIVED, "objections received"), (RAISED, "objections raised")):
        o = t["objections"][side]
        turn.append((
            f"{what} (raised {o['raised']})", o["resolved"], o["turnaround"]["median_days"],
            o["turnaround"]["max_days"], o["on_time"], o["late"],
        ))  # fmt: skip
    tables.append(_table("turnaround (days)",
                         ("", "resolved", "median", "max", "on time", "late"), turn))  # fmt: skip
    u = c["uscc"]
    usccs: list[tuple[object, ...]] = [
        (x["list_name"], x["imports"], x["checked"], x["invalid"], x["lenient"])
        for x in u["by_list"]
    ]
    usccs.append(("total", u["imports"], u["checked"], u["invalid"], u["lenient"]))
    tables.append(_table(
        f"USCCs checked on import (重错码 rate {u['flawed_rate'] or '-'}: invalid "
        f"{u['invalid_rate'] or '-'}, lenient {u['lenient_rate'] or '-'})",
        ("list", "imports", "checked", "invalid", "lenient"), usccs,
    ))  # fmt: skip
    for table in tables:
        out.print(table)


@stats_app.callback()
def stats_command(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", help="Node home directory.")] = None,
    period: Annotated[str, typer.Option(help="month or quarter.")] = "month",
    at: Annotated[
        str | None,
        typer.Option(help="Which one: YYYY-MM (month) or YYYY-Qn (quarter); default the current."),
    ] = None,
    fmt: FormatOpt = "table",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the signed statistics file here.")
    ] = None,
) -> None:
    """This node's statistics for one calendar month or quarter (Asia/Shanghai), signed by
    its report key(s): entries and removals by list and reason, responses per measure and
    city, hits by purpose and department, repair and objection turnaround, and the share of
    USCCs that failed validation or passed only leniently. Exit 0, or 2 on bad input."""
    if ctx.invoked_subcommand is not None:
        return  # before the imports below: `stats verify` (and its --help) needs none of them
    from node.feeds.dates import shanghai_today
    from node.home import load_home
    from node.stats.collect import statistics
    from node.stats.count import Period
    from node.storage import Store

    quiet_logs()
    if home is None:
        raise InputError("--home is required")
    if fmt not in ("table", "json"):
        raise InputError("--format is table or json")
    chosen = Period.parse(period, at, today=shanghai_today())
    loaded = load_home(home)

    async def run() -> tuple[dict[str, Any], bytes]:
        async with Store.opened(loaded.database_url) as store:
            return await statistics(store, loaded, chosen)

    doc, signed = run_coro(run())
    if out_file is not None:
        out_file.write_bytes(signed)
        err.print(f"signed statistics written to {out_file}", markup=False, highlight=False)
    if fmt == "json":
        emit_json(doc)
    else:
        _print_tables(doc)


@stats_app.command("verify")
def verify_command(
    file: Annotated[Path, typer.Argument(help="A saved statistics file (stats --out).")],
    trust: Annotated[
        Path,
        typer.Option(
            "--trust",
            "--bundle",
            help="The alliance's peer bundles: one file or a directory of them.",
        ),
    ],
    fmt: FormatOpt = "table",
) -> None:
    """Check a statistics file offline: the issuer's pinned root v1 → its chain → the report
    key valid when it signed. Exit 0, or 7 if it does not verify."""
    from node.cli.report import load_trust
    from node.stats.signed import StatsVerificationError, verify_file

    if fmt not in ("table", "json"):
        raise InputError("--format is table or json")
    bundles = load_trust(trust)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: {exc.strerror or exc}") from None
    try:
        v = verify_file(data, bundles)
    except StatsVerificationError as exc:
        if fmt == "json":
            emit_json({"verified": False, "problem": str(exc)})
        raise StatsVerificationError(f"{file}: {exc}") from None
    summary = {
        "verified": True, "issuer": v.issuer, "issued_at": v.issued_at.isoformat(),
        "period": v.payload.get("period", {}).get("label"), "root_version": v.root_version,
        "signed_by": list(v.signed_by),
    }  # fmt: skip
    if fmt == "json":
        emit_json(summary)
        return
    out.print(
        plain(
            f"verified: statistics of {v.issuer} for {summary['period']}, signed "
            f"{summary['issued_at']}"
            + ("" if v.root_version is None else f" (root v{v.root_version})")
        )
    )
