"""Objections across real in-process nodes: Taiyuan objects to a Jinan entry it holds; Jinan
marks the entry (an UPDATE every holder mirrors), then rejects or upholds it; Taiyuan sees
the outcome through ObjectionService.Status."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

import grpc
import pytest
from sqlalchemy import and_, select

from adapters.samples import generate_rows, write_csv
from keys import FederationCA, NodeIdentity, SigningKey
from node.api import feeds, objections_rpc
from node.api import objections as pb
from node.audit.filters import to_us as _us
from node.audit.query import Filter, find_entries
from node.audit.receipts import fetch_receipts
from node.audit.receipts import ours as _ours
from node.audit.receipts import theirs as _theirs
from node.audit.reconcile import reconcile
from node.cli.app import main
from node.errors import InputError
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.importer import OWN, find_held, import_list
from node.feeds.logstore import LEAVES, LOGS
from node.feeds.publisher import Event, Publisher
from node.feeds.records import find_records, import_records
from node.feeds.state import STATE
from node.home import set_setting
from node.identity.pseudonym_key import PseudonymKey
from node.local_federation import LocalFederation
from node.objections import origin as origin_module
from node.objections import store
from node.objections.core import Objection, ObjectionError, State
from node.objections.origin import read_correction, receive, resolve
from node.objections.raiser import raise_objection, refresh
from node.objections.wire import to_message
from node.runtime import Node
from node.storage import Store
from tests.conftest import FederationFactory
from tests.feedutil import org_entry, wait_mirrored
from tests.helpers import channel_to, forged_tls
from tests.test_record_csv import GOOD
from tests.test_record_csv import _write as _write_records

_FEDS: list[LocalFederation] = []
JINAN = "creditnode://yellow-river/jinan"
CATALOGUE = catalogue.load(
    Path(__file__).resolve().parent.parent / "deploy" / "lists.yellow-river.toml"
)
PROCUREMENT = CATALOGUE.resolve("procurement-serious")
DIGEST = hashlib.sha256(b"taiyuan's evidence").hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _entry_at(node: Node, origin: Node, entry_id: str) -> feeds.ListEntry:
    """*origin*'s entry as *node* holds it (its own, or its mirror)."""
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.entry)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(
                    and_(LOGS.c.origin == origin.home.identity.uri, STATE.c.entry_id == entry_id)
                )
            )
        ).first()
    assert row is not None
    return feeds.ListEntry.FromString(bytes(row.entry))


async def _setup(federation: FederationFactory) -> tuple[Node, Node, str]:
    fed = await federation(3)
    _FEDS.append(fed)
    jinan, taiyuan = fed["jinan"], fed["taiyuan"]
    entry_id = uuid.uuid4().hex
    size = await jinan.publisher.append([Event(entry_id, feeds.EVENT_TYPE_ADD, org_entry(1))])
    await jinan.publisher.sign_checkpoint()
    await wait_mirrored(taiyuan, jinan, size)
    return jinan, taiyuan, entry_id


def _objection(jinan: Node, entry_id: str, *, due: dt.date | None = None) -> Objection:
    return Objection.raise_(
        origin=jinan.home.identity.uri, entry_id=entry_id, grounds="content_error",
        evidence_sha256=DIGEST, due=due or dt.date.today() + dt.timedelta(days=15),
        raised_by="taiyuan", officer="ab" * 16, at=_now(),
    )  # fmt: skip


async def _raised(jinan: Node, taiyuan: Node, entry_id: str) -> Objection:
    got = await raise_objection(taiyuan.home, taiyuan.store, "jinan", _objection(jinan, entry_id))
    assert got.state == State.UNDER_OBJECTION
    # The UPDATE marking the entry reaches Taiyuan's mirror.
    await wait_mirrored(taiyuan, jinan, jinan.publisher.log.frontier.size)
    return got


