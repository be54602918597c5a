"""Stored data verifies itself (issue 13): every tampering with what a node stores, at the
origin or at a partner's mirror, is found by ``verify`` and named by its first bad index or
row; a clean node verifies; sync marks a feed tampered and exits 7."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, delete, select, update

from keys import SigningKey
from node.api import feeds
from node.cli.app import main
from node.feeds import merkle
from node.feeds.leaf import commitment, parse_leaf
from node.feeds.logstore import CHECKPOINTS, HASHES, LEAVES, LOGS
from node.feeds.publisher import Event
from node.feeds.state import DISCLOSURES, STATE
from node.feeds.subscriber import EVIDENCE, FeedUnavailable, Subscriber
from node.feeds.verify import Tampered
from node.runtime import Node
from node.storage.models import PeerRecord
from node.verification import check, runner
from node.verification.background import BackgroundVerifier
from node.verification.runner import (
    open_findings,
    targets,
    verification_rows,
    verify_log,
    verify_store,
)
from tests.conftest import FederationFactory
from tests.feedutil import adds, person_entry

PEERS = PeerRecord.__table__  # type: ignore[attr-defined]
SIZE = 45  # 40 organisations, 3 persons, an update of entry 0, a removal of entry 1


async def _sync(node: Node, origin: Node) -> None:
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    sub = await Subscriber.open(node.home.tls, node.store, peer)
    await sub.sync(follow=False)


async def _build(fed_factory: FederationFactory) -> tuple[Node, Node, list[Event]]:
    fed = await fed_factory(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    events = adds(40)
    events += [
        Event(f"p{i}", feeds.EVENT_TYPE_ADD, person_entry(i, name=f"李{i}")) for i in range(3)
    ]
    await jinan.publisher.append(events)
    changed = feeds.ListEntry()
    changed.CopyFrom(events[0].entry)
    changed.reason = "更正后的事由"
    await jinan.publisher.append([Event(events[0].entry_id, feeds.EVENT_TYPE_UPDATE, changed)])
    await jinan.publisher.append(
        [
            Event(
                events[1].entry_id,
                feeds.EVENT_TYPE_REMOVE,
                events[1].entry,
                feeds.REMOVAL_REASON_REPAIR,
            )
        ]
    )
    await jinan.publisher.sign_checkpoint()
    await _sync(lanzhou, jinan)
    return jinan, lanzhou, events


async def _log_id(node: Node, origin: Node) -> int:
    async with node.store.engine.connect() as conn:
        found = (
            await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == origin.home.identity.uri))
        ).scalar()
    assert found is not None
    return int(found)


async def _clean(fed_factory: FederationFactory, where: str) -> tuple[Node, int]:
    """The origin (*where* "origin") or its partner after :func:`_build`, whose whole pass
    finds nothing, and the id of its log of the origin's feed."""
    jinan, lanzhou, _ = await _build(fed_factory)
    node = jinan if where == "origin" else lanzhou
    log_id = await _log_id(node, jinan)
    assert (await verify_store(node.home, node.store)).findings == []
    return node, log_id


async def test_a_clean_origin_and_partner_verify(federation: FederationFactory) -> None:
    jinan, lanzhou, _ = await _build(federation)
    for node in (jinan, lanzhou):
        report = await verify_store(node.home, node.store)
        assert report.findings == [], [f.describe() for f in report.findings]
        checked = {r.kind: r for r in report.logs}
        assert checked["own feed" if node is jinan else "mirror"].leaves == SIZE
    report = await verify_store(jinan.home, jinan.store)
    own = report.logs[0]
    assert (own.kind, own.leaves, own.state_rows) == ("own feed", SIZE, SIZE - 2)
    assert own.hashes == merkle.stored_hash_count(SIZE) and own.checkpoints >= 1
    assert own.openings > 0  # the origin's openings of its persons, each against its leaf
    audit = next(r for r in report.logs if "audit" in r.label)  # checked as a log too
    assert audit.kind == "local log" and audit.unchecked == [] and not audit.findings
    mirror = next(
        r for r in (await verify_store(lanzhou.home, lanzhou.store)).logs if r.kind == "mirror"
    )
    assert mirror.kind == "mirror" and mirror.state_rows == SIZE - 2 and mirror.openings == 0


Tamper = Callable[[Node, int, list[Event]], Awaitable[None]]


async def _exec(node: Node, stmt: object) -> None:
    async with node.store.engine.begin() as conn:
        await conn.execute(stmt)  # type: ignore[call-overload]


