"""The measures catalogue (node.feeds.measures): the deployed documents, strict parsing with
file:line problems, city supplements and their conflicts, import validation against it (real
databases through the fixtures) and `creditnode measures list|check`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncConnection
from structlog.testing import capture_logs

from adapters.list_csv import CsvError, ListCsv, ListRow, parse_measures
from adapters.samples import MEASURES as SAMPLE_MEASURES
from adapters.samples import generate_rows, write_csv
from keys import SigningKey
from node.api import feeds
from node.audit.query import Filter, find_entries
from node.border import Border
from node.cli import main
from node.feeds import catalogue, measures, measures_store
from node.feeds.importer import check_measures, import_list
from node.feeds.leaf import LeafError, build_leaf, open_leaf
from node.feeds.logstore import LOGS
from node.feeds.measures import CATEGORIES, INCENTIVE_CATEGORIES, MeasuresError
from node.feeds.measures_store import MEASURES_CATALOGUES
from node.feeds.publisher import Publisher
from node.feeds.state import STATE
from node.feeds.subscriber import Subscriber
from node.home import set_setting
from node.identity.pseudonym_key import PseudonymKey
from node.peers.directory import PeerDirectory
from node.policy.agreement import check_agreement, dump_agreement, parse_agreement
from node.runtime import Node
from node.storage import Store
from tests.conftest import FederationFactory
from tests.feedutil import active_entries, adds, mirror_size, wait_mirrored

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
LISTS = catalogue.load(DEPLOY / "lists.yellow-river.toml")
KINDS = {s.code: s.kind for s in LISTS.lists}
NATIONAL = measures.load(DEPLOY / "measures.toml", list_kinds=KINDS)
PROCUREMENT = LISTS.resolve("procurement-serious")
ORIGIN = "creditnode://yellow-river/jinan"
KEY = PseudonymKey.generate()
DAY = dt.date(2026, 11, 1)

BASE = """\
version = 3
name = "national"
title = "示例"

[[measure]]
code = "GP.BAN"
name = "限制参加政府采购活动"
category = "rights-reducing"
basis = "政府采购法第二十二条"
department = "财政部门"
lists = ["procurement-serious", "tax-major"]
mandatory = true

[[measure]]
code = "TAX.GREEN"
name = "办税绿色通道"
category = "facilitation"
basis = "纳税信用管理办法第三十条"
department = "税务机关"
lists = ["tax-grade-a"]
mandatory = false
"""

SUPPLEMENT = """\
version = 1
name = "jinan"
extends = "national"