async def test_raise_marks_entry_and_rejection_reaches_raiser(
    federation: FederationFactory,
) -> None:
    jinan, taiyuan, entry_id = await _setup(federation)
    before = jinan.publisher.log.frontier.size
    o = await _raised(jinan, taiyuan, entry_id)
    assert jinan.publisher.log.frontier.size == before + 1  # one UPDATE
    [at_jinan] = await store.find(jinan.store, side=store.RECEIVED)
    assert at_jinan.objection.id == o.id and at_jinan.objection.raised_by == "taiyuan"
    assert at_jinan.objection.evidence_sha256 == DIGEST
    assert (await _entry_at(jinan, jinan, entry_id)).under_objection
    mirrored = await _entry_at(taiyuan, jinan, entry_id)
    assert mirrored.under_objection and mirrored.reason == "拒不履行"
    [at_taiyuan] = await store.find(taiyuan.store, side=store.RAISED)
    assert at_taiyuan.objection == o

    # Resolved by Jinan's operator: a rejection with a reason and a document number.
    cat = catalogue.load(jinan.home.catalogue_path)
    done = await resolve(
        jinan.publisher, cat, o.id, action="reject", doc_no="济信复〔2026〕7号",
        reason="证据不足以推翻认定", now=_now(),
    )  # fmt: skip
    assert done.state == State.REJECTED
    await wait_mirrored(taiyuan, jinan, jinan.publisher.log.frontier.size)
    assert not (await _entry_at(taiyuan, jinan, entry_id)).under_objection

    updated, problems = await refresh(taiyuan.home, taiyuan.store)
    assert problems == []
    [seen] = updated
    assert seen.state == State.REJECTED
    assert seen.resolution is not None
    assert (seen.resolution.reason, seen.resolution.doc_no) == (
        "证据不足以推翻认定",
        "济信复〔2026〕7号",
    )
    assert [t.state for t in seen.history] == [State.RAISED, State.UNDER_OBJECTION, State.REJECTED]
    assert seen.on_time(dt.date.today()) is True
    [stored] = await store.find(taiyuan.store, side=store.RAISED)
    assert stored.objection == seen
    # Nothing more to fetch once resolved.
    assert await refresh(taiyuan.home, taiyuan.store) == ([], [])


async def test_upheld_correction_propagates_as_update(
    federation: FederationFactory, tmp_path: Path
) -> None:
    jinan, taiyuan, entry_id = await _setup(federation)
    o = await _raised(jinan, taiyuan, entry_id)
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps({"reason": "已履行部分义务（更正）"}, ensure_ascii=False))
    before = jinan.publisher.log.frontier.size
    done = await resolve(
        jinan.publisher, catalogue.load(jinan.home.catalogue_path), o.id, action="correct",
        doc_no="济信更〔2026〕3号", correction=read_correction(fix), now=_now(),
    )  # fmt: skip
    assert done.state == State.UPHELD and done.resolution is not None
    assert done.resolution.outcome == "correction"
    assert jinan.publisher.log.frontier.size == before + 1
    await wait_mirrored(taiyuan, jinan, jinan.publisher.log.frontier.size)
    mirrored = await _entry_at(taiyuan, jinan, entry_id)
    assert mirrored.reason == "已履行部分义务（更正）" and not mirrored.under_objection
    assert mirrored.uscc == org_entry(1).uscc  # the rest of the entry unchanged
    [seen], _ = await refresh(taiyuan.home, taiyuan.store)
    assert seen.state == State.UPHELD and seen.resolution is not None
    assert seen.resolution.doc_no == "济信更〔2026〕3号"


async def test_origin_refuses_unknown_entry_bad_input_and_strangers(
    federation: FederationFactory,
) -> None:
    jinan, taiyuan, entry_id = await _setup(federation)

    async def call(o: pb.Objection, tls: object = None) -> grpc.StatusCode:
        async with channel_to(jinan, tls or taiyuan.home.tls) as ch:  # type: ignore[arg-type]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await objections_rpc.ObjectionServiceStub(ch).Raise(
                    pb.RaiseRequest(objection=o), timeout=5
                )
        return info.value.code()

    assert await call(to_message(_objection(jinan, "no-such-entry"))) == grpc.StatusCode.NOT_FOUND
    bad = to_message(_objection(jinan, entry_id))
    bad.grounds = "\x1b[2J"
    assert await call(bad) == grpc.StatusCode.INVALID_ARGUMENT
    # A history that claims to be resolved already is not a new objection.
    acked = to_message(_objection(jinan, entry_id).acknowledge(_now()))
    assert await call(acked) == grpc.StatusCode.INVALID_ARGUMENT
    ca = FederationCA.load(_FEDS[-1].ca_dir)
    outsider = forged_tls(ca, NodeIdentity("yellow-river", "zhengzhou"))
    assert await call(to_message(_objection(jinan, entry_id)), outsider) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert await store.find(jinan.store) == []
    assert not (await _entry_at(jinan, jinan, entry_id)).under_objection
    # The raiser refuses locally an entry it does not hold.
    with pytest.raises(InputError, match="holds no active entry"):
        await raise_objection(
            taiyuan.home, taiyuan.store, "jinan", _objection(jinan, "no-such-entry")
        )


