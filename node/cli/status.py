"""`creditnode status`: this node from its home and its own server, or a peer over the wire."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from keys import NodeIdentity
from node.audit.log import ENTRIES, audit_origin
from node.audit.query import released_per_peer
from node.cli.audit import SLACK, fetch_receipts
from node.cli.console import data_text
from node.cli.render import ago, emit_json, peer_rows_from_wire, peer_table, region_label
from node.errors import ConfigError, InputError, PeerError
from node.feeds.counts import active_per_log
from node.feeds.dates import shanghai_today
from node.feeds.health import FORKED, LAGGING, OK, STALLED, TAMPERED, FeedFacts, judge_feed
from node.feeds.logstore import LOGS, list_feeds, read_cursor
from node.feeds.subscriber import EVIDENCE, SUBSCRIBE
from node.home import Home, load_home
from node.identity.registry import find_conflicts
from node.keys.store import RootStore
from node.keys.trusted import RootError, parse_root
from node.peers.certificates import WARN_DAYS, Expiry, certificate_expiries
from node.peers.certificates import warnings as expiry_warnings
from node.peers.client import fetch_peers, probe
from node.peers.contact import process_alive, read_inbound, read_run_info
from node.storage import Store
from node.storage.models import PeerRecord
from node.storage.peers import PeerRepository, as_utc
from node.verification.runner import verification_rows

SCHEMA = "creditnode.status/1"
RECENT_SENT = 200  # own audit entries per subscriber read for how far it was served


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


async def _serving(home: Home, timeout: float) -> dict[str, Any]:
    """Whether this node's own listener answers: the port the running node bound (its run
    file), dialled on the local interface with mTLS (never the advertised name)."""
    found: dict[str, Any] = {
        "state": "no", "endpoint": None, "detail": "", "pid": None, "since": None,
        "software_version": None, "protocol_version": None, "latency_ms": None,
    }  # fmt: skip
    run = read_run_info(home.paths.root)
    if run is None:
        return found | {"detail": "not running (no run file in the home)"}
    found |= {"endpoint": run.local_endpoint(), "pid": run.pid, "since": run.started_at}
    if not process_alive(run.pid):
        return found | {"detail": f"not running (process {run.pid} of the run file is gone)"}
    result = await probe(
        home.tls, home.identity, found["endpoint"], home.tls.ca_pem, timeout=timeout
    )
    if result.state != "up" or result.info is None:
        return found | {"detail": result.error}
    return found | {
        "state": "yes", "software_version": result.info.software_version,
        "protocol_version": result.info.protocol_version,
        "latency_ms": round(result.latency_ms, 1),
    }  # fmt: skip


def peer_json(rows: list[PeerRecord], inbound: Mapping[str, dt.datetime]) -> list[dict[str, Any]]:
    """Each peer: reachability as this node's own probes last found it (outbound only), and
    apart from it when the peer last called this node."""
    return [
        {
            "name": r.name,
            "region": r.region,
            "endpoint": r.endpoint,
            "reach": r.state,
            "reach_error": r.last_error,
            "last_reached": _iso(r.last_seen),
            "last_called_us": _iso(inbound.get(r.name)),
            "software_version": r.software_version,
            "protocol_version": r.protocol_version,
        }
        for r in rows
    ]


def feed_json(
    own: str,
    logs: list[dict[str, object]],
    findings: Mapping[str, int],
    reach: Mapping[str, PeerRecord],
) -> list[dict[str, Any]]:
    """Each feed with the one state :func:`judge_feed` gives it, and why."""
    out = []
    for r in logs:
        peer = r["peer"]
        record = reach.get(str(peer)) if peer else None
        verdict = judge_feed(
            FeedFacts(
                own=peer is None,
                stored=str(r["state"]),
                detail=str(r["state_detail"] or ""),
                findings=findings.get(str(r["origin"]), 0),
                size=_int(r["size"]),
                checkpoint_size=_int(r["checkpoint_size"]),
                reach=record.state if record else "unknown",
                reach_error=record.last_error if record else "",
            )
        )
        out.append(
            {
                "origin": str(peer) if peer else own,
                "own": peer is None,
                "leaves": _int(r["size"]),
                "checkpoint_size": _int(r["checkpoint_size"]),
                # Leaves held and not yet folded into the list state (node.feeds.projection).
                "projection_lag": max(0, _int(r["size"]) - _int(r.get("projected_size", 0))),
                "active_entries": _int(r["active"]),
                "evidence": _int(r["evidence"]),
                "state": verdict.state,
                "reason": verdict.reason,
            }
        )
    return out


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) else int(str(value or 0))


async def last_served(store: Store, peers: list[str]) -> dict[str, dt.datetime]:
    """Per peer: when this node last sent it part of its own feed (its audit log's index)."""
    c = ENTRIES.c
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(c.peer, func.max(c.at))
            .where(c.peer.in_(peers), c.method == SUBSCRIBE, c.direction == "in")
            .group_by(c.peer)
        )
        found = {str(p): as_utc(at) for p, at in rows}
    return {p: at for p, at in found.items() if at is not None}


