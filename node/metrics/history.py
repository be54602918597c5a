"""The metrics history (issue 16): every ``metrics_history_seconds`` the running node samples,
per peer, its feed lag (leaves and seconds, as :func:`node.metrics.collect.take_snapshot`
computes them for the scrape) and the disclosures to it by form (the
``creditnode_disclosures`` counters of :class:`~node.metrics.NodeMetrics`), into the
``metrics_history`` table; rows older than ``metrics_history_days`` are pruned as it writes.

:func:`samples` is the pure core; :class:`HistorySampler` and :func:`read_history` the I/O.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog
from sqlalchemy import delete, insert, select

from node.metrics import NodeMetrics
from node.metrics.collect import Snapshot
from node.storage import Store
from node.storage.models import MetricsSample
from node.storage.peers import as_utc

log = structlog.get_logger("creditnode.metrics")

HISTORY = MetricsSample.__table__  # type: ignore[attr-defined]
LAG_LEAVES, LAG_SECONDS, DISCLOSURES = "lag_leaves", "lag_seconds", "disclosures:"
MAX_POINTS = 20_000  # rows one page reads at most: the page stays small whatever the history


@dataclass(frozen=True)
class Sample:
    at: dt.datetime
    peer: str
    series: str
    value: float


def disclosure_counts(metrics: NodeMetrics) -> dict[tuple[str, str], float]:
    """(peer, form) -> disclosures counted since the node started, read from its counter."""
    out: dict[tuple[str, str], float] = {}
    for family in metrics.disclosures.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                out[(s.labels["peer"], s.labels["form"])] = float(s.value)
    return out


def samples(
    snap: Snapshot, disclosed: dict[tuple[str, str], float], now: dt.datetime
) -> list[Sample]:
    """The rows of one sample (pure): each mirrored feed's lag, and each (peer, form)
    disclosure count."""
    out: list[Sample] = []
    for f in snap.feeds:
        if f.own:
            continue  # the own feed has no lag here; how far subscribers got is `status`'s
        out.append(Sample(now, f.feed, LAG_LEAVES, float(f.lag_leaves)))
        out.append(Sample(now, f.feed, LAG_SECONDS, float(f.lag_seconds)))
    for (peer, form), n in sorted(disclosed.items()):
        out.append(Sample(now, peer, DISCLOSURES + form, n))
    return out


class HistorySampler:
    """Samples one node's metrics into its store on a timer (:meth:`run`), or once
    (:meth:`sample_once`, which tests drive directly)."""

    def __init__(
        self,
        store: Store,
        metrics: NodeMetrics,
        snapshot: Callable[[], Awaitable[Snapshot]],
        *,
        interval: float,
        keep_days: int,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.snapshot = snapshot
        self.interval = interval
        self.keep = dt.timedelta(days=keep_days)

    async def sample_once(self, now: dt.datetime | None = None) -> int:
        """Write one sample and prune what is older than the kept days; the rows written."""
        now = now or dt.datetime.now(dt.UTC)
        rows = samples(await self.snapshot(), disclosure_counts(self.metrics), now)
        async with self.store.begin() as conn:
            if rows:
                await conn.execute(
                    insert(HISTORY),
                    [{"at": r.at, "peer": r.peer, "series": r.series, "value": r.value}
                     for r in rows],
                )  # fmt: skip
            await conn.execute(delete(HISTORY).where(HISTORY.c.at < now - self.keep))
        return len(rows)

    async def run(self) -> None:
        """Sample every *interval* seconds until cancelled; a failed sample is logged and the
        next one tried (a busy database must not end the history)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample_once()
            except Exception:
                log.exception("metrics history not sampled")


Series = dict[str, dict[str, list[tuple[dt.datetime, float]]]]  # peer -> series -> points


async def read_history(store: Store, since: dt.datetime) -> Series:
    """Every sample since *since*, per peer and series, oldest first (at most MAX_POINTS, the
    newest kept)."""
    c = HISTORY.c
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(c.at, c.peer, c.series, c.value)
                .where(c.at >= since)
                .order_by(c.at.desc(), c.id.desc())
                .limit(MAX_POINTS)
            )
        ).all()
    return group(rows)


def group(rows: Iterable[tuple[dt.datetime, str, str, float]]) -> Series:
    """Rows (any order) as per peer, per series, points oldest first (pure)."""
    out: Series = {}
    for at, peer, series, value in rows:
        when = as_utc(at)
        if when is not None:
            out.setdefault(str(peer), {}).setdefault(str(series), []).append((when, float(value)))
    for by_series in out.values():
        for points in by_series.values():
            points.sort(key=lambda p: p[0])
    return out
