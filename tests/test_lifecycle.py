"""Removed means gone from every other city, and a disclosure period ends on its day whether or
not the origin is up (issue 10, items 4 and 5), tested with real in-process nodes."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from node.api import feeds
from node.feeds.dates import shanghai_today
from node.feeds.expiry import expire_now, purge_mirrors
from node.feeds.logstore import LEAVES, LOGS
from node.feeds.publisher import Event
from node.feeds.state import DISCLOSURES, STATE, active
from node.feeds.subscriber import Subscriber
from node.identity.pseudonym import own_pseudonym
from node.identity.registry import entity_by_uscc
from node.runtime import Node
from node.verification.runner import verify_store
from tests.conftest import FederationFactory
from tests.feedutil import org_entry, person_entry
from tests.test_border import AGREEMENT, _everything, restart_with_agreement

CANARY_ID = "370102198001011237"


def _canary_org(i: int, tag: str) -> feeds.ListEntry:
    entry = org_entry(i)
    entry.subject_name = f"金丝雀{tag}有限公司"
    entry.uscc = f"91370100MA{uuid.uuid4().hex[:7].upper()}X"  # unique per entry
    entry.list_code = "TEST-BLACK"
    return entry


async def _sync(node: Node, origin: Node) -> Subscriber:
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    sub = await Subscriber.open(node.home.tls, node.store, peer)
    await sub.sync(follow=False)
    return sub


async def _publish(node: Node, events: list[Event]) -> None:
    await node.publisher.append(events)
    await node.publisher.sign_checkpoint()


def _files(node: Node) -> bytes:
    """Every byte of the node's SQLite files (database, WAL, shared memory)."""
    db = node.home.paths.root / "node.db"
    return b"".join(
        p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
    )


async def _with_agreement(fed_factory: FederationFactory) -> tuple[Node, Node, Node]:
    fed = await fed_factory(3, subscribe=False)
    jinan = await restart_with_agreement(fed, AGREEMENT)
    return jinan, fed["lanzhou"], fed["taiyuan"]