async def acknowledged_sizes(
    home: Home, store: Store, peers: list[str], timeout: float
) -> dict[str, int | str]:
    """Per peer: how many leaves of this node's own feed it received and verified, by its own
    receipts (`AuditService.Receipts`: its entries of the Subscribe messages it got, each with
    the leaf range), or why they could not be had. Each Receipts call is an audited exchange.
    The receipts asked for are those since the recent messages this node sent it."""
    out: dict[str, int | str] = {}
    now = dt.datetime.now(dt.UTC)
    c = ENTRIES.c
    for peer in peers:
        async with store.engine.connect() as conn:
            recent = (
                select(c.at)
                .where(c.peer == peer, c.method == SUBSCRIBE, c.direction == "in")
                .order_by(c.idx.desc())
                .limit(RECENT_SENT)
                .subquery()
            )
            first = (await conn.execute(select(func.min(recent.c.at)))).scalar()
        if first is None:
            continue  # never streamed: nothing to ask
        start = (as_utc(first) or now) - SLACK
        try:
            theirs = await fetch_receipts(home, store, peer, start, now + SLACK, timeout)
        except PeerError as exc:
            out[peer] = str(exc)
            continue
        ends = [
            r.leaves_last + 1
            for r in theirs
            if r.method == SUBSCRIBE and r.direction == "out" and r.outcome == "received"
            and r.HasField("leaves_last")
        ]  # fmt: skip
        out[peer] = max(ends) if ends else "no feed range in its recent receipts"
    return out


def subscriber_json(
    own_size: int,
    peers: list[str],
    served: Mapping[str, dt.datetime],
    acknowledged: Mapping[str, int | str] | None,
    leaf: int | None,
) -> list[dict[str, Any]]:
    """Per peer, for this node's own feed: when it was last served, and (with receipts) how
    far it got against the own size, and whether it got *leaf* (a removal's leaf, to follow
    it to every city)."""
    out = []
    for peer in peers:
        ack = None if acknowledged is None else acknowledged.get(peer)
        got = ack if isinstance(ack, int) else None
        state = "unknown" if got is None else "caught up" if got >= own_size else "lagging"
        out.append({
            "peer": peer, "own_size": own_size, "last_served": _iso(served.get(peer)),
            "acknowledged": got, "receipts_error": ack if isinstance(ack, str) else None,
            "state": state, "covers_leaf": None if leaf is None or got is None else got > leaf,
        })  # fmt: skip
    return out


