"""The follow-up's overdue clock starts when this node's feed published the entry (the signed
time of the first checkpoint holding its ADD leaf), not at its listing date; the listing date
only when no publication time is known."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from keys import SigningKey
from node.actions.followup import OwnEntry, clock_start, follow_up
from node.actions.published import SCANS, covering, first_adds, publication_times
from node.actions.view import own_entries
from node.api import feeds
from node.feeds import note
from node.feeds.leaf import build_leaf
from node.feeds.publisher import Event, Publisher
from node.storage import Store
from tests.feedutil import org_entry

JINAN = "creditnode://yellow-river/jinan"
LONG_AGO = dt.date(2020, 3, 1)
# 2026-11-29 20:00 UTC is 2026-11-30 04:00 in Shanghai: the day counts in Shanghai.
PUBLISHED = dt.datetime(2026, 11, 29, 20, 0, tzinfo=dt.UTC)


def _rows(entry: OwnEntry, today: dt.date) -> bool:
    (row,) = follow_up([entry], ["lanzhou"], [], today=today, days={}, default_days=15)
    return row.overdue


def test_the_clock_starts_at_publication_not_at_the_listing_date() -> None:
    entry = OwnEntry("e1", "black", LONG_AGO, ("M01",), active=True, published=PUBLISHED)
    assert clock_start(entry) == (dt.date(2026, 11, 30), "published")
    (row,) = follow_up([entry], ["lanzhou"], [], today=dt.date(2026, 11, 30), days={},
                       default_days=15)  # fmt: skip
    assert (row.due, row.clock, row.overdue) == ("2026-12-15", "published", False)
    assert row.as_json()["clock"] == "published"
    # Listed six years ago, published today: not overdue before the deadline has run.
    assert not _rows(entry, dt.date(2026, 12, 15))
    assert _rows(entry, dt.date(2026, 12, 16))


def test_without_a_publication_time_the_listing_date_starts_it() -> None:
    entry = OwnEntry("e1", "black", LONG_AGO, ("M01",), active=True)
    assert clock_start(entry) == (LONG_AGO, "listed")
    (row,) = follow_up([entry], ["lanzhou"], [], today=dt.date(2026, 11, 30), days={},
                       default_days=15)  # fmt: skip
    assert (row.due, row.clock, row.overdue) == ("2020-03-16", "listed", True)
    nothing = OwnEntry("e2", "black", None, ("M01",), active=True)
    (row,) = follow_up([nothing], ["lanzhou"], [], today=dt.date(2026, 11, 30), days={},
                       default_days=15)  # fmt: skip
    assert (row.due, row.clock, row.overdue) == ("", "", False)


def _leaf(entry_id: str, event: int) -> bytes:
    removal = feeds.REMOVAL_REASON_REPAIR if event == feeds.EVENT_TYPE_REMOVE else 0
    data, _ = build_leaf(JINAN, entry_id, event, org_entry(0), recorded_at_unix=0,
                         removal_reason=removal)  # fmt: skip
    return data


def test_first_adds_takes_each_entrys_add_leaf() -> None:
    leaves = [
        (0, _leaf("a", feeds.EVENT_TYPE_ADD)),
        (1, _leaf("a", feeds.EVENT_TYPE_UPDATE)),
        (2, b"\xff not a leaf"),
        (3, _leaf("b", feeds.EVENT_TYPE_ADD)),
        (4, _leaf("a", feeds.EVENT_TYPE_REMOVE)),
        (5, _leaf("c", feeds.EVENT_TYPE_UPDATE)),  # its ADD lies before what was read
    ]
    assert first_adds(leaves) == {"a": 0, "b": 3}


@given(
    st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 60), max_size=8),
    st.lists(st.integers(1, 64), unique=True, max_size=8).map(sorted),
)
def test_covering_is_the_first_checkpoint_holding_the_leaf(
    adds: dict[str, int], sizes: list[int]
) -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    checkpoints = [(s, base + dt.timedelta(seconds=s)) for s in sizes]
    got = covering(adds, checkpoints)
    for entry_id, idx in adds.items():
        holding = [t for s, t in checkpoints if s > idx]
        assert got[entry_id] == (holding[0] if holding else None)


async def test_publication_times_come_from_the_own_feeds_checkpoints(db_url: str) -> None:
    st_ = await Store.open(db_url)
    try:
        pub = await Publisher.open(st_, JINAN, SigningKey.generate(JINAN))
        first, second, unsigned = (uuid.uuid4().hex for _ in range(3))
        await pub.append([Event(first, feeds.EVENT_TYPE_ADD, org_entry(1))])
        cp1 = note.checkpoint_time(note.stored_checkpoint(await pub.sign_checkpoint()))
        await pub.append([
            Event(first, feeds.EVENT_TYPE_UPDATE, org_entry(1)),
            Event(second, feeds.EVENT_TYPE_ADD, org_entry(2)),
        ])  # fmt: skip
        cp2 = note.checkpoint_time(note.stored_checkpoint(await pub.sign_checkpoint()))
        assert cp1 is not None and cp2 is not None
        assert await publication_times(st_, JINAN) == {first: cp1, second: cp2}
        # Appended, not yet under a signed checkpoint: not published, so not known yet; the
        # follow-up falls back to its listing date.
        await pub.append([Event(unsigned, feeds.EVENT_TYPE_ADD, org_entry(3))])
        entries = {e.entry: e for e in await own_entries(st_, JINAN)}
        assert entries[first].published == cp1 and entries[second].published == cp2
        assert entries[unsigned].published is None
        assert clock_start(entries[unsigned])[1] == "listed"
        # Read once: the scan stands at the last checkpoint, and goes on from there.
        async with st_.engine.connect() as conn:
            assert (await conn.execute(select(SCANS.c.size))).scalar() == 3
        cp3 = note.checkpoint_time(note.stored_checkpoint(await pub.sign_checkpoint()))
        times = await publication_times(st_, JINAN, [unsigned, first])
        assert times == {unsigned: cp3, first: cp1}
        async with st_.engine.connect() as conn:
            assert (await conn.execute(select(SCANS.c.size))).scalar() == 4
    finally:
        await st_.close()
