"""``creditnode objection``: raise an objection (异议) to a peer's entry, list objections on
both sides, and resolve those raised to this node's entries.

The evidence file stays here: only its SHA-256 travels. The officer is named here and sent
as this node's pseudonymous officer id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from node.cli import choices
from node.cli.console import data_text
from node.cli.options import FormatOpt, HomeOpt, err, out, quiet_logs, run_coro
from node.cli.render import emit_json
from node.errors import InputError
from node.text import plain

if TYPE_CHECKING:
    from node.objections import store
    from node.objections.core import Objection, OnTime

objection_app = typer.Typer(
    help="Objections (异议) to list entries: raise, list, resolve.", no_args_is_help=True
)


def _due(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError("--due is a date, YYYY-MM-DD") from None
    return day


@objection_app.command("raise")
def objection_raise(
    home: HomeOpt,
    entry: Annotated[str, typer.Option(help="ORIGIN:ENTRY_ID, an entry this node holds.")],
    grounds: Annotated[str, typer.Option(help=f"One of: {', '.join(choices.GROUNDS)}.")],
    evidence: Annotated[Path, typer.Option(help="The evidence file (only its SHA-256 is sent).")],
    due: Annotated[str, typer.Option(help="Resolve by this day (YYYY-MM-DD, Shanghai).")],
    officer: Annotated[
        str, typer.Option(help="The raising officer (sent as a pseudonymous id).")
    ] = "",
) -> None:
    """Raise an objection with the entry's origin; it marks the entry 异议处理中.

    Exit 0 recorded by the origin, 2 bad input or no such entry, 4 the origin refused."""
    from node.audit.entry import EntryError, officer_id
    from node.audit.log import load_secret
    from node.home import load_home
    from node.objections.core import LABELS, Objection, ObjectionError
    from node.objections.raiser import evidence_digest, now, parse_entry_ref, raise_objection
    from node.storage import Store

    quiet_logs()
    loaded = load_home(home)
    origin_name, entry_id = parse_entry_ref(entry)
    digest = evidence_digest(evidence)
    try:
        who = officer_id(load_secret(home), officer) if officer else ""
    except EntryError as exc:
        raise InputError(str(exc)) from None

    async def run() -> Objection:
        async with Store.opened(loaded.database_url) as st:
            fed = loaded.settings.federation
            try:
                o = Objection.raise_(
                    origin=f"creditnode://{fed}/{origin_name}", entry_id=entry_id,
                    grounds=grounds.strip(), evidence_sha256=digest, due=_due(due),
                    raised_by=loaded.settings.name, officer=who, at=now(),
                )  # fmt: skip
            except ObjectionError as exc:
                raise InputError(str(exc)) from None
            return await raise_objection(loaded, st, origin_name, o)

    o = run_coro(run())
    out.print(data_text(f"objection {o.id}: {LABELS[o.state]} ({o.state.value}) at {o.origin}"))


def _json(h: store.Held, today: dt.date) -> dict[str, Any]:
    o = h.objection
    return {
        "id": o.id, "side": h.side, "origin": o.origin, "entry_id": o.entry_id,
        "grounds": o.grounds, "evidence_sha256": o.evidence_sha256, "due": o.due.isoformat(),
        "raised_by": o.raised_by, "officer": o.officer, "state": o.state.value,
        "on_time": o.on_time(today),
        "history": [
            {"state": t.state.value, "at": t.at.isoformat(), "doc_no": t.doc_no,
             "reason": t.reason, "outcome": t.outcome}
            for t in o.history
        ],
    }  # fmt: skip


def _on_time(value: bool | None) -> str:
    return "-" if value is None else ("on time" if value else "LATE")


def on_time_tallies(held: Sequence[store.Held], today: dt.date) -> dict[str, OnTime]:
    """Each side's on-time tally: resolutions by the due date, open ones past it."""
    from node.objections import store
    from node.objections.core import on_time_tally

    return {
        side: on_time_tally([h.objection for h in held if h.side == side], today)
        for side in (store.RAISED, store.RECEIVED)
    }


def _tally_json(t: OnTime) -> dict[str, Any]:
    return {"resolved": t.resolved, "on_time": t.on_time, "open": t.open,
            "overdue": t.overdue, "rate": t.rate}  # fmt: skip


def on_time_line(side: str, t: OnTime) -> str:
    from node.objections import store

    rate = "-" if t.rate is None else f"{t.rate:.0%}"
    who = "raised by this node" if side == store.RAISED else "raised to this node's entries"
    return (
        f"{who}: {t.resolved} resolved, {t.on_time} on time (on-time rate {rate}); "
        f"{t.open} open, {t.overdue} past due"
    )


