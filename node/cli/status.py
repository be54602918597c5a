"""`creditnode status`: this node from its home and its own server, or a peer over the wire."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from keys import NodeIdentity
from node.audit.log import audit_origin
from node.audit.query import released_per_peer
from node.cli.render import peer_rows_from_records, peer_rows_from_wire, peer_table, region_label
from node.errors import ConfigError, InputError, PeerError
from node.feeds.dates import shanghai_today
from node.feeds.logstore import LOGS, list_feeds, read_cursor
from node.feeds.state import STATE
from node.feeds.state import active as active_on
from node.feeds.subscriber import EVIDENCE
from node.home import Home, load_home
from node.identity.registry import find_conflicts
from node.keys.store import RootStore
from node.keys.trusted import RootError, parse_root
from node.peers.certificates import WARN_DAYS, Expiry, certificate_expiries
from node.peers.certificates import warnings as expiry_warnings
from node.peers.client import Probe, fetch_peers, probe
from node.storage import Store
from node.storage.peers import PeerRepository
from node.verification.runner import VerificationRow, verification_rows


def _self_endpoint(home: Home) -> str | None:
    s = home.settings
    for addr in (s.advertise, s.listen):
        if addr and not addr.endswith(":0"):
            host, _, port = addr.rpartition(":")
            if host in ("0.0.0.0", "[::]"):  # noqa: S104 - a wildcard bind is dialled on loopback
                host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"  # noqa: S104
            return f"{host}:{port}"
    return None


async def node_status(root: Path, console: Console, *, timeout: float) -> bool:
    """Print the node and its peers; True if the node's own server answered."""
    home = load_home(root)
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
    endpoint = _self_endpoint(home)
    result: Probe | None = None
    if endpoint is not None:
        result = await probe(home.tls, home.identity, endpoint, home.tls.ca_pem, timeout=timeout)
    table = Table(show_header=False, title=f"node {home.identity.uri}", title_justify="left")
    table.add_row("region", region_label(home.settings.region))
    table.add_row("listen", home.settings.listen)
    table.add_row("database", backend + (f" (journal {journal})" if journal else ""))
    if result is None:
        table.add_row("serving", "unknown (port 0 and no advertise address)")
    elif result.state == "up" and result.info is not None:
        table.add_row(
            "serving",
            f"[green]yes[/] at {endpoint}, {result.info.software_version} / "
            f"{result.info.protocol_version}, {result.latency_ms:.1f} ms",
        )
    else:
        table.add_row("serving", f"[red]no[/] ({result.error})")
    console.print(table)
    expiries = certificate_expiries(home.tls, rows)
    roots = root_expiries(home, held)
    own_root = [e for name, e in roots if name is None and e is not None]
    for warning in expiry_warnings([*expiries, *own_root]):
        console.print(f"[bold red]warning:[/] {escape(warning.describe())}", soft_wrap=True)
    console.print(peer_table("peers (as last observed)", peer_rows_from_records(rows)))
    console.print(certificate_table(expiries))
    console.print(root_table(home.settings.name, roots))
    console.print(feed_table(home.settings.name, logs))
    console.print(verification_table(checked))
    failing = [r for r in checked if r.findings]
    for r in failing:
        console.print(
            f"[bold red]stored data does not verify:[/] {escape(r.findings[0].describe())} "
            f"(see `creditnode verify --home {root}`)",
            soft_wrap=True,
        )
    console.print(release_table(released))
    if audit is not None:
        console.print(
            f"audit log: {audit.size} entries, {audit.checkpoint_size} under a signed checkpoint "
            f"(`creditnode audit show --home {escape(str(root))}`)",
            soft_wrap=True,
        )
    kinds = Counter(c.kind for c in conflicts)
    console.print(
        f"identity conflicts: {len(conflicts)}"
        + (f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}; "
           f"see `creditnode identity conflicts --home {root}`)" if conflicts else "")
    )  # fmt: skip
    return result is not None and result.state == "up"