async def test_a_repair_leaves_nothing_of_the_entry_with_any_partner(
    federation: FederationFactory, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    jinan, lanzhou, taiyuan = await _with_agreement(federation)
    tag = uuid.uuid4().hex[:8]
    repaired, kept = _canary_org(1, tag), _canary_org(2, uuid.uuid4().hex[:8])
    person = person_entry(3, person_id=CANARY_ID, name="金丝雀修复")
    person.person_pseudonym = own_pseudonym(jinan.home.pseudonym_key, CANARY_ID)
    ids = [uuid.uuid4().hex for _ in range(3)]
    await _publish(
        jinan,
        [
            Event(ids[0], feeds.EVENT_TYPE_ADD, repaired),
            Event(ids[1], feeds.EVENT_TYPE_ADD, kept),
            Event(ids[2], feeds.EVENT_TYPE_ADD, person),
        ],
    )
    await _sync(lanzhou, jinan)
    # Before the repair lanzhou holds the body and the pseudonym its agreement opens.
    before = await _everything(lanzhou)
    assert repaired.subject_name in before and repaired.uscc in before
    assert person.person_pseudonym in before

    await _publish(
        jinan,
        [
            Event(ids[0], feeds.EVENT_TYPE_REMOVE, repaired, feeds.REMOVAL_REASON_REPAIR,
                  "2026-11-30", "济信修〔2026〕7号"),
            Event(ids[2], feeds.EVENT_TYPE_REMOVE, person, feeds.REMOVAL_REASON_REPAIR,
                  "2026-11-30", "济信修〔2026〕8号"),
        ],
    )  # fmt: skip
    await _sync(lanzhou, jinan)
    await _sync(taiyuan, jinan)  # joins after the repair

    for node in (lanzhou, taiyuan):
        everything = await _everything(node)
        secrets = (repaired.subject_name, repaired.uscc, person.person_pseudonym,
                   person.person_id_masked, repaired.decision_doc_no)  # fmt: skip
        for secret in secrets:
            assert secret not in everything, (node.name, secret)
        assert kept.subject_name in everything and kept.uscc in everything  # not vacuous
        if backend == "sqlite":
            files = _files(node)
            assert repaired.subject_name.encode() not in files, node.name
            assert repaired.uscc.encode() not in files, node.name
            assert kept.uscc.encode() in files
        # The whole log still verifies and is held: leaves without any readable data.
        async with node.store.engine.connect() as conn:
            log_id = (
                await conn.execute(
                    select(LOGS.c.id).where(LOGS.c.origin == jinan.home.identity.uri)
                )
            ).scalar_one()
            leaves = (
                await conn.execute(select(LEAVES.c.data).where(LEAVES.c.log_id == log_id))
            ).all()
            gone = (
                await conn.execute(
                    select(STATE.c.status, STATE.c.removal_reason, STATE.c.entry).where(
                        STATE.c.entry_id == ids[0]
                    )
                )
            ).one()
            openings = (
                await conn.execute(select(DISCLOSURES).where(DISCLOSURES.c.entry_id == ids[2]))
            ).all()
        assert len(leaves) == 5
        assert tuple(gone) == (feeds.ENTRY_STATUS_REMOVED, feeds.REMOVAL_REASON_REPAIR, b"")
        assert openings == []
        assert (await entity_by_uscc(node.store, node.name, repaired.uscc)).memberships == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert repaired.subject_name not in logged and repaired.uscc not in logged
    # The origin keeps its own history.
    async with jinan.store.engine.connect() as conn:
        history = (
            await conn.execute(
                select(STATE.c.uscc, STATE.c.status).where(STATE.c.entry_id == ids[0])
            )
        ).one()
    assert tuple(history) == (repaired.uscc, feeds.ENTRY_STATUS_REMOVED)


async def test_a_peer_never_receives_a_removed_entry_from_a_lookup(
    federation: FederationFactory,
) -> None:
    from node.api import query, query_rpc
    from tests.helpers import channel_to

    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    entry = _canary_org(1, uuid.uuid4().hex[:8])
    eid = uuid.uuid4().hex
    await _publish(jinan, [Event(eid, feeds.EVENT_TYPE_ADD, entry)])
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        stub = query_rpc.QueryServiceStub(ch)
        ask = query.LookupRequest(purpose="enforcement", uscc=entry.uscc)
        assert len((await stub.Lookup(ask)).answers) == 1
        await _publish(
            jinan,
            [Event(eid, feeds.EVENT_TYPE_REMOVE, entry, feeds.REMOVAL_REASON_CORRECTION,
                   "2026-11-30", "更正〔2026〕1号")],
        )  # fmt: skip
        assert len((await stub.Lookup(ask)).answers) == 0


async def test_expiry_with_the_origin_down(federation: FederationFactory, backend: str) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    today = shanghai_today()
    ending, lasting = _canary_org(1, uuid.uuid4().hex[:8]), _canary_org(2, uuid.uuid4().hex[:8])
    ending.disclosure_end = today.isoformat()  # published through today, expired tomorrow
    lasting.disclosure_end = (today + dt.timedelta(days=400)).isoformat()
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    await _publish(
        jinan,
        [Event(ids[0], feeds.EVENT_TYPE_ADD, ending), Event(ids[1], feeds.EVENT_TYPE_ADD, lasting)],
    )
    await _sync(lanzhou, jinan)
    await jinan.stop(0)  # the origin is down from here on

    async def active_ids(day: dt.date) -> set[str]:
        async with lanzhou.store.engine.connect() as conn:
            rows = await conn.execute(select(STATE.c.entry_id).where(active(day)))
            return {r for (r,) in rows}

    assert await active_ids(today) == set(ids)
    tomorrow = today + dt.timedelta(days=1)
    # Views stop showing it on its day, without the origin.
    assert await active_ids(tomorrow) == {ids[1]}
    # And at the holder's own 00:00 run its body is deleted, REMOVE or not.
    assert await purge_mirrors(lanzhou.store, tomorrow) == 1
    everything = await _everything(lanzhou)
    assert ending.subject_name not in everything and ending.uscc not in everything
    assert lasting.subject_name in everything
    if backend == "sqlite":
        assert ending.uscc.encode() not in _files(lanzhou)


async def test_the_origin_appends_expiry_removals_and_serves_no_expired_body(
    federation: FederationFactory,
) -> None:
    fed = await federation(3, subscribe=False)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    today = shanghai_today()
    entry = _canary_org(1, uuid.uuid4().hex[:8])
    entry.disclosure_end = (today - dt.timedelta(days=1)).isoformat()  # ended yesterday
    eid = uuid.uuid4().hex
    await _publish(jinan, [Event(eid, feeds.EVENT_TYPE_ADD, entry)])
    # A subscriber that syncs before the origin's expiry run gets the leaf, but no body.
    await _sync(lanzhou, jinan)
    assert entry.uscc not in await _everything(lanzhou)
    own, purged = await expire_now(jinan.publisher, today)
    assert (own, purged) == (1, 0)
    assert await expire_now(jinan.publisher, today) == (0, 0)  # once only
    await jinan.publisher.sign_checkpoint()
    await _sync(taiyuan, jinan)
    async with taiyuan.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.status, STATE.c.removal_reason).where(STATE.c.entry_id == eid)
            )
        ).one()
        leaves = (await conn.execute(select(LEAVES.c.data).order_by(LEAVES.c.idx))).scalars().all()
    assert tuple(row) == (feeds.ENTRY_STATUS_REMOVED, feeds.REMOVAL_REASON_EXPIRY)
    last = feeds.LeafEntry.FromString(leaves[-1])
    assert last.removal_reason == feeds.REMOVAL_REASON_EXPIRY
    assert last.removal_date == today.isoformat()


