"""Disclosure periods end on their day, at every holder, whether or not the origin is up.

At the origin, an entry whose 公示截止日期 has passed gets a REMOVE(expiry) leaf. At a holder,
the body and openings of a mirrored entry past its end are deleted without waiting for that
REMOVE (views already stop showing it: :func:`node.feeds.state.active`). Both run when a node
starts serving and at every 00:00 Asia/Shanghai.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable

import structlog
from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds import counts
from node.feeds.dates import next_midnight, shanghai_today
from node.feeds.logstore import LOGS
from node.feeds.publisher import Event, Publisher
from node.feeds.state import DISCLOSURES, STATE
from node.storage import Store, dialect
from node.storage.locks import list_lock
from node.storage.models import OwnEntryRecord

log = structlog.get_logger("creditnode.expiry")
OWN = OwnEntryRecord.__table__  # type: ignore[attr-defined]
CHUNK = 4096


def _past_end(today: dt.date) -> object:
    return and_(
        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
        STATE.c.disclosure_end != "",
        STATE.c.disclosure_end < today.isoformat(),
    )


async def expire_own(publisher: Publisher, today: dt.date) -> int:
    """Append REMOVE(expiry, dated *today*) for each own entry past its disclosure end."""
    async with publisher.store.engine.connect() as conn:
        lists = (
            await conn.execute(
                select(STATE.c.list_name)
                .where(and_(STATE.c.log_id == publisher.log.log_id, _past_end(today)))  # type: ignore[arg-type]
                .distinct()
            )
        ).scalars()
        names = sorted(lists.all())
    done = 0
    for name in names:
        # The lock an import of the list takes: the entries due are read again under it, so
        # an import that extends an entry's end meanwhile is not undone by a stale REMOVE.
        async with list_lock(publisher.store, name):
            done += await _expire_list(publisher, today, name)
    if done:
        log.info("disclosure periods ended", entries=done, date=today.isoformat())
    return done


async def _expire_list(publisher: Publisher, today: dt.date, list_name: str) -> int:
    async with publisher.store.engine.connect() as conn:
        due = (
            await conn.execute(
                select(STATE.c.entry_id, STATE.c.list_code)
                .where(
                    and_(
                        STATE.c.log_id == publisher.log.log_id,
                        STATE.c.list_name == list_name,
                        _past_end(today),  # type: ignore[arg-type]
                    )
                )
                .order_by(STATE.c.last_idx)
            )
        ).all()
    for i in range(0, len(due), CHUNK):
        part = due[i : i + CHUNK]
        ids = [entry_id for entry_id, _ in part]

        async def inactive(conn: AsyncConnection, ids: list[str] = ids) -> None:
            await conn.execute(update(OWN).where(OWN.c.entry_id.in_(ids)).values(active=False))

        await publisher.append(
            [
                Event(
                    entry_id,
                    feeds.EVENT_TYPE_REMOVE,
                    feeds.ListEntry(list_code=code),
                    removal_reason=feeds.REMOVAL_REASON_EXPIRY,
                    removal_date=today.isoformat(),
                )
                for entry_id, code in part
            ],
            extra=inactive,
        )
    return len(due)


async def purge_mirrors(store: Store, today: dt.date) -> int:
    """Delete the bodies and openings of peers' entries past their disclosure end."""
    async with store.begin() as conn:
        mirrors = select(LOGS.c.id).where(LOGS.c.peer.is_not(None))
        due = (
            await conn.execute(
                select(STATE.c.log_id, STATE.c.entry_id, STATE.c.status, STATE.c.list_name,
                       STATE.c.disclosure_end).where(
                    and_(STATE.c.log_id.in_(mirrors), _past_end(today), STATE.c.entry != b"")  # type: ignore[arg-type]
                )
            )
        ).all()  # fmt: skip
        gone: dict[int, Counter[counts.CountKey]] = defaultdict(Counter)
        for log_id, entry_id, status, list_name, end in due:
            # The row loses its body: out of its counter bucket (node/feeds/counts.py).
            if (key := counts.count_key(status, True, list_name, end)) is not None:
                gone[log_id][key] -= 1
            await conn.execute(
                delete(DISCLOSURES).where(
                    and_(DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.entry_id == entry_id)
                )
            )
            await conn.execute(
                update(STATE)
                .where(and_(STATE.c.log_id == log_id, STATE.c.entry_id == entry_id))
                .values(subject_name="", uscc="", subject_type=0, entry=b"", body_salt=None,
                        name_norm=None, code_suspect=0)
            )  # fmt: skip
        for log_id, changes in gone.items():
            await counts.add_counts(conn, log_id, changes)
    if due:
        await dialect.erase_freed(store.engine)
        log.info("expired entries of peers deleted", entries=len(due), date=today.isoformat())
    return len(due)


async def expire_now(publisher: Publisher, today: dt.date) -> tuple[int, int]:
    """Both sides at once: (own entries removed, peers' entries purged)."""
    return await expire_own(publisher, today), await purge_mirrors(publisher.store, today)


async def run_expiry(
    publisher: Publisher, *, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> None:
    """At start-up, then at every 00:00 Shanghai time, until cancelled."""
    while True:
        try:
            await expire_now(publisher, shanghai_today(now()))
        except asyncio.CancelledError:
            raise
        except Exception:  # a busy database must not end the schedule: try again in a minute
            log.exception("expiry failed")
            await asyncio.sleep(60)
            continue
        wait = (next_midnight(now()) - now()).total_seconds()
        await asyncio.sleep(max(wait, 0.0) + 1.0)
