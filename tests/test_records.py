"""The report's data classes through a real federation (issue 14): an origin imports, a peer
mirrors and verifies, the state API shows what is active, expiry and removal end it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.record_csv import RecordCsv
from node.api import feeds, query, query_rpc
from node.feeds.dates import shanghai_today
from node.feeds.expiry import expire_now
from node.feeds.holdings import active_records
from node.feeds.importer import ImportRefused, Removal
from node.feeds.leaf import LeafError, build_leaf, open_leaf
from node.feeds.logstore import LEAVES
from node.feeds.records import find_records, import_records, remove_records
from node.feeds.state import STATE
from node.identity.pseudonym import own_pseudonym
from node.runtime import Node
from node.storage.models import QuarantineRecord
from node.verification.runner import verify_store
from tests.conftest import FederationFactory
from tests.helpers import channel_to
from tests.test_border import _everything
from tests.test_lifecycle import _sync
from tests.test_record_csv import GOOD, PERSON, USCC, _write

TODAY = shanghai_today()


def _rows(code: str, n: int = 1, **changes: str) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        row = {**GOOD[code], **changes}
        if code == "penalty":
            row["决定书文号"] = f"兰市监罚〔2026〕{i + 1}号"
        rows.append(row)
    return rows


async def _import(node: Node, tmp: Path, code: str, rows: list[dict[str, str]], **kw: object):  # type: ignore[no-untyped-def]
    d = tmp / node.name
    d.mkdir(exist_ok=True)
    return await import_records(
        node.publisher,
        _write(d, rows),
        code,
        pseudonym_key=node.home.pseudonym_key,
        **kw,  # type: ignore[arg-type]
    )


async def _clean(node: Node) -> None:
    report = await verify_store(node.home, node.store)
    assert report.findings == [], report.findings


async def test_records_travel_verify_and_end(
    federation: FederationFactory, tmp_path: Path, backend: str
) -> None:
    fed = await federation(3, subscribe=False)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    ends = (TODAY + dt.timedelta(days=10)).isoformat()
    s = await _import(
        lanzhou, tmp_path, "penalty", _rows("penalty", 2, 公示截止期=ends, 处罚有效期=ends)
    )
    assert (s.read, s.added, s.quarantined) == (2, 2, [])
    s = await _import(taiyuan, tmp_path, "evaluation", _rows("evaluation"))
    assert s.added == 1
    await _sync(jinan, lanzhou)
    await _sync(jinan, taiyuan)
    async with jinan.store.engine.connect() as conn:
        items = await active_records(conn, uscc=USCC, today=TODAY)
    assert sorted((i.peer, i.kind) for i in items) == [
        ("lanzhou", "penalty"), ("lanzhou", "penalty"), ("taiyuan", "evaluation"),
    ]  # fmt: skip
    for item in items:
        assert item.origin in (lanzhou.home.identity.uri, taiyuan.home.identity.uri)
        assert not item.own and item.log_state == "ok"
        async with jinan.store.engine.connect() as conn:
            data = (
                await conn.execute(
                    select(LEAVES.c.data).where(
                        (LEAVES.c.log_id == item.log_id) & (LEAVES.c.idx == item.leaf_index)
                    )
                )
            ).scalar_one()
        assert feeds.LeafEntry.FromString(data).entry_id == item.entry_id
    penalty = next(i.entry for i in items if i.kind == "penalty")
    assert penalty.penalty.fine_amount == "2" and penalty.authority_name == "兰州市市场监督管理局"
    await _clean(jinan)
    await _clean(lanzhou)
    # Asked directly, the origin answers with the record through its border, fields intact.
    async with channel_to(lanzhou, jinan.home.tls) as ch:
        ask = query.LookupRequest(purpose="enforcement", uscc=USCC)
        answers = (await query_rpc.QueryServiceStub(ch).Lookup(ask)).answers
    assert sorted(a.entry.penalty.fine_amount for a in answers) == ["2", "2"]
    assert {a.entry_id for a in answers} == {i.entry_id for i in items if i.kind == "penalty"}

    # The same file again changes nothing; the origin's own view has its records too.
    again = await _import(
        lanzhou, tmp_path, "penalty", _rows("penalty", 2, 公示截止期=ends, 处罚有效期=ends)
    )
    assert (again.unchanged, again.added, again.updated) == (2, 0, 0)
    async with lanzhou.store.engine.connect() as conn:
        own = await active_records(conn, uscc=USCC, today=TODAY)
    assert {i.own for i in own} == {True} and len(own) == 2

    # Expiry: gone from every active view the day after 公示截止期, origin up or not.
    after = TODAY + dt.timedelta(days=11)
    async with jinan.store.engine.connect() as conn:
        assert [i.kind for i in await active_records(conn, uscc=USCC, today=after)] == [
            "evaluation"
        ]
    # And the origin's own 00:00 run appends REMOVE(expiry) for both.
    assert await expire_now(lanzhou.publisher, after) == (2, 0)

    # Removal with a reason (a repair): the holder keeps nothing of the record.
    [held] = await find_records(taiyuan.publisher, "evaluation", uscc=USCC)
    with pytest.raises(ImportRefused, match="future"):
        later = Removal("repair", TODAY + dt.timedelta(days=3), "修复〔2026〕1号")
        await remove_records(taiyuan.publisher, "evaluation", [held], later)
    assert (
        await remove_records(
            taiyuan.publisher, "evaluation", [held], Removal("repair", TODAY, "修复〔2026〕1号")
        )
        == 1
    )
    await _sync(jinan, taiyuan)
    async with jinan.store.engine.connect() as conn:
        kinds = [i.kind for i in await active_records(conn, uscc=USCC, today=TODAY)]
        row = (
            await conn.execute(
                select(STATE.c.status, STATE.c.removal_reason, STATE.c.entry).where(
                    STATE.c.entry_id == held.entry_id
                )
            )
        ).one()
    assert kinds == ["penalty", "penalty"]
    assert tuple(row) == (feeds.ENTRY_STATUS_REMOVED, feeds.REMOVAL_REASON_REPAIR, b"")
    assert "太原市税务局" not in await _everything(jinan)
    await _clean(jinan)
    await _clean(taiyuan)


async def test_a_person_is_found_by_pseudonym_at_home_and_shared_with_no_one(
    federation: FederationFactory, tmp_path: Path
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    person = {"行政相对人名称": "王五", "行政相对人类别": "自然人", "行政相对人代码_1": "",
              "证件号码": PERSON}  # fmt: skip
    s = await _import(lanzhou, tmp_path, "penalty", _rows("penalty", 1, **person))
    assert s.added == 1
    pseudonym = own_pseudonym(lanzhou.home.pseudonym_key, PERSON)
    async with lanzhou.store.engine.connect() as conn:
        [mine] = await active_records(conn, pseudonym=pseudonym, today=TODAY, openings=True)
        [bare] = await active_records(conn, pseudonym=pseudonym, today=TODAY)
    assert mine.entry.person_id == PERSON and bare.entry.person_id == ""
    await _sync(jinan, lanzhou)
    everything = await _everything(jinan)
    assert PERSON not in everything and "王五" not in everything  # personal: default deny
    async with jinan.store.engine.connect() as conn:
        assert await active_records(conn, pseudonym=pseudonym, today=TODAY) == []
        n = len(
            (
                await conn.execute(select(STATE.c.entry_id).where(STATE.c.list_code == "penalty"))
            ).all()
        )
    assert n == 1  # the record is mirrored, its personal fields are not
    await _clean(jinan)


async def test_import_guards_and_quarantine(federation: FederationFactory, tmp_path: Path) -> None:
    fed = await federation(1, subscribe=False)
    node = fed["jinan"]
    rows = [
        *_rows("commitment"),
        {**GOOD["commitment"], "事项编号": "SX-2", "承诺状态": "作废"},
        {**GOOD["commitment"], "事项编号": "SX-3"},
    ]
    s = await _import(node, tmp_path, "commitment", rows)
    assert (s.read, s.added, len(s.quarantined)) == (3, 2, 1)
    assert s.quarantined[0].row == 3 and "承诺状态" in s.quarantined[0].reason
    async with node.store.engine.connect() as conn:
        q = (await conn.execute(select(QuarantineRecord.__table__))).mappings().all()  # type: ignore[attr-defined]
    assert [(r["row"], r["column"]) for r in q] == [(3, "承诺状态")]
    # A full export with a quarantined row, or that would drop a record without a stated
    # reason, is refused with the log untouched.
    size = node.publisher.log.frontier.size
    with pytest.raises(ImportRefused, match="quarantined"):
        await _import(node, tmp_path, "commitment", rows, full_export=True)
    with pytest.raises(ImportRefused, match="no removal is stated"):
        await _import(node, tmp_path, "commitment", rows[:1], full_export=True)
    assert node.publisher.log.frontier.size == size
    stated = Removal("correction", TODAY, "更正〔2026〕2号")
    plan = await _import(
        node, tmp_path, "commitment", rows[:1], full_export=True, removal=stated, dry_run=True
    )
    assert [c.action for c in plan.changes] == ["remove"] and plan.refused == ""
    assert node.publisher.log.frontier.size == size
    # A status change is an update of the same entry.
    done = await _import(node, tmp_path, "commitment",
                         [{**r, "承诺状态": "未履约"} for r in (rows[0], rows[2])])  # fmt: skip
    assert (done.updated, done.added) == (2, 0)
    async with node.store.engine.connect() as conn:
        items = await active_records(conn, uscc=USCC, today=TODAY)
    assert {i.entry.commitment.status for i in items} == {feeds.COMMITMENT_STATUS_BREACHED}
    await _clean(node)


def test_a_record_body_must_name_its_class(tmp_path: Path) -> None:
    [row] = RecordCsv.open(_write(tmp_path, _rows("licence")), "licence").rows()
    entry = row.entry  # type: ignore[union-attr]
    data, openings = build_leaf("creditnode://f/n", "e1", feeds.EVENT_TYPE_ADD, entry,
                                recorded_at_unix=0)  # fmt: skip
    assert open_leaf(data, openings.fields, openings.body).entry.licence.certificate_no
    for wrong in ("GP-BAN", "penalty"):
        bad = feeds.ListEntry()
        bad.CopyFrom(entry)
        bad.list_code = wrong
        data, openings = build_leaf("creditnode://f/n", "e1", feeds.EVENT_TYPE_ADD, bad,
                                    recorded_at_unix=0)  # fmt: skip
        with pytest.raises(LeafError, match="record"):
            open_leaf(data, openings.fields, openings.body)
    listing = feeds.ListEntry(list_code="licence", uscc=USCC)
    data, openings = build_leaf("creditnode://f/n", "e2", feeds.EVENT_TYPE_ADD, listing,
                                recorded_at_unix=0)  # fmt: skip
    with pytest.raises(LeafError, match="record class"):
        open_leaf(data, openings.fields, openings.body)


def test_cli_import_and_remove_a_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.cli.app import main
    from tests.test_import_guard import log_size, one_error, run

    monkeypatch.setenv("COLUMNS", "250")
    home = tmp_path / "lanzhou"
    assert main(["init", "--home", str(home), "--name", "lanzhou", "--region", "620100"]) == 0
    capsys.readouterr()
    bad = {**GOOD["penalty"], "决定书文号": "兰罚〔2026〕2号", "罚款金额（万元）": "两万"}
    path = _write(tmp_path, [GOOD["penalty"], bad])
    rc, out, err = run(capsys, "import", "--home", str(home), "--class", "penalty", str(path))
    assert rc == 2 and "行政处罚 (penalty, utf-8)" in out
    assert f"{path}:3: 罚款金额（万元）: is not a decimal amount" in err
    assert log_size(home) == 1
    rc, _, err = run(capsys, "import", "--home", str(home), "--class", "honour", str(path))
    assert rc == 2 and "--class must be one of penalty" in one_error(err)
    rc, _, err = run(capsys, "import", "--home", str(home), "--list", "X", "--class", "penalty",
                     str(path))  # fmt: skip
    assert rc == 2 and "exactly one of --list and --class" in one_error(err)
    rc, out, _ = run(capsys, "remove", "--home", str(home), "--class", "penalty", "--uscc", USCC,
                     "--reason", "revocation", "--date", TODAY.isoformat(),
                     "--doc", "撤〔2026〕1号", "--yes")  # fmt: skip
    assert rc == 0 and "removed 1" in out and log_size(home) == 2
