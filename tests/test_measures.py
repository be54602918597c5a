"""The measures catalogue (node.feeds.measures): the deployed documents, strict parsing with
file:line problems, city supplements and their conflicts, import validation against it (real
databases through the fixtures) and `creditnode measures list|check`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapters.list_csv import CsvError, ListCsv, ListRow, parse_measures
from adapters.samples import MEASURES as SAMPLE_MEASURES
from adapters.samples import generate_rows, write_csv
from keys import SigningKey
from node.api import feeds
from node.cli import main
from node.feeds import catalogue, measures
from node.feeds.importer import check_measures, import_list
from node.feeds.leaf import LeafError, build_leaf, open_leaf
from node.feeds.logstore import LOGS
from node.feeds.measures import CATEGORIES, INCENTIVE_CATEGORIES, MeasuresError
from node.feeds.publisher import Publisher
from node.feeds.state import STATE
from node.identity.pseudonym_key import PseudonymKey
from node.storage import Store
from tests.conftest import FederationFactory
from tests.feedutil import wait_mirrored

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
