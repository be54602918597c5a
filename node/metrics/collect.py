"""Metrics read at scrape time from what the node keeps: each feed's lag and checkpoint age,
imports and quarantined rows, standing verification findings, and days until each key and
certificate expires.

:func:`take_snapshot` is the I/O (one read transaction on the node's loop); :func:`families`
turns a :class:`Snapshot` into metric families without I/O; :class:`ScrapeCollector` is the
bridge from the scrape's thread to the node's event loop, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from keys import load_certificate
from node.errors import ConfigError
from node.feeds.catalogue import load as load_catalogue
from node.feeds.importer import IMPORTS
from node.feeds.logstore import CHECKPOINTS, LOGS, list_feeds
from node.home import Home
from node.keys.store import RootStore
from node.metrics import label
from node.storage import Store
from node.storage.models import PeerRecord
from node.verification.runner import FINDINGS
from node.witness.store import WITNESSED

log = structlog.get_logger("creditnode.metrics")

SCRAPE_TIMEOUT_SECONDS = 5.0
ROW_OUTCOMES = ("added", "updated", "removed", "unchanged", "quarantined")


@dataclass(frozen=True)
class FeedLag:
    feed: str  # the origin's node name (this node's own for its own feed)
    own: bool
    state: str
    lag_leaves: int  # newest size known (signed by the origin) minus leaves applied
    lag_seconds: float  # since this node first held a checkpoint beyond what it applied
    checkpoint_age: float | None  # since the newest checkpoint was signed (own) or verified


@dataclass
class Snapshot:
    feeds: list[FeedLag] = field(default_factory=list)
    imports: dict[str, int] = field(default_factory=dict)  # list code -> runs
    rows: dict[tuple[str, str], int] = field(default_factory=dict)  # (list code, outcome)
    findings: dict[tuple[str, str], int] = field(default_factory=dict)  # (feed, kind)
    expiry_days: list[tuple[str, str, float]] = field(default_factory=list)  # key, owner, days


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _seconds(now: dt.datetime, then: dt.datetime | None) -> float | None:
    then = _aware(then)
    return None if then is None else max(0.0, (now - then).total_seconds())


def _list_codes(home: Home) -> dict[str, str]:
    try:
        return {s.name: s.code for s in load_catalogue(home.catalogue_path).lists}
    except (ConfigError, OSError, ValueError):
        return {}


async def take_snapshot(
    home: Home, store: Store, peers: Iterable[PeerRecord], now: dt.datetime | None = None
) -> Snapshot:
    """Everything the scrape-time metrics need, read in one go."""
    now = now or dt.datetime.now(dt.UTC)
    snap = Snapshot()
    newest = (
        select(
            CHECKPOINTS.c.log_id,
            func.max(CHECKPOINTS.c.size).label("size"),
            func.max(CHECKPOINTS.c.recorded_at).label("at"),
        )
        .group_by(CHECKPOINTS.c.log_id)
        .subquery()
    )
    async with store.engine.connect() as conn:
        logs = (
            await conn.execute(
                select(
                    LOGS.c.id,
                    LOGS.c.origin,
                    LOGS.c.peer,
                    LOGS.c.size,
                    LOGS.c.state,
                    newest.c.size.label("checkpoint"),
                    newest.c.at,
                    WITNESSED.c.size.label("witnessed"),
                    WITNESSED.c.updated_at.label("seen"),
                )
                .select_from(
                    LOGS.outerjoin(newest, newest.c.log_id == LOGS.c.id).outerjoin(
                        WITNESSED, WITNESSED.c.origin == LOGS.c.origin
                    )
                )
                .where(list_feeds())
            )
        ).all()
        # The oldest checkpoint beyond what each mirror applied: how long it has been behind.
        behind: dict[int, dt.datetime] = dict(
            (
                await conn.execute(
                    select(CHECKPOINTS.c.log_id, func.min(CHECKPOINTS.c.recorded_at))
                    .select_from(CHECKPOINTS.join(LOGS, LOGS.c.id == CHECKPOINTS.c.log_id))
                    .where(CHECKPOINTS.c.size > LOGS.c.size)
                    .group_by(CHECKPOINTS.c.log_id)
                )
            ).all()
        )
        imports = (
            await conn.execute(
                select(
                    IMPORTS.c.list_name,
                    func.count(),
                    *(func.coalesce(func.sum(IMPORTS.c[o]), 0) for o in ROW_OUTCOMES),
                ).group_by(IMPORTS.c.list_name)
            )
        ).all()
        findings = (
            await conn.execute(
                select(LOGS.c.peer, FINDINGS.c.kind, func.count())
                .select_from(FINDINGS.join(LOGS, LOGS.c.id == FINDINGS.c.log_id))
                .group_by(LOGS.c.peer, FINDINGS.c.kind)
            )
        ).all()
    own_name = home.settings.name
    for r in logs:
        applied = int(r.size)
        known = max(int(r.checkpoint or 0), int(r.witnessed or 0))
        lag = max(0, known - applied) if r.peer is not None else 0
        since: dt.datetime | None = None
        if lag:
            candidates = [
                t
                for t in (
                    _aware(behind.get(r.id)),
                    _aware(r.seen) if int(r.witnessed or 0) > applied else None,
                )
                if t is not None
            ]
            since = min(candidates) if candidates else None
        snap.feeds.append(
            FeedLag(
                feed=label(r.peer or own_name),
                own=r.peer is None,
                state=label(str(r.state)),
                lag_leaves=lag,
                lag_seconds=_seconds(now, since) or 0.0,
                checkpoint_age=_seconds(now, r.at),
            )
        )
    codes = _list_codes(home)
    for name, runs, *rows in imports:
        code = label(codes.get(str(name), "other"))
        snap.imports[code] = snap.imports.get(code, 0) + int(runs)
        for outcome, n in zip(ROW_OUTCOMES, rows, strict=True):
            snap.rows[(code, outcome)] = snap.rows.get((code, outcome), 0) + int(n)
    for peer, kind, n in findings:
        snap.findings[(label(peer or own_name), label(str(kind)))] = int(n)
    snap.expiry_days = key_expiry_days(home, peers, now)
    return snap


def key_expiry_days(
    home: Home, peers: Iterable[PeerRecord], now: dt.datetime
) -> list[tuple[str, str, float]]:
    """(key, owner, days left; negative once expired) of this node's TLS certificate, CA and
    root, and each enrolled peer's TLS certificate and CA."""
    day = 86400.0
    own = home.settings.name
    out = [
        ("tls_certificate", own, (home.tls.certificate.not_valid_after_utc - now).total_seconds()),
        ("ca", own, (home.tls.ca_certificate.not_valid_after_utc - now).total_seconds()),
    ]
    roots = RootStore(home.paths.root)
    if roots.versions():
        try:
            expires = roots.load().content.expires
            out.append(("root", own, (expires - now).total_seconds()))
        except ConfigError:
            pass  # unreadable: `status` and verification say so; no figure here
    for p in peers:
        for key, pem in (("tls_certificate", p.tls_certificate), ("ca", p.ca_certificate)):
            try:
                cert = load_certificate(pem.encode())
            except ValueError:
                continue
            out.append((key, label(p.name), (cert.not_valid_after_utc - now).total_seconds()))
    return [(k, o, round(s / day, 3)) for k, o, s in out]