async def collect_status(
    root: Path, *, timeout: float, receipts: bool = False, leaf: int | None = None
) -> dict[str, Any]:
    """Everything `status` shows, as the JSON document of docs/json.md (`status`)."""
    home = load_home(root)
    now = dt.datetime.now(dt.UTC)
    async with Store.opened(home.database_url) as store:
        rows = await PeerRepository(store).list()
        held = {r.name: await PeerRepository(store).held_root(r.name) for r in rows}
        journal = await store.journal_mode()
        backend = store.backend
        logs = await feed_rows(store)
        checked = await verification_rows(store)
        conflicts = await find_conflicts(store, home.settings.name)
        released = await release_rows(store)
        async with store.engine.connect() as conn:
            audit = await read_cursor(conn, audit_origin(home.identity.uri))
        names = [r.name for r in rows]
        served = await last_served(store, names)
        acked = await acknowledged_sizes(home, store, names, timeout) if receipts else None
    serving = await _serving(home, timeout)
    findings = {r.origin: len(r.findings) for r in checked}
    feeds = feed_json(home.settings.name, logs, findings, {r.name: r for r in rows})
    own_size = next((f["leaves"] for f in feeds if f["own"]), 0)
    expiries = certificate_expiries(home.tls, rows)
    roots = root_expiries(home, held, now)
    kinds = Counter(c.kind for c in conflicts)
    own_root = [e for p, e in roots if p is None and e is not None]
    return {
        "schema": SCHEMA,
        "node": {
            "uri": home.identity.uri,
            "name": home.settings.name,
            "region": home.settings.region,
            "listen": home.settings.listen,
            "database": backend,
            "journal": journal or None,
        },
        "serving": serving,
        "peers": peer_json(rows, read_inbound(home.paths.root)),
        "feeds": feeds,
        "subscribers": subscriber_json(own_size, names, served, acked, leaf),
        "warnings": [w.describe() for w in expiry_warnings([*expiries, *own_root])],
        "certificates": [_expiry_json(e) for e in expiries],
        "roots": [
            {
                "node": home.settings.name if p is None else p,
                "own": p is None,
                **(_expiry_json(e) if e is not None else NO_ROOT),
            }
            for p, e in roots
        ],
        "verification": [
            {
                "log": r.origin,
                "verified_at": _iso(r.verified_at),
                "verified_size": r.verified_size,
                "position": r.position,
                "findings": [f.describe() for f in r.findings],
            }
            for r in checked
        ],
        "released": [
            {
                "peer": p,
                "responses": n,
                "values": v,
                "last": _iso(last) if isinstance(last, dt.datetime) else None,
            }
            for p, n, v, last in released
        ],
        "audit": {
            "size": audit.size if audit else None,
            "checkpoint_size": audit.checkpoint_size if audit else None,
        },
        "identity_conflicts": {"total": len(conflicts), "by_kind": dict(sorted(kinds.items()))},
    }


NO_ROOT = {"what": None, "valid_until": None, "state": "none", "days_left": None}


def _expiry_json(e: Expiry) -> dict[str, Any]:
    return {
        "what": e.what,
        "valid_until": _iso(e.not_after),
        "state": e.state,
        "days_left": e.left.days,
    }


async def node_status(
    root: Path,
    console: Console,
    *,
    timeout: float,
    fmt: str = "table",
    receipts: bool = False,
    leaf: int | None = None,
    html: Path | None = None,
) -> bool:
    """Print the node and its peers (a table, or JSON), or with *html* write the page of
    :mod:`node.status_page` there; True if the node's own listener answered."""
    if html is not None and fmt != "table":
        raise InputError("--html writes a page; it does not combine with --format json")
    data = await collect_status(root, timeout=timeout, receipts=receipts, leaf=leaf)
    if html is not None:
        await write_page(root, data, html)
        console.print(data_text(f"status page written to {html}"), soft_wrap=True)
    elif fmt == "json":
        emit_json(data)
    else:
        render_status(root, data, console)
    return bool(data["serving"]["state"] == "yes")


PAGE_HOURS = 24  # the history the page plots


async def write_page(root: Path, data: Mapping[str, Any], path: Path) -> None:
    """Render the status page with the last PAGE_HOURS of metrics history and write it
    (whole or not at all); a path that cannot be written is one error line."""
    from node.metrics.history import read_history  # lazy: prometheus-client and jinja2 are
    from node.status_page import render_page  # only paid for by --html

    home = load_home(root)
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(hours=PAGE_HOURS)
    async with Store.opened(home.database_url) as store:
        history = await read_history(store, start)
    page = render_page(data, history, start=start, end=end)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}") from None