Op = tuple[str, int, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 4), st.integers(1, 900)),
        st.tuples(st.just("update"), st.integers(0, 4), st.integers(1, 900)),
        st.tuples(st.just("remove"), st.integers(0, 4), st.sampled_from([1, 3, 5, 6])),
        st.tuples(st.just("day"), st.integers(1, 400), st.just(0)),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # a new federation per example
)
@given(steps=ops)
async def test_holders_active_sets_follow_the_origin_and_keep_no_removed_body(
    federation: FederationFactory, steps: list[Op]
) -> None:
    fed = await federation(3, subscribe=False)
    jinan, early, late = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    today = shanghai_today()
    live: dict[int, tuple[str, feeds.ListEntry]] = {}
    gone: list[feeds.ListEntry] = []
    run = uuid.uuid4().hex[:6]
    for n, (op, k, arg) in enumerate(steps):
        if op == "add" and k not in live:
            entry = _canary_org(k, f"{run}{n:02d}")
            entry.disclosure_end = (today + dt.timedelta(days=arg)).isoformat()
            live[k] = (uuid.uuid4().hex, entry)
            await _publish(jinan, [Event(live[k][0], feeds.EVENT_TYPE_ADD, entry)])
        elif op == "update" and k in live:
            eid, old = live[k]
            entry = feeds.ListEntry()
            entry.CopyFrom(old)
            entry.reason = f"更新{n}"
            entry.disclosure_end = (today + dt.timedelta(days=arg)).isoformat()
            live[k] = (eid, entry)
            await _publish(jinan, [Event(eid, feeds.EVENT_TYPE_UPDATE, entry)])
        elif op == "remove" and k in live:
            eid, entry = live.pop(k)
            gone.append(entry)
            await _publish(
                jinan, [Event(eid, feeds.EVENT_TYPE_REMOVE, entry, arg, today.isoformat(), "文书")]
            )
        elif op == "day":
            today += dt.timedelta(days=k)
            await expire_now(jinan.publisher, today)
            await jinan.publisher.sign_checkpoint()
            await purge_mirrors(early.store, today)  # each holder's own 00:00 run
            for key, (_, entry) in list(live.items()):
                if entry.disclosure_end < today.isoformat():
                    gone.append(live.pop(key)[1])
        elif op == "sync":
            await _sync(early, jinan)
    await _sync(early, jinan)
    await _sync(late, jinan)

    async def active_ids(node: Node) -> set[str]:
        async with node.store.engine.connect() as conn:
            return set(
                (await conn.execute(select(STATE.c.entry_id).where(active(today)))).scalars()
            )

    expected = {eid for eid, _ in live.values()}
    assert await active_ids(jinan) == expected
    for holder in (early, late):
        assert await active_ids(holder) == expected, holder.name
        everything = await _everything(holder)
        for entry in gone:
            assert entry.uscc not in everything and entry.subject_name not in everything
        for _, entry in live.values():
            assert entry.uscc in everything
    # Whatever happened, everything each node stores still verifies (issue 13).
    for node in (jinan, early, late):
        report = await verify_store(node.home, node.store)
        assert report.findings == [], [f.describe() for f in report.findings]
