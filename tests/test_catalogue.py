"""The alliance list catalogue (node.feeds.catalogue): the deployed document, its checks with
file:line problems, and the rules it applies to rows (windows, repair minimum, sharing)."""

from __future__ import annotations

import datetime as dt
import doctest
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.feeds.catalogue as catalogue_module
from adapters.list_csv import ListCsv, ListRow
from adapters.samples import write_deploy_samples
from node.cli.demo import SAMPLE_LISTS
from node.errors import ConfigError, InputError
from node.feeds.catalogue import (
    Catalogue,
    CatalogueError,
    add_months,
    check,
    load,
    parse,
)
from node.feeds.importer import check_row
from node.home import CATALOGUE_EXAMPLE

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED = ROOT / "deploy" / "lists.yellow-river.toml"
TEXT = DEPLOYED.read_text(encoding="utf-8")


def deployed() -> Catalogue:
    return load(DEPLOYED)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the last line containing *needle*."""
    return [n for n, line in enumerate(text.splitlines(), 1) if needle in line][-1]


# --- the deployed catalogue ------------------------------------------------------------------


def test_deployed_catalogue_covers_the_lists_in_use() -> None:
    cat = deployed()
    assert cat.version >= 1 and cat.alliance == "yellow-river"
    kinds = {
        "政府采购严重违法失信行为记录名单": "black",
        "重大税收违法失信主体名单": "black",
        "纳税信用A级纳税人名单": "red",
        "失信被执行人名单": "black",
        "经营异常名录": "abnormal",
    }
    for name, kind in kinds.items():
        spec = cat.resolve(name)
        assert spec.kind == kind, name
        assert cat.resolve(spec.code) is spec  # by code or by official name
        assert spec.rule and spec.citation
    court = cat.resolve("失信被执行人名单")
    assert (court.term.kind, court.term.min_months, court.term.max_months) == ("fixed", 24, 60)
    procurement = cat.resolve("政府采购严重违法失信行为记录名单")
    assert (procurement.term.min_months, procurement.term.max_months) == (12, 36)
    assert cat.resolve("重大税收违法失信主体名单").id_mask == "tax_id"  # birth date hidden
    assert court.id_mask == "court_id"
    for list_name, _kind, _n in SAMPLE_LISTS.values():
        assert cat.find(list_name) is not None, list_name


def test_committed_samples_obey_their_lists_rules(tmp_path: Path) -> None:
    cat = deployed()
    for path in write_deploy_samples(tmp_path):
        rows = [r for r in ListCsv.open(path).rows() if isinstance(r, ListRow)]
        assert rows
        for row in rows:
            spec = cat.resolve(row.list_name)
            assert row.decision_date is not None and row.decision_date <= row.listing_date
            assert check_row(row, spec) is None, (path.name, row.row)


def test_the_packaged_copy_is_the_deployed_document() -> None:
    assert CATALOGUE_EXAMPLE.read_bytes() == DEPLOYED.read_bytes(), (
        f"{CATALOGUE_EXAMPLE} differs from deploy/lists.yellow-river.toml: copy it over"
    )


def test_doctests() -> None:
    assert doctest.testmod(catalogue_module, verbose=False).failed == 0


# --- problems, each with its line -------------------------------------------------------------


BAD = [
    ("version = 1", "version = 0", "version = 0", "version must be an integer >= 1"),
    ('alliance = "yellow-river"', 'alliance = "yellow-river"\nregion = "370100"',
     "region = ", "unknown key 'region'"),
    ('kind = "abnormal"', 'kind = "grey"', 'kind = "grey"', "kind must be one of"),
    ('code = "tax-grade-a"', 'code = "tax-major"', 'code = "tax-major"',
     "code repeats list 2"),
    ('code = "tax-grade-a"', 'code = "Tax A"', 'code = "Tax A"', "code must be"),
    ('code = "tax-grade-a"', 'code = "penalty"', 'code = "penalty"',
     "code penalty is a data class's"),
    ("repair_after_months = 12\nseverities", "repair_after_month = 12\nseverities",
     "repair_after_month =", "unknown key 'repair_after_month'"),
    ('term = { kind = "window", min_months = 12, max_months = 36 }',
     'term = { kind = "window", min_months = 36, max_months = 12 }',
     "min_months = 36, max_months = 12", "term min_months exceeds max_months"),
    ('term = { kind = "fixed", months = 12 }', 'term = { kind = "fixed", months = 12, until = 3 }',
     "until = 3", "unknown key 'until'"),
    ('term = { kind = "fixed", months = 12 }', 'term = { kind = "forever" }',
     'kind = "forever"', "term kind must be one of"),
    ('public_fields = ["person_name", "person_id_masked", "legal_rep_name"]',
     'public_fields = ["person_name", "person_id"]', '"person_id"]',
     "'person_id' is not a personal field a rule can publish"),
    ('id_mask = "tax_id"', 'id_mask = "birth_date"', 'id_mask = "birth_date"',
     "id_mask must be one of"),
    ("general = { min_months = 3, max_months = 12, shared = true }",
     'general = { min_months = 3, max_months = "a year", shared = true }', "general = ",
     "max_months must be a whole number"),
    ('severities = ["serious"]\nid_mask = "court_id"',
     'severities = ["grave"]\nid_mask = "court_id"', 'severities = ["grave"]',
     "severities must be a list of"),
    ("requires_decision_date = true", "requires_decision_date = 1", "requires_decision_date = 1",
     "requires_decision_date must be true or false"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "at", "message"), BAD)
def test_each_problem_names_its_line(old: str, new: str, at: str, message: str) -> None:
    assert old in TEXT, old
    text = TEXT.replace(old, new, 1)
    problems = check(text, source="lists.toml")
    wanted = f"lists.toml:{line_of(text, at)}: "
    assert any(p.startswith(wanted) and message in p for p in problems), problems
    with pytest.raises(CatalogueError) as caught:
        parse(text, source="lists.toml")
    assert caught.value.problems == tuple(problems)
    assert str(caught.value).startswith("lists.toml:")
    assert caught.value.exit_code == ConfigError.exit_code


def test_invalid_toml_names_the_line() -> None:
    text = TEXT.replace('name = "经营异常名录"', 'name = "经营异常名录', 1)
    [problem] = check(text, source="x.toml")
    broken = line_of(text, 'name = "经营异常名录')
    assert problem.startswith(f"x.toml:{broken}: not valid TOML")


def test_every_problem_is_reported_at_once() -> None:
    text = TEXT.replace('kind = "abnormal"', 'kind = "grey"').replace("version = 1", "version = -1")
    problems = check(text, source="x.toml")
    assert len(problems) == 2
    with pytest.raises(CatalogueError, match=r"\(and 1 more\)"):
        parse(text, source="x.toml")


def test_missing_sections() -> None:
    problems = check('version = 1\nalliance = "a"\n', source="x.toml")
    assert any("disclosure must be a table" in p for p in problems)
    assert any("needs at least one [[list]]" in p for p in problems)


def test_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError) as caught:
        load(tmp_path / "lists.toml")
    assert str(tmp_path / "lists.toml") in str(caught.value) and "missing" in str(caught.value)


def test_an_unknown_list_is_bad_input() -> None:
    with pytest.raises(InputError) as caught:
        deployed().resolve("示例名单")
    assert caught.value.exit_code == 2 and "not in the list catalogue" in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(
    line=st.integers(min_value=0, max_value=len(TEXT.splitlines()) - 1),
    junk=st.one_of(
        st.just(""),
        st.text(max_size=30),
        st.sampled_from(
            ["x = 1", "kind = 3", "[[list]]", "[disclosure]", "term = {}", "code = ''"]
        ),
    ),
)
def test_any_damaged_line_gives_problems_with_lines_or_a_catalogue(line: int, junk: str) -> None:
    lines = TEXT.splitlines()
    lines[line] = junk
    text = "\n".join(lines)
    problems = check(text, source="d.toml")
    for p in problems:
        m = re.match(r"d\.toml:(\d+): .+", p)
        assert m, p
        assert 1 <= int(m[1]) <= max(1, len(text.splitlines()))
    if not problems:  # the damage was harmless (a comment, a blank line, a dropped title)
        assert parse(text, source="d.toml").lists


# --- the rules ---------------------------------------------------------------------------------

DATES = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 12, 31))


@given(day=DATES, months=st.integers(min_value=0, max_value=120))
def test_add_months(day: dt.date, months: int) -> None:
    later = add_months(day, months)
    assert (later.year * 12 + later.month) - (day.year * 12 + day.month) == months
    assert later.day == day.day or (later.day < day.day and (later + dt.timedelta(1)).day == 1)


@settings(max_examples=200)
@given(day=DATES, months=st.integers(min_value=1, max_value=50), slack=st.integers(1, 400))
def test_serious_window_of_the_general_rule(day: dt.date, months: int, slack: int) -> None:
    spec = deployed().resolve("joint-punishment")  # the general rule: by severity
    end = add_months(day, months) - dt.timedelta(days=1)
    problem = spec.window_problem("serious", day, end)
    if 12 <= months <= 36:
        assert problem is None
    else:
        assert problem is not None and "信用修复管理办法" in problem
        assert problem.startswith("公示截止日期: 严重 entries of 失信联合惩戒对象名单")
    too_long = add_months(day, 36) + dt.timedelta(days=slack)
    assert "longer" in (spec.window_problem("serious", day, too_long) or "")


def test_windows_by_severity_and_by_the_lists_own_rule() -> None:
    cat = deployed()
    general = cat.resolve("joint-punishment")
    d = dt.date(2026, 3, 31)
    assert general.window_problem("minor", d, dt.date(2026, 6, 30)) is None
    assert "longer" in (general.window_problem("minor", d, dt.date(2026, 7, 31)) or "")
    assert general.window_problem("general", d, dt.date(2026, 6, 28)) is not None  # < 3 months
    assert general.window_problem("general", d, dt.date(2026, 6, 29)) is None  # 3 months
    assert "must not be empty" in (general.window_problem("general", d, None) or "")
    assert "严重程度" in (general.window_problem("", d, dt.date(2027, 3, 31)) or "")
    assert not general.shared("minor") and general.shared("general")

    court = cat.resolve("court-defaulter")  # 2 years, extendable to 5, whatever the severity
    assert court.window_problem("general", d, add_months(d, 24)) is None
    assert court.window_problem("general", d, add_months(d, 60)) is None
    assert "法释〔2017〕7号" in (court.window_problem("general", d, add_months(d, 12)) or "")
    assert court.shared("minor")  # its own term: the minor rule of the general one is not its

    procurement = cat.resolve("procurement-serious")
    assert "holds 严重 entries only" in (procurement.window_problem("general", d, None) or "")

    abnormal = cat.resolve("market-abnormal")  # until fulfilled: no end needed, 3 years at most
    assert abnormal.window_problem("", d, None) is None
    assert abnormal.window_problem("", d, add_months(d, 37)) is not None


def test_repair_minimum() -> None:
    cat = deployed()
    d = dt.date(2024, 2, 29)
    assert cat.resolve("procurement-serious").repair_from("serious", d) == dt.date(2025, 2, 28)
    general = cat.resolve("joint-punishment")
    assert general.repair_from("general", d) == dt.date(2024, 5, 29)  # the window's minimum
    assert general.repair_from("serious", d) == dt.date(2025, 2, 28)
    assert cat.resolve("court-defaulter").repair_from("serious", d) == d  # any time