def _plain(value: object) -> Text:
    """A data value as one line of inert text: never markup, no control characters."""
    return data_text("" if value is None else value)


def render_status(root: Path, data: Mapping[str, Any], console: Console) -> None:
    node, serving = data["node"], data["serving"]
    table = Table(show_header=False, title=f"node {node['uri']}", title_justify="left")
    table.add_row("region", region_label(node["region"]))
    table.add_row("listen", _plain(node["listen"]))
    table.add_row(
        "database", node["database"] + (f" (journal {node['journal']})" if node["journal"] else "")
    )
    if serving["state"] == "yes":
        shown = Text("yes", style="green")
        shown.append_text(
            data_text(
                f" at {serving['endpoint']}, {serving['software_version']} / "
                f"{serving['protocol_version']}, {serving['latency_ms']:.1f} ms"
            )
        )
    else:
        shown = Text("no", style="red")
        shown.append_text(data_text(f" ({serving['detail']})"))
    table.add_row("serving", shown)
    console.print(table)
    for warning in data["warnings"]:
        console.print(Text("warning: ", style="bold red") + data_text(warning), soft_wrap=True)
    console.print(peer_status_table(data["peers"]))
    console.print(subscriber_table(data["subscribers"]))
    console.print(certificate_table(data["certificates"]))
    console.print(root_table(data["roots"]))
    console.print(feed_table(data["feeds"]))
    console.print(verification_table(data["verification"]))
    for r in data["verification"]:
        if r["findings"]:
            console.print(
                Text("stored data does not verify: ", style="bold red")
                + data_text(f"{r['findings'][0]} (see `creditnode verify --home {root}`)"),
                soft_wrap=True,
            )
    console.print(release_table(data["released"]))
    audit = data["audit"]
    if audit["size"] is not None:
        console.print(
            data_text(
                f"audit log: {audit['size']} entries, {audit['checkpoint_size']} under a signed "
                f"checkpoint (`creditnode audit show --home {root}`)"
            ),
            soft_wrap=True,
        )
    conflicts = data["identity_conflicts"]
    kinds = conflicts["by_kind"]
    console.print(
        Text(
            f"identity conflicts: {conflicts['total']}"
            + (
                f" ({', '.join(f'{k} {n}' for k, n in kinds.items())}; "
                f"see `creditnode identity conflicts --home {root}`)"
                if conflicts["total"]
                else ""
            )
        )
    )


_REACH_STYLE = {"up": "green", "unreachable": "red", "refused": "yellow", "unknown": "dim"}


def peer_status_table(peers: list[dict[str, Any]]) -> Table:
    table = Table(
        title="peers (reach: this node's own probes, outbound; calls from them apart)",
        title_justify="left",
    )
    for col in ("peer", "region", "endpoint", "reach", "last reached", "last called us", "detail"):
        table.add_column(col, no_wrap=col != "detail")
    for p in peers:
        detail = p["reach_error"] or (
            f"{p['software_version']} / {p['protocol_version']}" if p["software_version"] else ""
        )
        table.add_row(
            _plain(p["name"]),
            _plain(region_label(p["region"])),
            _plain(p["endpoint"]),
            data_text(p["reach"], style=_REACH_STYLE.get(p["reach"], "")),
            ago(_when(p["last_reached"])),
            ago(_when(p["last_called_us"])),
            _plain(detail),
        )
    if not peers:
        table.add_row("(no peers enrolled)", "", "", "", "", "", "")
    return table


