"""`creditnode audit`: show, report on, export and reconcile the node's audit log, and
`creditnode verify-bundle` to check an export offline.

Times (``--from``, ``--to``) are ISO 8601 dates or date-times; without a zone they are
Asia/Shanghai time, as the alliance counts days. Every command takes ``--format json``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from node.audit.export import export_bundle
from node.audit.filters import officer_filter as _officer
from node.audit.filters import parse_time
from node.audit.filters import shanghai_time as _shanghai
from node.audit.filters import subject_filter as _subject
from node.audit.filters import time_range as _time_range
from node.audit.receipts import IN_FLIGHT, gap_json, reconcile_with
from node.cli import choices
from node.cli.options import (
    FormatOpt,
    HomeOpt,
    count_opt,
    out,
    quiet_logs,
    run_coro,
    seconds_opt,
)
from node.cli.render import emit_json
from node.errors import InputError, VerificationError
from node.text import plain

if TYPE_CHECKING:
    from node.audit.bundle import Verified
    from node.audit.entry import AuditEntry
    from node.audit.reconcile import Gap

audit_app = typer.Typer(
    help="The audit log: every exchange with a peer, recorded before it was answered.",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str | None, typer.Option("--from", help="Start (ISO date or date-time; Shanghai time).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now).")]
QUERY_KINDS = ("query", "oprf_evaluation")


def check_format(fmt: str) -> str:
    if fmt not in ("table", "json"):
        raise InputError("--format: table or json")
    return fmt


_PERIOD = re.compile(r"([1-9][0-9]{0,3})([hdw])")


def parse_period(text: str) -> dt.timedelta:
    """``24h``, ``7d``, ``4w`` (or ``day``, ``week``, ``month`` = 30 days)."""
    named = {"day": "1d", "week": "7d", "month": "30d"}
    m = _PERIOD.fullmatch(named.get(text, text))
    if m is None:
        raise InputError("--period: a number and h, d or w (e.g. 7d), or day, week, month")
    n, unit = int(m.group(1)), m.group(2)
    return (
        dt.timedelta(hours=n) if unit == "h" else dt.timedelta(days=n * (7 if unit == "w" else 1))
    )


def entry_json(idx: int, e: AuditEntry) -> dict[str, Any]:
    return {"index": idx, **e.to_json(), "at": e.at.isoformat()}


def entries_table(title: str, found: Sequence[tuple[int, AuditEntry]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("#", "time (Shanghai)", "dir", "kind", "outcome", "peer", "purpose",
                "officer", "department", "matter", "subject", "values", "agreement",
                "exchange", "receipt"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for idx, e in found:
        table.add_row(
            str(idx), _shanghai(e), e.direction, e.kind, e.outcome, plain(e.peer),
            plain(e.purpose), plain(e.officer[:8]), plain(e.department), plain(e.matter),
            e.subject[:8], str(e.values), plain(", ".join(e.agreements)),
            e.exchange[:13], "" if e.remote is None else f"#{e.remote}",
        )  # fmt: skip
    if not found:
        table.add_row("(no entries)", *[""] * 14)
    return table


@audit_app.command("show")
def show(
    home: HomeOpt,
    start: FromOpt = None,
    end: ToOpt = None,
    peer: Annotated[str | None, typer.Option(help="Only exchanges with this peer.")] = None,
    officer: Annotated[
        str | None, typer.Option(help="An officer of this node by name, or an id as shown.")
    ] = None,
    purpose: Annotated[str | None, typer.Option(help="Only this purpose.")] = None,
    subject: Annotated[
        str | None, typer.Option(help="A USCC, or a subject commitment (64 hex) as recorded.")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option(help=f"One of {', '.join(choices.AUDIT_OUTCOMES)}.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="query, feed_range, refusal, ...")] = None,
    limit: Annotated[int, count_opt(help="At most this many entries.")] = 1000,
    fmt: FormatOpt = "table",
) -> None:
    """Show audit entries, oldest first, filtered. Exit 0, 2 for bad options."""
    from node.audit.entry import OUTCOMES
    from node.audit.query import Filter, find_entries
    from node.home import load_home
    from node.storage import Store

    quiet_logs()
    check_format(fmt)
    if outcome is not None and outcome not in OUTCOMES:
        raise InputError(f"--outcome: one of {', '.join(OUTCOMES)}")
    h = load_home(home)
    flt = Filter(
        start=parse_time(start, "--from"), end=parse_time(end, "--to"), peer=peer,
        officer=_officer(h, officer), purpose=purpose, subject=_subject(h, subject),
        outcome=outcome, kind=kind,
    )  # fmt: skip

    async def run() -> list[tuple[int, AuditEntry]]:
        async with Store.opened(h.database_url) as store:
            return await find_entries(store, h.identity.uri, flt, limit=max(1, limit))

    found = run_coro(run())
    if fmt == "json":
        emit_json([entry_json(i, e) for i, e in found])
    else:
        out.print(entries_table(f"{h.settings.name}: audit log ({len(found)} entries)", found))


# -------------------------------------------------------------------------------- report


def build_report(
    found: Sequence[tuple[int, AuditEntry]], *, days: float, officer_daily: int, peer_daily: int
) -> dict[str, Any]:
    """Queries per officer, purpose and partner (lookups and evaluations, both directions),
    with unusual volumes flagged against the configured daily averages."""
    queries = [e for _, e in found if e.kind in QUERY_KINDS]
    officers = Counter((e.direction, e.peer if e.direction == "in" else "", e.officer or "-")
                       for e in queries)  # fmt: skip
    purposes = Counter((e.direction, e.purpose or "-") for e in queries)
    partners = Counter((e.direction, e.peer) for e in queries)
    outcomes = Counter(e.outcome for e in queries)
    officer_limit, peer_limit = officer_daily * days, peer_daily * days
    return {
        "days": round(days, 3),
        "entries": len(found),
        "queries": len(queries),
        "outcomes": dict(sorted(outcomes.items())),
        "refusals": sum(1 for _, e in found if e.outcome == "refused"),
        "per_officer": [
            {
                "direction": d,
                "partner": p,
                "officer": o,
                "queries": n,
                "flagged": n > officer_limit and o != "-",
            }
            for (d, p, o), n in officers.most_common()
        ],
        "per_purpose": [
            {"direction": d, "purpose": p, "queries": n} for (d, p), n in purposes.most_common()
        ],
        "per_partner": [
            {"direction": d, "partner": p, "queries": n, "flagged": n > peer_limit}
            for (d, p), n in partners.most_common()
        ],
        "thresholds": {"officer_per_day": officer_daily, "partner_per_day": peer_daily},
    }


@audit_app.command("report")
def report(
    home: HomeOpt,
    period: Annotated[str, typer.Option(help="How far back: 24h, 7d, 4w, day, week, month.")],
    fmt: FormatOpt = "table",
) -> None:
    """Queries per officer, purpose and partner over the period; volumes above the config's
    thresholds (audit_officer_daily_queries, audit_peer_daily_queries) are flagged."""
    from node.audit.query import Filter, find_entries
    from node.home import load_home
    from node.storage import Store

    quiet_logs()
    check_format(fmt)
    span = parse_period(period)
    h = load_home(home)
    now = dt.datetime.now(dt.UTC)

    async def run() -> list[tuple[int, AuditEntry]]:
        async with Store.opened(h.database_url) as store:
            return await find_entries(store, h.identity.uri, Filter(start=now - span, end=now))

    s = h.settings
    doc = build_report(
        run_coro(run()),
        days=span / dt.timedelta(days=1),
        officer_daily=s.audit_officer_daily_queries,
        peer_daily=s.audit_peer_daily_queries,
    )
    if fmt == "json":
        emit_json(doc)
        return
    out.print(f"{plain(s.name)}: {doc['queries']} queries in the last {period} "
              f"({doc['refusals']} refusals of any kind)")  # fmt: skip
    for key, cols in (
        ("per_officer", ("direction", "partner", "officer", "queries")),
        ("per_purpose", ("direction", "purpose", "queries")),
        ("per_partner", ("direction", "partner", "queries")),
    ):
        table = Table(title=key.replace("_", " "), title_justify="left")
        for col in (*cols, "flag"):
            table.add_column(col)
        for row in doc[key]:
            flag = Text("unusual volume", style="red") if row.get("flagged") else ""
            table.add_row(*(plain(str(row[c])) for c in cols), flag)
        out.print(table)


# -------------------------------------------------------------------------------- export


@audit_app.command("export")
def export(
    home: HomeOpt,
    start: FromOpt = None,
    end: ToOpt = None,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the bundle.")] = Path(
        "audit-bundle.json"
    ),
    fmt: FormatOpt = "table",
) -> None:
    """Write the entries of a time range, their inclusion proofs, the node's root chain and a
    signed checkpoint to one bundle, checkable offline with `creditnode verify-bundle`."""
    from node.home import load_home
    from node.storage import Store

    quiet_logs()
    check_format(fmt)
    t0, t1 = _time_range(start, end)
    h = load_home(home)

    async def run() -> bytes:
        async with Store.opened(h.database_url) as store:
            return await export_bundle(h, store, t0, t1)

    data = run_coro(run())
    out_file.write_bytes(data)
    count = len(json.loads(data)["entries"])
    if fmt == "json":
        emit_json({"out": str(out_file), "entries": count})
    else:
        out.print(f"{count} entries written to {plain(str(out_file))}")


def verify_bundle_command(
    file: Annotated[Path, typer.Argument(help="The bundle from `creditnode audit export`.")],
    trust: Annotated[
        Path,
        typer.Option(help="The node's peer bundle, as the alliance distributes it (pins root v1)."),
    ],
    cosigner: Annotated[
        list[Path] | None,
        typer.Option(
            help="A witness's peer bundle (repeatable): its cosignature of the carried "
            "checkpoint is verified under the witness keys of the root it pins.",
        ),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Check an audit bundle offline: canonical, signed by the node's audit key as its pinned
    root says, every entry proved into the signed tree, and the witnesses' cosignatures of
    the carried checkpoint for each --cosigner given (one that fails fails the bundle).
    Exit 0 if it verifies, 7 if not."""
    from keys import PeerBundle
    from node.audit.bundle import BundleError, verify_bundle

    check_format(fmt)
    bundles = []
    for path in [trust, *(cosigner or [])]:
        try:
            bundles.append(PeerBundle.from_json(path.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a peer bundle ({exc})") from None
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror}") from None
    peer = bundles[0]
    try:
        verified = verify_bundle(file.read_bytes(), peer, bundles[1:])
    except BundleError as exc:
        if fmt == "json":
            emit_json({"verified": False, "problem": str(exc)})
        raise VerificationError(f"{file}: {exc}") from None
    doc = {
        "verified": True, "origin": verified.origin, "tree_size": verified.size,
        "signed_at": verified.signed_at.isoformat(), "signed_by": verified.role,
        "root_version": verified.root_version, "entries": len(verified.entries),
        "witnessed_size": verified.witnessed_size, "cosignatures_verified": verified.cosigned_by,
        "cosigners": [{"cosigner": c, "verified": ok} for c, ok in verified.cosigners],
    }  # fmt: skip
    if fmt == "json":
        emit_json({**doc, "list": [entry_json(i, e) for i, e in verified.entries]})
        return
    out.print(
        f"verified: {len(verified.entries)} entries of {plain(verified.origin)}, tree size "
        f"{verified.size}, signed {verified.signed_at.isoformat()} by its {verified.role} key"
        + ("" if verified.root_version is None else f" (root v{verified.root_version})")
    )
    out.print(plain(_witnessing_line(verified)), soft_wrap=True)


def _witnessing_line(verified: Verified) -> str:
    if verified.witnessed_size is None:
        return "witnessed: no cosigned checkpoint carried"
    unchecked = [c for c, ok in verified.cosigners if not ok]
    return (
        f"witnessed: checkpoint of size {verified.witnessed_size}, "
        f"{verified.cosigned_by} of {len(verified.cosigners)} cosignature(s) verified"
        + (f"; not checked (no --cosigner bundle): {', '.join(unchecked)}" if unchecked else "")
    )


# ------------------------------------------------------------------------------ reconcile


@audit_app.command("reconcile")
def reconcile_command(
    home: HomeOpt,
    peer: Annotated[str, typer.Option(help="The partner to reconcile with.")],
    start: FromOpt = None,
    end: ToOpt = None,
    timeout: Annotated[float, seconds_opt(help="Seconds per call to the partner.")] = 30.0,
    in_flight_seconds: Annotated[
        float,
        seconds_opt(
            help="An entry recorded on one side only less than this many seconds ago is an "
            "exchange still under way, not a gap.",
            allow_zero=True,
        ),
    ] = IN_FLIGHT.total_seconds(),
    fmt: FormatOpt = "table",
) -> None:
    """Join this node's receipts of exchanges with PEER and the peer's own, and list the
    exchanges one side recorded and the other did not (or whose answers differ). Exit 0 if
    both sides agree, 7 if not, 4 if the peer cannot be asked."""
    from node.home import load_home
    from node.storage import Store

    if in_flight_seconds < 0:
        raise InputError("--in-flight-seconds must not be negative")
    quiet_logs()
    check_format(fmt)
    t0, t1 = _time_range(start, end)
    h = load_home(home)

    async def run() -> list[Gap]:
        async with Store.opened(h.database_url) as store:
            in_flight = dt.timedelta(seconds=in_flight_seconds)
            return (await reconcile_with(h, store, peer, t0, t1, timeout, in_flight))[2]

    gaps = run_coro(run())
    if fmt == "json":
        emit_json({"peer": peer, "agree": not gaps, "gaps": [gap_json(g) for g in gaps]})
    else:
        table = Table(title=f"exchanges with {plain(peer)} the two sides do not agree on",
                      title_justify="left")  # fmt: skip
        for col in ("time", "exchange", "seq", "kind", "problem", "here", "there"):
            table.add_column(col, overflow="fold")
        for g in gaps:
            j = gap_json(g)
            table.add_row(
                plain(j["at"][:19]), plain(g.exchange), str(g.seq), plain(j["kind"]),
                plain(g.problem),
                "" if g.here is None else f"#{g.here.index} {g.here.direction}",
                "" if g.there is None else f"#{g.there.index} {g.there.direction}",
            )  # fmt: skip
        if not gaps:
            table.add_row("(both sides agree)", "", "", "", "", "", "")
        out.print(table)
    if gaps:
        raise VerificationError(f"{len(gaps)} exchanges with {peer} recorded on one side only "
                                "or differing")  # fmt: skip


# ------------------------------------------------------------- operators' commands recorded


def record_command(home_root: Path, kind: str, method: str) -> int:
    """Record an operator's command on this node as a ``local`` entry; its index."""
    from node.audit.local import record_local
    from node.home import load_home
    from node.storage import Store

    h = load_home(home_root)

    async def run() -> int:
        async with Store.opened(h.database_url) as store:
            return await record_local(h, store, kind=kind, method=method)

    return run_coro(run())


def record_commands(group: typer.Typer, prefix: str, kind: str, names: set[str]) -> None:
    """Make each command of *group* named in *names* record itself (once it succeeded) in the
    audit log of its ``--home``: ``keys rotate --role audit``, say."""
    for info in group.registered_commands:
        if info.name in names and info.callback is not None:
            info.callback = _recording(info.callback, f"{prefix} {info.name}", kind)


def _recording(fn: Callable[..., Any], method: str, kind: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        home, role = kwargs.get("home"), kwargs.get("role")
        if isinstance(home, Path):
            record_command(home, kind, method + (f" --role {role}" if role else ""))
        return result

    return run
