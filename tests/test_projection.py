"""The log is the truth; the list state is a projection folded from it (issue 17): a mirror's
sync transaction holds the leaves, the frontier, the cursor and the openings received; the
fold applies them by its own cursor, shows its lag in `status`, and a rebuild from the log is
compared with it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import and_, func, select, text, update
from sqlalchemy.exc import IntegrityError

from node.api import feeds
from node.cli.status import collect_status
from node.feeds import counts, projection, state, subscriber
from node.feeds.leaf import LeafError, build_leaf
from node.feeds.logstore import LOGS, OPENINGS
from node.feeds.publisher import Event
from node.feeds.state import STATE
from node.feeds.subscriber import Subscriber
from node.identity import name_search
from node.runtime import Node
from node.services import feed as feed_service
from node.storage import Store
from tests.conftest import FederationFactory
from tests.feedutil import adds, no_fold, org_entry

ORIGIN = "creditnode://f/jinan"


def _leaf(entry_id: str, event: int, n: int = 0) -> bytes:
    reason = feeds.REMOVAL_REASON_EXPIRY if event == feeds.EVENT_TYPE_REMOVE else 0
    data, _ = build_leaf(
        ORIGIN, entry_id, event, org_entry(n), recorded_at_unix=0, removal_reason=reason
    )
    return data


def test_each_stretch_of_the_log_names_the_first_difference_of_the_projection() -> None:
    leaves = [
        (0, _leaf("a", feeds.EVENT_TYPE_ADD)),
        (1, _leaf("b", feeds.EVENT_TYPE_ADD, 1)),
        (2, _leaf("a", feeds.EVENT_TYPE_UPDATE, 2)),
        (3, _leaf("b", feeds.EVENT_TYPE_REMOVE, 1)),
    ]
    decisions = projection.decide(leaves)
    code = org_entry(0).list_code
    active, removed = feeds.ENTRY_STATUS_ACTIVE, feeds.ENTRY_STATUS_REMOVED
    assert [(i, e) for i, e, _ in decisions] == [(0, "a"), (1, "b"), (2, "a"), (3, "b")]
    assert projection.decide(leaves, checked=True) == decisions
    with pytest.raises(LeafError):
        projection.decide([(0, leaves[0][1] + b"\x00")])  # not canonical: strict refuses
    rows = {
        "a": (2, active, 0, org_entry(2).list_code),
        "b": (3, removed, feeds.REMOVAL_REASON_EXPIRY, org_entry(1).list_code),
    }
    named = [("a", 2), ("b", 3)]
    assert projection.first_difference(decisions, rows, named) is None
    # In two stretches, as compare reads them: each agrees.
    for part in ((0, 2), (2, 4)):
        stretch = decisions[part[0] : part[1]]
        here = [(e, n) for e, n in named if part[0] <= n < part[1]]
        assert projection.first_difference(stretch, rows, here) is None
    # A row still naming the superseded leaf, a missing row, a row of no entry of the log,
    # a row saying what its leaf does not.
    stale = {**rows, "a": (0, active, 0, code)}
    assert projection.first_difference(decisions, stale, [("a", 0), ("b", 3)]) == (
        0, "last_idx differ from leaf 2",
    )  # fmt: skip
    missing = {"a": rows["a"]}
    assert projection.first_difference(decisions, missing, [("a", 2)]) == (
        1, "the entry of leaf 1 has no row",
    )  # fmt: skip
    extra = projection.first_difference(decisions, rows, [*named, ("z", 1)])
    assert extra == (1, "a row names leaf 1, another entry's")
    wrong = {**rows, "b": (3, active, 0, org_entry(1).list_code)}
    assert projection.first_difference(decisions, wrong, named) == (
        3, "status, removal_reason differ from leaf 3",
    )  # fmt: skip


async def _subscriber(node: Node, origin: Node) -> Subscriber:
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    return await Subscriber.open(node.home.tls, node.store, peer)


async def _counts(node: Node, log_id: int) -> tuple[int, int, int, int]:
    """(size, projected size, list-state rows, kept openings rows) of a log."""
    async with node.store.engine.connect() as conn:
        size, projected = await projection.lag(conn, log_id)
        rows = (
            await conn.execute(
                select(func.count()).select_from(STATE).where(STATE.c.log_id == log_id)
            )
        ).scalar_one()
        kept = (
            await conn.execute(
                select(func.count()).select_from(OPENINGS).where(OPENINGS.c.log_id == log_id)
            )
        ).scalar_one()
    return size, projected, rows, kept


async def test_the_log_is_durable_first_and_the_projection_catches_up(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    events = adds(40)
    await jinan.publisher.append(events)
    await jinan.publisher.append(
        [Event(events[0].entry_id, feeds.EVENT_TYPE_REMOVE, events[0].entry,
               feeds.REMOVAL_REASON_EXPIRY)]
    )  # fmt: skip
    await jinan.publisher.sign_checkpoint()

    # A sync whose process stops right after each durable write, before folding.
    real_fold = projection.fold

    monkeypatch.setattr(projection, "fold", no_fold)
    sub = await _subscriber(lanzhou, jinan)
    await sub.sync(follow=False)
    log_id = sub.log.log_id
    # The leaves and the 39 bodies received with them (not the removed entry's: bodies
    # travel only while active) are held; nothing is projected yet.
    assert await _counts(lanzhou, log_id) == (41, 0, 0, 39)
    url = fed.database_url(lanzhou.name)
    if url:
        monkeypatch.setenv("CREDITNODE_DATABASE_URL", url)
    doc = await collect_status(lanzhou.home.paths.root, timeout=3)
    lag = {f["origin"]: f["projection_lag"] for f in doc["feeds"]}
    assert lag == {"jinan": 41, "lanzhou": 0}

    # Folding (in chunks, as by another process) catches up; what it folded is let go.
    monkeypatch.setattr(projection, "fold", real_fold)
    done = await projection.fold(lanzhou.store, log_id, step=7)
    assert (done.leaves, done.projected, done.removed) == (41, 41, True)
    assert await _counts(lanzhou, log_id) == (41, 41, 40, 0)
    assert await projection.compare(lanzhou.store, log_id) is None
    doc = await collect_status(lanzhou.home.paths.root, timeout=3)
    assert {f["origin"]: f["projection_lag"] for f in doc["feeds"]}["jinan"] == 0
    async with lanzhou.store.engine.connect() as conn:
        held: dict[str, bytes] = {
            str(e): bytes(b)
            for e, b in await conn.execute(
                select(STATE.c.entry_id, STATE.c.entry).where(STATE.c.log_id == log_id)
            )
        }
    assert bytes(held[events[0].entry_id]) == b""  # the removed entry's body is not kept
    assert all(bytes(held[e.entry_id]) for e in events[1:])
    assert (await real_fold(lanzhou.store, log_id)).leaves == 0  # nothing left to fold

    # A row changed behind the projection's back is the first difference.
    async with lanzhou.store.engine.begin() as conn:
        await conn.execute(
            update(STATE)
            .where(and_(STATE.c.log_id == log_id, STATE.c.entry_id == events[5].entry_id))
            .values(status=feeds.ENTRY_STATUS_REMOVED)
        )
    assert await projection.compare(lanzhou.store, log_id) == (5, "status differ from leaf 5")
    assert await projection.compare(lanzhou.store, log_id, chunk=4) == (
        5, "status differ from leaf 5",
    )  # fmt: skip
    # A lost fold of the removal (leaf 40): the row is leaf 0's, exactly. Found at leaf 40, in
    # the last chunk, and reported at the leaf the row names, in the first.
    async with lanzhou.store.engine.begin() as conn:
        await conn.execute(
            update(STATE)
            .where(and_(STATE.c.log_id == log_id, STATE.c.entry_id == events[0].entry_id))
            .values(last_idx=0, status=feeds.ENTRY_STATUS_ACTIVE, removal_reason=0)
        )
    for chunk in (8, 8192):
        assert await projection.compare(lanzhou.store, log_id, chunk=chunk) == (
            0, "last_idx differ from leaf 40",
        )  # fmt: skip


async def test_a_sync_returns_with_its_projection_caught_up(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(25))
    await jinan.publisher.sign_checkpoint()
    sub = await _subscriber(lanzhou, jinan)
    await sub.sync(follow=False)
    assert await _counts(lanzhou, sub.log.log_id) == (25, 25, 25, 0)
    assert sub.log.cursor.projected_size == 25
    async with jinan.store.engine.connect() as conn:
        own = (
            await conn.execute(
                select(LOGS.c.size, LOGS.c.projected_size).where(
                    LOGS.c.origin == jinan.home.identity.uri
                )
            )
        ).one()
    assert tuple(own) == (25, 25)  # the origin applies its leaves as it appends them


async def test_the_fold_runs_beside_the_log_writes_at_most_a_few_groups_behind(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    events = adds(60)
    await jinan.publisher.append(events)
    await jinan.publisher.append(
        [Event(e.entry_id, feeds.EVENT_TYPE_REMOVE, e.entry, feeds.REMOVAL_REASON_EXPIRY)
         for e in events[:3]]
    )  # fmt: skip
    await jinan.publisher.sign_checkpoint()
    monkeypatch.setattr(feed_service, "BATCH_LEAVES", 3)  # the origin's, in this process
    monkeypatch.setattr(subscriber, "APPLY_EVERY", 4)
    monkeypatch.setattr(subscriber, "FOLD_BEHIND", 2)
    sub = await _subscriber(lanzhou, jinan)
    real_fold = projection.fold
    real_apply = Subscriber._apply
    seen: list[tuple[int, int, int]] = []  # each fold: (its start, its end, the durable size)
    lags: list[int] = []  # at each log write: durable size - projected size

    async def fold(store: Any, log_id: int, **kw: Any) -> projection.Folded:
        async with store.engine.connect() as conn:
            size, projected = await projection.lag(conn, log_id)
        seen.append((projected, kw.get("upto") or size, size))
        return await real_fold(store, log_id, **kw)

    async def apply(self: Subscriber, *args: Any) -> None:
        async with self.store.engine.connect() as conn:
            size, projected = await projection.lag(conn, self.log.log_id)
        lags.append(size - projected)
        await real_apply(self, *args)

    monkeypatch.setattr(projection, "fold", fold)
    monkeypatch.setattr(Subscriber, "_apply", apply)
    await sub.sync(follow=False)
    log_id = sub.log.log_id
    # A group is folded only once durable, and in order; the writes never ran more than
    # FOLD_BEHIND groups (plus the one being folded) ahead of the projection.
    assert all(end <= size for _, end, size in seen)
    starts = [s for s, e, _ in seen if e > s]
    assert starts == sorted(starts) and len(starts) > 5
    assert max(lags) <= (2 + 1) * 6  # a group: APPLY_EVERY leaves or a batch's more (<= 6)
    # Caught up on return, and the same as folding the log afresh.
    assert await _counts(lanzhou, log_id) == (63, 63, 60, 0)
    assert await projection.compare(lanzhou.store, log_id) is None
    async with lanzhou.store.engine.connect() as conn:
        assert await counts.stored(conn) == await counts.recount(conn)


async def test_a_failed_fold_stops_the_sync_and_the_next_one_folds_from_the_log(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(30))
    await jinan.publisher.sign_checkpoint()
    monkeypatch.setattr(feed_service, "BATCH_LEAVES", 5)
    monkeypatch.setattr(subscriber, "APPLY_EVERY", 5)
    real = state.apply_leaves
    calls = 0

    async def failing(*args: Any, **kw: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk trouble")
        return await real(*args, **kw)

    monkeypatch.setattr(projection, "apply_leaves", failing)
    sub = await _subscriber(lanzhou, jinan)
    with pytest.raises(RuntimeError, match="disk trouble"):
        await sub.sync(follow=False)
    log_id = sub.log.log_id
    size, projected, _, _ = await _counts(lanzhou, log_id)
    assert projected < size  # the log stayed durable; the projection stopped behind it
    monkeypatch.setattr(projection, "apply_leaves", real)
    again = await _subscriber(lanzhou, jinan)
    await again.sync(follow=False)
    assert await _counts(lanzhou, log_id) == (30, 30, 30, 0)
    assert await projection.compare(lanzhou.store, log_id) is None


async def _synced_unfolded(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch, n: int
) -> tuple[Node, int]:
    """Lanzhou with *n* of jinan's leaves synced and durable, none folded: (lanzhou, log id)."""
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(n))
    await jinan.publisher.sign_checkpoint()

    async def no_fold(store: Any, log_id: int, **kw: Any) -> projection.Folded:
        return projection.Folded(0, 0, 0, False)

    with monkeypatch.context() as m:
        m.setattr(projection, "fold", no_fold)
        sub = await _subscriber(lanzhou, jinan)
        await sub.sync(follow=False)
    return lanzhou, sub.log.log_id


