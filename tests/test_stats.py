"""Statistics (issue 15): the pure count agrees with the events it is given under any sequence
of them; the importer counts failed and lenient USCCs; on a real node home (SQLite and
PostgreSQL) ``creditnode stats`` counts what the records hold and signs it, and the signed
file verifies offline and fails on any changed byte."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from adapters.samples import generate_rows, write_csv
from keys import SigningKey
from node.cli.app import main
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.importer import IMPORTS, import_list
from node.feeds.publisher import Publisher
from node.home import load_home
from node.identity.codes import uscc_check_char
from node.identity.pseudonym_key import PseudonymKey
from node.keys.ceremony import root_init
from node.objections.core import Objection
from node.objections.store import RECEIVED, save
from node.peers.enrollment import export_bundle
from node.stats import count
from node.stats.collect import ACTION_RECORDS
from node.stats.count import (
    ActionEvent,
    Events,
    FeedEvent,
    ImportEvent,
    ObjectionEvent,
    Period,
    StatsError,
    check_no_personal,
    tally,
)
from node.stats.signed import StatsVerificationError, verify_file
from node.storage import Store
from tests.conftest import DbUrlFactory

CATALOGUE = catalogue.load(
    Path(__file__).resolve().parent.parent / "deploy" / "lists.yellow-river.toml"
)
TAX = CATALOGUE.resolve("tax-major")
DEPARTMENT = "11370100004299214Y"  # shape only; the records table stores what was verified

# ------------------------------------------------------------------------------ pure core

YEAR = 2026
_DAYS = st.dates(dt.date(YEAR - 1, 12, 1), dt.date(YEAR + 1, 1, 31))
_LISTS = st.sampled_from(["tax-major", "procurement-serious", "court-defaulter"])
_REASONS = st.sampled_from(["repair", "expiry", "correction", "revocation", "fulfilled"])
_CITIES = st.sampled_from(["lanzhou", "taiyuan", "xian"])
_MEASURES = st.sampled_from(["ZFCG.JZ", "CZ.ZJ", "M01"])
_ACTIONS = st.sampled_from(["applied", "not_applicable", "pending", "lifted"])
_PURPOSES = st.sampled_from(["procurement", "licensing_review"])
_DEPTS = st.sampled_from(["", DEPARTMENT, "91350100M000100Y43"])


@st.composite
def _feed(draw: st.DrawFn) -> FeedEvent:
    event = draw(st.sampled_from([count.ADD, count.UPDATE, count.REMOVE]))
    day = draw(_DAYS)
    if event != count.REMOVE:
        return FeedEvent(day, event, draw(_LISTS))
    listed = draw(st.none() | st.dates(dt.date(YEAR - 3, 1, 1), day))
    return FeedEvent(day, event, draw(_LISTS), draw(_REASONS), listed)


@st.composite
def _action(draw: st.DrawFn) -> ActionEvent:
    kind = draw(st.sampled_from([count.RESPONSE, count.HIT]))
    direction = draw(st.sampled_from([count.RECEIVED, count.GIVEN]))
    if kind == count.RESPONSE:
        return ActionEvent(draw(_DAYS), direction, draw(_CITIES), kind,
                           measure=draw(_MEASURES), action=draw(_ACTIONS),
                           department=draw(_DEPTS))  # fmt: skip
    return ActionEvent(draw(_DAYS), direction, draw(_CITIES), kind, purpose=draw(_PURPOSES),
                       department=draw(_DEPTS))  # fmt: skip


@st.composite
def _objection(draw: st.DrawFn) -> ObjectionEvent:
    raised = draw(_DAYS)
    due = raised + dt.timedelta(days=draw(st.integers(0, 40)))
    resolved = draw(st.none() | st.integers(0, 60).map(lambda d: raised + dt.timedelta(days=d)))
    return ObjectionEvent(draw(st.sampled_from([count.RECEIVED, count.RAISED])), raised, due,
                          resolved)  # fmt: skip


@st.composite
def _import(draw: st.DrawFn) -> ImportEvent:
    checked = draw(st.integers(0, 50))
    invalid = draw(st.integers(0, checked))
    lenient = draw(st.integers(0, checked - invalid))
    name = draw(st.sampled_from(["重大税收违法失信主体名单", "失信被执行人名单"]))
    return ImportEvent(draw(_DAYS), name, checked, invalid, lenient)


_EVENTS = st.builds(
    Events,
    feeds=st.lists(_feed(), max_size=40),
    actions=st.lists(_action(), max_size=40),
    objections=st.lists(_objection(), max_size=15),
    imports=st.lists(_import(), max_size=10),
    list_names=st.just({"tax-major": "重大税收违法失信主体名单"}),
)
_NOT_ADDITIVE = {"median_days", "max_days"}


def additive(value: object, path: tuple[str, ...] = ()) -> Counter[tuple[str, ...]]:
    """Every count in a ``counts`` document by its path (list items by their names):
    what adds up across periods. Medians, maxima and rates do not."""
    out: Counter[tuple[str, ...]] = Counter()
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in _NOT_ADDITIVE:
                out.update(additive(v, (*path, k)))
    elif isinstance(value, list):
        for item in value:
            assert isinstance(item, dict)
            names = tuple(f"{k}={v}" for k, v in sorted(item.items()) if isinstance(v, str))
            out.update(additive(item, (*path, *names)))
    elif type(value) is int:
        out[path] += value
    return out


def _parts_add_up(c: dict[str, Any]) -> None:
    e = c["entries"]
    for key in ("added", "updated", "removed"):
        assert e[key] == sum(x[key] for x in e["by_list"])
    assert e["removed"] == sum(e["removed_by_reason"].values())
    for x in e["by_list"]:
        assert x["removed"] == sum(x["removed_by_reason"].values())
    for d in (count.RECEIVED, count.GIVEN):
        r, h = c["responses"][d], c["hits"][d]
        assert r["total"] == sum(x["count"] for x in r["by_measure_city"])
        assert r["total"] == sum(r["by_action"].values())
        for part in ("by_purpose", "by_department", "by_city"):
            assert h["total"] == sum(h[part].values())
    for o in c["turnaround"]["objections"].values():
        assert o["resolved"] == o["on_time"] + o["late"] == o["turnaround"]["count"]
    u = c["uscc"]
    for key in ("imports", "checked", "invalid", "lenient"):
        assert u[key] == sum(x[key] for x in u["by_list"])
    assert u["invalid"] + u["lenient"] <= u["checked"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=_EVENTS, quarter=st.integers(1, 4))
def test_statistics_add_up_to_the_events(events: Events, quarter: int) -> None:
    q = Period(YEAR, count.QUARTER, quarter)
    whole = tally(events, q)
    _parts_add_up(whole)
    months = [tally(events, m) for m in q.months()]
    for m in months:
        _parts_add_up(m)
    # The months of a quarter add up to the quarter, count by count.
    summed: Counter[tuple[str, ...]] = Counter()
    for m in months:
        summed.update(additive(m))
    assert +summed == +additive(whole)
    # And to the records themselves.
    inside = [e for e in events.feeds if q.contains(e.day)]
    assert whole["entries"]["added"] == sum(1 for e in inside if e.event == count.ADD)
    assert whole["entries"]["removed_by_reason"] == dict(
        Counter(e.reason for e in inside if e.event == count.REMOVE)
    )
    repairs = [
        (e.day - e.listed).days
        for e in inside
        if e.event == count.REMOVE and e.reason == "repair" and e.listed is not None
    ]
    assert whole["turnaround"]["repair"]["count"] == len(repairs)
    assert whole["turnaround"]["repair"]["max_days"] == (max(repairs) if repairs else None)
    hits = [a for a in events.actions if q.contains(a.day) and a.kind == count.HIT]
    assert sum(whole["hits"][d]["total"] for d in (count.RECEIVED, count.GIVEN)) == len(hits)
    imports = [i for i in events.imports if q.contains(i.day)]
    assert whole["uscc"]["checked"] == sum(i.checked for i in imports)


@settings(max_examples=40, deadline=None)
@given(events=_EVENTS)
def test_each_event_is_counted_in_exactly_one_period(events: Events) -> None:
    months = [Period(y, count.MONTH, n) for y in (YEAR - 1, YEAR, YEAR + 1) for n in range(1, 13)]
    quarters = [
        Period(y, count.QUARTER, n) for y in (YEAR - 1, YEAR, YEAR + 1) for n in (1, 2, 3, 4)
    ]
    for periods in (months, quarters):
        docs = [tally(events, p) for p in periods]
        assert sum(d["entries"]["added"] + d["entries"]["updated"] + d["entries"]["removed"]
                   for d in docs) == len(events.feeds)  # fmt: skip
        assert sum(
            d["responses"][x]["total"] + d["hits"][x]["total"]
            for d in docs
            for x in (count.RECEIVED, count.GIVEN)
        ) == len(events.actions)
        assert sum(
            d["turnaround"]["objections"][s]["raised"]
            for d in docs
            for s in (count.RECEIVED, count.RAISED)
        ) == len(events.objections)
        resolved = sum(1 for o in events.objections if o.resolved is not None
                       and o.resolved <= dt.date(YEAR + 1, 12, 31))  # fmt: skip
        assert sum(d["turnaround"]["objections"][s]["resolved"]
                   for d in docs for s in (count.RECEIVED, count.RAISED)) == resolved  # fmt: skip
        assert sum(d["uscc"]["imports"] for d in docs) == len(events.imports)


@given(kind=st.sampled_from(["month", "quarter", "week", ""]), at=st.text(max_size=12))
def test_period_parse_accepts_its_forms_and_refuses_the_rest(kind: str, at: str) -> None:
    try:
        p = Period.parse(kind, at, today=dt.date(2026, 11, 30))
    except StatsError:
        return
    assert Period.parse(kind, p.label, today=dt.date(2000, 1, 1)) == p
    assert p.first <= p.last and p.contains(p.first) and not p.contains(p.last + dt.timedelta(1))


def test_period_defaults_and_boundaries() -> None:
    today = dt.date(2026, 11, 30)
    assert Period.parse("month", None, today=today).label == "2026-11"
    assert Period.parse("quarter", None, today=today).label == "2026-Q4"
    feb = Period.parse("month", "2028-02", today=today)
    assert (feb.first, feb.last) == (dt.date(2028, 2, 1), dt.date(2028, 2, 29))
    dec = Period.parse("month", "2026-12", today=today)
    assert dec.last == dt.date(2026, 12, 31)
    for kind, at in (("month", "2026-13"), ("month", "2026-Q4"), ("quarter", "2026-Q5"),
                     ("quarter", "2026-11"), ("week", None), ("month", "1999-12")):  # fmt: skip
        with pytest.raises(StatsError):
            Period.parse(kind, at, today=today)


def test_a_personal_value_is_never_issued() -> None:
    check_no_personal({"counts": {"by_department": {DEPARTMENT: 1, "91350100M000100Y43": 2}}})
    with pytest.raises(StatsError, match="reads as a person's ID"):
        check_no_personal({"x": [{"list_name": "名单 11010519491231002X"}]})
    # Names from records are bounded and lose control characters.
    assert count.text("a\x1b[2Jb" + "x" * 500) == "a\ufffd[2Jb" + "x" * 194


# ------------------------------------------------------------------------------ importer


def _lenient(uscc: str) -> str:
    """*uscc* with a wrong check character (position 18) and its organisation code intact:
    the pre-2016 defect lenient mode accepts."""
    good = uscc_check_char(uscc[:17])
    wrong = next(c for c in "0123456789ABCDEFGHJKLMNPQRTUWXY" if c != good)
    return uscc[:17] + wrong


def _tax_rows(n: int, seed: int) -> list[dict[str, str]]:
    rows = list(generate_rows(n, seed=seed, list_name=TAX.name, list_type=TAX.kind,
                              region="370100", today=shanghai_today()))  # fmt: skip
    first, second = [r for r in rows if r["统一社会信用代码"]][:2]
    first["统一社会信用代码"] = _lenient(first["统一社会信用代码"])
    second["统一社会信用代码"] = second["统一社会信用代码"][:17]  # 17 characters: invalid
    return rows


async def test_importer_counts_invalid_and_lenient_usccs(db_url: str, tmp_path: Path) -> None:
    store = await Store.open(db_url)
    try:
        pub = await Publisher.open(
            store, "creditnode://yellow-river/jinan", SigningKey.generate("j")
        )
        rows = _tax_rows(6, seed=5)
        path = tmp_path / "tax.csv"
        write_csv(path, rows)
        organisations = sum(1 for r in rows if r["统一社会信用代码"])
        summary = await import_list(pub, path, TAX, pseudonym_key=PseudonymKey.generate())
        assert (summary.uscc_checked, summary.uscc_invalid, summary.uscc_lenient) == (
            organisations, 1, 1,
        )  # fmt: skip
        assert len(summary.quarantined) == 1
        async with store.engine.connect() as conn:
            row = (await conn.execute(select(IMPORTS))).mappings().one()
        assert (row["uscc_checked"], row["uscc_invalid"], row["uscc_lenient"]) == (
            organisations, 1, 1,
        )  # fmt: skip
        # A dry run counts alike and records nothing.
        dry = await import_list(pub, path, TAX, pseudonym_key=None, dry_run=True)
        assert (dry.uscc_checked, dry.uscc_invalid, dry.uscc_lenient) == (organisations, 1, 1)
    finally:
        await store.close()


# ------------------------------------------------------------------------------ a node home


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = await asyncio.to_thread(main, list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


async def test_stats_on_a_node_home_count_the_records_and_sign(
    new_database: DbUrlFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    home = tmp_path / "jinan"
    url = await new_database("stats")
    init = ["init", "--home", str(home), "--name", "jinan", "--region", "370100"]
    assert await asyncio.to_thread(main, [*init, *(["--database", url] if url else [])]) == 0
    # Before root-init the feed key signs, and the bundle's feed key verifies.
    early = tmp_path / "early.json"
    rc, _, err = await _cli(capsys, "stats", "--home", str(home), "--out", str(early))
    assert rc == 0, err
    assert verify_file(early.read_bytes(), [export_bundle(load_home(home))]).root_version is None
    root_init(home, holders=["alice"], threshold=1,
              passphrases={"alice": "correct horse battery staple"},
              out_dir=home / "keys" / "root-holders", now=_now())  # fmt: skip
    loaded = load_home(home)
    h = str(home)

    rows = _tax_rows(8, seed=11)
    path = tmp_path / "tax.csv"
    write_csv(path, rows)
    organisations = sum(1 for r in rows if r["统一社会信用代码"])
    rc, out, err = await _cli(capsys, "import", "--home", h, "--list", "tax-major", str(path))
    assert rc == 2, out + err  # the invalid code's row is quarantined, the rest imported
    today = shanghai_today()
    live = [
        r for r in rows
        if len(r["统一社会信用代码"]) == 18 and r["公示截止日期"] >= today.isoformat()
    ]  # fmt: skip
    gone = live[0]
    rc, out, err = await _cli(
        capsys, "remove", "--home", h, "--list", "tax-major", "--uscc", gone["统一社会信用代码"],
        "--reason", "repair", "--date", today.isoformat(), "--doc", "济税修〔2026〕1号", "--yes",
    )  # fmt: skip
    assert rc == 0, out + err

    at_us = int(_now().timestamp() * 1_000_000)
    objection = Objection.raise_(
        origin=loaded.identity.uri, entry_id="ent-7f3a9c", grounds="content_error",
        evidence_sha256=hashlib.sha256(b"e").hexdigest(), due=today + dt.timedelta(days=3),
        raised_by="taiyuan", at=_now(),
    )  # fmt: skip
    objection = objection.acknowledge(_now()).reject(_now(), reason="证据不足", doc_no="D-1")
    async with Store.opened(loaded.database_url) as store:
        async with store.begin() as conn:
            base = {"entry": "ent-7f3a9c", "reason": "", "date": today.isoformat(),
                    "officer": "0" * 32, "purpose": "", "matter": "", "at_us": at_us}  # fmt: skip
            await conn.execute(insert(ACTION_RECORDS), [
                {**base, "peer": "lanzhou", "idx": 0, "kind": "response", "measure": "ZFCG.JZ",
                 "action": "applied", "department": DEPARTMENT},
                {**base, "peer": "lanzhou", "idx": 1, "kind": "response", "measure": "ZFCG.JZ",
                 "action": "lifted", "department": ""},
                {**base, "peer": "taiyuan", "idx": 0, "kind": "hit", "measure": "", "action": "",
                 "department": DEPARTMENT, "purpose": "procurement", "matter": "M-1"},
            ])  # fmt: skip
            await save(conn, objection, RECEIVED)
        async with store.engine.connect() as conn:
            imported = (await conn.execute(select(IMPORTS))).mappings().all()
    added = sum(int(r["added"]) for r in imported)

    signed = tmp_path / "stats-month.json"
    rc, out, err = await _cli(capsys, "stats", "--home", h, "--period", "month", "--format",
                              "json", "--out", str(signed))  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    c = doc["counts"]
    assert doc["period"]["label"] == f"{today.year}-{today.month:02d}"
    assert doc["issuer"] == loaded.identity.uri
    e = c["entries"]
    assert (e["added"], e["removed"], e["removed_by_reason"]) == (added, 1, {"repair": 1})
    assert [(x["list_code"], x["list_name"]) for x in e["by_list"]] == [("tax-major", TAX.name)]
    received = c["responses"]["received"]
    assert received["total"] == 2 and received["by_action"] == {"applied": 1, "lifted": 1}
    assert {(x["measure"], x["city"], x["action"], x["count"])
            for x in received["by_measure_city"]} == {
        ("ZFCG.JZ", "lanzhou", "applied", 1), ("ZFCG.JZ", "lanzhou", "lifted", 1),
    }  # fmt: skip
    hits = c["hits"]["received"]
    assert (hits["total"], hits["by_purpose"], hits["by_department"]) == (
        1, {"procurement": 1}, {DEPARTMENT: 1},
    )  # fmt: skip
    repair = c["turnaround"]["repair"]
    listed = dt.date.fromisoformat(gone["列入日期"])
    assert (repair["count"], repair["max_days"]) == (1, (today - listed).days)
    objections = c["turnaround"]["objections"]["received"]
    assert (objections["raised"], objections["resolved"], objections["on_time"]) == (1, 1, 1)
    u = c["uscc"]
    assert (u["imports"], u["checked"], u["invalid"], u["lenient"]) == (1, organisations, 1, 1)
    assert u["flawed_rate"] == f"{2 / organisations:.4f}"

    # The quarter holds the month (everything happened today), and the tables render.
    rc, out, _ = await _cli(capsys, "stats", "--home", h, "--period", "quarter", "--format", "json")
    assert rc == 0 and json.loads(out)["counts"] == c
    rc, out, _ = await _cli(capsys, "stats", "--home", h)
    assert rc == 0 and "entries by list" in out and "重错码" in out and "lanzhou" in out

    # Nothing of a subject goes out: no name, no code, no entry id.
    data = signed.read_bytes()
    payload = base64.b64decode(json.loads(data)["envelope"]["payload"]).decode()
    assert json.loads(payload) == doc
    for r in rows:
        for column in ("主体名称", "统一社会信用代码", "证件号码", "法定代表人", "认定文书号"):
            assert not r[column] or r[column] not in payload
    assert "ent-7f3a9c" not in payload and "M-1" not in payload

    # The signed file verifies offline with the peer bundle, and fails on any changed byte.
    bundle = tmp_path / "jinan.bundle.json"
    bundle.write_text(export_bundle(loaded).to_json(), encoding="utf-8")
    verified = verify_file(data, [export_bundle(loaded)])
    assert verified.issuer == loaded.identity.uri and verified.root_version == 1
    rc, out, _ = await _cli(capsys, "stats", "verify", str(signed), "--bundle", str(bundle))
    assert rc == 0 and "verified" in out
    text = data.decode()
    i = text.index('"payload":"') + len('"payload":"') + 40
    flipped = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
    with pytest.raises(StatsVerificationError):
        verify_file(flipped.encode(), [export_bundle(loaded)])
    for n in (10, len(data) // 2, len(data) - 5):
        changed = bytearray(data)
        changed[n] ^= 0x01
        with pytest.raises(StatsVerificationError):
            verify_file(bytes(changed), [export_bundle(loaded)])
    tampered = tmp_path / "tampered.json"
    tampered.write_text(flipped, encoding="utf-8")
    rc, _, err = await _cli(capsys, "stats", "verify", str(tampered), "--trust", str(bundle))
    assert rc == 7 and err.count("\n") == 1

    # Bad input: one line, exit 2.
    bad_args = (
        ["--at", "2026-13"], ["--period", "week"], ["--period", "quarter", "--at", "2026-Q5"],
        ["--format", "xml"],
    )  # fmt: skip
    for bad in bad_args:
        rc, _, err = await _cli(capsys, "stats", "--home", h, *bad)
        assert rc == 2 and err.count("\n") == 1, err