[[measure]]
code = "JN.X"
name = "限制参与公共资源交易活动"
category = "rights-reducing"
basis = "济南规划"
department = "公共资源交易监督管理部门"
lists = ["procurement-serious"]
mandatory = false
"""


def problems_of(text: str, *sups: str, kinds: dict[str, str] | None = None) -> list[str]:
    return measures.check(
        text,
        source="m.toml",
        supplements=[(s, f"s{i}.toml") for i, s in enumerate(sups)],
        list_kinds=kinds,
    )


# --- the deployed documents --------------------------------------------------------------------


def test_packaged_national_base_is_the_deployed_one() -> None:
    assert measures.MEASURES_EXAMPLE.read_bytes() == (DEPLOY / "measures.toml").read_bytes(), (
        "node/feeds/measures.toml differs from deploy/measures.toml: copy it over"
    )


def test_deployed_documents_agree_with_the_list_catalogue() -> None:
    merged = measures.load(
        DEPLOY / "measures.toml", [DEPLOY / "measures.jinan.toml"], list_kinds=KINDS
    )
    assert merged.label == "national v1 + jinan v1"
    assert {m.code for m in NATIONAL.measures} < {m.code for m in merged.measures}
    assert merged.sha256 != NATIONAL.sha256
    categories = {m.category for m in merged.measures}
    assert categories == set(CATEGORIES)  # every category is represented
    for m in merged.measures:
        assert m.lists, m.code
        for code in m.lists:
            assert (KINDS[code] == "red") == m.incentive, (m.code, code)


def test_deployed_samples_pass_the_measures_catalogue() -> None:
    checked = 0
    for path in sorted((DEPLOY / "samples").glob("*.csv")):
        try:
            rows = list(ListCsv.open(path).rows())
        except CsvError:  # record samples are another format
            continue
        for row in rows:
            if not isinstance(row, ListRow):
                continue
            spec = LISTS.find(row.list_name)
            assert spec is not None
            assert check_measures(row, spec, NATIONAL, feeds.PROVENANCE_AUTHORITATIVE) is None, (
                path.name,
                row.row,
            )
            checked += 1
    assert checked > 50


def test_sample_measure_codes_are_the_catalogues() -> None:
    for code, name in SAMPLE_MEASURES.items():
        found = NATIONAL.find(code)
        assert found is not None and found.name == name, code


@pytest.mark.parametrize(
    "spec", [s for s in LISTS.lists if s.kind != "abnormal"], ids=lambda s: s.code
)
def test_generated_rows_name_only_applicable_measures(
    spec: catalogue.ListSpec, tmp_path: Path
) -> None:
    path = tmp_path / "g.csv"
    write_csv(
        path,
        generate_rows(
            120, seed=5, list_name=spec.name, list_type=spec.kind, region="370100", today=DAY
        ),
    )
    rows = [r for r in ListCsv.open(path).rows() if isinstance(r, ListRow)]
    assert len(rows) == 120
    assert sum(bool(r.measures) for r in rows) == 120
    for row in rows:
        assert check_measures(row, spec, NATIONAL, feeds.PROVENANCE_AUTHORITATIVE) is None


def test_digest_covers_every_document_byte() -> None:
    one = measures.parse(BASE, source="a")
    assert one.sha256 == measures.parse(BASE, source="b").sha256  # not the file name
    assert one.sha256 != measures.parse(BASE + "\n", source="a").sha256
    with_sup = measures.parse(BASE, source="a", supplements=[(SUPPLEMENT, "s")])
    assert with_sup.sha256 != one.sha256
    assert with_sup.label == "national v3 + jinan v1"


# --- strict parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'category = "facilitation"',
            'category = "fines"',
            "m.toml:17: measure TAX.GREEN: category",
        ),
        ("mandatory = true", 'mandatory = "yes"', "m.toml:12: measure GP.BAN: mandatory"),
        ('code = "GP.BAN"', 'code = "GP BAN"', "m.toml:6: measure 1: code must be"),
        ('department = "税务机关"', "department = 7", "m.toml:19: measure TAX.GREEN: department"),
        ('lists = ["tax-grade-a"]', "lists = []", "m.toml:20: measure TAX.GREEN: lists"),
        ('lists = ["tax-grade-a"]', 'lists = ["A B"]', "m.toml:20: measure TAX.GREEN: lists"),
        ("version = 3", "version = 0", "m.toml:1: measures: version"),
        ('title = "示例"', 'titel = "示例"', "m.toml:3: measures: unknown key 'titel'"),
        (
            "mandatory = false",
            "mandatory = false\nlegal = 1",
            "m.toml:22: measure TAX.GREEN: unknown",
        ),
        ('code = "TAX.GREEN"', 'code = "GP.BAN"', "m.toml:15: measure GP.BAN: code repeats"),
        ("version = 3", "version = [", "m.toml:2: not valid TOML"),
    ],
)
def test_every_problem_names_its_line(old: str, new: str, expected: str) -> None:
    assert old in BASE
    found = problems_of(BASE.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found
    with pytest.raises(MeasuresError) as e:
        measures.parse(BASE.replace(old, new, 1), source="m.toml")
    assert e.value.exit_code == 3


@pytest.mark.parametrize("char", ["\\u0007", "\\u007f", "\\u202e", "\\u0085"])
def test_a_name_with_a_control_character_is_refused(char: str) -> None:
    found = problems_of(BASE.replace('"办税绿色通道"', f'"办税{char}通道"'))
    assert any("m.toml:16: measure TAX.GREEN: name" in p for p in found), found


def test_list_codes_are_checked_against_the_list_catalogue() -> None:
    assert problems_of(BASE, kinds=KINDS) == []
    found = problems_of(BASE.replace('"tax-major"', '"tax-minor"'), kinds=KINDS)
    assert found == ["m.toml:5: measure GP.BAN: list tax-minor is not in the list catalogue"]
    found = problems_of(BASE.replace('"tax-grade-a"', '"tax-major"'), kinds=KINDS)
    assert found == ["m.toml:14: measure TAX.GREEN is an incentive; list tax-major is a black list"]


# --- supplements -------------------------------------------------------------------------------


def test_a_supplement_adds_measures() -> None:
    merged = measures.parse(BASE, source="m.toml", supplements=[(SUPPLEMENT, "jinan.toml")])
    added = merged.find("JN.X")
    assert added is not None and added.where == "jinan.toml:5"
    assert merged.find("GP.BAN") is not None


def test_a_supplement_may_repeat_a_measure_unchanged() -> None:
    repeat = SUPPLEMENT + "\n" + BASE.split("\n\n", 1)[1].split("\n\n")[0]
    assert problems_of(BASE, repeat) == []


def test_a_conflicting_supplement_is_reported_at_its_line() -> None:
    changed = (
        BASE.split("\n\n", 1)[1].split("\n\n")[0].replace("mandatory = true", "mandatory = false")
    )
    found = problems_of(BASE, SUPPLEMENT + "\n" + changed)
    assert found == ["s0.toml:14: measure GP.BAN conflicts with its definition at m.toml:5"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('extends = "national"\n', "", "s0.toml:1: measures: a supplement must set extends"),
        (
            'extends = "national"',
            'extends = "beijing"',
            "a supplement must say extends = 'national'",
        ),
        ('name = "jinan"', 'name = "national"', "name 'national' is already in use"),
    ],
)
def test_supplement_must_extend_the_base(old: str, new: str, expected: str) -> None:
    found = problems_of(BASE, SUPPLEMENT.replace(old, new, 1))
    assert any(expected in p for p in found), found


def test_a_base_must_not_extend() -> None:
    found = problems_of('extends = "other"\n' + BASE)
    assert any("a base document must not extend another" in p for p in found), found


# --- hypothesis: the parser ------------------------------------------------------------------

CODE = st.from_regex(r"[A-Za-z0-9._-]{1,32}", fullmatch=True)
LIST_CODE = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True)
TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs", "Cc", "Cf")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s != "")


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a TOML basic string here


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[dict[str, object]]]:
    codes = draw(st.lists(CODE, min_size=1, max_size=5, unique=True))
    items: list[dict[str, object]] = []
    for code in codes:
        items.append(
            {
                "code": code,
                "name": draw(TEXT),
                "category": draw(st.sampled_from(CATEGORIES)),
                "basis": draw(TEXT),
                "department": draw(TEXT),
                "lists": draw(st.lists(LIST_CODE, min_size=1, max_size=3, unique=True)),
                "mandatory": draw(st.booleans()),
            }
        )
    lines = [f"version = {draw(st.integers(1, 10_000))}", 'name = "national"']
    for it in items:
        lines += ["", "[[measure]]"]
        for k, v in it.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(_quote(x) for x in v)}]")
            else:
                lines.append(f"{k} = {_quote(str(v))}")
    return "\n".join(lines) + "\n", items


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_valid_documents_round_trip(doc: tuple[str, list[dict[str, object]]]) -> None:
    text, items = doc
    cat = measures.parse(text, source="g.toml")
    assert [m.code for m in cat.measures] == [it["code"] for it in items]
    for m, it in zip(cat.measures, items, strict=True):
        assert (m.name, m.category, m.basis, m.department, list(m.lists), m.mandatory) == (
            it["name"], it["category"], it["basis"], it["department"], it["lists"],
            it["mandatory"],
        )  # fmt: skip
        assert m.incentive == (m.category in INCENTIVE_CATEGORIES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.data())
def test_a_broken_key_is_reported_at_its_own_line(
    doc: tuple[str, list[dict[str, object]]], data: st.DataObject
) -> None:
    text, _ = doc
    lines = text.split("\n")
    keyed = [i for i, line in enumerate(lines) if line.split(" = ")[0] in ("category", "mandatory")]
    n = data.draw(st.sampled_from(keyed))
    key = lines[n].split(" = ")[0]
    lines[n] = f"{key} = 12"
    found = measures.check("\n".join(lines), source="g.toml")
    assert found, "a broken document passed"
    assert all(p.startswith(f"g.toml:{n + 1}: ") for p in found), (n + 1, found)
    assert any(f"{key} must" in p for p in found), found


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_a_catalogue_or_problems_never_a_crash(text: str) -> None:
    problems = measures.check(text, source="x.toml")
    assert all(p.startswith("x.toml:") for p in problems)
    if not problems:
        assert measures.parse(text, source="x.toml").measures


# --- import ------------------------------------------------------------------------------------


@pytest.fixture
async def pub(db_url: str) -> AsyncIterator[Publisher]:
    store = await Store.open(db_url)
    try:
        yield await Publisher.open(store, ORIGIN, SigningKey.generate(ORIGIN))
    finally:
        await store.close()


def sample_rows(n: int) -> list[dict[str, str]]:
    return list(
        generate_rows(
            n, seed=3, list_name=PROCUREMENT.name, list_type="black", region="370100",
            today=DAY,
        )
    )  # fmt: skip


async def stored_measures(p: Publisher) -> dict[str, list[tuple[str, bool]]]:
    async with p.store.engine.connect() as conn:
        rows = await conn.execute(
            select(STATE.c.uscc, STATE.c.entry).where(STATE.c.log_id == p.log.log_id)
        )
        return {
            u: [(m.code, m.mandatory) for m in feeds.ListEntry.FromString(e).measures]
            for u, e in rows
        }


async def run_import(
    p: Publisher, path: Path, *, provenance: int = feeds.PROVENANCE_AUTHORITATIVE
) -> object:
    return await import_list(
        p, path, PROCUREMENT, pseudonym_key=KEY, today=DAY, provenance=provenance,
        measures=NATIONAL,
    )  # fmt: skip


async def test_import_validates_measures(pub: Publisher, tmp_path: Path) -> None:
    rows = sample_rows(6)
    cells = {
        0: "GP.BAN:强制;BID.LIMIT:推荐",  # 推荐 as well as 建议
        1: "GP.BAN;SUB.LIMIT",  # unmarked: the catalogue's default
        2: "GP.BAN:建议;NOPE.X",  # unknown code
        3: "HONOR.BAN;TAX.STRICT",  # not applicable to procurement-serious
        4: "TAX.GREEN",  # an incentive on a black list
        5: "",
    }
    for i, cell in cells.items():
        rows[i]["惩戒措施"] = cell
    path = tmp_path / "m.csv"
    write_csv(path, rows)
    summary = await run_import(pub, path)
    assert summary.added == 3  # type: ignore[attr-defined]
    assert summary.measures == "national v1"  # type: ignore[attr-defined]
    assert summary.measures_sha256 == NATIONAL.sha256  # type: ignore[attr-defined]
    reasons = {q.row: q.reason for q in summary.quarantined}  # type: ignore[attr-defined]
    assert reasons == {
        4: "惩戒措施: measure 2 is not in the measures catalogue national v1",
        5: "惩戒措施: measure 2 does not apply to procurement-serious (measures catalogue "
        "national v1)",
        6: "惩戒措施: measure 1 does not apply to procurement-serious (measures catalogue "
        "national v1)",
    }
    assert all(q.column == "惩戒措施" for q in summary.quarantined)  # type: ignore[attr-defined]
    stored = await stored_measures(pub)
    by_uscc = {rows[i]["统一社会信用代码"]: i for i in (0, 1, 5)}
    got = {by_uscc[u]: ms for u, ms in stored.items()}
    assert got == {
        0: [("GP.BAN", True), ("BID.LIMIT", False)],
        1: [("GP.BAN", True), ("SUB.LIMIT", False)],  # GP.BAN is mandatory by default
        5: [],
    }


async def test_mandatory_is_refused_on_reference_entries(pub: Publisher, tmp_path: Path) -> None:
    rows = sample_rows(3)
    rows[0]["惩戒措施"] = "GP.BAN:强制"
    rows[1]["惩戒措施"] = "BID.LIMIT:建议;GP.BAN(强制)"
    rows[2]["惩戒措施"] = "GP.BAN;BID.LIMIT"  # unmarked: never mandatory on a reference entry
    path = tmp_path / "r.csv"
    write_csv(path, rows)
    summary = await run_import(pub, path, provenance=feeds.PROVENANCE_REFERENCE)
    reasons = [(q.row, q.reason) for q in summary.quarantined]  # type: ignore[attr-defined]
    assert reasons == [
        (2, "惩戒措施: measure 1 is marked 强制, and an entry given for reference (provenance "
         "reference) cannot make a measure mandatory"),
        (3, "惩戒措施: measure 2 is marked 强制, and an entry given for reference (provenance "
         "reference) cannot make a measure mandatory"),
    ]  # fmt: skip
    stored = await stored_measures(pub)
    assert list(stored.values()) == [[("GP.BAN", False), ("BID.LIMIT", False)]]


async def test_recommended_marks_import_alike_and_override_the_default(
    pub: Publisher, tmp_path: Path
) -> None:
    rows = sample_rows(2)
    rows[0]["惩戒措施"] = "GP.BAN:推荐;BID.LIMIT：建议"  # GP.BAN is mandatory by default
    rows[1]["惩戒措施"] = "GP.BAN（推荐）;BID.LIMIT(强制)"
    path = tmp_path / "t.csv"
    write_csv(path, rows)
    summary = await run_import(pub, path)
    assert (summary.added, summary.quarantined) == (2, [])  # type: ignore[attr-defined]
    stored = sorted((await stored_measures(pub)).values())
    assert stored == [
        [("GP.BAN", False), ("BID.LIMIT", False)],
        [("GP.BAN", False), ("BID.LIMIT", True)],
    ]
    # 推荐 on a reference entry is fine (only 强制 is refused there).
    ref = tmp_path / "ref.csv"
    write_csv(ref, [rows[0]])
    again = await run_import(pub, ref, provenance=feeds.PROVENANCE_REFERENCE)
    assert again.quarantined == []  # type: ignore[attr-defined]


def test_recommended_marks_parse_alike() -> None:
    for mark in ("建议", "推荐"):
        for form in (f"GP.BAN:{mark}", f"GP.BAN：{mark}", f"GP.BAN({mark})", f"GP.BAN（{mark}）"):
            parsed = parse_measures(form)
            assert not isinstance(parsed, str)
            [m] = parsed
            assert (m.code, m.mandatory, m.marked) == ("GP.BAN", False, True), form
    parsed = parse_measures("GP.BAN")
    assert not isinstance(parsed, str)
    [unmarked] = parsed
    assert (unmarked.mandatory, unmarked.marked) == (False, False)


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_check_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, sup, lists = (
        DEPLOY / "measures.toml",
        DEPLOY / "measures.jinan.toml",
        (DEPLOY / "lists.yellow-river.toml"),
    )
    args = ["--file", str(base), "--supplement", str(sup), "--lists", str(lists)]
    assert main(["measures", "check", *args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["label"] == "national v1 + jinan v1"
    assert main(["measures", "list", *args, "--list", "tax-grade-a", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["code"] for m in listed["measures"]} == {
        "TAX.GREEN", "LIC.FAST", "INSP.LESS", "HONOR.PREF", "LOAN.PREF",
    }  # fmt: skip
    assert all(m["incentive"] for m in listed["measures"])
    assert main(["measures", "list", *args]) == 0
    assert "JN.PRT.LIMIT" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace('category = "facilitation"', 'category = "fines"'))
    assert main(["measures", "check", "--file", str(bad)]) == 3
    captured = capsys.readouterr()
    assert f"{bad}:17: measure TAX.GREEN: category must be one of" in captured.err
    assert "Traceback" not in captured.err
    assert main(["measures", "check"]) == 2
    assert "give exactly one of --home and --file" in capsys.readouterr().err


def test_cli_reads_a_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert main(["init", "--home", str(home), "--name", "jinan", "--region", "370100"]) == 0
    capsys.readouterr()
    assert main(["measures", "check", "--home", str(home), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "national v1"
    (home / "measures.supplement.toml").write_bytes((DEPLOY / "measures.jinan.toml").read_bytes())
    assert main(["measures", "check", "--home", str(home), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "national v1 + jinan v1"


# --- publication: the catalogue version travels with each entry, in its signed leaf ------------


async def test_subscriber_sees_the_catalogue_an_entry_was_checked_by(
    federation: FederationFactory, tmp_path: Path
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    in_force = measures.load(
        DEPLOY / "measures.toml", [DEPLOY / "measures.jinan.toml"], list_kinds=KINDS
    )
    rows = sample_rows(4)
    rows[0]["惩戒措施"] = "GP.BAN:强制;JN.PRT.LIMIT:推荐"  # a Jinan supplement measure
    path = tmp_path / "jinan.csv"
    write_csv(path, rows)
    summary = await import_list(
        jinan.publisher, path, PROCUREMENT, pseudonym_key=jinan.home.pseudonym_key, today=DAY,
        measures=in_force,
    )  # fmt: skip
    assert (summary.added, len(summary.quarantined)) == (4, 0)
    await wait_mirrored(lanzhou, jinan, summary.size)
    async with lanzhou.store.engine.connect() as conn:
        log_id = (
            await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == jinan.home.identity.uri))
        ).scalar_one()
        bodies = [
            feeds.ListEntry.FromString(e)
            for (e,) in await conn.execute(select(STATE.c.entry).where(STATE.c.log_id == log_id))
        ]
    assert len(bodies) == 4
    for entry in bodies:
        assert entry.measures_catalogue.label == "national v1 + jinan v1"
        assert entry.measures_catalogue.sha256 == in_force.sha256
    # The running follower fetches the catalogue the entries cite, and verifies it.
    await _wait_held(lanzhou, in_force.sha256)
    # A later catalogue version alone republishes nothing: the entries keep their version.
    again = await import_list(
        jinan.publisher, path, PROCUREMENT, pseudonym_key=jinan.home.pseudonym_key, today=DAY,
        measures=in_force,
    )  # fmt: skip
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)


@pytest.mark.parametrize(
    ("label", "sha", "record", "problem"),
    [
        ("national v1", "ab" * 32, False, ""),
        ("national v1", "AB" * 32, False, "measures catalogue: needs a label"),
        ("national v1", "ab" * 31, False, "measures catalogue: needs a label"),
        ("", "ab" * 32, False, "measures catalogue: needs a label"),
        ("x" * 401, "ab" * 32, False, "measures catalogue: needs a label"),
        ("national v1", "ab" * 32, True, "a record has no measures catalogue"),
    ],
)
def test_a_malformed_catalogue_reference_is_refused_with_the_leaf(
    label: str, sha: str, record: bool, problem: str
) -> None:
    entry = feeds.ListEntry(list_code="procurement-serious", uscc="91370100MA0000001X")
    if record:
        entry = feeds.ListEntry(list_code="penalty", penalty=feeds.AdministrativePenalty())
    entry.measures_catalogue.label = label
    entry.measures_catalogue.sha256 = sha
    data, openings = build_leaf(
        ORIGIN, "e1", feeds.EVENT_TYPE_ADD, entry, recorded_at_unix=1_800_000_000
    )
    if not problem:
        opened = open_leaf(data, [], openings.body)
        assert opened.entry.measures_catalogue.sha256 == sha
        return
    with pytest.raises(LeafError, match=problem):
        open_leaf(data, [], openings.body)


# --- the catalogue text: served by digest, fetched and verified by holders -------------------


async def _sync_once(node: Node, origin: str) -> None:
    """One `creditnode sync`-like pass of *node* over *origin*'s feed (no follower running)."""
    directory = PeerDirectory(node.store, node.home.settings.federation, node.home.tls.ca_pem)
    await directory.refresh()
    [peer] = [p for p in directory.peers() if p.identity.node == origin]
    sub = await Subscriber.open(node.home.tls, node.store, peer, audit=node.audit)
    await sub.sync(follow=False, timeout=20)