async def _flip_leaf(node: Node, log_id: int, events: list[Event]) -> None:
    async with node.store.engine.begin() as conn:
        data = (
            await conn.execute(
                select(LEAVES.c.data).where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx == 5))
            )
        ).scalar_one()
        changed = bytes(data[:-1]) + bytes([data[-1] ^ 1])
        await conn.execute(
            update(LEAVES)
            .where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx == 5))
            .values(data=changed)
        )


async def _stored_hash(node: Node, log_id: int, events: list[Event]) -> None:
    idx = merkle.stored_hash_index(1, 2)  # the parent of leaves 4 and 5
    await _exec(
        node,
        update(HASHES)
        .where(and_(HASHES.c.log_id == log_id, HASHES.c.idx == idx))
        .values(hash=b"\x07" * 32),
    )


async def _uscc(node: Node, log_id: int, events: list[Event]) -> None:
    await _exec(
        node,
        update(STATE)
        .where(and_(STATE.c.log_id == log_id, STATE.c.entry_id == events[7].entry_id))
        .values(uscc="91370100MA9999999X"),
    )


async def _body(node: Node, log_id: int, events: list[Event]) -> None:
    where = and_(STATE.c.log_id == log_id, STATE.c.entry_id == events[8].entry_id)
    async with node.store.engine.begin() as conn:
        body = (await conn.execute(select(STATE.c.entry).where(where))).scalar_one()
        entry = feeds.ListEntry.FromString(body)
        entry.reason = "篡改"  # uscc and the other columns untouched: only the body changed
        await conn.execute(
            update(STATE).where(where).values(entry=entry.SerializeToString(deterministic=True))
        )


async def _delete_leaf(node: Node, log_id: int, events: list[Event]) -> None:
    await _exec(node, delete(LEAVES).where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx == 9)))


async def _delete_state_row(node: Node, log_id: int, events: list[Event]) -> None:
    await _exec(
        node,
        delete(STATE).where(
            and_(STATE.c.log_id == log_id, STATE.c.entry_id == events[10].entry_id)
        ),
    )


async def _truncate(node: Node, log_id: int, events: list[Event]) -> None:
    """Cut the log at 30 leaves, hashes and cursor made consistent with the cut."""
    async with node.store.engine.begin() as conn:
        await conn.execute(
            delete(LEAVES).where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx >= 30))
        )
        await conn.execute(
            delete(HASHES).where(
                and_(HASHES.c.log_id == log_id, HASHES.c.idx >= merkle.stored_hash_count(30))
            )
        )
        rows = await conn.execute(
            select(LEAVES.c.data).where(LEAVES.c.log_id == log_id).order_by(LEAVES.c.idx)
        )
        # From the leaves: a mirror keeps no interior hashes to read it from.
        root = merkle.root_from_leaf_hashes([merkle.leaf_hash(bytes(d)) for (d,) in rows])
        await conn.execute(update(LOGS).where(LOGS.c.id == log_id).values(size=30, root=root))


async def _bad_signature(node: Node, log_id: int, events: list[Event]) -> None:
    async with node.store.engine.begin() as conn:
        note = (
            await conn.execute(select(LOGS.c.checkpoint_note).where(LOGS.c.id == log_id))
        ).scalar_one()
        text, _, sig = bytes(note).rpartition(b"\n\n")
        dash, name, b64 = sig.rstrip(b"\n").split(b" ")
        blob = bytearray(base64.b64decode(b64))
        blob[-1] ^= 1
        forged = text + b"\n\n" + b" ".join([dash, name, base64.b64encode(bytes(blob))]) + b"\n"
        await conn.execute(update(LOGS).where(LOGS.c.id == log_id).values(checkpoint_note=forged))
        await conn.execute(
            update(CHECKPOINTS)
            .where(and_(CHECKPOINTS.c.log_id == log_id, CHECKPOINTS.c.note == note))
            .values(note=forged)
        )


async def _opening(node: Node, log_id: int, events: list[Event]) -> None:
    await _exec(
        node,
        update(DISCLOSURES)
        .where(and_(DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.idx == 41))
        .values(value="11010519491231003X"),
    )


PARENT_4_5 = merkle.stored_hash_index(1, 2)


