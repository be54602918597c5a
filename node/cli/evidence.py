"""`creditnode evidence export` and `evidence check`: hand a peer's fork to a third party, who
checks it offline with only the origin's bundle (its root v1, or its feed key)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from keys import PeerBundle
from node.cli.options import HomeOpt, out, quiet_logs, run_coro
from node.errors import InputError, VerificationError
from node.home import load_home
from node.storage import Store
from node.witness import evidence
from node.witness.export import export_evidence

FORMATS = ("table", "json")
FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]

evidence_app = typer.Typer(
    help="Export and check the evidence of a peer's forked log.", no_args_is_help=True
)


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError("--format must be table or json")
    return fmt


@evidence_app.command("export")
def evidence_export(
    home: HomeOpt,
    peer: Annotated[str, typer.Option("--peer", help="The peer whose fork to export.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (default: standard output).")
    ] = None,
    fmt: FormatOpt = "json",
) -> None:
    """Write the signed checkpoints, cosignatures and proofs of every fork this node recorded
    for PEER's feed, with the peer's root versions held, as one JSON document. Exit 2 if
    nothing is held for the peer."""
    _format(fmt)
    quiet_logs()
    loaded = load_home(home)

    async def read() -> dict[str, Any]:
        async with Store.opened(loaded.database_url) as store:
            return await export_evidence(store, peer, now=dt.datetime.now(dt.UTC))

    doc = run_coro(read())
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    if out_file is None:
        print(text, end="")
        return
    out_file.write_text(text, encoding="utf-8")
    count = len(doc["evidence"])
    if fmt == "json":
        print(json.dumps({"out": str(out_file), "records": count}))
    else:
        out.print(f"{count} record(s) of {escape(peer)} written to {out_file}")


@evidence_app.command("check")
def evidence_check(
    file: Annotated[Path, typer.Argument(help="An evidence document (evidence export).")],
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="The origin's peer bundle: its root v1 (or feed key) judges the signatures. "
            "Without it, the trust embedded in the document is used, and named.",
        ),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Check an evidence document offline: every note must be signed by the origin (a key
    valid at its signed time) and the notes and proofs must prove a fork on their own. Exit
    0 if they do, 7 if a note does not verify or nothing is proven, 2 for a malformed file."""
    _format(fmt)
    quiet_logs()
    try:
        doc = evidence.parse(file.read_bytes())
        root_v1, key = evidence.embedded_trust(doc)
        source = "embedded in the document (compare it with the origin's bundle)"
        if bundle is not None:
            peer = PeerBundle.from_json(bundle.read_text(encoding="utf-8"))
            if peer.identity.uri != doc["origin"]:
                raise InputError(f"{bundle}: the bundle is {peer.identity.uri}, not the origin")
            root_v1, key = peer.root_v1_bytes, peer.verifying_key
            source = f"from {bundle}"
        verdict = evidence.check(doc, root_v1=root_v1, feed_key=key)
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror}") from None
    except (evidence.EvidenceError, ValueError) as exc:
        raise InputError(f"{file}: {exc}") from None
    if fmt == "json":
        print(json.dumps({**verdict.to_json(), "trust_source": source}, ensure_ascii=False))
    else:
        table = Table(title=f"fork evidence of {escape(verdict.origin)}", title_justify="left")
        for col in ("#", "recorded as", "sizes", "signed by origin", "proves", "cosigners", "note"):
            table.add_column(col, overflow="fold")
        for r in verdict.records:
            table.add_row(
                str(r.index), escape(r.kind), f"{r.sizes[0]} / {r.sizes[1]}",
                "yes" if r.verified else "[red]NO[/]", escape(r.proven or "-"),
                escape(", ".join(r.cosigners)), escape(r.problem),
            )  # fmt: skip
        out.print(table)
        out.print(f"signatures judged by {escape(verdict.trust)}, {escape(source)}")
        out.print("[green]fork proven[/]" if verdict.ok else "[red]fork NOT proven[/]")
    if not verdict.ok:
        raise typer.Exit(VerificationError.exit_code)