async def _wait_held(node: Node, digest: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if digest in [d for d, _, _ in await _held_catalogues(node)]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{node.name} did not fetch measures catalogue {digest[:16]}")


async def _held_catalogues(node: Node) -> list[tuple[str, str, bytes]]:
    async with node.store.engine.connect() as conn:
        rows = await conn.execute(
            select(
                MEASURES_CATALOGUES.c.sha256,
                MEASURES_CATALOGUES.c.fetched_from,
                MEASURES_CATALOGUES.c.documents,
            )
        )
        return [(d, f, bytes(b)) for d, f, b in rows]


async def _jinan_publishes(jinan: Node, tmp_path: Path) -> measures.MeasureCatalogue:
    in_force = measures.load(
        DEPLOY / "measures.toml", [DEPLOY / "measures.jinan.toml"], list_kinds=KINDS
    )
    rows = sample_rows(3)
    rows[0]["惩戒措施"] = "GP.BAN:强制;JN.PRT.LIMIT:推荐"  # a Jinan supplement measure
    path = tmp_path / "jinan.csv"
    write_csv(path, rows)
    summary = await import_list(
        jinan.publisher, path, PROCUREMENT, pseudonym_key=jinan.home.pseudonym_key, today=DAY,
        measures=in_force,
    )  # fmt: skip
    assert summary.added == 3
    return in_force


async def test_a_partner_fetches_and_verifies_the_catalogue_its_entries_cite(
    federation: FederationFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one row a line: the cell is read whole
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    in_force = await _jinan_publishes(jinan, tmp_path)
    # The origin kept the catalogue it checked the import by, under its digest.
    assert [(d, f) for d, f, _ in await _held_catalogues(jinan)] == [(in_force.sha256, "")]
    assert await _held_catalogues(lanzhou) == []
    await _sync_once(lanzhou, "jinan")
    [(digest, source, blob)] = await _held_catalogues(lanzhou)
    assert (digest, source) == (in_force.sha256, "jinan")
    assert hashlib.sha256(blob).hexdigest() == digest == in_force.sha256
    async with lanzhou.store.engine.connect() as conn:
        held = await measures_store.load_held(conn, [digest])
    partner = held[digest]
    assert partner.label == "national v1 + jinan v1"
    limit = partner.find("JN.PRT.LIMIT")
    assert limit is not None and limit.name == in_force.find("JN.PRT.LIMIT").name  # type: ignore[union-attr]
    assert [m.code for m in partner.measures] == [m.code for m in in_force.measures]
    # The fetch is an exchange like any other: recorded on both sides.
    mine = [e for _, e in await find_entries(lanzhou.store, lanzhou.home.identity.uri, Filter())]
    assert any(e.method.endswith("/GetMeasuresCatalogue") for e in mine)
    # A second sync asks nothing again and keeps one copy.
    await _sync_once(lanzhou, "jinan")
    assert len(await _held_catalogues(lanzhou)) == 1
    # `lists --measures` names the measures by the partner's verified catalogue.
    url = fed.database_url("lanzhou")
    if url:
        set_setting(lanzhou.home.paths.root, "database_url", url)
    capsys.readouterr()
    args = ["lists", "--home", str(lanzhou.home.paths.root), "--origin", "jinan", "--measures"]
    assert await asyncio.to_thread(main, [*args, "--limit", "1"]) == 0
    shown = "".join(capsys.readouterr().out.split())  # the table folds long cells
    assert "catalogue" in shown and "nationalv1+jinanv1" in shown
    assert "notheldhere" not in shown
    assert "GP.BAN强制限制参加政府采购活动(减损权益或增加义务)" in shown
    # Without the catalogue held, codes alone, and the label marked as not held.
    async with lanzhou.store.begin() as conn:
        await conn.execute(MEASURES_CATALOGUES.delete())
    assert await asyncio.to_thread(main, [*args, "--limit", "1"]) == 0
    shown = "".join(capsys.readouterr().out.split())
    assert "notheldhere" in shown and "限制参加政府采购活动" not in shown


async def test_a_tampered_catalogue_is_refused_and_nothing_kept(
    federation: FederationFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    in_force = await _jinan_publishes(jinan, tmp_path)
    real = measures_store.documents

    async def tampered(conn: AsyncConnection, sha256: str) -> bytes | None:
        data = await real(conn, sha256)
        assert data is not None
        # Still well-formed documents, one measure's default flipped: only the digest tells.
        return measures.pack_documents(
            [t.replace("mandatory = true", "mandatory = false", 1)
             for t in measures.unpack_documents(data)]
        )  # fmt: skip

    monkeypatch.setattr(measures_store, "documents", tampered)
    with capture_logs() as logs:
        await _sync_once(lanzhou, "jinan")
    assert await _held_catalogues(lanzhou) == []
    [refused] = [e for e in logs if e["event"] == "measures catalogue refused: nothing kept"]
    assert refused["reason"] == "digest mismatch" and refused["peer"] == "jinan"
    # The feed itself is unaffected: the entries are held, their catalogue just unknown.
    assert len(await active_entries(lanzhou, jinan)) == 3
    assert (await mirror_size(lanzhou, jinan)) > 0
    # Once the origin serves the true text, the next sync (a new subscriber) keeps it.
    monkeypatch.setattr(measures_store, "documents", real)
    await _sync_once(lanzhou, "jinan")
    assert [d for d, _, _ in await _held_catalogues(lanzhou)] == [in_force.sha256]


async def test_a_sync_starts_from_the_cited_digests_without_reading_the_bodies(
    federation: FederationFactory, tmp_path: Path
) -> None:
    # Each sync asks for the cited catalogues not held. It used to find them by parsing every
    # body the mirror holds (a no-op sync: 3.3 s at 1M entries); the projection now records
    # the digests as it writes the bodies (migration 0025).
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    in_force = await _jinan_publishes(jinan, tmp_path)
    await jinan.publisher.append(adds(2000))  # entries that cite no catalogue
    await jinan.publisher.sign_checkpoint()
    await _sync_once(lanzhou, "jinan")
    async with lanzhou.store.engine.connect() as conn:
        origin = LOGS.c.origin == jinan.home.identity.uri
        log_id = (await conn.execute(select(LOGS.c.id).where(origin))).scalar()
        assert isinstance(log_id, int)
        assert await measures_store.cited(conn, log_id) == {in_force.sha256}
        bodies = select(STATE.c.entry).where(STATE.c.log_id == log_id)
        assert {
            d for (b,) in await conn.execute(bodies) if (d := measures_store.cited_by(bytes(b)))
        } == {in_force.sha256}  # the same as the bodies say
    # A catalogue lost here is asked for again by the next sync, from the recorded digests.
    async with lanzhou.store.begin() as conn:
        await conn.execute(MEASURES_CATALOGUES.delete())
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(lanzhou.store.engine.sync_engine, "before_cursor_execute", record)
    try:
        await _sync_once(lanzhou, "jinan")
    finally:
        event.remove(lanzhou.store.engine.sync_engine, "before_cursor_execute", record)
    assert [d for d, _, _ in await _held_catalogues(lanzhou)] == [in_force.sha256]
    # And that sync read no body: no statement of it names list_state's entry column.
    reads = [s for s in seen if "list_state" in s]
    assert not [s for s in reads if re.search(r"\bentry\b", s)], reads


def test_from_documents_checks_digest_and_packing() -> None:
    cat = measures.parse(BASE, source="b.toml", supplements=[(SUPPLEMENT, "s.toml")])
    again = measures.from_documents(cat.documents, cat.sha256, source="peer")
    assert (again.label, again.sha256) == (cat.label, cat.sha256)
    with pytest.raises(MeasuresError, match="does not hash to the digest"):
        measures.from_documents(cat.documents + b"x", cat.sha256, source="peer")
    for blob in (b"", b"\x00" * 7, (99).to_bytes(8, "big") + b"short"):
        with pytest.raises(MeasuresError, match=r"malformed|no documents"):
            measures.from_documents(blob, hashlib.sha256(blob).hexdigest(), source="peer")
    bad = measures.pack_documents([BASE.replace("version = 3", "version = 0")])
    with pytest.raises(MeasuresError, match="version must be"):
        measures.from_documents(bad, hashlib.sha256(bad).hexdigest(), source="peer")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_catalogue_or_an_error_never_a_crash(blob: bytes) -> None:
    with contextlib.suppress(MeasuresError):
        measures.from_documents(blob, hashlib.sha256(blob).hexdigest(), source="peer")


# --- agreements: the measures the receiving city commits to -----------------------------------

AGREEMENT = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["procurement"]

[measures]
procurement-serious = ["GP.BAN", "BID.LIMIT"]
court-defaulter = ["CONS.HIGH"]
"""


def test_an_agreement_names_the_measures_it_commits_to() -> None:
    a = parse_agreement(AGREEMENT, source="lanzhou.toml")
    assert dict(a.measures) == {
        "procurement-serious": ("GP.BAN", "BID.LIMIT"),
        "court-defaulter": ("CONS.HIGH",),
    }
    assert parse_agreement(dump_agreement(a), source="lanzhou.toml") == a
    assert measures.agreement_problems([a], NATIONAL, KINDS) == []
    # Optional: an agreement without it is as valid as before.
    plain = parse_agreement(AGREEMENT.split("[measures]")[0], source="x.toml")
    assert dict(plain.measures) == {} and measures.agreement_problems([plain], NATIONAL) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"BID.LIMIT"]', '"NO.SUCH"]',
         "lanzhou.toml:7: measures.procurement-serious: measure NO.SUCH is not in the measures "
         "catalogue national v1"),
        ('["CONS.HIGH"]', '["TAX.STRICT"]',
         "lanzhou.toml:8: measures.court-defaulter: measure TAX.STRICT does not apply to "
         "court-defaulter (measures catalogue national v1)"),
        ("court-defaulter =", "no-such-list =",
         "lanzhou.toml:8: measures.no-such-list: no list no-such-list in the list catalogue"),
    ],
)  # fmt: skip
def test_agreement_measures_are_checked_against_the_catalogues(
    old: str, new: str, expected: str
) -> None:
    a = parse_agreement(AGREEMENT.replace(old, new), source="lanzhou.toml")
    assert [str(p) for p in measures.agreement_problems([a], NATIONAL, KINDS)] == [expected]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('court-defaulter = ["CONS.HIGH"]', 'court-defaulter = "CONS.HIGH"',
         "x.toml:8: measures.court-defaulter must be a non-empty list of measure codes"),
        ('court-defaulter = ["CONS.HIGH"]', "court-defaulter = []",
         "x.toml:8: measures.court-defaulter must be a non-empty list of measure codes"),
        ('["CONS.HIGH"]', '["CONS HIGH"]',
         "x.toml:8: measures.court-defaulter must be a non-empty list of measure codes"),
        ('["CONS.HIGH"]', '["CONS.HIGH", "CONS.HIGH"]',
         "x.toml:8: measures.court-defaulter repeats a measure code"),
        ("court-defaulter =", '"Court" =', "x.toml:8: measures: a key must be a list code"),
        ("[measures]\nprocurement-serious", "measures = 3\n[x]\nprocurement-serious",
         "x.toml:6: measures must be a table"),
    ],
)  # fmt: skip
def test_malformed_agreement_measures_name_their_line(old: str, new: str, expected: str) -> None:
    problems = [str(p) for p in check_agreement(AGREEMENT.replace(old, new), source="x.toml")]
    assert any(p.startswith(expected) for p in problems), problems


def test_policy_check_refuses_an_unknown_measure_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "jinan"
    assert main(["init", "--home", str(home), "--name", "jinan", "--region", "370100"]) == 0
    (home / "agreements").mkdir()
    path = home / "agreements" / "lanzhou.toml"
    path.write_text(AGREEMENT, encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 0
    path.write_text(AGREEMENT.replace('"BID.LIMIT"', '"JN.PRT.LIMIT"'), encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{path}:7: measures.procurement-serious: measure JN.PRT.LIMIT is not in the "
        "measures catalogue national v1" in err
    )
    assert "Traceback" not in err
    # With Jinan's supplement in force the same agreement is good.
    (home / "measures.supplement.toml").write_bytes((DEPLOY / "measures.jinan.toml").read_bytes())
    assert main(["policy", "check", "--home", str(home)]) == 0
    # A broken catalogue in force fails the agreements that name measures, closed.
    (home / "measures.toml").write_text("version = 0\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 2
    assert "the measures catalogue in force cannot be read" in capsys.readouterr().err


def test_the_border_shares_nothing_while_an_agreement_names_an_unknown_measure(
    tmp_path: Path,
) -> None:
    (tmp_path / "agreements").mkdir()
    (tmp_path / "agreements" / "lanzhou.toml").write_text(
        AGREEMENT.replace('"BID.LIMIT"', '"NO.SUCH"'), encoding="utf-8"
    )
    border = Border(tmp_path / "agreements", check=measures.agreement_check(tmp_path))
    assert border.decision("lanzhou", None) is None  # fail closed
    (tmp_path / "agreements" / "lanzhou.toml").write_text(AGREEMENT, encoding="utf-8")
    border.refresh(force=True)
    assert border._problems == 0 and len(border._agreements) == 1


# --- init: a fresh home has the national base --------------------------------------------------


def test_init_copies_the_measures_catalogue_and_never_overwrites(tmp_path: Path) -> None:
    home = tmp_path / "jinan"
    assert main(["init", "--home", str(home), "--name", "jinan", "--region", "370100"]) == 0
    assert (home / "measures.toml").read_bytes() == (DEPLOY / "measures.toml").read_bytes()
    assert measures.home_files(home)[0] == home / "measures.toml"
    # An existing file is kept as the operator wrote it.
    other = tmp_path / "other"
    other.mkdir()
    mine = BASE.encode()
    (other / "measures.toml").write_bytes(mine)
    assert main(["init", "--home", str(other), "--name", "lanzhou", "--region", "620100"]) == 0
    assert (other / "measures.toml").read_bytes() == mine