@dataclass(frozen=True)
class Case:
    tamper: Tamper
    kind: str
    index: int | None
    row: str  # a part of the row the finding must name ("" for any)
    # At a partner a checkpoint may run ahead of the leaves (an interrupted catch-up): a cut
    # mirror shows by the state rows naming leaves it no longer has.
    partner_kind: str = ""
    # A mirror keeps no leaf hashes (only its frontier's, issue 17): a changed leaf shows
    # where the leaf no longer opens what its state row holds.
    partner_row: str = ""


CASES = {
    "leaf byte": Case(_flip_leaf, check.LEAF, 5, "log_leaves idx 5", check.BODY_KIND,
                      "list_state entry"),
    "stored hash": Case(_stored_hash, check.STORED_HASH, 5, f"log_hashes idx {PARENT_4_5}"),
    "list-state USCC": Case(_uscc, check.STATE_ROW, 7, "list_state entry"),
    "entry body": Case(_body, check.BODY_KIND, 8, "list_state entry"),
    "deleted leaf row": Case(_delete_leaf, check.MISSING, 9, "log_leaves idx 9"),
    "deleted state row": Case(_delete_state_row, check.STATE_MISSING, 10, "list_state entry"),
    "truncated log": Case(_truncate, check.TRUNCATED, 30, "", check.STATE_ORPHAN),
    "bad stored signature": Case(_bad_signature, check.CHECKPOINT_SIGNATURE, None, "size 45"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "where"),
    # A mirror stores no interior hash but its frontier's: test_a_mirror_keeps_only_its_frontier
    [
        (n, w)
        for n in sorted(CASES)
        for w in ("origin", "partner")
        if (n, w) != ("stored hash", "partner")
    ],
)
async def test_each_tampering_is_found_and_named(
    federation: FederationFactory, name: str, where: str
) -> None:
    case = CASES[name]
    jinan, lanzhou, events = await _build(federation)
    node = jinan if where == "origin" else lanzhou
    log_id = await _log_id(node, jinan)
    await case.tamper(node, log_id, events)
    report = await verify_store(node.home, node.store)
    tampered = next(r for r in report.logs if r.log_id == log_id)
    assert tampered.findings, f"{name} at the {where} went unnoticed"
    first = tampered.findings[0]
    kind = case.partner_kind if where == "partner" and case.partner_kind else case.kind
    assert first.kind == kind, [f.describe() for f in tampered.findings]
    assert first.index == case.index
    row = case.partner_row if where == "partner" and case.partner_row else case.row
    assert row in first.row
    if row == "list_state entry":
        named = {events[i].entry_id for i in (5, 7, 8, 10)}
        assert first.row.removeprefix("list_state entry ") in named
    assert tampered.first_bad_index == case.index
    # Only the tampered log fails; the finding is kept, the log marked, for `status`.
    assert all(not r.findings for r in report.logs if r.log_id != log_id)
    kept = await open_findings(node.store)
    assert [f.kind for f in kept[log_id]] == [f.kind for f in tampered.findings]
    async with node.store.engine.connect() as conn:
        state = (await conn.execute(select(LOGS.c.state).where(LOGS.c.id == log_id))).scalar()
    assert state == "tampered"
    # No data value appears in what is reported.
    text = " ".join(f.describe() for f in report.findings)
    assert "91370100MA9999999X" not in text and "李" not in text


async def test_an_edited_opening_at_the_origin_is_named(federation: FederationFactory) -> None:
    jinan, _, events = await _build(federation)
    log_id = await _log_id(jinan, jinan)
    await _opening(jinan, log_id, events)
    report = await verify_store(jinan.home, jinan.store)
    first = report.findings[0]
    assert (first.kind, first.index) == (check.OPENING, 41)
    assert "disclosures idx 41" in first.row and "11010519491231003X" not in first.describe()


async def _evidence(node: Node) -> list[dict[str, Any]]:
    async with node.store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(EVIDENCE))).mappings()]


async def _state(node: Node, origin: Node) -> str:
    async with node.store.engine.connect() as conn:
        found = (
            await conn.execute(
                select(LOGS.c.state).where(LOGS.c.origin == origin.home.identity.uri)
            )
        ).scalar()
    return str(found)


