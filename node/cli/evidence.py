"""`creditnode evidence export` and `evidence check`: hand a peer's fork to a third party, who
checks it offline with only the origin's bundle (its root v1, or its feed key).
`creditnode evidence clear`: the operator's decision that a ``tampered`` or ``forked`` feed, or
a ``tampered`` actions feed, may be judged afresh (the only way those states are cleared; the
evidence stays)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from node.cli.options import FormatOpt, HomeOpt, out, quiet_logs, run_coro
from node.cli.render import emit_json, json_text
from node.errors import InputError, VerificationError
from node.text import plain

if TYPE_CHECKING:
    from node.feeds.subscriber import Cleared

FORMATS = ("table", "json")

evidence_app = typer.Typer(
    help="Export and check the evidence of a peer's forked log; clear a feed's mark.",
    no_args_is_help=True,
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
    from node.home import load_home
    from node.storage import Store
    from node.witness.export import export_evidence

    _format(fmt)
    quiet_logs()
    loaded = load_home(home)

    async def read() -> dict[str, Any]:
        async with Store.opened(loaded.database_url) as store:
            return await export_evidence(store, peer, now=dt.datetime.now(dt.UTC))

    doc = run_coro(read())
    text = json_text(doc, indent=2) + "\n"
    if out_file is None:
        print(text, end="")
        return
    out_file.write_text(text, encoding="utf-8")
    count = len(doc["evidence"])
    if fmt == "json":
        emit_json({"out": str(out_file), "records": count})
    else:
        out.print(f"{count} record(s) of {plain(peer)} written to {out_file}")


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
    cosigner: Annotated[
        list[Path] | None,
        typer.Option(
            help="A witness's peer bundle (repeatable): its cosignatures on the notes are "
            "verified under the root it pins (else under the trust the document embeds).",
        ),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Check an evidence document offline: every note must be signed by the origin (a key
    valid at its signed time), the notes and proofs must prove a fork on their own, and every
    cosignature it can check must verify. Exit 0 if they do, 7 if a note or a cosignature
    does not verify or nothing is proven, 2 for a malformed file."""
    from keys import PeerBundle
    from node.witness import evidence

    _format(fmt)
    quiet_logs()
    try:
        witnesses = [
            PeerBundle.from_json(path.read_text(encoding="utf-8")) for path in cosigner or []
        ]
        doc = evidence.parse(file.read_bytes())
        root_v1, key = evidence.embedded_trust(doc)
        source = "embedded in the document (compare it with the origin's bundle)"
        if bundle is not None:
            peer = PeerBundle.from_json(bundle.read_text(encoding="utf-8"))
            if peer.identity.uri != doc["origin"]:
                raise InputError(f"{bundle}: the bundle is {peer.identity.uri}, not the origin")
            root_v1, key = peer.root_v1_bytes, peer.verifying_key
            source = f"from {bundle}"
        verdict = evidence.check(doc, root_v1=root_v1, feed_key=key, cosigner_bundles=witnesses)
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror}") from None
    except (evidence.EvidenceError, ValueError) as exc:
        raise InputError(f"{file}: {exc}") from None
    if fmt == "json":
        emit_json({**verdict.to_json(), "trust_source": source})
    else:
        table = Table(title=f"fork evidence of {plain(verdict.origin)}", title_justify="left")
        for col in ("#", "recorded as", "sizes", "signed by origin", "proves", "cosigners", "note"):
            table.add_column(col, overflow="fold")
        for r in verdict.records:
            table.add_row(
                str(r.index), plain(r.kind), f"{r.sizes[0]} / {r.sizes[1]}",
                "yes" if r.verified else Text("NO", style="red"), plain(r.proven or "-"),
                plain(", ".join(f"{c} ({st})" for c, st in r.cosignatures)), plain(r.problem),
            )  # fmt: skip
        out.print(table)
        out.print(f"signatures judged by {plain(verdict.trust)}, {plain(source)}")
        out.print(
            Text("fork proven", style="green")
            if verdict.ok
            else Text("fork NOT proven", style="red")
        )
    if not verdict.ok:
        raise typer.Exit(VerificationError.exit_code)


