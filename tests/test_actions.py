"""Responses, hits and lifted measures (issue 15): the records, the follow-up, and the loop on
real in-process nodes (respond at Lanzhou, verified at Jinan, a silent Taiyuan overdue, a
removal coming back as lifted, a tampered record refused)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime as dt
import json
import types
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import and_, select, update

from keys import SigningKey
from node.actions import pull as pull_module
from node.actions.followup import OwnEntry, Seen, follow_up
from node.actions.log import ActionsLog, actions_origin, derive, fold
from node.actions.pull import ActionsRefused, Held, pull_actions, read_held
from node.actions.record import (
    ACTIONS,
    NODE_REASONS,
    Hit,
    RecordError,
    Response,
    parse_record,
)
from node.actions.respond import respond
from node.actions.view import origin_view
from node.api import actions, actions_rpc, feeds, officers
from node.audit.filters import to_us as _us
from node.audit.query import Filter, find_entries
from node.audit.receipts import fetch_receipts
from node.audit.receipts import ours as _ours
from node.audit.receipts import theirs as _theirs
from node.audit.reconcile import reconcile
from node.cli import main
from node.feeds import merkle, note, projection
from node.feeds.logstore import LEAVES, LOGS, list_feeds
from node.feeds.publisher import Event
from node.local_federation import LocalFederation
from node.officers.check import Checker
from node.peers.gate import Caller, current_caller
from node.policy.agreement import PURPOSES
from node.runtime import Node
from node.services.actions import ActionsServicer
from node.verification.runner import verify_store
from tests.conftest import FederationFactory
from tests.feedutil import active_entries, adds, no_fold, wait_mirrored
from tests.test_audit_gaps import find_entries_of
from tests.test_identity_import import valid_usccs
from tests.test_officers import DEPT as OFFICER_DEPT
from tests.test_officers import (
    MATTER,
    _check,
    _listed,
    _officer,
    fed,  # noqa: F401 - the officers' federation fixture
)

JINAN = "creditnode://yellow-river/jinan"
DEPT = "11620100004299214Y"  # a valid 机构编制 USCC, Lanzhou
TODAY = dt.date(2026, 11, 30)


def response(**over: object) -> Response:
    base: dict[str, object] = {
        "origin": JINAN, "entry": "e1", "measure": "M01", "action": "applied",
        "department": DEPT, "date": "2026-11-30", "officer": "ab" * 16, "at_us": 1,
    }  # fmt: skip
    base.update(over)
    return Response(**base)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- records

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    action = draw(st.sampled_from(ACTIONS))
    reason = draw(st.sampled_from(["", "不属于本部门职责", "经营范围不涉及 procurement"]))
    if action == "not_applicable" and not reason:
        reason = "不适用"
    return Response(
        origin=draw(st.sampled_from([JINAN, "creditnode://yellow-river/taiyuan"])),
        entry=draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        measure=draw(st.from_regex(r"[A-Z][0-9A-Z._-]{0,10}", fullmatch=True)),
        action=action,
        department=draw(valid_usccs()),
        date=draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))).isoformat(),
        officer="" if action == "lifted" else draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        at_us=draw(st.integers(0, 2**63 - 1)),
        reason=reason,
    )


@st.composite
def hits(draw: st.DrawFn) -> Hit:
    return Hit(
        origin=JINAN,
        entry=draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        purpose=draw(st.sampled_from(sorted(PURPOSES))),
        matter=draw(st.sampled_from(["", "鲁采〔2026〕12号", "case 7"])),
        department=draw(st.sampled_from(["", DEPT])),
        at_us=draw(st.integers(0, 2**63 - 1)),
    )


@given(st.one_of(responses(), hits()))
def test_records_round_trip(record: Response | Hit) -> None:
    data = record.to_bytes()
    assert parse_record(data) == record
    assert parse_record(data).to_bytes() == data


@given(st.binary(max_size=300))
def test_parse_accepts_only_canonical_bytes(data: bytes) -> None:
    try:
        record = parse_record(data)
    except RecordError:
        return
    assert record.to_bytes() == data


@given(responses(), st.integers(0, 400), st.binary(min_size=1, max_size=3))
def test_an_edited_record_is_refused_or_canonical(r: Response, at: int, junk: bytes) -> None:
    data = r.to_bytes()
    at %= len(data) + 1
    edited = data[:at] + junk + data[at:]
    try:
        again = parse_record(edited)
    except RecordError:
        return
    assert again.to_bytes() == edited


@pytest.mark.parametrize(
    "data",
    [
        b'{"kind":"response"}',
        response().to_bytes().replace(b'"v":1', b'"v":1,"v":1'),
        response().to_bytes().replace(b'"at_us":1', b'"at_us":1.0'),
        response().to_bytes().replace(b'"at_us":1', b'"at_us":"1"'),
        response().to_bytes().replace(b'"v":1', b'"v":1,"x":""'),
        response().to_bytes().replace(b'"kind":"response"', b'"kind":"other"'),
        response().to_bytes().replace(b",", b", "),
        response().to_bytes()[:-1],
        b"[]",
        b"\xff",
        b"{" + b" " * 5000 + b"}",
    ],
)
def test_malformed_records_are_refused(data: bytes) -> None:
    with pytest.raises(RecordError):
        parse_record(data)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"action": "done"}, "action must be"),
        ({"action": "not_applicable"}, "needs the reason"),
        ({"reason": "身份证 110105194912310021"}, "person's ID"),
        ({"reason": "x" * 301}, "at most"),
        ({"department": "91370100MA3C5LLN2X"}, "not a valid USCC"),
        ({"department": ""}, "USCC"),
        ({"officer": "张三"}, "keyed id"),
        ({"officer": ""}, "names the officer"),
        ({"origin": "jinan"}, "node URI"),
        ({"entry": "a b"}, "entry id"),
        ({"measure": ""}, "measure code"),
        ({"date": "2026-02-30"}, "calendar date"),
        ({"at_us": -1}, "non-negative"),
    ],
)
def test_invalid_responses_name_the_field_not_the_value(
    over: dict[str, object], message: str
) -> None:
    with pytest.raises(RecordError, match=message) as info:
        response(**over)
    assert "110105194912310021" not in str(info.value)


def test_a_hit_needs_a_catalogue_purpose() -> None:
    with pytest.raises(RecordError, match="purpose"):
        Hit(origin=JINAN, entry="e1", purpose="curiosity", matter="", department="", at_us=0)


# ------------------------------------------------------------------------- follow-up


def test_follow_up_states_hits_and_overdue() -> None:
    entries = [
        OwnEntry("e1", "black", dt.date(2026, 11, 1), ("M01", "M02"), active=True),
        OwnEntry("e2", "watch", dt.date(2026, 11, 25), ("M01",), active=True),
    ]
    seen = [
        Seen("lanzhou", 0, "response", "e1", "M01", "pending", at_us=1),
        Seen("lanzhou", 1, "response", "e1", "M01", "applied", at_us=2),
        Seen("lanzhou", 2, "response", "e1", "M02", "not_applicable", reason="无", at_us=3),
        Seen("lanzhou", 3, "hit", "e1"),
        Seen("lanzhou", 4, "hit", "e1"),
        Seen("taiyuan", 0, "response", "e1", "M01", "pending", at_us=1),
        Seen("xian", 0, "response", "e1", "M01", "applied", at_us=1),  # not a partner
    ]
    rows = follow_up(
        entries, ["lanzhou", "taiyuan"], seen, today=TODAY, days={"watch": 30}, default_days=15
    )
    got = {(r.entry, r.measure, r.peer): r for r in rows}
    assert len(rows) == 6
    lz = got[("e1", "M01", "lanzhou")]
    assert (lz.action, lz.responded, lz.hits, lz.overdue) == ("applied", True, 2, False)
    assert lz.history == ["pending", "applied"]
    assert got[("e1", "M02", "lanzhou")].action == "not_applicable"
    ty = got[("e1", "M01", "taiyuan")]
    assert (ty.action, ty.responded, ty.overdue, ty.due) == ("pending", False, True, "2026-11-16")
    assert got[("e1", "M02", "taiyuan")].overdue  # nothing at all
    assert not got[("e2", "M01", "taiyuan")].overdue  # the watch list allows 30 days


def test_a_removed_entry_is_never_overdue() -> None:
    gone = OwnEntry("e1", "black", dt.date(2020, 1, 1), ("M01",), active=False)
    (row,) = follow_up([gone], ["lanzhou"], [], today=TODAY, days={}, default_days=0)
    assert not row.overdue and not row.responded


# --------------------------------------------------------------- the loop on live nodes


async def _publish(jinan: Node, *others: Node) -> Event:
    (event,) = adds(1)
    size = await jinan.publisher.append([event])
    for other in others:
        await wait_mirrored(other, jinan, size)
    return event


async def _respond(node: Node, entry: str, action: str, reason: str = "") -> int:
    return await respond(
        node.home, node.store, entry=f"jinan:{entry}", measure="M01", action=action,
        department=DEPT, officer="王五", reason=reason, date=TODAY,
    )  # fmt: skip


async def _view(
    jinan: Node, *, today: dt.date = TODAY, **kw: object
) -> dict[tuple[str, str], object]:
    rows = await origin_view(
        jinan.store, jinan.home.identity.uri, ["lanzhou", "taiyuan"], today=today,
        days={}, default_days=0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return {(r.peer, r.measure): r for r in rows}


async def _until_lifted(node: Node, timeout: float = 20.0) -> None:
    assert node.actions is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        records = [x.record for x in await node.actions.records()]
        if any(isinstance(r, Response) and r.action == "lifted" for r in records):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{node.name} did not acknowledge the removal")


async def test_respond_hit_overdue_and_lifted_reach_the_origin(
    federation: FederationFactory,
) -> None:
    nodes = await federation(3)
    jinan, lanzhou, taiyuan = nodes["jinan"], nodes["lanzhou"], nodes["taiyuan"]
    event = await _publish(jinan, lanzhou, taiyuan)
    await _respond(lanzhou, event.entry_id, "applied")
    # A Lanzhou officer's check matched the entry: the hit is recorded at Lanzhou.
    check = officers.CheckResponse(
        items=[officers.CheckItem(origin="jinan", entry_id=event.entry_id)]
    )
    holder = types.SimpleNamespace(home=lanzhou.home, actions=lanzhou.actions)
    await Checker._record_hits(holder, check, "procurement", "鲁采〔2026〕1号", DEPT)  # type: ignore[arg-type]

    assert await jinan.pull_actions() == {"lanzhou": "", "taiyuan": ""}
    view = await _view(jinan, entry=event.entry_id)
    lz, ty = view[("lanzhou", "M01")], view[("taiyuan", "M01")]
    assert (lz.action, lz.responded, lz.hits, lz.overdue) == ("applied", True, 1, False)  # type: ignore[attr-defined]
    # Listed in January, published now: the deadline (0 days here) runs from publication.
    assert ty.clock == "published" and ty.due > event.entry.listing_date  # type: ignore[attr-defined]
    due = dt.date.fromisoformat(ty.due)  # type: ignore[attr-defined]
    ty = (await _view(jinan, entry=event.entry_id, today=due))[("taiyuan", "M01")]
    assert (ty.action, ty.responded, ty.overdue) == ("none", False, False)  # type: ignore[attr-defined]
    ty = (await _view(jinan, entry=event.entry_id, today=due + dt.timedelta(days=1)))[
        ("taiyuan", "M01")
    ]
    assert (ty.action, ty.responded, ty.overdue) == ("none", False, True)  # type: ignore[attr-defined]

    # The origin removes the entry after repair: Lanzhou acknowledges the measure lifted.
    size = await jinan.publisher.append(
        [Event(event.entry_id, feeds.EVENT_TYPE_REMOVE, event.entry, feeds.REMOVAL_REASON_REPAIR)]
    )
    await wait_mirrored(lanzhou, jinan, size)
    assert (await active_entries(lanzhou, jinan))[event.entry_id] == feeds.ENTRY_STATUS_REMOVED
    assert lanzhou.actions is not None
    # The serving node acknowledges on its own (each second); once per applied measure.
    await _until_lifted(lanzhou)
    assert await lanzhou.actions.acknowledge_removals() == 0
    assert await jinan.pull_actions() == {"lanzhou": "", "taiyuan": ""}
    lz = (await _view(jinan, entry=event.entry_id))[("lanzhou", "M01")]
    assert (lz.action, lz.lifted, lz.history) == ("lifted", True, ["applied", "lifted"])  # type: ignore[attr-defined]
    assert not (await _view(jinan, entry=event.entry_id))[("taiyuan", "M01")].overdue  # type: ignore[attr-defined]
    # The actions log is a log like the others: `creditnode verify` re-checks it clean.
    await lanzhou.actions.sign_checkpoint()
    report = await verify_store(lanzhou.home, lanzhou.store)
    assert actions_origin(lanzhou.home.identity.uri, "jinan") in {r.origin for r in report.logs}
    assert report.findings == []


async def test_respond_refuses_what_is_not_held(federation: FederationFactory) -> None:
    nodes = await federation(2, subscribe=False)
    lanzhou = nodes["lanzhou"]
    with pytest.raises(RecordError, match="no such partner entry"):
        await _respond(lanzhou, "0" * 32, "applied")


async def _lanzhou_log_id(lanzhou: Node) -> int:
    async with lanzhou.store.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(LOGS.c.id).where(
                        LOGS.c.origin == actions_origin(lanzhou.home.identity.uri, "jinan")
                    )
                )
            ).scalar_one()
        )


async def test_a_tampered_response_is_refused_and_nothing_kept(
    federation: FederationFactory,
) -> None:
    nodes = await federation(2)
    jinan, lanzhou = nodes["jinan"], nodes["lanzhou"]
    event = await _publish(jinan, lanzhou)
    await _respond(lanzhou, event.entry_id, "not_applicable", "不属于本部门职责")
    # Someone at Lanzhou's database turns "not applicable" into "applied" after signing.
    log_id = await _lanzhou_log_id(lanzhou)
    async with lanzhou.store.begin() as conn:
        data = (
            await conn.execute(
                select(LEAVES.c.data).where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx == 0))
            )
        ).scalar_one()
        signed = parse_record(bytes(data))
        assert isinstance(signed, Response) and signed.action == "not_applicable"
        forged = dataclasses.replace(signed, action="applied")
        await conn.execute(
            update(LEAVES)
            .where(and_(LEAVES.c.log_id == log_id, LEAVES.c.idx == 0))
            .values(data=forged.to_bytes())
        )
    peer = await jinan.directory.lookup("lanzhou")
    assert peer is not None
    with pytest.raises(ActionsRefused, match="do not lead to the checkpoint"):
        await pull_actions(jinan.home.tls, jinan.store, peer, jinan.home.identity.uri)
    row = (await _view(jinan, entry=event.entry_id))[("lanzhou", "M01")]
    assert row.action == "none"  # type: ignore[attr-defined]
    held = await read_held(jinan.store, "lanzhou")
    assert held is not None and held.state == "tampered"
    # Sticky: the next pull is refused before anything is asked.
    with pytest.raises(ActionsRefused, match="marked tampered"):
        await pull_actions(jinan.home.tls, jinan.store, peer, jinan.home.identity.uri)


def _signed(key: SigningKey, origin: str, size: int, root: bytes, at: dt.datetime) -> bytes:
    return note.sign_checkpoint(note.timed_checkpoint(origin, size, root, at), key)


def test_a_replayed_or_forged_checkpoint_is_refused() -> None:
    uri = "creditnode://yellow-river/lanzhou"
    key = SigningKey.generate(uri)
    origin = actions_origin(uri, "jinan")
    leaves = [response(at_us=i).to_bytes() for i in range(3)]
    f2, f3 = merkle.Frontier(), merkle.Frontier()
    for d in leaves[:2]:
        f2.append(merkle.leaf_hash(d))
    for d in leaves:
        f3.append(merkle.leaf_hash(d))
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    old = _signed(key, origin, 2, f2.root(), t0)
    new = _signed(key, origin, 3, f3.root(), t0 + dt.timedelta(minutes=1))
    held = Held(3, f3, new, "ok")
    trust = key.verifying_key

    def answer(signed: bytes, from_size: int = 3) -> actions.GetActionsResponse:
        return actions.GetActionsResponse(
            checkpoint=feeds.SignedCheckpoint(note=signed, proof_from_size=from_size)
        )

    with pytest.raises(ActionsRefused, match="rolled back"):
        pull_module._verify_checkpoint(answer(old), trust, uri, held, "jinan")
    # The same size and root, signed again earlier than the one verified: a replay.
    replay = _signed(key, origin, 3, f3.root(), t0)
    with pytest.raises(ActionsRefused, match="earlier"):
        pull_module._verify_checkpoint(answer(replay), trust, uri, held, "jinan")
    # A checkpoint of the right tree by a key Lanzhou does not hold.
    forged = _signed(SigningKey.generate(uri), origin, 3, f3.root(), t0 + dt.timedelta(minutes=2))
    with pytest.raises(ActionsRefused, match="refused"):
        pull_module._verify_checkpoint(answer(forged), trust, uri, held, "jinan")
    # Lanzhou's feed checkpoint is not its actions checkpoint.
    other = _signed(key, uri, 3, f3.root(), t0 + dt.timedelta(minutes=2))
    with pytest.raises(ActionsRefused, match="refused"):
        pull_module._verify_checkpoint(answer(other), trust, uri, held, "jinan")
    # Lanzhou's log for Taiyuan is not the one it keeps for Jinan.
    for_taiyuan = _signed(
        key, actions_origin(uri, "taiyuan"), 3, f3.root(), t0 + dt.timedelta(minutes=2)
    )
    with pytest.raises(ActionsRefused, match="refused"):
        pull_module._verify_checkpoint(answer(for_taiyuan), trust, uri, held, "jinan")


async def test_cli_respond_and_actions(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI reads the database its home names (SQLite here)")
    nodes = await federation(2)
    jinan, lanzhou = nodes["jinan"], nodes["lanzhou"]
    event = await _publish(jinan, lanzhou)
    lz, jn = str(lanzhou.home.paths.root), str(jinan.home.paths.root)
    respond_args = ["respond", "--home", lz, "--entry", f"jinan:{event.entry_id}",
                    "--measure", "M01", "--department", DEPT, "--officer", "王五"]  # fmt: skip
    code = await asyncio.to_thread(main, [*respond_args, "--action", "not_applicable"])
    captured = capsys.readouterr()
    assert code == 2 and "not_applicable needs the reason" in captured.err
    assert "Traceback" not in captured.err
    code = await asyncio.to_thread(main, [*respond_args, "--action", "applied"])
    assert code == 0 and "recorded: actions leaf 0" in capsys.readouterr().out

    code = await asyncio.to_thread(main, ["actions", "--home", jn, "--pull", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["entry"], r["measure"], r["city"], r["action"], r["responded"]) for r in rows] == [
        (event.entry_id, "M01", "lanzhou", "applied", True)
    ]
    code = await asyncio.to_thread(main, ["actions", "--home", jn, "--overdue", "--format", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == []
    code = await asyncio.to_thread(main, ["actions", "--home", jn, "--peer", "nowhere"])
    assert code == 2 and "no enrolled peer named" in capsys.readouterr().err


async def test_an_officers_check_records_hits_that_reach_the_origin(
    fed: LocalFederation,  # noqa: F811 - the officers' fixture imported above
    tmp_path: Path,
) -> None:
    """A Jinan officer's check matches Lanzhou's and Taiyuan's entries: Jinan, where the check
    matched, records a hit on each; Lanzhou sees its own in its follow-up."""
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    uscc = await _listed(fed)
    cred, _ = await _officer(jinan, tmp_path)
    resp = await _check(jinan, cred, uscc=uscc)
    assert {i.origin for i in resp.items} == {"lanzhou", "taiyuan"}
    assert jinan.actions is not None
    got = [x.record for x in await jinan.actions.records()]
    assert sorted((h.origin, h.purpose, h.matter, h.department) for h in got) == [  # type: ignore[union-attr]
        (lanzhou.home.identity.uri, "licensing_review", MATTER, OFFICER_DEPT),
        (fed["taiyuan"].home.identity.uri, "licensing_review", MATTER, OFFICER_DEPT),
    ]
    assert all(isinstance(h, Hit) for h in got)
    assert (await lanzhou.pull_actions())["jinan"] == ""
    rows = await origin_view(
        lanzhou.store, lanzhou.home.identity.uri, ["jinan", "taiyuan"], today=TODAY, days={},
        default_days=15,
    )  # fmt: skip
    assert [(r.peer, r.measure, r.hits) for r in rows] == [
        ("jinan", "M01", 1), ("taiyuan", "M01", 0), ("jinan", "M07", 1), ("taiyuan", "M07", 0),
    ]  # fmt: skip


# ------------------------------------------------- one log per partner, served to it alone


def _hit(origin: str, entry: str, matter: str) -> Hit:
    return Hit(origin=origin, entry=entry, purpose="procurement", matter=matter,
               department=DEPT, at_us=1)  # fmt: skip


async def _get_actions(asker: Node, holder: Node) -> bytes:
    """The raw bytes of every GetActions answer *holder* gives *asker* (from nothing)."""
    peer = await asker.directory.lookup(holder.name)
    assert peer is not None
    got = b""
    async with peer.channel(asker.home.tls) as channel:
        resp = await actions_rpc.ActionsServiceStub(channel).GetActions(
            actions.GetActionsRequest(from_size=0, checkpoint_size=0), timeout=10
        )
        got += resp.SerializeToString()
    return got


async def _kept(node: Node, peer: str) -> set[tuple[str, str, str]]:
    async with node.store.engine.connect() as conn:
        rows = await conn.execute(
            select(pull_module.RECORDS.c.kind, pull_module.RECORDS.c.entry,
                   pull_module.RECORDS.c.matter).where(pull_module.RECORDS.c.peer == peer)
        )  # fmt: skip
        return {(str(k), str(e), str(m)) for k, e, m in rows}


async def test_each_partner_is_served_only_its_own_actions(
    federation: FederationFactory,
) -> None:
    nodes = await federation(3)
    jinan, lanzhou, taiyuan = nodes["jinan"], nodes["lanzhou"], nodes["taiyuan"]
    of_jinan = await _publish(jinan, lanzhou)
    (of_taiyuan,) = adds(1, start=5)
    await wait_mirrored(lanzhou, taiyuan, await taiyuan.publisher.append([of_taiyuan]))
    assert of_jinan.entry_id != of_taiyuan.entry_id
    await _respond(lanzhou, of_jinan.entry_id, "applied")
    await respond(
        lanzhou.home, lanzhou.store, entry=f"taiyuan:{of_taiyuan.entry_id}", measure="M01",
        action="not_applicable", department=DEPT, officer="王五", reason="不属于本部门职责",
        date=TODAY,
    )  # fmt: skip
    assert lanzhou.actions is not None
    jn_matter, ty_matter = "鲁采〔2026〕77号", "晋采〔2026〕88号"
    await lanzhou.actions.append(
        [
            _hit(jinan.home.identity.uri, of_jinan.entry_id, jn_matter),
            _hit(taiyuan.home.identity.uri, of_taiyuan.entry_id, ty_matter),
        ]
    )
    assert await lanzhou.actions.partners() == ["jinan", "taiyuan"]
    logged = await lanzhou.actions.records()
    assert {(x.partner, x.record.origin) for x in logged} == {
        ("jinan", jinan.home.identity.uri), ("taiyuan", taiyuan.home.identity.uri),
    }  # fmt: skip
    assert [x.idx for x in logged] == [0, 1, 0, 1]  # each log counts from 0
    # A log per partner is a side log: never listed as a feed, verified as a log.
    report = await verify_store(lanzhou.home, lanzhou.store)
    origins = {r.origin for r in report.logs}
    assert {actions_origin(lanzhou.home.identity.uri, p) for p in ("jinan", "taiyuan")} <= origins
    assert report.findings == []
    async with lanzhou.store.engine.connect() as conn:
        feeds_listed = {str(o) for (o,) in await conn.execute(select(LOGS.c.origin).where(
            list_feeds()))}  # fmt: skip
    assert not any("/actions" in o for o in feeds_listed)

    # What Taiyuan receives holds nothing of Jinan's entry, not even its matter.
    seen_by_taiyuan = await _get_actions(taiyuan, lanzhou)
    assert of_taiyuan.entry_id.encode() in seen_by_taiyuan
    assert of_jinan.entry_id.encode() not in seen_by_taiyuan
    assert jn_matter.encode() not in seen_by_taiyuan
    seen_by_jinan = await _get_actions(jinan, lanzhou)
    assert of_taiyuan.entry_id.encode() not in seen_by_jinan
    assert ty_matter.encode() not in seen_by_jinan

    start = dt.datetime.now(dt.UTC)  # after the raw calls above, which no side recorded as out
    assert (await taiyuan.pull_actions())["lanzhou"] == ""
    assert (await jinan.pull_actions())["lanzhou"] == ""
    assert await _kept(taiyuan, "lanzhou") == {
        ("response", of_taiyuan.entry_id, ""), ("hit", of_taiyuan.entry_id, ty_matter),
    }  # fmt: skip
    assert await _kept(jinan, "lanzhou") == {
        ("response", of_jinan.entry_id, ""), ("hit", of_jinan.entry_id, jn_matter),
    }  # fmt: skip
    # Jinan recorded nothing about Lanzhou: it serves the empty log, signed.
    assert (await lanzhou.pull_actions())["jinan"] == ""
    held = await read_held(lanzhou.store, "jinan")
    assert held is not None and (held.size, held.checkpoint_size, held.state) == (0, 0, "ok")
    # The border records GetActions as the puller does: a feed range; both sides agree.
    served = await find_entries_of(lanzhou, kind="feed_range")
    assert {e.peer for _, e in served if e.method.endswith("/GetActions")} >= {"jinan", "taiyuan"}
    pulled = await find_entries_of(taiyuan, kind="feed_range", peer="lanzhou")
    assert [e.method for _, e in pulled if e.direction == "out"] == [pull_module.GET_ACTIONS]
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    ours = await find_entries(taiyuan.store, taiyuan.home.identity.uri, Filter(peer="lanzhou"))
    theirs = await fetch_receipts(taiyuan.home, taiyuan.store, "lanzhou", start, end, 10)
    assert reconcile(_ours(ours), _theirs(theirs), start_us=_us(start), end_us=_us(end)) == []


class _Aborted(Exception):
    pass


class _Context:
    code: object = None

    async def abort(self, code: object, details: str) -> None:
        self.code = code
        raise _Aborted(details)


async def test_get_actions_without_a_peer_caller_is_refused(
    federation: FederationFactory,
) -> None:
    nodes = await federation(2, subscribe=False)
    lanzhou = nodes["lanzhou"]
    assert lanzhou.actions is not None
    servicer = ActionsServicer(lanzhou.actions)
    request = actions.GetActionsRequest()

    async def no_caller() -> object:
        ctx = _Context()
        with pytest.raises(_Aborted):
            await servicer.GetActions(request, ctx)  # type: ignore[arg-type]
        return ctx.code

    # Run in a fresh context: no caller was admitted by the gate.
    assert await asyncio.create_task(no_caller(), context=contextvars.Context()) == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    async def as_self() -> object:
        me = lanzhou.home.identity
        current_caller.set(Caller(identity=me, fingerprint="00", is_self=True))
        return await no_caller()

    assert await asyncio.create_task(as_self(), context=contextvars.Context()) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


def test_records_about_another_origin_are_a_protocol_violation() -> None:
    leaves = [response(origin="creditnode://yellow-river/taiyuan").to_bytes()]
    f = merkle.Frontier()
    f.append(merkle.leaf_hash(leaves[0]))
    resp = actions.GetActionsResponse(
        batch=feeds.LeafBatch(start=0, leaves=[feeds.FeedLeaf(entry=d) for d in leaves])
    )
    with pytest.raises(ActionsRefused, match="another node's entries"):
        pull_module._records(resp, merkle.Frontier(), f.root(), 1, JINAN)
    taiyuan = "creditnode://yellow-river/taiyuan"
    [(idx, got)] = pull_module._records(resp, merkle.Frontier(), f.root(), 1, taiyuan)
    assert (idx, got.origin) == (0, taiyuan)


# ------------------------------------------------------ suspended on objection, resumed


def _applied(officer: str = "ab" * 16) -> Response:
    return response(officer=officer)


def test_derive_suspends_resumes_and_lifts() -> None:
    key = (JINAN, "e1", "M01")
    kw = {"today": "2026-11-30", "at_us": 5}
    active, removed = feeds.ENTRY_STATUS_ACTIVE, feeds.ENTRY_STATUS_REMOVED
    (s,) = derive({key: _applied()}, {(JINAN, "e1"): (active, True)},
                  suspend_on_objection=True, **kw)  # type: ignore[arg-type]  # fmt: skip
    assert (s.action, s.officer, s.department, s.reason) == (
        "suspended_objection",
        "",
        DEPT,
        NODE_REASONS["suspended_objection"],
    )
    assert parse_record(s.to_bytes()) == s
    # Configured off: nothing suspended.
    assert not derive({key: _applied()}, {(JINAN, "e1"): (active, True)},
                      suspend_on_objection=False, **kw)  # type: ignore[arg-type]  # fmt: skip
    (r,) = derive({key: s}, {(JINAN, "e1"): (active, False)},
                  suspend_on_objection=True, **kw)  # type: ignore[arg-type]  # fmt: skip
    assert (r.action, r.reason) == ("applied", "objection resolved")
    # An officer's own suspension is the officer's to end; an unknown body decides nothing.
    officers_own = response(action="suspended_objection")
    assert not derive({key: officers_own}, {(JINAN, "e1"): (active, False)},
                      suspend_on_objection=True, **kw)  # type: ignore[arg-type]  # fmt: skip
    assert not derive({key: _applied()}, {(JINAN, "e1"): (active, None)},
                      suspend_on_objection=True, **kw)  # type: ignore[arg-type]  # fmt: skip
    (gone,) = derive({key: s}, {(JINAN, "e1"): (removed, True)},
                     suspend_on_objection=True, **kw)  # type: ignore[arg-type]  # fmt: skip
    assert gone.action == "lifted"
    # Folding: applied, suspended, lifted; a suspension of nothing applied is not tracked.
    state: dict[tuple[str, str, str], Response] = {}
    fold(state, response(action="suspended_objection"))
    assert state == {}
    for rec in (_applied(), s, r):
        fold(state, rec)
        assert state[key] == rec
    fold(state, dataclasses.replace(gone, action="lifted"))
    assert state == {}


def test_only_node_derived_records_may_name_no_officer() -> None:
    with pytest.raises(RecordError, match="names the officer"):
        response(officer="", action="suspended_objection", reason="my own words")
    with pytest.raises(RecordError, match="names the officer"):
        response(officer="", action="applied", reason="")
    ok = response(officer="", action="applied", reason=NODE_REASONS["applied"])
    assert parse_record(ok.to_bytes()) == ok


async def _until_action(node: Node, entry: str, action: str, count: int = 1) -> None:
    assert node.actions is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20.0
    while loop.time() < deadline:
        got = [
            x.record for x in await node.actions.records()
            if isinstance(x.record, Response) and x.record.entry == entry
            and x.record.action == action
        ]  # fmt: skip
        if len(got) >= count:
            assert len(got) == count
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{node.name} recorded no {action} on its own")


async def _objection_mark(jinan: Node, event: Event, under: bool, *holders: Node) -> None:
    entry = feeds.ListEntry()
    entry.CopyFrom(event.entry)
    entry.under_objection = under
    size = await jinan.publisher.append([Event(event.entry_id, feeds.EVENT_TYPE_UPDATE, entry)])
    for h in holders:
        await wait_mirrored(h, jinan, size)


async def test_measures_suspend_on_objection_and_resume_at_the_origin(
    federation: FederationFactory,
) -> None:
    nodes = await federation(3)
    jinan, lanzhou, taiyuan = nodes["jinan"], nodes["lanzhou"], nodes["taiyuan"]
    event = await _publish(jinan, lanzhou, taiyuan)
    await _respond(lanzhou, event.entry_id, "applied")
    await _objection_mark(jinan, event, True, lanzhou, taiyuan)
    await _until_action(lanzhou, event.entry_id, "suspended_objection")
    assert lanzhou.actions is not None
    assert await lanzhou.actions.acknowledge_removals() == 0  # idempotent
    assert (await jinan.pull_actions())["lanzhou"] == ""
    lz = (await _view(jinan, entry=event.entry_id))[("lanzhou", "M01")]
    assert lz.action == "suspended_objection"  # type: ignore[attr-defined]
    # Taiyuan applied nothing: it suspends nothing.
    assert taiyuan.actions is not None and await taiyuan.actions.records() == []

    # A restarted pass (a fresh log object over the same database) derives nothing again.
    again = ActionsLog(lanzhou.store, lanzhou.home.identity.uri, lanzhou.actions.signers)
    assert await again.acknowledge_removals() == 0

    await _objection_mark(jinan, event, False, lanzhou)
    await _until_action(lanzhou, event.entry_id, "applied", count=2)
    assert (await jinan.pull_actions())["lanzhou"] == ""
    lz = (await _view(jinan, entry=event.entry_id))[("lanzhou", "M01")]
    assert (lz.action, lz.history) == (  # type: ignore[attr-defined]
        "applied",
        ["applied", "suspended_objection", "applied"],
    )


async def test_a_mark_mirrored_but_not_yet_folded_is_derived_once_it_is(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The derivation reads the projection, which lags the mirrored log by a fold: a pass
    between the two must not make it stop looking."""
    nodes = await federation(2)
    jinan, lanzhou = nodes["jinan"], nodes["lanzhou"]
    event = await _publish(jinan, lanzhou)
    await _respond(lanzhou, event.entry_id, "applied")
    assert lanzhou.actions is not None
    await lanzhou.actions.acknowledge_removals()
    real_fold = projection.fold

    monkeypatch.setattr(projection, "fold", no_fold)  # the log grows, the projection waits
    marked = feeds.ListEntry()
    marked.CopyFrom(event.entry)
    marked.under_objection = True
    size = await jinan.publisher.append([Event(event.entry_id, feeds.EVENT_TYPE_UPDATE, marked)])
    mirror = and_(LOGS.c.origin == jinan.home.identity.uri, LOGS.c.peer.is_not(None))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20.0
    while True:
        async with lanzhou.store.engine.connect() as conn:
            row = (await conn.execute(select(LOGS.c.id, LOGS.c.size).where(mirror))).one()
        if row[1] >= size or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert row[1] >= size, "the mark never reached lanzhou's log"
    assert await lanzhou.actions.acknowledge_removals() == 0  # not in the projection yet
    monkeypatch.setattr(projection, "fold", real_fold)
    await real_fold(lanzhou.store, int(row[0]))
    await _until_action(lanzhou, event.entry_id, "suspended_objection")