async def test_sync_over_a_tampered_mirror_keeps_evidence_and_exits_7(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    jinan, lanzhou, _ = await _build(federation)
    log_id = await _log_id(lanzhou, jinan)
    # The subtree hash of leaves 40..43 on the mirror's right edge: what the next append
    # builds on. The sync notices before it applies anything.
    edge = merkle.stored_hash_index(2, 10)
    await _exec(
        lanzhou,
        update(HASHES)
        .where(and_(HASHES.c.log_id == log_id, HASHES.c.idx == edge))
        .values(hash=b"\x01" * 32),
    )
    await jinan.publisher.append(adds(3, start=100))
    await jinan.publisher.sign_checkpoint()
    with pytest.raises(Tampered) as caught:
        await _sync(lanzhou, jinan)
    assert caught.value.stored
    [ev] = await _evidence(lanzhou)
    assert ev["kind"] == "stored-mismatch" and ev["log_id"] == log_id
    assert await _state(lanzhou, jinan) == "tampered"
    with pytest.raises(Tampered):  # again: still refused, one piece of evidence
        await _sync(lanzhou, jinan)
    assert len(await _evidence(lanzhou)) == 1
    report = await verify_store(lanzhou.home, lanzhou.store)
    first = report.findings[0]
    assert (first.kind, first.index, first.row) == (check.STORED_HASH, 43, f"log_hashes idx {edge}")
    if backend == "sqlite":  # the CLI reads the home's own database
        root = str(lanzhou.home.paths.root)
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["sync", "--home", root]) == 7
        assert "tampered" in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["verify", "--home", root, "--format", "json"]) == 7
        shown = json.loads(capsys.readouterr().out)
        mirror = next(log for log in shown["logs"] if log["kind"] == "mirror")
        assert not shown["ok"] and mirror["first_bad_index"] == 43
        assert mirror["findings"][0]["row"] == f"log_hashes idx {edge}"


async def test_a_leaf_failing_its_commitment_is_evidence_and_the_origin_stops_serving(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    events = adds(20)
    await jinan.publisher.append(events)
    await jinan.publisher.sign_checkpoint()
    # The origin's stored body of entry 3 is changed: what it sends no longer opens leaf 3.
    await _body_of(jinan, events[3].entry_id)
    with pytest.raises(Tampered) as caught:
        await _sync(lanzhou, jinan)
    assert caught.value.index == 3 and "commitment" in str(caught.value)
    [ev] = await _evidence(lanzhou)
    assert ev["kind"] == "tampered-leaf" and ev["earlier_note"]  # the checkpoint it failed
    assert parse_leaf(bytes(ev["proof"])).entry_id == events[3].entry_id  # the leaf received
    assert await _state(lanzhou, jinan) == "tampered"
    assert (await _tree_size(lanzhou, jinan)) == 0  # nothing of it applied

    # The origin's own background pass finds it, names it, and stops serving its feed.
    await jinan.verifier.run_pass()
    failure = jinan.verifier.own_failure()
    assert failure is not None and (failure.kind, failure.index) == (check.BODY_KIND, 3)
    with pytest.raises(FeedUnavailable, match="does not verify"):
        await _sync(lanzhou, jinan)
    rows = await verification_rows(jinan.store)
    own = next(r for r in rows if r.origin == jinan.home.identity.uri)
    assert own.findings and own.findings[0].index == 3 and own.verified_at is not None
    if backend == "sqlite":
        capsys.readouterr()
        root = str(jinan.home.paths.root)
        assert await asyncio.to_thread(main, ["status", "--home", root, "--timeout", "2"]) == 0
        out = capsys.readouterr().out
        assert "stored data does not verify" in out and "body" in out
        # A restart remembers the finding: the feed stays refused until a pass is clean.
        fresh = BackgroundVerifier(jinan.home, jinan.store, share=1.0, interval=0)
        await fresh.load()
        assert fresh.own_failure() is not None


async def _body_of(node: Node, entry_id: str) -> None:
    where = STATE.c.entry_id == entry_id
    async with node.store.engine.begin() as conn:
        body = (await conn.execute(select(STATE.c.entry).where(where))).scalar_one()
        entry = feeds.ListEntry.FromString(body)
        entry.reason = "篡改"
        await conn.execute(
            update(STATE).where(where).values(entry=entry.SerializeToString(deterministic=True))
        )


async def _tree_size(node: Node, origin: Node) -> int:
    async with node.store.engine.connect() as conn:
        found = (
            await conn.execute(select(LOGS.c.size).where(LOGS.c.origin == origin.home.identity.uri))
        ).scalar()
    return int(found or 0)


async def test_the_background_pass_resumes_where_it_stopped(federation: FederationFactory) -> None:
    fed = await federation(1, subscribe=False)
    jinan = fed["jinan"]
    await jinan.publisher.append(adds(50))
    await jinan.publisher.sign_checkpoint()
    targets_ = [t for t in await targets(jinan.home, jinan.store) if t.kind == "own feed"]
    seen: list[int] = []

    async def stop_after_first(position: int, frontier: merkle.Frontier, clean: bool) -> None:
        seen.append(position)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await verify_log(jinan.store, targets_[0], on_chunk=stop_after_first)
    # A whole pass from a saved mid-log position and tree gives the same result as one from 0.
    frontier = merkle.Frontier()
    for data in [bytes(d) for d in await _leaves(jinan, targets_[0].log_id, 0, 20)]:
        frontier.append(merkle.leaf_hash(data))
    resumed = await verify_log(jinan.store, targets_[0], resume=(20, frontier))
    assert resumed.findings == [] and resumed.leaves == 30
    wrong = merkle.Frontier()
    wrong.append(b"\x00" * 32)
    bad = await verify_log(jinan.store, targets_[0], resume=(1, wrong))
    # A wrong saved tree is not trusted blindly: its hashes meet the stored ones and differ.
    assert bad.findings and bad.findings[0].kind == check.STORED_HASH


async def _leaves(node: Node, log_id: int, a: int, b: int) -> list[bytes]:
    async with node.store.engine.connect() as conn:
        rows = await conn.execute(
            select(LEAVES.c.data)
            .where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx >= a, LEAVES.c.idx < b))
            .order_by(LEAVES.c.idx)
        )
        return [bytes(d) for (d,) in rows]