async def feed_rows(store: Store) -> list[dict[str, object]]:
    """Every log this node holds with its cursor, active entries and evidence count."""
    evidence = (
        select(EVIDENCE.c.log_id, func.count().label("n")).group_by(EVIDENCE.c.log_id).subquery()
    )
    active = (
        select(STATE.c.log_id, func.count().label("n"))
        .where(active_on(shanghai_today()))
        .group_by(STATE.c.log_id)
        .subquery()
    )
    async with store.engine.connect() as conn:
        result = await conn.execute(
            select(
                LOGS.c.peer,
                LOGS.c.size,
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


def release_table(rows: list[tuple[str, int, int, dt.datetime | None]]) -> Table:
    table = Table(
        title="personal data released (from the audit log; `creditnode audit show` for each entry)",
        title_justify="left",
    )
    for col in ("peer", "responses", "values", "last"):
        table.add_column(col)
    for peer, n, values, last in rows:
        when = last.isoformat(timespec="seconds") if isinstance(last, dt.datetime) else str(last)
        table.add_row(peer, str(n), str(values), when)
    if not rows:
        table.add_row("(nothing released)", "", "", "")
    return table


def expiry_state(e: Expiry) -> str:
    return {
        "ok": f"[green]ok[/] ({e.left.days} days left)",
        "expiring": f"[yellow]expires in {e.left.days} days[/]",
        "expired": f"[red]expired[/] {e.days_ago} days ago",
    }[e.state]


def certificate_table(expiries: list[Expiry]) -> Table:
    table = Table(title=f"certificates (warned {WARN_DAYS} days ahead)", title_justify="left")
    for col in ("certificate", "valid until", "state"):
        table.add_column(col)
    for e in expiries:
        state = expiry_state(e)
        table.add_row(escape(e.what), e.date, state)
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


def root_table(own: str, roots: list[RootRow]) -> Table:
    table = Table(
        title=f"roots of trust (own warned {WARN_DAYS} days ahead; peers' as held)",
        title_justify="left",
    )
    for col in ("node", "version", "valid until", "state"):
        table.add_column(col)
    for peer, e in roots:
        name = f"{own} (own)" if peer is None else peer
        if e is None:
            missing = "no root (keys root-init)" if peer is None else "no root pinned"
            table.add_row(escape(name), "-", "-", missing)
            continue
        version = e.what.rsplit(" ", 1)[-1]
        state = expiry_state(e)
        table.add_row(escape(name), version, e.date, state)
    return table


def verification_table(rows: list[VerificationRow]) -> Table:
    table = Table(
        title="stored data verification (serve re-checks it in the background)",
        title_justify="left",
    )
    for col in ("log", "last whole pass", "leaves verified", "in progress", "findings"):
        table.add_column(col)
    for r in rows:
        when = r.verified_at.isoformat(timespec="seconds") if r.verified_at else "never"
        found = (
            f"[red]{len(r.findings)}[/], first: {escape(r.findings[0].kind)}"
            + (f" at index {r.findings[0].index}" if r.findings[0].index is not None else "")
            if r.findings
            else "[green]none[/]"
        )
        table.add_row(escape(r.origin), when, str(r.verified_size), str(r.position or ""), found)
    if not rows:
        table.add_row("(no logs yet)", "", "", "", "")
    return table


def feed_table(own: str, logs: list[dict[str, object]]) -> Table:
    table = Table(title="feeds (own log first, then mirrors)", title_justify="left")
    for col in ("origin", "leaves", "checkpoint", "active entries", "state", "evidence"):
        table.add_column(col)
    for r in logs:
        state = str(r["state"])
        colour = "yellow" if state == "stalled" else "red"
        detail = escape(str(r["state_detail"]))
        shown = "[green]ok[/]" if state == "ok" else f"[{colour}]{state}[/]: {detail}"
        table.add_row(
            str(r["peer"] or f"{own} (own)"),
            str(r["size"]),
            str(r["checkpoint_size"]),
            str(r["active"]),
            shown,
            str(r["evidence"]),
        )
    if not logs:
        table.add_row("(no feeds yet)", "", "", "", "", "")
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
    table.add_row("endpoint", record.endpoint)
    table.add_row("versions", f"{info.software_version} / {info.protocol_version}")
    table.add_row("round trip", f"{result.latency_ms:.1f} ms")
    table.add_row("up since", info.started_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ"))
    console.print(table)
    console.print(peer_table(f"{name}'s peers", peer_rows_from_wire(peers)))