def families(snap: Snapshot) -> list[Metric]:
    """The metric families of *snap* (pure)."""
    lag = GaugeMetricFamily(
        "creditnode_feed_lag_leaves",
        "Leaves of a feed signed by its origin and not yet applied here",
        labels=["feed"],
    )
    lag_s = GaugeMetricFamily(
        "creditnode_feed_lag_seconds",
        "Seconds since this node first held a checkpoint of the feed beyond what it applied",
        labels=["feed"],
    )
    age = GaugeMetricFamily(
        "creditnode_checkpoint_age_seconds",
        "Seconds since the feed's newest checkpoint was signed (own) or verified (mirror)",
        labels=["feed", "own"],
    )
    state = GaugeMetricFamily(
        "creditnode_feed_state", "1 for the state each feed is in", labels=["feed", "state"]
    )
    for f in snap.feeds:
        if not f.own:
            lag.add_metric([f.feed], f.lag_leaves)
            lag_s.add_metric([f.feed], f.lag_seconds)
        if f.checkpoint_age is not None:
            age.add_metric([f.feed, "yes" if f.own else "no"], f.checkpoint_age)
        state.add_metric([f.feed, f.state], 1)
    runs = CounterMetricFamily(
        "creditnode_imports", "List imports completed into the own feed", labels=["list"]
    )
    for code, n in sorted(snap.imports.items()):
        runs.add_metric([code], n)
    rows = CounterMetricFamily(
        "creditnode_import_rows",
        "Rows of completed imports by outcome (quarantined: refused with a reason)",
        labels=["list", "outcome"],
    )
    quarantined = CounterMetricFamily(
        "creditnode_quarantined_rows", "Rows imports quarantined", labels=["list"]
    )
    for (code, outcome), n in sorted(snap.rows.items()):
        rows.add_metric([code, outcome], n)
        if outcome == "quarantined":
            quarantined.add_metric([code], n)
    findings = GaugeMetricFamily(
        "creditnode_verification_findings",
        "Standing findings of stored data that does not verify, by feed and kind",
        labels=["feed", "kind"],
    )
    for (feed, kind), n in sorted(snap.findings.items()):
        findings.add_metric([feed, kind], n)
    expiry = GaugeMetricFamily(
        "creditnode_key_expiry_days",
        "Days until a certificate or root expires (negative: expired), by key and owner",
        labels=["key", "owner"],
    )
    for key, owner, days in snap.expiry_days:
        expiry.add_metric([key, owner], days)
    return [lag, lag_s, age, state, runs, rows, quarantined, findings, expiry]


class ScrapeCollector(Collector):
    """Runs :func:`take_snapshot` on the node's loop for each scrape (from the listener's
    thread); a scrape that cannot read the store in time gets these families empty, and
    ``creditnode_scrape_store_ok`` 0."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        snapshot: Callable[[], Coroutine[Any, Any, Snapshot]],
    ) -> None:
        self.loop = loop
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "creditnode_scrape_store_ok", "1 if this scrape read the node's store in time"
        )
        try:
            future = asyncio.run_coroutine_threadsafe(self.snapshot(), self.loop)
        except RuntimeError:  # the loop is closed: the node has stopped
            ok.add_metric([], 0)
            yield ok
            return
        try:
            snap = future.result(SCRAPE_TIMEOUT_SECONDS)
        except (FutureTimeout, Exception):
            future.cancel()
            log.warning("metrics scrape could not read the store")
            ok.add_metric([], 0)
            yield ok
            return
        ok.add_metric([], 1)
        yield ok
        yield from families(snap)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected at scrape time only; nothing to check at registration


async def store_answers(store: Store) -> None:
    """One trivial read: raises if the store does not answer."""
    async with store.engine.connect() as conn:
        await conn.execute(select(1))
