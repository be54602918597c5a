"""Feeds between real in-process nodes: sync, live tail, removals, crash safety, forks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from node.api import feeds
from node.feeds import logstore as logstore_module
from node.feeds import merkle, note
from node.feeds import projection as projection_module
from node.feeds import state as state_module
from node.feeds import subscriber as subscriber_module
from node.feeds.logstore import CHECKPOINTS, HASHES, LEAVES, LOGS
from node.feeds.note import open_checkpoint
from node.feeds.publisher import Event
from node.feeds.state import DISCLOSURES, STATE
from node.feeds.subscriber import EVIDENCE, ForkedPeer, Subscriber, SyncProgress
from node.feeds.verify import ForkError
from node.local_federation import LocalFederation
from node.runtime import Node
from node.services import feed as feed_service
from node.storage import Store
from tests.conftest import FederationFactory
from tests.feedutil import active_entries, adds, count_rows, wait_mirrored


async def test_live_sync_and_removal_reach_every_subscriber(federation: FederationFactory) -> None:
    fed = await federation(3)
    jinan = fed["jinan"]
    events = adds(300)
    size = await jinan.publisher.append(events)
    for other in ("lanzhou", "taiyuan"):
        await wait_mirrored(fed[other], jinan, size)
        state = await active_entries(fed[other], jinan)
        assert len(state) == 300
        assert set(state.values()) == {feeds.ENTRY_STATUS_ACTIVE}
    gone = events[7]
    size = await jinan.publisher.append(
        [Event(gone.entry_id, feeds.EVENT_TYPE_REMOVE, gone.entry, feeds.REMOVAL_REASON_REPAIR)]
    )
    for other in ("lanzhou", "taiyuan"):
        await wait_mirrored(fed[other], jinan, size)
        state = await active_entries(fed[other], jinan)
        assert state[gone.entry_id] == feeds.ENTRY_STATUS_REMOVED
        assert sum(s == feeds.ENTRY_STATUS_ACTIVE for s in state.values()) == 299
        # default deny: no personal value reached the subscriber
        assert await count_rows(fed[other], "disclosures") == 0
    assert await count_rows(jinan, "disclosures") > 0


async def _subscriber(node: Node, origin: Node) -> Subscriber:
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    return await Subscriber.open(node.home.tls, node.store, peer)


async def _tree(node: Node, origin: str) -> tuple[int, bytes, int, int]:
    """(size, root, leaf rows, active entries) of a log as *node* holds it."""
    async with node.store.engine.connect() as conn:
        row = (await conn.execute(select(LOGS).where(LOGS.c.origin == origin))).mappings().one()
        leaves = (
            await conn.execute(
                select(func.count()).select_from(LEAVES).where(LEAVES.c.log_id == row["id"])
            )
        ).scalar_one()
        active = await conn.execute(
            select(func.count())
            .select_from(STATE)
            .where(STATE.c.log_id == row["id"], STATE.c.status == feeds.ENTRY_STATUS_ACTIVE)
        )
    return row["size"], row["root"], leaves, active.scalar_one()


async def test_crash_mid_stream_and_mid_transaction_resume_exactly(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    events = adds(1000)
    await jinan.publisher.append(events)
    await jinan.publisher.append(
        [
            Event(
                events[3].entry_id,
                feeds.EVENT_TYPE_REMOVE,
                events[3].entry,
                feeds.REMOVAL_REASON_EXPIRY,
            )
        ]
    )
    await jinan.publisher.sign_checkpoint()
    monkeypatch.setattr(subscriber_module, "APPLY_EVERY", 100)

    # 1. The process dies between two applied groups (mid-stream).
    class Killed(Exception):
        pass

    died_at = []

    def die_after_300(p: SyncProgress) -> None:
        if p.size >= 300:
            died_at.append(p.size)
            raise Killed

    with pytest.raises(Killed):
        await (await _subscriber(lanzhou, jinan)).sync(follow=False, progress=die_after_300)
    assert (await _tree(lanzhou, jinan.home.identity.uri))[0] == died_at[0] == 512

    # 2. The process dies inside the log's transaction, after the leaves were written.
    real_record = logstore_module.record_checkpoint
    calls = {"n": 0}

    async def failing_record(conn: Any, log_id: int, size: int, signed: bytes) -> None:
        calls["n"] += 1
        await real_record(conn, log_id, size, signed)
        if calls["n"] == 2:
            raise Killed

    monkeypatch.setattr(subscriber_module, "record_checkpoint", failing_record)
    with pytest.raises(Killed):
        await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    size, _, leaves, _ = await _tree(lanzhou, jinan.home.identity.uri)
    assert size == leaves == 512 + 256  # the second group failed and left nothing behind
    monkeypatch.setattr(subscriber_module, "record_checkpoint", real_record)

    # 2b. It dies inside the projection's transaction: the log is durable, the list state
    # stays consistent as of the last folded index.
    real_apply = state_module.apply_leaves
    monkeypatch.setattr(projection_module, "FOLD_EVERY", 100)
    folds = {"n": 0}

    async def failing_apply(conn: Any, log_id: int, leaves: Any, *, keep_history: bool) -> bool:
        folds["n"] += 1
        removed = await real_apply(conn, log_id, leaves, keep_history=keep_history)
        if folds["n"] == 2:
            raise Killed
        return removed

    monkeypatch.setattr(projection_module, "apply_leaves", failing_apply)
    with pytest.raises(Killed):
        await (await _subscriber(lanzhou, jinan)).sync(follow=False, timeout=30)
    monkeypatch.setattr(projection_module, "apply_leaves", real_apply)
    async with lanzhou.store.engine.connect() as conn:
        log_size, projected = (
            await conn.execute(
                select(LOGS.c.size, LOGS.c.projected_size).where(
                    LOGS.c.origin == jinan.home.identity.uri
                )
            )
        ).one()
    assert projected == 768 + 100 < log_size  # one chunk folded, the next rolled back
    assert (await _tree(lanzhou, jinan.home.identity.uri))[3] == projected

    # 3. A replay of everything: resumes from the cursors; nothing lost or doubled.
    result = await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    assert result.start == log_size
    origin_tree = await _tree(jinan, jinan.home.identity.uri)
    assert await _tree(lanzhou, jinan.home.identity.uri) == origin_tree
    assert origin_tree[0] == 1001 and origin_tree[3] == 999
    again = await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    assert again.applied == 0
    assert await _tree(lanzhou, jinan.home.identity.uri) == origin_tree


async def _rewrite_history(
    fed: LocalFederation, db_urls: dict[str, str | None], new_events: int
) -> Node:
    """Stop jinan, replace its log by a different one signed with the same key, restart."""
    jinan = fed["jinan"]
    origin = jinan.home.identity.uri
    await jinan.stop(0)
    store = await Store.open(db_urls["jinan"] or jinan.home.database_url)
    async with store.engine.begin() as conn:
        log_id = (await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == origin))).scalar()
        for table in (LEAVES, HASHES, CHECKPOINTS, STATE, DISCLOSURES):
            await conn.execute(delete(table).where(table.c.log_id == log_id))
        await conn.execute(delete(LOGS).where(LOGS.c.id == log_id))
    await store.close()
    node = await fed.start_node("jinan", "370100")
    await node.publisher.append(adds(new_events, start=5000))
    await node.publisher.sign_checkpoint()
    await fed.enroll_pairwise()
    return node


@pytest.mark.parametrize(
    ("new_size", "kind"), [(12, "inconsistent"), (10, "equivocation"), (5, "rollback")]
)
async def test_forked_or_rolled_back_publisher_is_caught_with_evidence(
    federation: FederationFactory, new_size: int, kind: str
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(10))
    await jinan.publisher.sign_checkpoint()
    await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    before = await _tree(lanzhou, jinan.home.identity.uri)

    urls = {"jinan": fed.database_url("jinan")}
    jinan = await _rewrite_history(fed, urls, new_size)
    with pytest.raises(ForkError) as info:
        await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    assert info.value.kind == kind
    assert await _tree(lanzhou, jinan.home.identity.uri) == before  # nothing applied

    async with lanzhou.store.engine.connect() as conn:
        ev = (await conn.execute(select(EVIDENCE))).mappings().one()
        state = (
            await conn.execute(select(LOGS.c.state).where(LOGS.c.origin == jinan.home.identity.uri))
        ).scalar()
    assert ev["kind"] == kind and state == "forked"
    key = jinan.home.signing_key.verifying_key
    earlier = open_checkpoint(ev["earlier_note"], key, origin=jinan.home.identity.uri)
    later = open_checkpoint(ev["later_note"], key, origin=jinan.home.identity.uri)
    assert (earlier.size, later.size) == (10, new_size)  # both validly signed by jinan
    if kind == "inconsistent":
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(
                [ev["proof"][i : i + 32] for i in range(0, len(ev["proof"]), 32)],
                10,
                earlier.root,
                new_size,
                later.root,
            )
    with pytest.raises(ForkedPeer):  # and the feed stays stopped
        await (await _subscriber(lanzhou, jinan)).sync(follow=False)


async def test_stored_log_proves_inclusion_and_consistency(federation: FederationFactory) -> None:
    """Proofs built from the database's stored hashes verify against signed roots."""
    fed = await federation(1, subscribe=False)
    pub = fed["jinan"].publisher
    await pub.append(adds(37))
    first = note.stored_checkpoint(await pub.sign_checkpoint())
    await pub.append(adds(64, start=37))
    second = note.stored_checkpoint(await pub.sign_checkpoint())
    leaves = await pub.log.read_leaves(0, second.size)
    for n in (0, 1, 17, 36, 63, 100):
        proof = await pub.log.inclusion_proof(second.size, n)
        merkle.verify_inclusion(proof, second.size, second.root, n, merkle.leaf_hash(leaves[n]))
    proof = await pub.log.consistency_proof(first.size, second.size)
    merkle.verify_consistency(proof, first.size, first.root, second.size, second.root)
    assert merkle.root_from_leaf_hashes([merkle.leaf_hash(d) for d in leaves]) == second.root