async def test_evidence_clear_clears_a_tampered_actions_feed(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI reads the database its home names (SQLite here)")
    nodes = await federation(2)
    jinan, lanzhou = nodes["jinan"], nodes["lanzhou"]
    event = await _publish(jinan, lanzhou)
    await _respond(lanzhou, event.entry_id, "applied")
    origin = actions_origin(lanzhou.home.identity.uri, "jinan")
    await pull_module.mark_tampered(jinan.store, "lanzhou", origin, "a leaf did not verify")
    jn = str(jinan.home.paths.root)
    args = ["evidence", "clear", "--home", jn, "--peer", "lanzhou"]
    code = await asyncio.to_thread(main, args)
    err = capsys.readouterr().err
    assert code == 2 and "would clear actions feed tampered" in err and "--confirm" in err
    assert (await read_held(jinan.store, "lanzhou")).state == "tampered"  # type: ignore[union-attr]
    code = await asyncio.to_thread(main, [*args, "--confirm", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (doc["was"], doc["actions_was"], doc["actions_detail"]) == (
        None, "tampered", "a leaf did not verify"
    )  # fmt: skip
    assert (await read_held(jinan.store, "lanzhou")).state == "ok"  # type: ignore[union-attr]
    assert (await jinan.pull_actions())["lanzhou"] == ""
    assert await _kept(jinan, "lanzhou") == {("response", event.entry_id, "")}
    code = await asyncio.to_thread(main, [*args, "--confirm"])
    assert code == 2 and "nothing to clear" in capsys.readouterr().err
