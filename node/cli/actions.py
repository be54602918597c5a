"""`creditnode respond` (at a holding city: what it did about a partner's entry) and
`creditnode actions` (at the origin: what every partner did about its entries)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from node.cli import choices
from node.cli.options import FormatOpt, HomeOpt, err, out, quiet_logs, run_coro
from node.cli.render import emit_json
from node.errors import InputError, VerificationError
from node.text import plain

if TYPE_CHECKING:
    from node.actions.followup import Status


def respond_command(
    home: HomeOpt,
    entry: Annotated[str, typer.Option(help="The partner's entry: ORIGIN:ID (name or URI).")],
    measure: Annotated[str, typer.Option(help="The measure's code, as the entry names it.")],
    action: Annotated[str, typer.Option(help=f"What was done: {', '.join(choices.ACTIONS)}.")],
    department: Annotated[str, typer.Option(help="The implementing department's USCC.")],
    officer: Annotated[
        str, typer.Option(help="Who records it (kept only as this node's keyed id).")
    ],
    reason: Annotated[str, typer.Option(help="Why (required for not_applicable).")] = "",
    date: Annotated[
        str | None, typer.Option(help="When it took effect (YYYY-MM-DD; default today).")
    ] = None,
) -> None:
    """Record what this city did about one measure of a partner's entry, in its signed
    actions log (the origin pulls and verifies it). Exit 2 if it cannot be recorded."""
    from adapters.list_csv import parse_date
    from node.actions.record import RecordError
    from node.actions.respond import respond
    from node.feeds.dates import shanghai_today
    from node.home import load_home
    from node.storage import Store

    quiet_logs()
    day = shanghai_today()
    if date is not None:
        parsed = parse_date(date)
        if not isinstance(parsed, dt.date):
            raise InputError(f"--date {parsed or 'is empty'}")
        if parsed > day:
            raise InputError("--date is in the future")
        day = parsed
    loaded = load_home(home)

    async def run() -> int:
        async with Store.opened(loaded.database_url) as store:
            return await respond(
                loaded, store, entry=entry, measure=measure, action=action,
                department=department.strip().upper(), officer=officer, reason=reason,
                date=day,
            )  # fmt: skip

    try:
        idx = run_coro(run())
    except RecordError as exc:
        raise InputError(str(exc)) from None
    out.print(f"recorded: actions leaf {idx}")


def _table(rows: list[Status]) -> Table:
    table = Table(title="responses by entry, measure and city", title_justify="left")
    for col in ("entry", "list", "measure", "city", "action", "responded", "hits", "due", ""):
        table.add_column(col, overflow="fold")
    for s in rows:
        action = s.action + (f" ({s.reason})" if s.reason and s.action != "lifted" else "")
        table.add_row(
            plain(s.entry), plain(s.list_code), plain(s.measure), plain(s.peer),
            plain(action), "yes" if s.responded else "no", str(s.hits),
            s.due + (" (from listing)" if s.clock == "listed" else ""),
            Text("overdue", style="red") if s.overdue else "",
        )  # fmt: skip
    return table


def actions_command(
    home: HomeOpt,
    entry: Annotated[str | None, typer.Option(help="Only this entry id.")] = None,
    list_code: Annotated[str | None, typer.Option("--list", help="Only this list code.")] = None,
    peer: Annotated[str | None, typer.Option(help="Only this partner city.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue responses.")] = False,
    pull: Annotated[
        bool, typer.Option("--pull", help="First pull and verify partners' actions logs.")
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """What each partner did about each measure of this node's entries: responded or not,
    applied / not applicable / lifted, hits, and overdue past the list's deadline
    (settings response_days / response_days_default), counted from the day this node's feed
    published the entry (its listing date if that is not known). Exit 7 if a partner's actions log
    does not verify (nothing of it kept)."""
    from node.actions.pull import ActionsError, ActionsRefused, pull_actions
    from node.actions.view import origin_view
    from node.audit.local import opened_audit
    from node.feeds.dates import shanghai_today
    from node.home import load_home
    from node.peers.directory import PeerDirectory
    from node.storage import Store

    quiet_logs()
    if fmt not in ("table", "json"):
        raise InputError("--format is table or json")
    loaded = load_home(home)
    settings = loaded.settings

    async def run() -> tuple[list[Status], dict[str, str], bool]:
        problems: dict[str, str] = {}
        refused = False
        async with Store.opened(loaded.database_url) as store:
            directory = PeerDirectory(store, settings.federation, loaded.tls.ca_pem)
            await directory.refresh()
            peers = directory.peers()
            names = [p.identity.node for p in peers]
            if peer is not None:
                if peer not in names:
                    raise InputError(
                        f"no enrolled peer named {peer!r} (see `creditnode peer list`)"
                    )
                names = [peer]
            if pull:
                async with opened_audit(loaded, store) as audit:
                    for p in peers:
                        if p.identity.node not in names:
                            continue
                        try:
                            await pull_actions(
                                loaded.tls, store, p, loaded.identity.uri, audit=audit
                            )
                        except ActionsError as exc:
                            problems[p.identity.node] = str(exc)
                            refused = refused or isinstance(exc, ActionsRefused)
            rows = await origin_view(
                store, loaded.identity.uri, names, today=shanghai_today(),
                days=settings.response_days, default_days=settings.response_days_default,
                entry=entry, list_code=list_code,
            )  # fmt: skip
        return rows, problems, refused

    rows, problems, refused = run_coro(run())
    if overdue:
        rows = [r for r in rows if r.overdue]
    for name, problem in sorted(problems.items()):
        err.print(f"{plain(name)}: actions not pulled: {plain(problem)}")
    if fmt == "json":
        emit_json([r.as_json() for r in rows])
    else:
        out.print(_table(rows))
    if refused:
        raise typer.Exit(VerificationError.exit_code)
