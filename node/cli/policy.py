"""`creditnode policy check|explain`: sharing agreements as an operator sees them.

Agreements are the ``*.toml`` files in ``HOME/agreements/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from node.cli import choices
from node.cli.options import FormatOpt, err, out
from node.cli.render import emit_json
from node.errors import InputError
from node.policy.home import agreements_dir, read_agreements
from node.text import plain

policy_app = typer.Typer(help="Sharing agreements: check them, explain what a peer receives.",
                         no_args_is_help=True)  # fmt: skip
HomeOpt = Annotated[Path, typer.Option("--home", help="Node home directory.")]


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
    from node.home import load_home
    from node.policy.home import explain as explained

    at = load_home(home)
    loaded = read_agreements(home)
    found = explained(loaded, peer, purpose, at.settings.reidentification_threshold)
    decision, head, refused, fields = found.decision, found.head, found.refused, found.fields
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
