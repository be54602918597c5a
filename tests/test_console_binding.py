"""Issue 18: the consolidated check lists, per item, the measures that bind the officer's own
city: those the item's city marked mandatory (强制), and those this city's own measures
catalogue (the national base and its supplement) makes mandatory for the item's list."""

from __future__ import annotations

from node.api import feeds, officers
from node.console.officer_pages import MARKED, OWN_CATALOGUE, OwnMeasures, binding_measures
from node.feeds.measures import parse

PROCUREMENT = "政府采购严重违法失信行为记录名单"
BASE = """
version = 1
name = "national"
[[measure]]
code = "GP.BAN"
name = "限制参加政府采购活动"
category = "rights-reducing"
basis = "政府采购法第二十二条"
department = "财政部门"
lists = ["procurement-serious"]
mandatory = true
[[measure]]
code = "BID.LIMIT"
name = "限制参与招标投标"
category = "rights-reducing"
basis = "招标投标法"
department = "发展改革部门"
lists = ["procurement-serious"]
mandatory = false
[[measure]]
code = "TAX.A"
name = "纳税便利"
category = "facilitation"
basis = "税收征管法"
department = "税务部门"
lists = ["tax-grade-a"]
mandatory = true
"""
JINAN = """
version = 1
name = "jinan"
extends = "national"
[[measure]]
code = "JN.FUND"
name = "限制申请市级财政资金"
category = "rights-reducing"
basis = "济南市社会信用条例"
department = "财政部门"
lists = ["procurement-serious"]
mandatory = true
"""
KINDS = {"procurement-serious": "black", "tax-grade-a": "red"}


def _own() -> OwnMeasures:
    catalogue = parse(
        BASE, source="measures.toml", supplements=[(JINAN, "measures.supplement.toml")],
        list_kinds=KINDS,
    )  # fmt: skip
    codes = {"procurement-serious": "procurement-serious", PROCUREMENT: "procurement-serious"}
    return OwnMeasures(catalogue, codes)


def _item(list_name: str, *marks: tuple[str, bool]) -> officers.CheckItem:
    return officers.CheckItem(
        origin="lanzhou", origin_city="兰州", list_name=list_name,
        decision_doc_no="兰财〔2026〕1号", authority_name="兰州市财政局",
        measures=[feeds.Measure(code=c, mandatory=m) for c, m in marks],
    )  # fmt: skip


def test_the_own_catalogue_adds_the_measures_it_makes_mandatory_for_the_list() -> None:
    item = _item(PROCUREMENT, ("GP.BAN", True), ("BID.LIMIT", False))
    found = [(b.code, b.why, b.name) for b in binding_measures([item], _own())]
    # GP.BAN as marked (named from this city's catalogue); the city's own JN.FUND; never the
    # recommended BID.LIMIT, nor a measure of another list (TAX.A).
    assert found == [
        ("GP.BAN", MARKED, "限制参加政府采购活动"),
        ("JN.FUND", OWN_CATALOGUE, "限制申请市级财政资金"),
    ]
    assert {b.decision for b in binding_measures([item], _own())} == {"兰财〔2026〕1号"}


def test_without_the_own_catalogue_or_a_known_list_only_the_marks_bind() -> None:
    item = _item(PROCUREMENT, ("GP.BAN", True), ("BID.LIMIT", False))
    assert [(b.code, b.why, b.name) for b in binding_measures([item])] == [("GP.BAN", MARKED, "")]
    unknown = _item("某市自定名单", ("X.1", True), ("X.2", False))
    assert [(b.code, b.why) for b in binding_measures([unknown], _own())] == [("X.1", MARKED)]


def test_an_item_marking_the_citys_measure_lists_it_once() -> None:
    item = _item("procurement-serious", ("JN.FUND", True), ("GP.BAN", False))
    found = [(b.code, b.why) for b in binding_measures([item], _own())]
    # GP.BAN is recommended by the item's city but mandatory here: it binds this city.
    assert found == [("JN.FUND", MARKED), ("GP.BAN", OWN_CATALOGUE)]