def test_a_nul_in_any_text_field_refuses_the_leaf() -> None:
    """A NUL in a leaf's or body's text (a hostile origin's) is refused on every engine: it
    would otherwise stop a PostgreSQL mirror, whose text cannot hold one."""
    from node.feeds.leaf import LeafError, _strict

    for message, field_path in (
        (feeds.LeafEntry(entry_id="a\x00b", event=feeds.EVENT_TYPE_ADD), "entry_id"),
        (feeds.ListEntry(subject_name="x", measures=[feeds.Measure(code="M\x00")]), "measures"),
    ):
        data = message.SerializeToString()
        with pytest.raises(LeafError, match="NUL"):
            _strict(type(message)(), data, field_path)
    _strict(feeds.ListEntry(), feeds.ListEntry(subject_name="正常").SerializeToString(), "body")


async def test_sync_timeout_bounds_the_origins_silence_not_the_whole_stream(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first sync of millions of entries outlasts any fixed deadline: --timeout is how long
    # the origin may send nothing, before its first message or between two.
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(12))
    await jinan.publisher.sign_checkpoint()
    servicer = feed_service.FeedServicer
    real_checkpoint, real_openings = servicer._checkpoint, servicer._openings
    slowed = 0

    async def slow_checkpoint(self: Any, *args: Any) -> Any:
        nonlocal slowed
        slowed += 1
        await asyncio.sleep(1.2)
        return await real_checkpoint(self, *args)

    async def slow_openings(self: Any, *args: Any) -> Any:
        nonlocal slowed
        slowed += 1
        await asyncio.sleep(1.2)
        return await real_openings(self, *args)

    monkeypatch.setattr(servicer, "_checkpoint", slow_checkpoint)
    monkeypatch.setattr(servicer, "_openings", slow_openings)
    start = time.monotonic()
    done = await (await _subscriber(lanzhou, jinan)).sync(follow=False, timeout=2.0)
    assert done.size == 12 and slowed >= 2 and time.monotonic() - start > 2.0

    async def silent(self: Any, context: Any) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(servicer, "_refuse_tampered", silent)
    await jinan.publisher.append(adds(1, start=12))
    await jinan.publisher.sign_checkpoint()
    start = time.monotonic()
    with pytest.raises(subscriber_module.FeedUnavailable, match=r"nothing for 0\.5 s"):
        await (await _subscriber(lanzhou, jinan)).sync(follow=False, timeout=0.5)
    assert time.monotonic() - start < 30
