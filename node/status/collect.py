"""Collecting this node's status from its home, its store and its own listener: the JSON
document of docs/json.md (`status`), rendered by the CLI and shown by the console."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from node.audit.log import ENTRIES, audit_origin
from node.audit.query import released_per_peer
from node.audit.receipts import SLACK, fetch_receipts
from node.errors import ConfigError, PeerError
from node.feeds.counts import active_per_log
from node.feeds.dates import shanghai_today
from node.feeds.health import FeedFacts, judge_feed
from node.feeds.logstore import LOGS, list_feeds, read_cursor
from node.feeds.subscriber import EVIDENCE, SUBSCRIBE
from node.home import Home, load_home
from node.identity.registry import find_conflicts
from node.keys.store import RootStore
from node.keys.trusted import RootError, parse_root
from node.peers.certificates import Expiry, certificate_expiries
from node.peers.certificates import warnings as expiry_warnings
from node.peers.client import probe
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
    # PostgreSQL's SUM of a bigint is a numeric: a Decimal, which may print as "1.00E+6".
    if isinstance(value, int | float | Decimal):
        return int(value)
    return int(str(value or 0))


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
