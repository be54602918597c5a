"""`creditnode measures list|check`: the measures catalogue in force (node.feeds.measures).

With ``--home`` the node's documents are read (HOME/measures.toml, the packaged national base
when absent, and HOME/measures.supplement.toml) and checked against the node's list catalogue;
with ``--file`` (and ``--supplement``, ``--lists``) any documents are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from node.cli.options import FormatOpt, err, out
from node.cli.render import emit_json
from node.errors import InputError
from node.text import plain

if TYPE_CHECKING:
    from node.feeds.measures import Measure, MeasureCatalogue

measures_app = typer.Typer(
    help="The measures catalogue (惩戒措施/激励措施) list entries are checked by.",
    no_args_is_help=True,
)

HomeArg = Annotated[Path | None, typer.Option("--home", help="Node home directory.")]
FileArg = Annotated[
    Path | None, typer.Option("--file", help="A base document (instead of --home).")
]
SupplementArg = Annotated[
    list[Path] | None,
    typer.Option("--supplement", help="A city supplement to merge (with --file; repeatable)."),
]
ListsArg = Annotated[
    Path | None,
    typer.Option("--lists", help="A list catalogue to check list codes against (with --file)."),
]
FormatArg = FormatOpt


def _documents(
    home: Path | None, file: Path | None, supplements: list[Path] | None, lists: Path | None
) -> tuple[Path, list[Path], dict[str, str] | None]:
    from node.feeds import catalogue
    from node.feeds import measures as measures_mod
    from node.home import load_home

    if (home is None) == (file is None):
        raise InputError("give exactly one of --home and --file")
    if home is not None:
        if supplements or lists:
            raise InputError("--supplement and --lists go with --file; --home reads its own")
        loaded = load_home(home)
        kinds = {s.code: s.kind for s in catalogue.load(loaded.catalogue_path).lists}
        base, sups = measures_mod.home_files(home)
        return base, sups, kinds
    assert file is not None
    listed = {s.code: s.kind for s in catalogue.load(lists).lists} if lists else None
    return file, list(supplements or []), listed


def load_measures(home: Path) -> MeasureCatalogue:
    """The measures catalogue in force at *home*, checked against its list catalogue."""
    from node.feeds import measures as measures_mod

    base, sups, kinds = _documents(home, None, None, None)
    return measures_mod.load(base, sups, list_kinds=kinds)


def _as_json(cat: MeasureCatalogue, shown: list[Measure]) -> dict[str, object]:
    return {
        "name": cat.name,
        "version": cat.version,
        "title": cat.title,
        "supplements": [{"name": n, "version": v} for n, v in cat.supplements],
        "label": cat.label,
        "sha256": cat.sha256,
        "measures": [
            {
                "code": m.code,
                "name": m.name,
                "category": m.category,
                "incentive": m.incentive,
                "basis": m.basis,
                "department": m.department,
                "lists": list(m.lists),
                "mandatory": m.mandatory,
                "defined_at": m.where,
            }
            for m in shown
        ],
    }


@measures_app.command("list")
def list_measures(
    home: HomeArg = None,
    file: FileArg = None,
    supplement: SupplementArg = None,
    lists: ListsArg = None,
    list_code: Annotated[
        str | None, typer.Option("--list", help="Only measures that apply to this list code.")
    ] = None,
    fmt: FormatArg = "table",
) -> None:
    """Show the measures in force: code, name, category, basis, department, lists, default."""
    from node.feeds import measures as measures_mod
    from node.feeds.measures import CATEGORY_LABELS

    if fmt not in ("table", "json"):
        raise InputError("--format: table or json")
    base, sups, kinds = _documents(home, file, supplement, lists)
    cat = measures_mod.load(base, sups, list_kinds=kinds)
    shown = [m for m in cat.measures if list_code is None or list_code in m.lists]
    if fmt == "json":
        emit_json(_as_json(cat, shown))
        return
    table = Table(
        title=plain(f"measures catalogue {cat.label} (sha256 {cat.sha256[:16]}…)"),
        title_justify="left",
    )
    # Codes whole (an operator copies them into CSVs); long texts folded, never cut.
    table.add_column("code", no_wrap=True)
    for col in ("name", "category", "default", "department", "lists", "basis"):
        table.add_column(col, overflow="fold")
    for m in shown:
        table.add_row(
            *(
                plain(v)
                for v in (
                    m.code, m.name, f"{m.category} ({CATEGORY_LABELS[m.category]})",
                    "强制" if m.mandatory else "推荐", m.department, ", ".join(m.lists), m.basis,
                )
            )
        )  # fmt: skip
    out.print(table)


@measures_app.command("check")
def check_measures(
    home: HomeArg = None,
    file: FileArg = None,
    supplement: SupplementArg = None,
    lists: ListsArg = None,
    fmt: FormatArg = "table",
) -> None:
    """Check the documents: every problem as file:line (exit 3), else the version in force."""
    from node.feeds import measures as measures_mod
    from node.feeds.measures import MeasuresError

    if fmt not in ("table", "json"):
        raise InputError("--format: table or json")
    base, sups, kinds = _documents(home, file, supplement, lists)
    try:
        cat = measures_mod.load(base, sups, list_kinds=kinds)
    except MeasuresError as exc:
        if fmt == "json":
            emit_json({"ok": False, "problems": list(exc.problems)})
        else:
            for problem in exc.problems:
                err.print(plain(problem), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    if fmt == "json":
        emit_json(
            {"ok": True, "label": cat.label, "sha256": cat.sha256, "measures": len(cat.measures)}
        )
        return
    out.print(
        "ok: measures catalogue "
        + plain(f"{cat.label}, {len(cat.measures)} measures, sha256 {cat.sha256}"),
        soft_wrap=True,
    )
