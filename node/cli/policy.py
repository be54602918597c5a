"""`creditnode policy check|explain`: sharing agreements as an operator sees them.

Agreements are the ``*.toml`` files in ``HOME/agreements/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from node.api import options
from node.cli import choices
from node.cli.options import FormatOpt, err, out
from node.cli.render import emit_json
from node.errors import InputError
from node.text import plain

if TYPE_CHECKING:
    from node.policy.agreement import Loaded

policy_app = typer.Typer(help="Sharing agreements: check them, explain what a peer receives.",
                         no_args_is_help=True)  # fmt: skip
HomeOpt = Annotated[Path, typer.Option("--home", help="Node home directory.")]
_CLASS = {
    options.SENSITIVITY_PUBLIC: "public",
    options.SENSITIVITY_INTERNAL: "internal",
    options.SENSITIVITY_TRADE_SECRET: "trade secret",
    options.SENSITIVITY_PERSONAL: "personal",
    options.SENSITIVITY_PERSONAL_SENSITIVE: "personal-sensitive",
}


def agreements_dir(home: Path) -> Path:
    return home / "agreements"


def read_agreements(home: Path) -> Loaded:
    """The agreements of *home*, checked against its ``reidentification_threshold``."""
    from node.feeds.catalogue import list_kinds
    from node.feeds.measures import agreement_check
    from node.home import load_home
    from node.policy.agreement import load_agreements

    at = load_home(home)
    threshold = at.settings.reidentification_threshold
    directory = agreements_dir(home)
    texts = {}
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        try:
            texts[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    # The measures an agreement commits to are checked against this home's catalogues.
    check = agreement_check(home, lambda: list_kinds(at.catalogue_path))
    return load_agreements(texts, threshold=threshold, check=check)


@policy_app.command("check")
def check(home: HomeOpt) -> None:
    """Validate the agreements: unknown fields, patterns, purposes, conflicts, and forms that
    together let a peer narrow an ID or name below the node's reidentification_threshold
    (file and line).

    Exit 0 if every agreement is valid, 2 if any has a problem (then nothing personal is
    shared with anyone until it is fixed).
    """
    loaded = read_agreements(home)
    for p in loaded.problems:
        err.print(plain(p), soft_wrap=True)
    if loaded.problems:
        err.print(
            f"{len(loaded.problems)} problem(s): this node shares nothing personal until "
            "they are fixed"
        )
        raise typer.Exit(InputError.exit_code)
    table = Table(title=f"agreements in {agreements_dir(home)}", title_justify="left")
    for col in ("id", "version", "peers", "purposes", "rules"):
        table.add_column(col, overflow="fold")
    for a in loaded.agreements:
        table.add_row(
            plain(a.id),
            str(a.version),
            plain(", ".join(sorted(a.peers))),
            plain(", ".join(sorted(a.purposes))),
            str(len(a.rules)),
        )
    if not loaded.agreements:
        table.add_row("(none: every personal field is withheld from every peer)", "", "", "", "")
    out.print(table)


@policy_app.command("explain")
def explain(
    home: HomeOpt,
    peer: Annotated[str, typer.Option(help="Peer name.")],
    purpose: Annotated[str, typer.Option(help=f"One of {', '.join(choices.PURPOSES)}, or 'feed'.")],
    fmt: FormatOpt = "table",
) -> None:
    """Field by field, what PEER receives for PURPOSE, and in which form."""
    from node.api import feeds
    from node.home import load_home
    from node.policy.decide import decide

    at = load_home(home)
    threshold = at.settings.reidentification_threshold
    loaded = read_agreements(home)
    request = None if purpose == "feed" else purpose
    decision = decide(loaded.agreements, peer, request, "list_entry", threshold=threshold)
    head = (
        f"refused: {decision.reason}"
        if decision.refused
        else f"decided by {decision.agreement_id} v{decision.agreement_version}"
    )
    if loaded.problems:
        head = f"refused: {len(loaded.problems)} problem(s) in the agreements (policy check)"
    refused = decision.refused or bool(loaded.problems)
    fields = [
        {
            "field": f.name,
            "class": _CLASS.get(f.GetOptions().Extensions[options.sensitivity], "unclassified"),
            # Agreements with problems refuse everything (fail closed), whatever one decides.
            "form": "withhold" if loaded.problems else str(decision.fields.get(f.name, "withhold")),
        }
        for f in feeds.ListEntry.DESCRIPTOR.fields
    ]
    if fmt == "json":
        emit_json(
            {
                "peer": peer,
                "purpose": purpose,
                "data_class": "list_entry",
                "refused": refused,
                "reason": head.removeprefix("refused: ") if refused else None,
                "agreement": None
                if refused
                else {"id": decision.agreement_id, "version": decision.agreement_version},
                "problems": len(loaded.problems),
                "fields": fields,
            }
        )
        return
    table = Table(
        title=Text(plain(f"{peer} / {purpose} / list_entry — {head}")), title_justify="left"
    )
    for col in ("field", "class", "form"):
        table.add_column(col)
    for row in fields:
        table.add_row(plain(row["field"]), plain(row["class"]), Text(plain(row["form"])))
    out.print(table)