def _when(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


_FEED_STYLE = {OK: "green", LAGGING: "yellow", STALLED: "yellow", FORKED: "red", TAMPERED: "red"}


def feed_table(feeds: list[dict[str, Any]]) -> Table:
    table = Table(title="feeds (own log first, then mirrors)", title_justify="left")
    for col in ("origin", "leaves", "checkpoint", "active entries", "state", "evidence"):
        table.add_column(col)
    for f in feeds:
        shown = Text(f["state"], style=_FEED_STYLE.get(f["state"], "red"))
        if f["reason"]:
            shown.append_text(data_text(f": {f['reason']}"))
        table.add_row(
            _plain(f"{f['origin']} (own)" if f["own"] else f["origin"]),
            str(f["leaves"])
            + (f" ({f['projection_lag']} to project)" if f.get("projection_lag") else ""),
            str(f["checkpoint_size"]),
            str(f["active_entries"]),
            shown,
            str(f["evidence"]),
        )
    if not feeds:
        table.add_row("(no feeds yet)", "", "", "", "", "")
    return table


def subscriber_table(subs: list[dict[str, Any]]) -> Table:
    table = Table(
        title="own feed at each peer (received: the peer's own receipts, with --receipts; "
        "has leaf: with --leaf N)",
        title_justify="left",
    )
    for col in ("peer", "own size", "last served", "received", "state", "has leaf"):
        table.add_column(col)
    for s in subs:
        ack = s["acknowledged"] if s["acknowledged"] is not None else (s["receipts_error"] or "-")
        covers = {True: "yes", False: "no", None: "-"}[s["covers_leaf"]]
        style = {"caught up": "green", "lagging": "yellow"}.get(s["state"], "dim")
        table.add_row(
            _plain(s["peer"]),
            str(s["own_size"]),
            ago(_when(s["last_served"])),
            _plain(ack),
            Text(s["state"], style=style),
            covers,
        )
    if not subs:
        table.add_row("(no peers enrolled)", "", "", "", "", "")
    return table


async def feed_rows(store: Store) -> list[dict[str, object]]:
    """Every log this node holds with its cursor, active entries and evidence count."""
    evidence = (
        select(EVIDENCE.c.log_id, func.count().label("n")).group_by(EVIDENCE.c.log_id).subquery()
    )
    # From the counters apply_leaves keeps (node/feeds/counts.py): no scan of list_state.
    active = active_per_log(shanghai_today()).subquery()
    async with store.engine.connect() as conn:
        result = await conn.execute(
            select(
                LOGS.c.origin,
                LOGS.c.peer,
                LOGS.c.size,
                LOGS.c.projected_size,
                LOGS.c.checkpoint_size,
                LOGS.c.state,
                LOGS.c.state_detail,
                LOGS.c.updated_at,
                func.coalesce(active.c.n, 0).label("active"),
                func.coalesce(evidence.c.n, 0).label("evidence"),
            )
            .select_from(
                LOGS.outerjoin(active, active.c.log_id == LOGS.c.id).outerjoin(
                    evidence, evidence.c.log_id == LOGS.c.id
                )
            )
            .where(list_feeds())  # the audit and actions logs: lines of their own
            .order_by(LOGS.c.peer.is_not(None), LOGS.c.peer)
        )
        return [dict(r) for r in result.mappings()]


async def release_rows(store: Store) -> list[tuple[str, int, int, dt.datetime | None]]:
    """Per peer: answers that let personal data out, the values they carried, the last one
    (from the audit log's index)."""
    return await released_per_peer(store)


def release_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="personal data released (from the audit log; `creditnode audit show` for each entry)",
        title_justify="left",
    )
    for col in ("peer", "responses", "values", "last"):
        table.add_column(col)
    for r in rows:
        table.add_row(_plain(r["peer"]), str(r["responses"]), str(r["values"]), _plain(r["last"]))
    if not rows:
        table.add_row("(nothing released)", "", "", "")
    return table


def expiry_text(e: Mapping[str, Any]) -> Text:
    days = int(e["days_left"])
    if e["state"] == "ok":
        return Text("ok", style="green") + Text(f" ({days} days left)")
    if e["state"] == "expiring":
        return Text(f"expires in {days} days", style="yellow")
    return Text("expired", style="red") + Text(f" {-days} days ago")


