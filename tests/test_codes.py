"""Check characters and normalisation: USCC (GB 32100), organisation code (GB 11714), resident ID
(GB 11643). Validating a USCC is node.identity.validate's job (tests/test_identity_validate.py)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.identity.codes import (
    USCC_ALPHABET,
    court_mask,
    normalise_code,
    org_code_check_char,
    resident_id_check_char,
    resident_id_problem,
    uscc_check_char,
)
from node.identity.validate import INVALID, VALID, WARNING, check_uscc

WORKED_EXAMPLE = "91350100M000100Y43"  # GB 32100-2015
VALID_ID = "11010519491231002X"  # GB 11643 example (Beijing Chaoyang, born 1949-12-31)


def make_uscc(prefix2: str, region: str, body8: str) -> str:
    first17 = prefix2 + region + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


def make_id(address: str, birth: str, sequence: str) -> str:
    first17 = address + birth + sequence
    return first17 + resident_id_check_char(first17)


def checks_pass(code: str) -> bool:
    """Both check characters of an 18-character USCC (positions 17 and 18) are right."""
    return org_code_check_char(code[8:16]) == code[16] and uscc_check_char(code[:17]) == code[17]


def test_worked_example_is_valid() -> None:
    assert check_uscc(WORKED_EXAMPLE).status == VALID
    assert checks_pass(WORKED_EXAMPLE)
    assert org_code_check_char("M000100Y") == "4"
    assert uscc_check_char(WORKED_EXAMPLE[:17]) == "3"


@pytest.mark.parametrize(
    ("body", "check"),
    [("D2143569", "X"), ("M000100Y", "4"), ("00000000", "0"), ("12345678", "8")],
)
def test_org_code_check_char(body: str, check: str) -> None:
    # D2143569-X is the GB 11714 textbook example; 00000000 sums to 0, so C = 11 -> "0".
    assert org_code_check_char(body) == check


def test_alphabet_excludes_ambiguous_letters() -> None:
    assert len(USCC_ALPHABET) == 31
    assert not set("IOSVZ") & set(USCC_ALPHABET)


# The USCC reasons: one validator (check_uscc) for the importer, `identity check` and `entity`.
@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (WORKED_EXAMPLE[:17], INVALID, "USCC must be 18 characters, has 17"),
        (WORKED_EXAMPLE + "0", INVALID, "USCC must be 18 characters, has 19"),
        ("", INVALID, "USCC must be 18 characters, has 0"),
        ("9135I100M000100Y43", INVALID, "character at position 5 is not allowed"),
        ("91350100M000100Y54", INVALID, "check characters at positions 17 and 18 both fail"),
        ("91350100M000100Y44", WARNING, "check character (position 18) fails"),
        ("91350100m000100y43", VALID, ""),  # normalised to upper case first
    ],
)
def test_uscc_reasons(code: str, status: str, reason: str) -> None:
    r = check_uscc(code)
    assert (r.status, r.reason[: len(reason)]) == (status, reason)


def test_check_char_functions_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        uscc_check_char("123")
    with pytest.raises(ValueError):
        uscc_check_char("9135010OM000100Y4")  # letter O
    with pytest.raises(ValueError):
        org_code_check_char("M000100")
    with pytest.raises(ValueError):
        org_code_check_char("M000100*")
    with pytest.raises(ValueError):
        resident_id_check_char("1101051949123100")


usccs = st.builds(
    make_uscc,
    st.text(USCC_ALPHABET, min_size=2, max_size=2),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(USCC_ALPHABET, min_size=8, max_size=8),
)


@given(usccs)
@settings(max_examples=60)
def test_every_single_substitution_is_detected(code: str) -> None:
    assert checks_pass(code)
    for i in range(18):
        for c in USCC_ALPHABET:
            if c != code[i]:
                assert not checks_pass(code[:i] + c + code[i + 1 :]), (i, c)
        for c in "IOSVZa-":  # outside the alphabet: the arithmetic refuses, never passes
            changed = code[:i] + c + code[i + 1 :]
            if i < 17:
                with pytest.raises(ValueError):
                    uscc_check_char(changed[:17])
            else:
                assert not checks_pass(changed)


@given(usccs)
@settings(max_examples=30)
def test_adjacent_transpositions_are_detected(code: str) -> None:
    for i in range(17):
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert not checks_pass(swapped), i


def test_published_resident_id_examples() -> None:
    assert resident_id_problem(VALID_ID) is None
    assert resident_id_problem("110105194912310021") == "resident ID check character fails"
    assert resident_id_check_char(VALID_ID[:17]) == "X"


TODAY = datetime.date(2025, 6, 1)


@pytest.mark.parametrize(
    ("idno", "reason"),
    [
        (VALID_ID[:17], "resident ID must be 18 characters, has 17"),
        ("11010519491231002x", "resident ID must be 17 digits followed by a digit or X"),
        ("1101051949123100XX", "resident ID must be 17 digits followed by a digit or X"),
        (
            "１１０１０５１９４９１２３１００２Ｘ",
            "resident ID must be 17 digits followed by a digit or X",
        ),
        (make_id("110105", "19490230", "002"), "resident ID birth date is not a date"),
        (make_id("110105", "19491300", "002"), "resident ID birth date is not a date"),
        (
            make_id("110105", "18991231", "002"),
            "resident ID birth date is implausibly early (before the twentieth century)",
        ),
        (make_id("110105", "20250602", "002"), "resident ID birth date is in the future"),
        (
            make_id("999999", "19800101", "002"),
            "resident ID address code is not a known division code",
        ),
    ],
)
def test_resident_id_problems(idno: str, reason: str) -> None:
    assert resident_id_problem(idno, today=TODAY) == reason


def test_resident_id_accepts_historical_division_and_today() -> None:
    assert resident_id_problem(make_id("620112", "19800101", "123"), today=TODAY) is None
    assert resident_id_problem(make_id("370102", "20250601", "123"), today=TODAY) is None


id_strings = st.text("0123456789X", min_size=0, max_size=20) | st.builds(
    make_id,
    st.sampled_from(["110105", "370102", "620102", "140105", "999999"]),
    st.dates(datetime.date(1890, 1, 1), datetime.date(2030, 12, 31)).map(lambda d: f"{d:%Y%m%d}"),
    st.text("0123456789", min_size=3, max_size=3),
)


@given(id_strings, st.integers(0, 17), st.sampled_from("0123456789X"))
@settings(max_examples=300)
def test_resident_id_reason_never_contains_the_id(idno: str, pos: int, char: str) -> None:
    for candidate in (idno, idno[:pos] + char + idno[pos + 1 :]):
        reason = resident_id_problem(candidate, today=TODAY)
        if reason is None:
            continue
        assert reason.startswith("resident ID ")
        for k in range(len(candidate) - 3):
            assert candidate[k : k + 4] not in reason


@given(st.text("0123456789", min_size=17, max_size=17))
def test_check_char_round_trip(first17: str) -> None:
    idno = first17 + resident_id_check_char(first17)
    assert resident_id_problem(idno) != "resident ID check character fails"
    for c in "0123456789X":
        if c != idno[17]:
            assert resident_id_problem(first17 + c) == "resident ID check character fails"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (" 91350100M000100Y43 ", WORKED_EXAMPLE),
        ("９１３５０１００Ｍ０００１００Ｙ４３", WORKED_EXAMPLE),
        ("91350100-m000100y4-3", WORKED_EXAMPLE),
        ("9135 0100\u3000M000 100Y43", WORKED_EXAMPLE),
        ("D2143569－X", "D2143569X"),
        ("11010519491231002x", VALID_ID),
        ("", ""),
    ],
)
def test_normalise_code(text: str, code: str) -> None:
    assert normalise_code(text) == code


def test_court_mask() -> None:
    assert court_mask("342301196401013224") == "3423011964****3224"
    assert court_mask(VALID_ID) == "1101051949****002X"
    with pytest.raises(ValueError, match="18-character") as info:
        court_mask("110105491231002")
    assert "110105" not in str(info.value)