def objections_table(held: Sequence[store.Held], today: dt.date, title: str) -> Table:
    """Objections with their side, state, on-time mark and history (every value as text)."""
    from node.objections.core import GROUNDS, LABELS, OUTCOMES

    table = Table(title=title, title_justify="left")
    for col in ("id", "side", "entry", "grounds", "due", "state", "on time", "history"):
        table.add_column(col, overflow="fold")
    for h in held:
        o = h.objection
        steps = "\n".join(
            plain(" ".join(
                x for x in (
                    t.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M"), t.state.value,
                    OUTCOMES.get(t.outcome, ""), t.doc_no, t.reason,
                ) if x
            ))
            for t in o.history
        )  # fmt: skip
        table.add_row(
            data_text(o.id), Text(h.side),
            data_text(f"{o.origin.rsplit('/', 1)[-1]}:{o.entry_id}"),
            Text(GROUNDS[o.grounds]), Text(o.due.isoformat()),
            Text(f"{LABELS[o.state]} ({o.state.value})"), Text(_on_time(o.on_time(today))),
            Text(steps),
        )  # fmt: skip
    return table


@objection_app.command("list")
def objection_list(
    home: HomeOpt,
    fmt: FormatOpt = "table",
    no_refresh: Annotated[
        bool, typer.Option("--no-refresh", help="Do not ask origins for news first.")
    ] = False,
) -> None:
    """Objections this node raised (their state fetched from each origin first) and those
    raised to its entries: state, history, on time against the due date, and each side's
    on-time rate."""
    from node.feeds.dates import shanghai_today
    from node.home import load_home
    from node.objections import store
    from node.objections.raiser import refresh
    from node.storage import Store

    quiet_logs()
    if fmt not in ("table", "json"):
        raise InputError("--format is table or json")
    loaded = load_home(home)

    async def run() -> tuple[list[store.Held], list[str]]:
        async with Store.opened(loaded.database_url) as st:
            problems: list[str] = []
            if not no_refresh:
                _, problems = await refresh(loaded, st)
            return await store.find(st), problems

    held, problems = run_coro(run())
    today = shanghai_today()
    for p in problems:
        err.print(data_text(f"warning: {p}"))
    tallies = on_time_tallies(held, today)
    if fmt == "json":
        doc = {
            "objections": [_json(h, today) for h in held],
            "on_time": {side: _tally_json(t) for side, t in tallies.items()},
        }
        emit_json(doc)
        return
    out.print(
        objections_table(held, today, plain(f"objections at {loaded.identity.uri}: {len(held)}"))
    )
    for side, t in tallies.items():
        out.print(Text(on_time_line(side, t)))


@objection_app.command("resolve")
def objection_resolve(
    home: HomeOpt,
    objection: Annotated[str, typer.Option("--id", help="The objection's id.")],
    doc_no: Annotated[str, typer.Option("--doc-no", help="The deciding document's number.")],
    uphold: Annotated[bool, typer.Option("--uphold", help="The objection stands.")] = False,
    correct: Annotated[
        Path | None,
        typer.Option(help="With --uphold: a JSON object of the public fields to correct."),
    ] = None,
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="With --uphold: remove the entry.")
    ] = False,
    reject: Annotated[bool, typer.Option("--reject", help="The objection does not stand.")] = False,
    reason: Annotated[
        str,
        typer.Option(help="A rejection's reason; a withdrawal's removal reason (repair, …)."),
    ] = "",
) -> None:
    """Resolve an objection to this node's entry: uphold it with a correction (an UPDATE) or
    a withdrawal (a REMOVE), or reject it with a reason the raiser sees. The 异议处理中 mark
    is cleared either way (unless another objection to the entry is open)."""
    from node.cli.remove import home_catalogue
    from node.feeds.publisher import Publisher
    from node.home import load_home
    from node.keys.signers import FeedSigners
    from node.objections.core import LABELS
    from node.objections.origin import read_correction, resolve
    from node.objections.raiser import now
    from node.storage import Store

    quiet_logs()
    if uphold == reject:
        raise InputError("give exactly one of --uphold and --reject")
    if uphold and (correct is None) == (not withdraw):
        raise InputError("--uphold takes exactly one of --correct FILE and --withdraw")
    if reject and (correct is not None or withdraw):
        raise InputError("--reject takes neither --correct nor --withdraw")
    if reject and not reason.strip():
        raise InputError("--reject needs --reason")
    action = "reject" if reject else ("withdraw" if withdraw else "correct")
    correction = read_correction(correct) if correct is not None else None
    loaded = load_home(home)
    catalogue = home_catalogue(loaded)

    async def run() -> Objection:
        async with Store.opened(loaded.database_url) as st:
            publisher = await Publisher.open(st, loaded.identity.uri, FeedSigners.of_home(loaded))
            return await resolve(
                publisher, catalogue, objection.strip(), action=action, doc_no=doc_no,
                reason=reason.strip(), correction=correction, now=now(),
            )  # fmt: skip

    o = run_coro(run())
    out.print(data_text(f"objection {o.id}: {LABELS[o.state]} ({o.state.value}), {doc_no.strip()}"))