@settings(max_examples=200, deadline=None)
@given(salt=st.binary(min_size=16, max_size=16), field=st.text(max_size=80), value=st.text())
def test_the_fast_commitment_is_the_leaf_commitment(salt: bytes, field: str, value: str) -> None:
    assert check._commit(salt, field, value) == commitment(salt, field, value)
    assert check._commit(salt, "person_id", value) == commitment(salt, "person_id", value)


@pytest.mark.parametrize("name", ["leaf byte", "stored hash", "list-state USCC", "truncated log"])
async def test_a_parallel_pass_names_the_same_first_finding(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """``creditnode verify`` scans a large log in one worker process per core, each from the
    tree stored at its start: what it finds is what one scan finds."""
    monkeypatch.setattr(runner, "PARALLEL_MIN_LEAVES", 0)
    monkeypatch.setattr(runner, "CHUNK", 8)  # ranges [0, 24) and [24, 45) with two workers
    monkeypatch.setattr(runner, "_workers", lambda: 2)
    jinan, _, events = await _build(federation)
    log_id = await _log_id(jinan, jinan)
    clean = await verify_store(jinan.home, jinan.store, parallel=True)
    assert clean.findings == [] and clean.logs[0].leaves == SIZE
    case = CASES[name]
    await case.tamper(jinan, log_id, events)
    serial = await verify_store(jinan.home, jinan.store)
    parallel = await verify_store(jinan.home, jinan.store, parallel=True)
    first = parallel.findings[0]
    assert (first.kind, first.index, first.row) == (case.kind, case.index, serial.findings[0].row)


async def test_an_origin_failing_internally_is_not_reported_as_tampering(
    federation: FederationFactory,
) -> None:
    """Jinan's log is cut under it: a partner asking for the missing leaves gets the origin's
    internal error (unreachable, exit 4), keeps no evidence and does not mark the feed; jinan's
    own pass names the cut, and from then on it refuses to serve the feed at all."""
    fed = await federation(3, subscribe=False)
    jinan, taiyuan = fed["jinan"], fed["taiyuan"]
    events = adds(45)
    await jinan.publisher.append(events)
    await jinan.publisher.sign_checkpoint()
    await _truncate(jinan, await _log_id(jinan, jinan), events)
    with pytest.raises(FeedUnavailable):
        await _sync(taiyuan, jinan)
    assert await _evidence(taiyuan) == []
    assert await _state(taiyuan, jinan) == "ok"
    await jinan.verifier.run_pass()
    failure = jinan.verifier.own_failure()
    assert failure is not None and (failure.kind, failure.index) == (check.TRUNCATED, 30)
    with pytest.raises(FeedUnavailable, match="does not verify"):
        await _sync(taiyuan, jinan)
    assert await _evidence(taiyuan) == [] and await _state(taiyuan, jinan) == "ok"


async def test_sync_exits_7_for_a_checkpoint_under_a_wrong_key_and_4_for_an_origin_error(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI reads the home's own database")
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(5))
    await jinan.publisher.sign_checkpoint()
    root = str(lanzhou.home.paths.root)
    # Lanzhou holds another key for jinan than the one jinan signs with.
    other = SigningKey.generate(jinan.home.identity.uri).verifying_key.to_text()
    await _exec(lanzhou, update(PEERS).where(PEERS.c.name == "jinan").values(feed_key=other))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["sync", "--home", root]) == 7
    out = capsys.readouterr().out
    assert "checkpoint refused" in out and "unreachable" not in out
    # Not jinan's checkpoint: the feed is tampered, the note received kept as evidence.
    assert "tampered" in out and await _state(lanzhou, jinan) == "tampered"
    [refused] = await _evidence(lanzhou)
    assert refused["kind"] == "refused-checkpoint" and refused["later_note"]
    assert b"\n\n" in refused["later_note"] and refused["detail"].startswith("checkpoint refused")
    await _exec(
        lanzhou,
        update(PEERS)
        .where(PEERS.c.name == "jinan")
        .values(feed_key=jinan.home.signing_key.verifying_key.to_text()),
    )
    # Jinan fails internally on every feed call: that is not tampering.
    original = jinan.publisher.log.read_batches

    async def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("disk on fire")

    jinan.publisher.log.read_batches = broken  # type: ignore[method-assign]
    try:
        assert await asyncio.to_thread(main, ["sync", "--home", root]) == 4
    finally:
        jinan.publisher.log.read_batches = original  # type: ignore[method-assign]
    out = capsys.readouterr().out
    assert "unreachable" in out and "sync: " not in out  # nothing new held against jinan
    assert len(await _evidence(lanzhou)) == 1
    # The right key again: the sync verifies (exit 0), the mark stands and is shown until
    # the operator clears it (`evidence clear`, recorded in the audit log).
    assert await asyncio.to_thread(main, ["sync", "--home", root]) == 0
    assert "tampered" in capsys.readouterr().out
    assert (
        await asyncio.to_thread(main, ["evidence", "clear", "--home", root, "--peer", "jinan"]) == 2
    )
    assert (
        await asyncio.to_thread(
            main, ["evidence", "clear", "--home", root, "--peer", "jinan", "--confirm"]
        )
        == 0
    )
    assert "now ok, 1 evidence record(s) kept" in capsys.readouterr().out
    assert await _state(lanzhou, jinan) == "ok"
    assert (
        await asyncio.to_thread(
            main, ["evidence", "clear", "--home", root, "--peer", "jinan", "--confirm"]
        )
        == 2
    )  # nothing marked now
    assert await asyncio.to_thread(main, ["sync", "--home", root]) == 0
    assert "tampered" not in capsys.readouterr().out


