"""The USCC fast path (node.identity.uscc_fast) gives exactly the full path's CodeCheck."""

from __future__ import annotations

import datetime
import doctest
import importlib.util
import random
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import native
from node.identity import uscc_fast, validate
from node.identity.codes import USCC_ALPHABET, uscc_check_char
from node.identity.validate import CodeCheck, check_expecting, check_uscc, classify
from tests.uscc_codes import divisions, realistic_mix, valid_uscc

TODAY = datetime.date(2026, 6, 1)
KNOWN = divisions()


def _full(fn: Callable[[], CodeCheck]) -> CodeCheck:
    """*fn*'s result with the fast path switched off (the reference)."""
    saved = validate._verdict
    validate._verdict = validate._full_path_only
    try:
        return fn()
    finally:
        validate._verdict = saved


def _all_ways(text: str) -> Iterator[tuple[str, Callable[[], CodeCheck]]]:
    yield "check_uscc", lambda: check_uscc(text)
    yield "check_uscc strict", lambda: check_uscc(text, strict=True)
    yield "classify", lambda: classify(text, today=TODAY)
    yield "classify strict", lambda: classify(text, strict=True, today=TODAY)
    yield "expect uscc", lambda: check_expecting(text, "uscc", today=TODAY)
    yield "expect person", lambda: check_expecting(text, "person", today=TODAY)


def assert_same(text: str) -> None:
    for name, fn in _all_ways(text):
        fast, full = fn(), _full(fn)
        assert fast == full, (name, text)
        assert type(fast) is CodeCheck


def test_fast_path_is_on_and_reads_the_common_case() -> None:
    assert validate._verdict is uscc_fast.uscc_verdict
    assert uscc_fast.uscc_verdict("91350100M000100Y43") == uscc_fast.BOTH_OK
    assert uscc_fast.uscc_verdict("91350100M000100Y44") == uscc_fast.ORG_ONLY
    assert uscc_fast.uscc_verdict("91350100M000100X43") == uscc_fast.NEITHER
    # Not the common case: case, length, authority, category, division, alphabet, 000 tail.
    for code in (
        "91350100m000100Y43",
        "91350100M000100Y4",
        "B1350100M000100Y43",
        "95350100M000100Y43",
        "9135A100M000100Y43",
        "91350100M0001I0Y43",
        "913501000000001000",
    ):
        assert uscc_fast.uscc_verdict(code) == uscc_fast.FALLBACK, code


def test_categories_match_the_authorities_table() -> None:
    assert {a: set(c) for a, c in uscc_fast.CATEGORIES.items()} == {
        a: set(cats) for a, (_, cats) in validate.AUTHORITIES.items()
    }


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=USCC_ALPHABET + "IOSVZ", min_size=16, max_size=20))
def test_random_strings_over_the_alphabet(text: str) -> None:
    assert_same(text)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(KNOWN[:2000]))
def test_valid_codes(rng: random.Random, division: str) -> None:
    code = valid_uscc(rng, division)
    assert check_uscc(code).status == "valid"
    assert_same(code)


@settings(max_examples=400, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.sampled_from(KNOWN),
    st.integers(0, 17),
    st.characters(codec="utf-8"),
)
def test_one_character_changes(rng: random.Random, division: str, at: int, char: str) -> None:
    code = valid_uscc(rng, division)
    assert_same(code[:at] + char + code[at + 1 :])
    assert_same(code[:at] + rng.choice(USCC_ALPHABET) + code[at + 1 :])


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(KNOWN))
def test_damaged_and_decorated_input(rng: random.Random, division: str) -> None:
    code = valid_uscc(rng, division)
    digits = "".join(rng.choice("0123456789") for _ in range(18))
    for text in (
        code.lower(),
        f" {code} ",
        f'="{code}"',
        f"'{code}",
        code[:9] + "\u200b" + code[9:],
        digits,
        digits[:15] + "000",
        f"{digits[0]}.{digits[1:12]}E+17",
        f"{int(digits):,}",
        digits + ".0",
        code[:15] + "E" + code[16:],  # an E where a number format could start
        code[:2] + digits[2:14] + "E" + digits[15:],  # digits around one E: scientific
        code[:2] + digits[2:16] + "e" + digits[17:],
        code[:2] + "100000" + code[8:],  # the national division
    ):
        assert_same(text)


def test_national_division_and_e_codes() -> None:
    first17 = "911100000000071E0"
    code = first17 + uscc_check_char(first17)
    assert_same(code)
    assert_same("911100000000071E05")


def test_two_hundred_thousand_realistic_codes() -> None:
    codes = realistic_mix(200_000, seed=4242)
    for strict in (False, True):
        fast = [check_uscc(c, strict=strict) for c in codes]
        saved = validate._verdict
        validate._verdict = validate._full_path_only
        try:
            full = [check_uscc(c, strict=strict) for c in codes]
        finally:
            validate._verdict = saved
        assert fast == full
        assert {r.status for r in fast} == (
            {"valid", "invalid"} if strict else {"valid", "warning", "invalid"}
        )


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91350100M000100Y44"])
def test_reasons_are_the_full_paths(code: str) -> None:
    for strict in (False, True):
        fast = check_uscc(code, strict=strict)
        assert fast == _full(partial(check_uscc, code, strict=strict))
        assert code not in fast.reason


def test_doctests_of_the_source() -> None:
    # From the source file: a compiled module keeps no docstrings.
    spec = importlib.util.spec_from_file_location(
        "_doctest_uscc_fast", native.source_path("node.identity.uscc_fast")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted >= 3
