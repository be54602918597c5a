"""Entity-name normalisation and ranking (node.identity.names)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.identity.names import NameMatch, name_similarity, normalise_name, rank_names


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("腾讯科技（深圳）有限公司", "腾讯科技(深圳)有限公司"),
        ("腾讯科技【深圳】有限公司", "腾讯科技(深圳)有限公司"),
        ("ＡＢＣ科技有限公司", "ABC科技有限公司"),
        ("abc科技有限公司", "ABC科技有限公司"),
        ("第１２３号商店", "第123号商店"),
        ("华为技术有限责任公司", "华为技术有限公司"),
        (" 华为 技术\u3000有限\t公司 ", "华为技术有限公司"),
        ("华为技术有限公司。", "华为技术有限公司"),
        ("华为技术有限公司.,;", "华为技术有限公司"),
        ("阿里•巴巴", "阿里·巴巴"),
        ("阿里・巴巴", "阿里·巴巴"),
    ],
)
def test_spelling_variants_compare_equal(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b)


def test_normal_form() -> None:
    assert normalise_name("腾讯科技（深圳）有限责任公司 ") == "腾讯科技(深圳)有限公司"
    assert normalise_name("ＸＸ合伙企业（有限合伙）") == "xx合伙企业(有限合伙)"  # ")" kept
    assert normalise_name("") == ""


def test_different_forms_stay_different() -> None:
    assert normalise_name("华为技术股份有限公司") != normalise_name("华为技术有限公司")
    assert normalise_name("华为技术有限公司北京分公司") != normalise_name("华为技术有限公司")


@given(st.text())
def test_normalisation_is_idempotent(name: str) -> None:
    once = normalise_name(name)
    assert normalise_name(once) == once
    assert not any(c.isspace() for c in once)


CANDIDATES = [
    ("u1", "中兴通讯股份有限公司"),
    ("u2", "华为技术服务有限公司"),
    ("u3", "华为技术有限责任公司"),
    ("u4", "深圳市腾讯计算机系统有限公司"),
    ("u5", "华为 技术有限公司"),
    ("u6", "华为终端有限公司"),
    ("u7", "北京市丙丁科技有限公司"),
]


def test_exact_matches_first() -> None:
    ranked = rank_names("华为技术有限公司", CANDIDATES)
    assert ranked[:2] == [
        NameMatch("u3", "华为技术有限责任公司", 1.0, True),
        NameMatch("u5", "华为 技术有限公司", 1.0, True),
    ]
    rest = ranked[2:]
    assert rest[0].key == "u2"
    assert all(not m.exact and m.score < 1.0 for m in rest)
    assert [m.score for m in rest] == sorted((m.score for m in rest), reverse=True)


def test_unrelated_names_are_filtered_out() -> None:
    keys = {m.key for m in rank_names("华为技术有限公司", CANDIDATES)}
    assert not keys & {"u1", "u4", "u7"}
    # Sharing a region prefix and a legal form is not likeness.
    assert rank_names("北京市甲乙科技有限公司", CANDIDATES) == []


def test_near_misses_are_ranked() -> None:
    ranked = rank_names("北京市丙丁科枝有限公司", CANDIDATES)  # a typo
    assert [m.key for m in ranked] == ["u7"]
    assert 0.55 <= ranked[0].score < 1.0
    abbreviated = rank_names("华为", CANDIDATES)
    assert {m.key for m in abbreviated} >= {"u2", "u3", "u5", "u6"}
    assert not any(m.exact for m in abbreviated)


def test_limit_and_empty_query() -> None:
    assert len(rank_names("华为技术有限公司", CANDIDATES, limit=1)) == 1
    assert rank_names("华为技术有限公司", CANDIDATES, limit=0) == []
    assert rank_names("  ", CANDIDATES) == []
    assert rank_names("华为", []) == []


def test_similarity_bounds() -> None:
    assert name_similarity("华为技术有限公司", "华为技术有限责任公司") == 1.0
    assert name_similarity("华为技术有限公司", "华为技术股份有限公司") == 0.95
    assert name_similarity("华为技术有限公司", "") == 0.0
    assert name_similarity("甲", "乙") == 0.0


@given(st.text(min_size=1), st.text(min_size=1))
def test_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    s = name_similarity(a, b)
    assert s == name_similarity(b, a)
    assert 0.0 <= s <= 1.0
    assert (s == 1.0) == (normalise_name(a) == normalise_name(b) != "")