async def test_a_mirror_keeps_only_its_frontier(federation: FederationFactory) -> None:
    """A mirror serves no proofs: it keeps the hashes on its frontier at each append (all
    that reopening it needs), and a changed one is still found and named."""
    jinan, lanzhou, _ = await _build(federation)
    mirror, origin = await _log_id(lanzhou, jinan), await _log_id(jinan, jinan)
    async with lanzhou.store.engine.connect() as conn:
        kept = {
            int(i): bytes(h)
            for i, h in await conn.execute(
                select(HASHES.c.idx, HASHES.c.hash).where(HASHES.c.log_id == mirror)
            )
        }
    async with jinan.store.engine.connect() as conn:
        every = {
            int(i): bytes(h)
            for i, h in await conn.execute(
                select(HASHES.c.idx, HASHES.c.hash).where(HASHES.c.log_id == origin)
            )
        }
    assert len(every) == merkle.stored_hash_count(SIZE)
    assert set(merkle.Frontier.indexes_for_size(SIZE)) <= kept.keys()
    assert len(kept) < len(every) // 4 and all(every[i] == h for i, h in kept.items())
    idx = min(kept)
    level, n = merkle.split_stored_hash_index(idx)
    await _exec(
        lanzhou,
        update(HASHES).where(and_(HASHES.c.log_id == mirror, HASHES.c.idx == idx))
        .values(hash=b"\x07" * 32),
    )  # fmt: skip
    report = await verify_store(lanzhou.home, lanzhou.store)
    first = next(r for r in report.logs if r.log_id == mirror).findings[0]
    assert (first.kind, first.index) == (check.STORED_HASH, ((n + 1) << level) - 1)
    assert f"log_hashes idx {idx}" in first.row