@evidence_app.command("clear")
def evidence_clear(
    home: HomeOpt,
    peer: Annotated[str, typer.Option("--peer", help="The peer whose feed to clear.")],
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm", help="Required: you have read the evidence (`status`, `evidence export`)."
        ),
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Set PEER's feed from ``tampered`` or ``forked``, and its actions feed from
    ``tampered``, back to ``ok`` after you have dealt with the cause (the peer re-signed with a
    valid key, was re-enrolled, or the fork was settled with it). Without --confirm, shows what
    would be cleared. The evidence is kept; the next sync or pull (or a `serve` restart, for a
    fork) verifies again from the checkpoint held, so a fork or a bad answer still served is
    marked again. Recorded in the audit log. Exit 2 if nothing is marked."""
    from keys import NodeIdentity
    from node.actions.pull import TAMPERED, actions_mark, clear_tampered
    from node.audit.local import record_local
    from node.feeds.logstore import read_cursor
    from node.feeds.subscriber import STICKY, clear_feed_state
    from node.home import load_home
    from node.storage import Store
    from node.storage.peers import PeerRepository

    _format(fmt)
    quiet_logs()
    loaded = load_home(home)

    async def run() -> tuple[Cleared | None, str | None]:
        async with Store.opened(loaded.database_url) as store:
            record = await PeerRepository(store).get(peer)
            if record is None:
                raise InputError(f"{peer!r} is not an enrolled peer")
            origin = NodeIdentity(record.federation, record.name).uri
            async with store.engine.connect() as conn:
                cursor = await read_cursor(conn, origin)
            feed = cursor.state if cursor is not None and cursor.state in STICKY else None
            actions_detail = await actions_mark(store, record.name)
            if feed is None and actions_detail is None:
                state = cursor.state if cursor is not None else "not held"
                raise InputError(
                    f"{peer}: its feed is {state} and its actions feed is not tampered: "
                    "nothing to clear"
                )
            if not confirm:
                marked = [f"feed {feed}"] if feed else []
                marked += ["actions feed tampered"] if actions_detail is not None else []
                raise InputError(
                    f"{peer}: would clear {' and '.join(marked)}; clearing is an operator "
                    "decision: read the evidence, then add --confirm"
                )
            done: Cleared | None = None
            if feed is not None:
                try:
                    done = await clear_feed_state(store, origin)
                except ValueError as exc:
                    raise InputError(f"{peer}: {exc}") from None
                await record_local(
                    loaded, store, kind="other", method="evidence clear", peer=peer,
                    reason=f"cleared {done.state}",
                )  # fmt: skip
            cleared_actions = await clear_tampered(store, record.name)
            if cleared_actions is not None:
                await record_local(
                    loaded, store, kind="other", method="evidence clear", peer=peer,
                    reason="cleared actions feed tampered",
                )  # fmt: skip
            return done, cleared_actions

    done, actions_was = run_coro(run())
    if fmt == "json":
        doc: dict[str, Any] = {
            "peer": peer,
            "was": done.state if done else None,
            "detail": done.detail if done else None,
            "evidence_kept": done.evidence if done else 0,
            "actions_was": TAMPERED if actions_was is not None else None,
            "actions_detail": actions_was,
        }
        emit_json(doc)
        return
    if done is not None:
        out.print(
            f"{plain(peer)}: feed was {done.state} ({plain(done.detail)}); now ok, "
            f"{done.evidence} evidence record(s) kept",
            soft_wrap=True,
        )
    if actions_was is not None:
        out.print(
            f"{plain(peer)}: actions feed was tampered ({plain(actions_was)}); now ok",
            soft_wrap=True,
        )
