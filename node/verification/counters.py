"""The active-entry counters (list_counts, node.feeds.counts) against a recount of one log's
list state: `status` reads the counters instead of scanning, so a drifted counter would show
wrong figures silently. A whole pass recounts each list log and names the first bucket that
differs (a scan of that log's rows, as the projection comparison scans them)."""

from __future__ import annotations

from sqlalchemy import and_, func, literal_column, select

from node.feeds.counts import ACTIVE_STATUS, COUNTS, STATE
from node.storage import Store

Bucket = tuple[str, str]  # (list_name, disclosure_end)


async def counter_diff(store: Store, log_id: int) -> tuple[str, str] | None:
    """The first bucket of *log_id* whose stored counter differs from a recount, as (row,
    detail), or None when they agree. Zero buckets count as absent on both sides."""
    async with store.engine.connect() as conn:
        counted = await conn.execute(
            select(STATE.c.list_name, STATE.c.disclosure_end, func.count())
            .where(
                and_(
                    STATE.c.log_id == log_id,
                    STATE.c.status == ACTIVE_STATUS,
                    func.length(STATE.c.entry) > 0,
                )
            )
            .group_by(STATE.c.list_name, STATE.c.disclosure_end)
        )
        recount: dict[Bucket, int] = {(str(a), str(b)): int(n) for a, b, n in counted}
        held = await conn.execute(
            select(COUNTS.c.list_name, COUNTS.c.disclosure_end, COUNTS.c.n).where(
                and_(COUNTS.c.log_id == log_id, COUNTS.c.n != literal_column("0"))
            )
        )
        kept: dict[Bucket, int] = {(str(a), str(b)): int(n) for a, b, n in held}
    return first_difference(kept, recount)


def first_difference(kept: dict[Bucket, int], recount: dict[Bucket, int]) -> tuple[str, str] | None:
    """The first bucket (in order) where the stored counters and the recount differ (pure)."""
    for bucket in sorted(kept.keys() | recount.keys()):
        if kept.get(bucket, 0) != recount.get(bucket, 0):
            list_name, end = bucket
            return (
                f"list_counts {list_name} {end or '(no end)'}",
                f"counter holds {kept.get(bucket, 0)}, a recount of list_state finds "
                f"{recount.get(bucket, 0)}",
            )
    return None