def certificate_table(expiries: list[dict[str, Any]]) -> Table:
    table = Table(title=f"certificates (warned {WARN_DAYS} days ahead)", title_justify="left")
    for col in ("certificate", "valid until", "state"):
        table.add_column(col)
    for e in expiries:
        table.add_row(_plain(e["what"]), _plain(e["valid_until"]), expiry_text(e))
    return table


RootRow = tuple[str | None, Expiry | None]  # (peer, or None for this node; None: no root)


def root_expiries(
    home: Home, held: Mapping[str, tuple[int, bytes] | None], now: dt.datetime | None = None
) -> list[RootRow]:
    """This node's current root, then the newest version of each peer's root this node holds,
    with their expiry (None: no root, or an unreadable one)."""
    now = now or dt.datetime.now(dt.UTC)
    store = RootStore(home.paths.root)
    own: Expiry | None = None
    if store.versions():
        try:
            content = store.load().content
        except ConfigError:
            content = None
        if content is not None:
            own = Expiry(f"this node's root v{content.version}", content.expires, now)
    rows: list[RootRow] = [(None, own)]
    for peer, root in held.items():
        theirs: Expiry | None = None
        if root is not None:
            try:
                content = parse_root(root[1]).content
            except RootError:
                content = None
            if content is not None:
                theirs = Expiry(f"peer {peer}'s root v{root[0]}", content.expires, now)
        rows.append((peer, theirs))
    return rows


def root_table(roots: list[dict[str, Any]]) -> Table:
    table = Table(
        title=f"roots of trust (own warned {WARN_DAYS} days ahead; peers' as held)",
        title_justify="left",
    )
    for col in ("node", "version", "valid until", "state"):
        table.add_column(col)
    for r in roots:
        name = f"{r['node']} (own)" if r["own"] else r["node"]
        if r["what"] is None:
            missing = "no root (keys root-init)" if r["own"] else "no root pinned"
            table.add_row(_plain(name), "-", "-", missing)
            continue
        version = str(r["what"]).rsplit(" ", 1)[-1]
        table.add_row(_plain(name), _plain(version), _plain(r["valid_until"]), expiry_text(r))
    return table


def verification_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="stored data verification (serve re-checks it in the background)",
        title_justify="left",
    )
    for col in ("log", "last whole pass", "leaves verified", "in progress", "findings"):
        table.add_column(col)
    for r in rows:
        found = (
            Text(str(len(r["findings"])), style="red") + data_text(f", first: {r['findings'][0]}")
            if r["findings"]
            else Text("none", style="green")
        )
        table.add_row(
            _plain(r["log"]),
            _plain(r["verified_at"] or "never"),
            str(r["verified_size"]),
            str(r["position"] or ""),
            found,
        )
    if not rows:
        table.add_row("(no logs yet)", "", "", "", "")
    return table


async def remote_status(root: Path, name: str, console: Console, *, timeout: float) -> None:
    """Call one enrolled peer live and print what it says about itself and its peers."""
    home = load_home(root)
    async with Store.opened(home.database_url) as store:
        record = await PeerRepository(store).get(name)
    if record is None:
        raise InputError(f"no enrolled peer named {name!r} (see `creditnode peer list`)")
    ident = NodeIdentity(record.federation, record.name)
    ca = record.ca_certificate.encode()
    result = await probe(home.tls, ident, record.endpoint, ca, timeout=timeout)
    if result.state != "up" or result.info is None:
        raise PeerError(result.error)
    peers = await fetch_peers(home.tls, ident, record.endpoint, ca, timeout=timeout)
    info = result.info
    table = Table(show_header=False, title=f"peer {ident.uri} (live)", title_justify="left")
    table.add_row("region", region_label(info.region_code))
    table.add_row("endpoint", data_text(record.endpoint))
    table.add_row("versions", data_text(f"{info.software_version} / {info.protocol_version}"))
    table.add_row("round trip", f"{result.latency_ms:.1f} ms")
    table.add_row("up since", info.started_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ"))
    console.print(table)
    console.print(peer_table(f"{name}'s peers", peer_rows_from_wire(peers)))