async def test_status_shows_only_the_callers_objections(federation: FederationFactory) -> None:
    jinan, taiyuan, entry_id = await _setup(federation)
    o = await _raised(jinan, taiyuan, entry_id)
    lanzhou = _FEDS[-1]["lanzhou"]
    async with channel_to(jinan, taiyuan.home.tls) as ch:
        mine = await objections_rpc.ObjectionServiceStub(ch).Status(pb.StatusRequest(), timeout=5)
    assert [m.id for m in mine.objections] == [o.id]
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        theirs = await objections_rpc.ObjectionServiceStub(ch).Status(
            pb.StatusRequest(ids=[o.id]), timeout=5
        )
    assert list(theirs.objections) == []


async def test_cli_raise_list_resolve_and_lists_shows_mark(
    federation: FederationFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # whole cells: no folding in the tables
    jinan, taiyuan, entry_id = await _setup(federation)
    for node in (jinan, taiyuan):  # the CLI opens the home's database: the test's one
        url = _FEDS[-1].database_url(node.name)
        if url:
            set_setting(node.home.paths.root, "database_url", url)
    ty, jn = str(taiyuan.home.paths.root), str(jinan.home.paths.root)
    evidence = tmp_path / "evidence.pdf"
    evidence.write_bytes(b"%PDF- a court ruling")
    due = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    raise_args = ["objection", "raise", "--home", ty, "--entry", f"jinan:{entry_id}",
                  "--grounds", "decision_revoked", "--evidence", str(evidence), "--due", due,
                  "--officer", "王五"]  # fmt: skip
    assert await asyncio.to_thread(main, raise_args) == 0
    assert "异议处理中" in capsys.readouterr().out
    await wait_mirrored(taiyuan, jinan, jinan.publisher.log.frontier.size)
    assert await asyncio.to_thread(main, ["lists", "--home", ty]) == 0
    assert "异议处理中" in capsys.readouterr().out

    assert await asyncio.to_thread(main, ["objection", "list", "--home", jn, "--format",
                                          "json"]) == 0  # fmt: skip
    listed = json.loads(capsys.readouterr().out)
    [received] = listed["objections"]
    assert listed["on_time"]["received"] == {
        "resolved": 0, "on_time": 0, "open": 1, "overdue": 0, "rate": None,
    }  # fmt: skip
    assert (received["side"], received["state"], received["raised_by"]) == (
        "received", "under_objection", "taiyuan",
    )  # fmt: skip
    assert received["evidence_sha256"] == hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert "王五" not in json.dumps(received, ensure_ascii=False)  # only the pseudonymous id

    # Hostile text: control characters in a reason are refused, one line, exit 2.
    resolving = ["objection", "resolve", "--home", jn, "--id", received["id"], "--doc-no", "D-1"]
    assert await asyncio.to_thread(main, [*resolving, "--reject", "--reason", "\x1b[2Jx"]) == 2
    assert await asyncio.to_thread(main, [*resolving, "--uphold", "--reject", "--reason", "r"]) == 2
    capsys.readouterr()
    assert await asyncio.to_thread(main, [*resolving, "--reject", "--reason", "[red]不成立"]) == 0
    capsys.readouterr()

    # Both sides see the state, its history and the on-time rate against the due date.
    for side, where in (("raised", ty), ("received", jn)):
        assert await asyncio.to_thread(main, ["objection", "list", "--home", where]) == 0
        shown = capsys.readouterr().out
        assert "异议不成立" in shown and "[red]不成立" in shown and "D-1" in shown
        assert "under_objection" in shown  # the history, not only the state
        who = "raised by this node" if side == "raised" else "raised to this node's entries"
        assert f"{who}: 1 resolved, 1 on time (on-time rate 100%); 0 open, 0 past due" in shown
        assert await asyncio.to_thread(main, ["objection", "list", "--home", where, "--format",
                                              "json", "--no-refresh"]) == 0  # fmt: skip
        listed = json.loads(capsys.readouterr().out)
        [one] = listed["objections"]
        assert one["side"] == side and one["state"] == "rejected" and one["on_time"] is True
        assert [s["state"] for s in one["history"]] == ["raised", "under_objection", "rejected"]
        assert listed["on_time"][side] == {
            "resolved": 1, "on_time": 1, "open": 0, "overdue": 0, "rate": 1.0,
        }  # fmt: skip
    # Resolving twice is refused.
    assert await asyncio.to_thread(main, [*resolving, "--reject", "--reason", "again"]) == 2


async def test_upheld_withdrawal_removes_an_imported_entry(db_url: str, tmp_path: Path) -> None:
    """At the origin alone: an imported entry, an objection received, withdrawn by a REMOVE
    naming the document; a re-import of the unchanged file keeps the mark meanwhile."""
    st = await Store.open(db_url)
    try:
        pub = await Publisher.open(st, JINAN, SigningKey.generate(JINAN))
        today = shanghai_today()
        spec = PROCUREMENT
        rows = list(
            generate_rows(2, seed=3, list_name=spec.name, list_type=spec.kind, region="370100",
                          today=today)
        )  # fmt: skip
        csv_path = tmp_path / "list.csv"
        write_csv(csv_path, rows)
        key = PseudonymKey.generate()
        await import_list(pub, csv_path, PROCUREMENT, pseudonym_key=key, today=today)
        [held, *_] = await find_held(pub, PROCUREMENT, uscc=rows[0]["统一社会信用代码"])
        o = Objection.raise_(
            origin=JINAN, entry_id=held.entry_id, grounds="content_error", evidence_sha256=DIGEST,
            due=today + dt.timedelta(days=5), raised_by="taiyuan", at=_now(),
        )  # fmt: skip
        await receive(pub, to_message(o), raised_by="taiyuan", now=_now())
        again = await import_list(pub, csv_path, PROCUREMENT, pseudonym_key=key, today=today)
        assert again.updated == 0
        async with st.engine.connect() as conn:
            assert (await store.own_entry(conn, pub, held.entry_id)).under_objection
        size = pub.log.frontier.size
        done = await resolve(
            pub, CATALOGUE, o.id, action="withdraw", doc_no="济财采撤〔2026〕2号", now=_now()
        )
        assert done.resolution is not None and done.resolution.outcome == "withdrawal"
        assert pub.log.frontier.size == size + 1
        async with st.engine.connect() as conn:
            data = (
                await conn.execute(
                    select(LEAVES.c.data).where(
                        LEAVES.c.log_id == pub.log.log_id, LEAVES.c.idx == size
                    )
                )
            ).scalar_one()
        removal = feeds.LeafEntry.FromString(data)
        assert removal.event == feeds.EVENT_TYPE_REMOVE and removal.entry_id == held.entry_id
        assert removal.removal_reason == feeds.REMOVAL_REASON_CORRECTION
        assert removal.removal_doc_no == "济财采撤〔2026〕2号"
        assert await find_held(pub, PROCUREMENT, entry_id=held.entry_id) == []
    finally:
        await st.close()


def _received(entry_id: str, today: dt.date, *, grounds: str = "content_error") -> Objection:
    return Objection.raise_(
        origin=JINAN, entry_id=entry_id, grounds=grounds, evidence_sha256=DIGEST,
        due=today + dt.timedelta(days=5), raised_by="taiyuan", at=_now(),
    )  # fmt: skip


async def _leaf_at(st: Store, pub: Publisher, idx: int) -> feeds.LeafEntry:
    async with st.engine.connect() as conn:
        data = (
            await conn.execute(
                select(LEAVES.c.data).where(and_(LEAVES.c.log_id == pub.log.log_id,
                                                 LEAVES.c.idx == idx))
            )
        ).scalar_one()  # fmt: skip
    return feeds.LeafEntry.FromString(data)


async def test_a_changed_reimport_keeps_the_mark_while_the_objection_is_open(
    db_url: str, tmp_path: Path
) -> None:
    st = await Store.open(db_url)
    try:
        pub = await Publisher.open(st, JINAN, SigningKey.generate(JINAN))
        today = shanghai_today()
        rows = list(
            generate_rows(2, seed=5, list_name=PROCUREMENT.name, list_type=PROCUREMENT.kind,
                          region="370100", today=today)
        )  # fmt: skip
        csv_path = tmp_path / "list.csv"
        write_csv(csv_path, rows)
        key = PseudonymKey.generate()
        await import_list(pub, csv_path, PROCUREMENT, pseudonym_key=key, today=today)
        [held] = await find_held(pub, PROCUREMENT, uscc=rows[0]["统一社会信用代码"])
        o = _received(held.entry_id, today)
        await receive(pub, to_message(o), raised_by="taiyuan", now=_now())

        # The origin's file changes the row meanwhile: the UPDATE carries the new content
        # and keeps the mark, since the objection is still open.
        rows[0]["列入原因"] = "提供虚假材料（已补正）"
        write_csv(csv_path, rows)
        changed = await import_list(pub, csv_path, PROCUREMENT, pseudonym_key=key, today=today)
        assert changed.updated == 1
        async with st.engine.connect() as conn:
            entry = await store.own_entry(conn, pub, held.entry_id)
        assert entry.under_objection and entry.reason == "提供虚假材料（已补正）"
        # The same file again is unchanged: the mark is not part of the row's content.
        again = await import_list(pub, csv_path, PROCUREMENT, pseudonym_key=key, today=today)
        assert (again.updated, again.added) == (0, 0)

        # Once resolved, the mark is cleared, and a later changed import does not bring it back.
        await resolve(pub, CATALOGUE, o.id, action="reject", doc_no="D-9", reason="不成立",
                      now=_now())  # fmt: skip
        rows[0]["列入原因"] = "提供虚假材料（再次更正）"
        write_csv(csv_path, rows)
        assert (await import_list(pub, csv_path, PROCUREMENT, pseudonym_key=key,
                                  today=today)).updated == 1  # fmt: skip
        async with st.engine.connect() as conn:
            entry = await store.own_entry(conn, pub, held.entry_id)
        assert not entry.under_objection and entry.reason == "提供虚假材料（再次更正）"
    finally:
        await st.close()


async def test_withdrawal_of_any_own_entry_is_one_transaction(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry published otherwise than by a list import is withdrawn too; if the objection's
    resolution cannot be stored (resolved meanwhile by another command), no REMOVE is."""
    st = await Store.open(db_url)
    try:
        pub = await Publisher.open(st, JINAN, SigningKey.generate(JINAN))
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        await pub.append([Event(first, feeds.EVENT_TYPE_ADD, org_entry(1)),
                          Event(second, feeds.EVENT_TYPE_ADD, org_entry(2))])  # fmt: skip
        await pub.sign_checkpoint()
        today = shanghai_today()
        a = _received(first, today)
        b = _received(second, today, grounds="decision_revoked")
        c = _received(second, today)  # a second objection to the same entry
        for o in (a, b, c):
            await receive(pub, to_message(o), raised_by="taiyuan", now=_now())

        # Another operator rejects `a` between our read and our write.
        real = origin_module._withdrawal

        async def racing(*args: object, **kw: object) -> Event:
            event = await real(*args, **kw)  # type: ignore[arg-type]
            [held] = await store.find(st, ids=[a.id])
            other = held.objection.reject(_now(), reason="另案处理", doc_no="D-0")
            async with st.begin() as conn:
                await store.save(conn, other, store.RECEIVED)
            return event

        monkeypatch.setattr(origin_module, "_withdrawal", racing)
        size = pub.log.frontier.size
        with pytest.raises(InputError, match="resolved meanwhile"):
            await resolve(pub, CATALOGUE, a.id, action="withdraw", doc_no="D-1", now=_now())
        assert pub.log.frontier.size == size  # no REMOVE
        async with st.engine.connect() as conn:
            assert (await store.own_entry(conn, pub, first)).under_objection  # still active
            leaves = (
                await conn.execute(select(LEAVES.c.idx).where(LEAVES.c.log_id == pub.log.log_id))
            ).all()
        assert len(leaves) == size
        [kept] = await store.find(st, ids=[a.id])
        assert kept.objection.state == State.REJECTED  # the other command's, untouched
        monkeypatch.undo()

        done = await resolve(pub, CATALOGUE, b.id, action="withdraw", doc_no="D-2", now=_now())
        assert done.resolution is not None and done.resolution.outcome == "withdrawal"
        assert pub.log.frontier.size == size + 1
        removal = await _leaf_at(st, pub, size)
        assert (removal.event, removal.entry_id) == (feeds.EVENT_TYPE_REMOVE, second)
        assert removal.removal_reason == feeds.REMOVAL_REASON_REVOCATION  # from the grounds
        assert removal.removal_doc_no == "D-2"
        [stored] = await store.find(st, ids=[b.id])
        assert stored.objection == done
        async with st.engine.connect() as conn:
            with pytest.raises(ObjectionError):
                await store.own_entry(conn, pub, second)
        # Resolving it again is refused, and publishes nothing.
        with pytest.raises(InputError, match="upheld already"):
            await resolve(pub, CATALOGUE, b.id, action="withdraw", doc_no="D-3", now=_now())
        # The other objection to the withdrawn entry: no correction of an entry gone, but a
        # rejection is recorded (no mark left to clear, nothing published).
        with pytest.raises(InputError, match="no longer active"):
            await resolve(pub, CATALOGUE, c.id, action="correct", doc_no="D-4",
                          correction=feeds.ListEntry(reason="x"), now=_now())  # fmt: skip
        rejected = await resolve(pub, CATALOGUE, c.id, action="reject", doc_no="D-4",
                                 reason="已撤销，无需处理", now=_now())  # fmt: skip
        assert rejected.state == State.REJECTED
        assert pub.log.frontier.size == size + 1
    finally:
        await st.close()


async def test_withdrawal_of_a_report_record(db_url: str, tmp_path: Path) -> None:
    st = await Store.open(db_url)
    try:
        pub = await Publisher.open(st, JINAN, SigningKey.generate(JINAN))
        await import_records(pub, _write_records(tmp_path, [GOOD["penalty"]]), "penalty",
                             pseudonym_key=None)  # fmt: skip
        [held] = await find_records(pub, "penalty", uscc=GOOD["penalty"]["行政相对人代码_1"])
        o = _received(held.entry_id, shanghai_today())
        await receive(pub, to_message(o), raised_by="taiyuan", now=_now())
        size = pub.log.frontier.size
        await resolve(pub, CATALOGUE, o.id, action="withdraw", doc_no="D-5", now=_now())
        removal = await _leaf_at(st, pub, size)
        assert (removal.event, removal.list_code) == (feeds.EVENT_TYPE_REMOVE, "penalty")
        assert await find_records(pub, "penalty", entry_id=held.entry_id) == []
        async with st.engine.connect() as conn:
            active = (
                await conn.execute(select(OWN.c.active).where(OWN.c.entry_id == held.entry_id))
            ).scalar_one()
        assert not active  # a re-import adds it again, as a new record
    finally:
        await st.close()


async def test_raise_and_status_are_audited_on_both_sides(federation: FederationFactory) -> None:
    jinan, taiyuan, entry_id = await _setup(federation)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    o = await _raised(jinan, taiyuan, entry_id)
    await resolve(jinan.publisher, CATALOGUE, o.id, action="reject", doc_no="D-1",
                  reason="不成立", now=_now())  # fmt: skip
    [seen], _ = await refresh(taiyuan.home, taiyuan.store)
    assert seen.state == State.REJECTED
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    ours = await find_entries(taiyuan.store, taiyuan.home.identity.uri, Filter(peer="jinan"))
    asked = [e for _, e in ours if e.kind == "objection"]
    assert [(e.direction, e.method.rsplit("/", 1)[-1], e.outcome) for e in asked] == [
        ("out", "Raise", "received"), ("out", "Status", "received"),
    ]  # fmt: skip
    assert asked[0].officer == o.officer  # the raising officer's pseudonymous id
    theirs = await fetch_receipts(taiyuan.home, taiyuan.store, "jinan", start, end, 10)
    answered = {r.exchange: r for r in theirs if r.kind == "objection"}
    assert {e.exchange for e in asked} <= answered.keys()
    for e in asked:
        assert answered[e.exchange].response_sha256 == e.response  # the same answer both sides
    # Read before the receipts were fetched: that call is an exchange of its own. Only the
    # objection exchanges: jinan's follower, refused at taiyuan's gate (taiyuan does not enrol
    # jinan here), is a refusal recorded at taiyuan alone, whatever the objection calls did.
    mine = [(i, e) for i, e in ours if e.kind == "objection"]
    gaps = reconcile(
        _ours(mine), _theirs([r for r in theirs if r.kind == "objection"]),
        start_us=_us(start), end_us=_us(end),
    )  # fmt: skip
    assert gaps == []