async def test_a_chunk_whose_cursor_moved_meanwhile_is_rolled_back_whole(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    lanzhou, log_id = await _synced_unfolded(federation, monkeypatch, 12)
    real = state.apply_leaves
    calls = 0

    async def racing(conn: Any, log_id: int, *args: Any, **kw: Any) -> bool:
        # As if another process folded this chunk first: its cursor moves under this one.
        nonlocal calls
        calls += 1
        done = await real(conn, log_id, *args, **kw)
        if calls == 1:
            await conn.execute(update(LOGS).where(LOGS.c.id == log_id).values(projected_size=5))
        return done

    monkeypatch.setattr(projection, "apply_leaves", racing)
    done = await projection.fold(lanzhou.store, log_id, step=5)
    assert calls == 4  # the first chunk folded twice (rolled back once), then two more
    assert (done.leaves, done.projected) == (12, 12)
    assert await _counts(lanzhou, log_id) == (12, 12, 12, 0)
    async with lanzhou.store.engine.connect() as conn:
        assert await counts.stored(conn) == await counts.recount(conn)
    assert await projection.compare(lanzhou.store, log_id) is None


@pytest.mark.parametrize("cursor_moved", [True, False])
async def test_rows_inserted_first_by_another_writer_are_a_race_only_if_its_cursor_moved(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch, cursor_moved: bool
) -> None:
    # New entries' rows are plain inserts: one that exists already fails. That is another
    # process folding the same chunk (retried from the cursor it moved) or else an error.
    lanzhou, log_id = await _synced_unfolded(federation, monkeypatch, 12)
    real_apply, real_prior = state.apply_leaves, counts.prior_keys
    calls = 0

    async def stale_prior(conn: Any, log_id: int, entry_ids: Any) -> dict[str, Any]:
        return {}  # read before the other writer committed: no rows seen

    async def other_writer_first(conn: Any, log_id: int, applied: Any, **kw: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls > 1:
            return await real_apply(conn, log_id, applied, **kw)
        url = lanzhou.store.engine.url.render_as_string(hide_password=False)
        async with Store.opened(url) as elsewhere, elsewhere.begin() as other:  # another process
            await real_apply(other, log_id, applied, **kw)
            if cursor_moved:
                moved = len(applied)  # as a fold does: openings dropped, cursor moved
                await other.execute(
                    OPENINGS.delete().where(
                        and_(OPENINGS.c.log_id == log_id, OPENINGS.c.idx < moved)
                    )
                )
                await other.execute(
                    update(LOGS).where(LOGS.c.id == log_id).values(projected_size=moved)
                )
        monkeypatch.setattr(counts, "prior_keys", stale_prior)
        try:
            return await real_apply(conn, log_id, applied, **kw)
        finally:
            monkeypatch.setattr(counts, "prior_keys", real_prior)

    monkeypatch.setattr(projection, "apply_leaves", other_writer_first)
    if not cursor_moved:
        with pytest.raises(IntegrityError):
            await projection.fold(lanzhou.store, log_id, step=5)
        assert (await _counts(lanzhou, log_id))[1] == 0  # nothing folded, nothing moved
        return
    done = await projection.fold(lanzhou.store, log_id, step=5)
    assert calls == 3  # the colliding chunk rolled back, then [5, 10) and [10, 12)
    assert (done.leaves, done.projected) == (7, 12)
    assert await _counts(lanzhou, log_id) == (12, 12, 12, 0)
    async with lanzhou.store.engine.connect() as conn:
        assert await counts.stored(conn) == await counts.recount(conn)
    assert await projection.compare(lanzhou.store, log_id) is None


async def test_the_name_index_follows_adds_renames_and_removals_on_both_nodes(
    federation: FederationFactory,
) -> None:
    # New rows reach the name index from the writer, not a trigger (migration 0024): after
    # adds, a rename and removals, at the origin and its mirror, the index equals its rows.
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    first = adds(6)
    await jinan.publisher.append(first)
    renamed = copy.deepcopy(first[1].entry)
    renamed.subject_name = "黄河传媒有限公司"
    await jinan.publisher.append(
        [Event(first[1].entry_id, feeds.EVENT_TYPE_UPDATE, renamed)]
        + [Event(e.entry_id, feeds.EVENT_TYPE_REMOVE, e.entry, feeds.REMOVAL_REASON_EXPIRY)
           for e in first[2:4]]
        + adds(3, start=6)
    )  # fmt: skip
    await jinan.publisher.sign_checkpoint()
    sub = await _subscriber(lanzhou, jinan)
    await sub.sync(follow=False)
    for node in (jinan, lanzhou):
        found = await name_search.search_names(node.store, "黄河传媒")
        assert [m.name for m in found] == ["黄河传媒有限公司"]
        gone = {first[2].entry.subject_name, first[3].entry.subject_name}
        held = {m.name for m in await name_search.search_names(node.store, "示例商贸", limit=50)}
        assert first[1].entry.subject_name not in held and first[0].entry.subject_name in held
        # A holder keeps nothing of a removed entry but its id and why; the origin its history.
        assert bool(held & gone) == (node is jinan)
        if node.store.backend == "sqlite":  # the FTS5 index equals its content table
            async with node.store.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO list_state_names(list_state_names, rank) "
                        "VALUES ('integrity-check', 1)"
                    )
                )
