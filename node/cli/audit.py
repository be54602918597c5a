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
from node.errors import InputError, PeerError, VerificationError
from node.text import plain

if TYPE_CHECKING:
    from node.api import audit as audit_pb
    from node.audit.bundle import Verified, Witnessed
    from node.audit.entry import AuditEntry
    from node.audit.reconcile import Gap, Receipt
    from node.feeds.logstore import LogStore
    from node.home import Home
    from node.storage import Store

audit_app = typer.Typer(
    help="The audit log: every exchange with a peer, recorded before it was answered.",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str | None, typer.Option("--from", help="Start (ISO date or date-time; Shanghai time).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now).")]
RECEIPTS = "/creditnode.v1.AuditService/Receipts"
SLACK = dt.timedelta(minutes=5)  # clocks and the time between both records differ
IN_FLIGHT = dt.timedelta(seconds=10)  # a one-sided entry younger than this may be mid-exchange
QUERY_KINDS = ("query", "oprf_evaluation")


def check_format(fmt: str) -> str:
    if fmt not in ("table", "json"):
        raise InputError("--format: table or json")
    return fmt


def parse_time(text: str | None, option: str) -> dt.datetime | None:
    """An ISO date or date-time; a naive one is Shanghai time. InputError naming *option*."""
    from node.feeds.dates import SHANGHAI

    if text is None:
        return None
    try:
        when = (
            dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
            if len(text) == 10
            else dt.datetime.fromisoformat(text)
        )
    except ValueError:
        raise InputError(f"{option}: not an ISO date or date-time (e.g. 2026-11-23)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=SHANGHAI)
    return when.astimezone(dt.UTC)


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


def _us(when: dt.datetime) -> int:
    from node.audit.entry import EPOCH

    return (when - EPOCH) // dt.timedelta(microseconds=1)


def _shanghai(e: AuditEntry) -> str:
    from node.feeds.dates import SHANGHAI

    return e.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


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


def _officer(home: Home, officer: str | None) -> str | None:
    from node.audit.entry import EntryError, officer_id
    from node.audit.log import load_secret

    if officer is None:
        return None
    if re.fullmatch(r"[0-9a-f]{32}", officer):
        return officer  # an id as shown (a partner's officer, keyed at the partner)
    try:
        return officer_id(load_secret(home.paths.root), officer)
    except EntryError as exc:
        raise InputError(f"--officer: {exc}") from None


def _subject(home: Home, subject: str | None) -> str | None:
    from node.audit.entry import EntryError, check_uscc_or_commitment
    from node.audit.log import load_secret

    if subject is None:
        return None
    try:
        return check_uscc_or_commitment(load_secret(home.paths.root), subject)
    except EntryError as exc:
        raise InputError(f"--subject: {exc}") from None


def _time_range(start: str | None, end: str | None) -> tuple[dt.datetime, dt.datetime]:
    """``--from`` (required) and ``--to`` (default now), the one after the other."""
    t0 = parse_time(start, "--from")
    if t0 is None:
        raise InputError("--from: give the start of the range")
    t1 = parse_time(end, "--to") or dt.datetime.now(dt.UTC)
    if t1 <= t0:
        raise InputError("--to must be after --from")
    return t0, t1


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


async def export_bundle(home: Home, store: Store, start: dt.datetime, end: dt.datetime) -> bytes:
    """The entries of [start, end) with inclusion proofs, the root chain and a statement
    signed now (see :mod:`node.audit.bundle`)."""
    from node.audit.bundle import build_bundle
    from node.audit.local import AuditSigners, opened_audit
    from node.audit.log import audit_origin
    from node.audit.query import Filter, find_entries
    from node.feeds.logstore import read_cursor
    from node.keys.store import RootStore

    origin = audit_origin(home.identity.uri)
    async with opened_audit(home, store) as log:
        await log.sign_checkpoint()
        async with store.engine.connect() as conn:
            cursor = await read_cursor(conn, origin)
        assert cursor is not None
        size = cursor.size
        found = [
            (i, e)
            for i, e in await find_entries(store, home.identity.uri, Filter(start=start, end=end))
            if i < size
        ]
        # An entry's canonical bytes are its leaf (find_entries parsed them strictly).
        entries = [(i, e.to_bytes(), await log.log.inclusion_proof(size, i)) for i, e in found]
        roots_store = RootStore(home.paths.root)
        roots = [roots_store.read(v) for v in roots_store.versions()]
        witnessed = await _witnessed(home, store, log.log, size, cursor.root, roots)
    now = dt.datetime.now(dt.UTC)
    # The keys a holder of the peer bundle can check: the audit keys of the root once it lists
    # any, else the feed key(s) (the bundle's before root-init).
    keys = AuditSigners(home).signing_keys(now)
    if not keys:
        raise VerificationError("no key valid now to sign the bundle with (see keys list)")
    return build_bundle(
        origin=origin, start_us=_us(start), end_us=_us(end), size=size, root=cursor.root,
        entries=entries, roots=roots, keys=keys, now=now, witnessed=witnessed,
    )  # fmt: skip


async def _witnessed(
    home: Home, store: Store, log: LogStore, size: int, root: bytes, roots: list[bytes]
) -> Witnessed | None:
    """The newest cosigned checkpoint of the audit log up to *size* that a holder of this
    node's peer bundle can check (one signed under keys it no longer lists is passed over),
    its cosignatures, the consistency proof to *size*, and the cosigners' root versions."""
    import structlog
    from sqlalchemy import select

    from keys import NodeIdentity
    from node.audit.bundle import BundleError, NodeTrust, Witnessed, check_witnessed
    from node.feeds.note import stored_checkpoint
    from node.storage.peers import PEER_ROOTS, PeerRepository
    from node.witness.cosignature import Cosignature
    from node.witness.store import cosigned_checkpoints

    async with store.engine.connect() as conn:
        held = await cosigned_checkpoints(conn, log.cursor.origin, log.log_id, size)
        by_uri = {
            NodeIdentity(r.federation, r.name).uri: r.name
            for r in await PeerRepository(store).list()
        }
        chains: dict[str, list[bytes]] = {}
        for uri, name in by_uri.items():
            chains[uri] = [
                bytes(d)
                for (d,) in await conn.execute(
                    select(PEER_ROOTS.c.data)
                    .where(PEER_ROOTS.c.peer == name)
                    .order_by(PEER_ROOTS.c.version)
                )
            ]
    # What a holder of this node's peer bundle holds: root v1 (if any) and the feed key.
    own = NodeTrust(roots[0] if roots else None, home.signing_key.verifying_key)
    for signed, lines in held:
        cosigned = stored_checkpoint(signed).size
        proof = await log.consistency_proof(cosigned, size) if cosigned < size else []
        named = {Cosignature.parse(line).name for line in lines}  # verified when kept
        found = Witnessed(signed, lines, proof, {u: c for u, c in chains.items() if u in named})
        try:
            check_witnessed(found.to_json(), own, roots, home.identity.uri,
                            log.cursor.origin, size, root, ())  # fmt: skip
        except BundleError as exc:
            structlog.get_logger("creditnode.audit").warning(
                "cosigned audit checkpoint not exported", size=cosigned, reason=str(exc)
            )
            continue
        return found
    return None


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


def _ours(found: Sequence[tuple[int, AuditEntry]]) -> list[Receipt]:
    from node.audit.reconcile import Receipt

    return [
        Receipt(i, e.exchange, e.seq, e.direction, e.kind, e.outcome, e.at_us, e.response, e.remote)
        for i, e in found
    ]


def _theirs(receipts: Sequence[audit_pb.Receipt]) -> list[Receipt]:
    from node.audit.reconcile import Receipt

    return [
        Receipt(
            r.audit_index,
            r.exchange,
            r.seq,
            r.direction,
            r.kind,
            r.outcome,
            r.at_unix_us,
            r.response_sha256,
            r.remote_index if r.HasField("remote_index") else None,
        )
        for r in receipts
    ]


async def fetch_receipts(
    home: Home, store: Store, peer_name: str, start: dt.datetime, end: dt.datetime,
    timeout: float,
) -> list[audit_pb.Receipt]:  # fmt: skip
    """The peer's receipts of exchanges with this node in [start, end), every page; each call
    is an exchange this node records."""
    import grpc

    from node.api import audit as audit_pb
    from node.api import audit_rpc
    from node.audit.local import opened_audit, out_entry
    from node.audit.wire import new_asker
    from node.peers.client import describe_rpc_error
    from node.peers.directory import PeerDirectory

    directory = PeerDirectory(store, home.settings.federation, home.tls.ca_pem)
    await directory.refresh()
    peer = await directory.lookup(peer_name)
    if peer is None:
        raise InputError(f"no enrolled peer named {peer_name!r} (see `creditnode peer list`)")
    got: list[audit_pb.Receipt] = []
    request = audit_pb.ReceiptsRequest(from_unix_us=_us(start), to_unix_us=_us(end))
    async with opened_audit(home, store) as log, peer.channel(home.tls) as channel:
        stub = audit_rpc.AuditServiceStub(channel)
        while True:
            asker = new_asker()
            try:
                resp = await stub.Receipts(request, timeout=timeout, metadata=asker.metadata())
            except grpc.aio.AioRpcError as err:
                await log.record(out_entry(asker, peer=peer_name, method=RECEIPTS,
                                           kind="receipts", outcome="refused"))  # fmt: skip
                raise PeerError(
                    describe_rpc_error(peer.identity, peer.record.endpoint, err)
                ) from None
            await log.record(out_entry(
                asker, peer=peer_name, method=RECEIPTS, kind="receipts", outcome="received",
                response=resp.SerializeToString(), remote=resp.audit_index,
            ))  # fmt: skip
            got.extend(resp.receipts)
            if not resp.more:
                return got
            request.start_index = resp.next_index


async def reconcile_with(
    home: Home,
    store: Store,
    peer: str,
    t0: dt.datetime,
    t1: dt.datetime,
    timeout: float,
    in_flight: dt.timedelta = IN_FLIGHT,
) -> tuple[int, int, list[Gap]]:
    """Both sides' receipts of exchanges with *peer* in [t0, t1) joined: (entries here,
    receipts there, the gaps). An entry one side recorded less than *in_flight* ago is not a
    gap yet: its exchange may still be under way."""
    from node.audit.query import Filter, find_entries
    from node.audit.reconcile import reconcile

    in_flight_from = dt.datetime.now(dt.UTC) - in_flight
    ours = await find_entries(
        store, home.identity.uri, Filter(start=t0 - SLACK, end=t1 + SLACK, peer=peer)
    )
    theirs = await fetch_receipts(home, store, peer, t0 - SLACK, t1 + SLACK, timeout)
    gaps = reconcile(
        _ours(ours),
        _theirs(theirs),
        start_us=_us(t0),
        end_us=_us(t1),
        in_flight_from_us=_us(in_flight_from),
    )
    inside = range(_us(t0), _us(t1))
    return (
        sum(1 for _, e in ours if e.at_us in inside),
        sum(1 for r in theirs if r.at_unix_us in inside),
        gaps,
    )


def gap_json(g: Gap) -> dict[str, Any]:
    from node.audit.entry import EPOCH

    side = g.here or g.there
    assert side is not None
    return {
        "exchange": g.exchange, "seq": g.seq, "problem": g.problem, "kind": side.kind,
        "at": (EPOCH + dt.timedelta(microseconds=side.at_us)).isoformat(),
        "here": None if g.here is None else {"index": g.here.index, "direction": g.here.direction,
                                              "outcome": g.here.outcome},
        "there": None if g.there is None else {"index": g.there.index,
                                                "direction": g.there.direction,
                                                "outcome": g.there.outcome},
    }  # fmt: skip


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
