"""One validator for every identifier (issue 10, item 2): the list importer (adapters.list_csv)
and `creditnode identity check` give the same verdict on every code, because both go through
node.identity.validate.

The verdicts line up as imported / imported with a warning / quarantined against valid /
warning / invalid. The corpus is generated: valid codes, codes broken in each way GB 32100 and
GB 11643 define, pre-2016 exceptions, valid codes that look like scientific notation, 15-digit
IDs, residence permits and spreadsheet-damaged cells, in each of the four code columns.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters.list_csv import COLUMNS, ListCsv, ListRow, Quarantined
from node.identity.batch import check_values
from node.identity.codes import (
    USCC_ALPHABET,
    org_code_check_char,
    resident_id_check_char,
    uscc_check_char,
)
from node.identity.validate import (
    AUTHORITIES,
    COLUMN_EXPECTS,
    INVALID,
    PERSONAL_KINDS,
    VALID,
    WARNING,
    check_expecting,
    check_uscc,
    classify,
    id_type,
    upgrade_15,
)

DIVISIONS = ["110105", "350100", "440300", "370102", "620112", "110000", "100000"]
ID_DIVISIONS = ["110105", "370102", "620102", "140105", "440103"]
PAIRS = [(a, c) for a, (_, cats) in AUTHORITIES.items() for c in cats]
DIGIT_PAIRS = [(a, c) for a, c in PAIRS if a.isdigit()]
BAD_AUTHORITIES = [c for c in USCC_ALPHABET if c not in AUTHORITIES]

# The three codes the importer used to take although `identity check` rejects them.
OLD_IMPORTER_HOLES = ["B1370100MA3C4XY1X2", "95370100MA3C4XY1XP", "91999999MA3C4XY1XT"]
# Valid codes that read as numbers in scientific notation.
SCIENTIFIC_LOOKING = ["911100000000071E05", "91110000000012E004"]

VERDICT = {VALID: "valid", WARNING: "warning", INVALID: "invalid"}


def make_uscc(authority: str, category: str, division: str, body8: str) -> str:
    first17 = authority + category + division + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


def make_id(address: str, birth: str, sequence: str) -> str:
    first17 = address + birth + sequence
    return first17 + resident_id_check_char(first17)


AUTHORITY = make_uscc("1", "1", "370100", "00429921")  # a 机构编制 code, Jinan


def other(chars: str, current: str) -> str:
    """A character of *chars* that is not *current*."""
    return next(c for c in chars if c != current)


# ------------------------------------------------------------------------ the corpus

bodies = st.text(USCC_ALPHABET, min_size=8, max_size=8)
digit_bodies = st.text("0123456789", min_size=8, max_size=8)


@st.composite
def valid_usccs(draw: st.DrawFn, digits_only: bool = False) -> str:
    authority, category = draw(st.sampled_from(DIGIT_PAIRS if digits_only else PAIRS))
    body = draw(digit_bodies if digits_only else bodies)
    return make_uscc(authority, category, draw(st.sampled_from(DIVISIONS)), body)


@st.composite
def scientific_looking(draw: st.DrawFn) -> str:
    """A valid USCC of digits with one E among the last five characters: '…71E05'."""
    authority, category = draw(st.sampled_from(DIGIT_PAIRS))
    division = draw(st.sampled_from(DIVISIONS))
    where = draw(st.sampled_from([6, 7]))  # body index: 3 or 2 digits follow the E
    drawn = draw(st.text("0123456789", min_size=7, max_size=7))
    # Both check characters must come out digits (about 3 bodies in 10): step the last two
    # digits through their 100 values from the drawn ones rather than filter (a filter that
    # rejects 7 in 10 trips Hypothesis's health check now and then).
    for step in range(100):
        digits = (
            drawn[:5] + str((int(drawn[5]) + step // 10) % 10) + str((int(drawn[6]) + step) % 10)
        )
        code = make_uscc(authority, category, division, digits[:where] + "E" + digits[where:])
        if code[16:].isdigit():
            break
    assume(code[16:].isdigit())  # never reached in practice: 0.7 ** 100
    assert re.fullmatch(r"[0-9]+E[0-9]{1,3}", code)
    return code


@st.composite
def broken_usccs(draw: st.DrawFn) -> tuple[str, str]:
    """(what is wrong, the code)."""
    code = draw(valid_usccs())
    how = draw(
        st.sampled_from(
            [
                "authority",
                "category",
                "division",
                "division_letters",
                "position_17",
                "position_18",
                "both",
                "character",
                "length",
            ]
        )
    )
    first17 = code[:17]
    if how == "authority":
        changed = draw(st.sampled_from(BAD_AUTHORITIES)) + code[1:17]
        return how, changed + uscc_check_char(changed)
    if how == "category":
        cats = AUTHORITIES[code[0]][1]
        bad = [c for c in USCC_ALPHABET if c not in cats]
        changed = code[0] + draw(st.sampled_from(bad)) + code[2:17]
        return how, changed + uscc_check_char(changed)
    if how == "division":
        changed = code[:2] + draw(st.sampled_from(["999999", "000000", "123456"])) + code[8:17]
        return how, changed + uscc_check_char(changed)
    if how == "division_letters":
        changed = code[:2] + "3501A0" + code[8:17]
        return how, changed + uscc_check_char(changed)
    if how == "position_17":
        changed = code[:16] + other("0123456789X", code[16])
        return how, changed + uscc_check_char(changed)
    if how == "position_18":  # the pre-2016 defect: a warning, leniently
        return how, first17 + other(USCC_ALPHABET, code[17])
    if how == "both":
        changed = code[:16] + other("0123456789X", code[16])
        return how, changed + other(USCC_ALPHABET, uscc_check_char(changed))
    if how == "character":
        i = draw(st.integers(0, 17))
        return how, code[:i] + draw(st.sampled_from("IOSVZ*#")) + code[i + 1 :]
    n = draw(st.sampled_from([17, 19, 9, 15]))
    return how, (code + "0")[:n]


@st.composite
def damaged_usccs(draw: st.DrawFn) -> str:
    code = draw(valid_usccs(digits_only=True))
    assume(code.isdigit())
    form = draw(
        st.sampled_from(["scientific", "short_scientific", "dot_zero", "thousands", "tail"])
    )
    if form == "scientific":
        return f"{int(code):.14E}"  # 15 significant digits: what a wide General cell shows
    if form == "short_scientific":
        return f"{int(code):.5E}".replace("E+", draw(st.sampled_from(["E+", "E", "e+"])))
    if form == "dot_zero":
        return code + ".0"
    if form == "thousands":
        return f"{int(code):,}"
    return code[:15] + "000"


@st.composite
def noisy(draw: st.DrawFn, code: str) -> str:
    """*code* as people type it: case, full-width forms, spaces, a hyphen, a text marker."""
    form = draw(st.sampled_from(["lower", "fullwidth", "spaces", "hyphen", "quote", "formula"]))
    if form == "lower":
        return code.lower()
    if form == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in code)
    if form == "spaces":
        return f" {code[:6]} {code[6:]} "
    if form == "hyphen":
        return f"{code[:8]}-{code[8:]}"
    if form == "quote":
        return "'" + code
    return f'="{code}"'


births = st.dates(datetime.date(1930, 1, 1), datetime.date(2005, 12, 31))
sequences = st.text("0123456789", min_size=3, max_size=3)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    return make_id(draw(st.sampled_from(ID_DIVISIONS)), f"{draw(births):%Y%m%d}", draw(sequences))


@st.composite
def ids_15(draw: st.DrawFn) -> str:
    born = draw(st.dates(datetime.date(1900, 1, 1), datetime.date(1999, 12, 31)))
    return draw(st.sampled_from(ID_DIVISIONS)) + f"{born:%y%m%d}" + draw(sequences)


@st.composite
def permits(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["810000", "820000", "830000"]))
    return make_id(prefix, f"{draw(births):%Y%m%d}", draw(sequences))


@st.composite
def broken_ids(draw: st.DrawFn) -> tuple[str, str]:
    idno = draw(valid_ids() | permits())
    how = draw(
        st.sampled_from(
            ["check", "birth", "future", "address", "length", "letter", "15_date", "damaged"]
        )
    )
    if how == "check":
        return how, idno[:17] + other("0123456789X", idno[17])
    if how == "birth":
        return how, make_id(idno[:6], idno[6:10] + "1332", idno[14:17])
    if how == "future":
        return how, make_id(idno[:6], "20990101", idno[14:17])
    if how == "address":
        return how, make_id("999999", idno[6:14], idno[14:17])
    if how == "length":
        return how, idno[: draw(st.sampled_from([16, 17]))]
    if how == "letter":
        return how, idno[:9] + "A" + idno[10:]
    if how == "15_date":
        return how, idno[:6] + "491331" + idno[14:17]
    digits = idno[:17] + ("0" if idno[17] == "X" else idno[17])
    form = draw(st.sampled_from(["sci", "tail", "dot_zero"]))
    if form == "sci":
        return how, f"{int(digits):.11E}"
    if form == "tail":
        assume(resident_id_check_char(digits[:15] + "00") != "0")  # else a valid ID
        return how, digits[:15] + "000"
    return how, digits + ".0"


uscc_cells = st.one_of(
    valid_usccs(),
    valid_usccs().flatmap(noisy),
    scientific_looking(),
    st.sampled_from(SCIENTIFIC_LOOKING + OLD_IMPORTER_HOLES),
    broken_usccs().map(lambda p: p[1]),
    damaged_usccs(),
    valid_ids(),  # a resident ID where a USCC belongs
    st.sampled_from(["D2143569-X", "440301103097413", "440300192203821"]),  # legacy codes
)
id_cells = st.one_of(
    valid_ids(),
    valid_ids().flatmap(noisy),
    valid_ids().map(lambda i: i.lower()),
    ids_15(),
    permits(),
    broken_ids().map(lambda p: p[1]),
    valid_usccs(),  # a USCC where an ID belongs
)


# ------------------------------------------------------------------ driving both sides

ORG: dict[str, str] = {
    "主体名称": "济南示例科技有限公司",
    "主体类型": "法人和其他组织",
    "统一社会信用代码": "91350100M000100Y43",
    "证件号码": "",
    "法定代表人": "王示例",
    "法定代表人证件号码": "",
    "名单类型": "黑名单",
    "名单名称": "政府采购严重违法失信行为记录名单",
    "列入原因": "提供虚假材料谋取中标、成交",
    "认定依据": "《中华人民共和国政府采购法》第七十七条",
    "认定文书号": "",
    "认定部门": "济南市财政局（示例）",
    "认定部门代码": AUTHORITY,
    "列入日期": "2024-03-05",
    "严重程度": "严重",
    "公示截止日期": "",
    "惩戒措施": "GP.BAN:强制",
}
PERSON = {
    **ORG,
    "主体名称": "李示例",
    "主体类型": "自然人",
    "统一社会信用代码": "",
    "法定代表人": "",
}


def row_for(column: str, cell: str, n: int) -> dict[str, str]:
    """A row valid in every cell but *column*, which holds *cell*."""
    base = PERSON if column == "证件号码" else ORG
    return {**base, column: cell, "认定文书号": f"示例〔2024〕{n}号"}


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows([r[c] for c in COLUMNS] for r in rows)
    return path


def import_verdict(result: ListRow | Quarantined, column: str) -> str:
    if isinstance(result, Quarantined):
        assert result.column == column, result  # the only problem is the code under test
        assert result.reason.startswith(f"{column}: ")
        return "invalid"
    assert all(w.startswith(f"{column}: ") for w in result.warnings), result.warnings
    return "warning" if result.warnings else "valid"


def assert_no_value_in(reason: str, cell: str, column: str) -> None:
    plain = re.sub(r"\s", "", cell)
    if COLUMN_EXPECTS[column] == "person":
        for k in range(len(plain) - 3):  # not four characters of an ID in a row
            assert plain[k : k + 4] not in reason, (reason, k)
    elif len(plain) >= 6:
        assert plain not in reason and plain.upper() not in reason


def compare(cases: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Import and batch-check (column, cell) *cases*; assert they agree; return the verdicts."""
    rows = [row_for(column, cell, n) for n, (column, cell) in enumerate(cases)]
    with tempfile.TemporaryDirectory() as d:
        results = list(ListCsv.open(write_rows(Path(d, "corpus.csv"), rows)).rows())
    assert len(results) == len(cases)
    verdicts = []
    for (column, cell), result in zip(cases, results, strict=True):
        report = check_values([(result.row, cell)], expect=COLUMN_EXPECTS[column])
        [checked] = report.rows
        imported = import_verdict(result, column)
        assert imported == VERDICT[checked.status], (column, checked, result)
        if isinstance(result, Quarantined):
            assert_no_value_in(result.reason, cell, column)
        else:
            check = check_expecting(cell, COLUMN_EXPECTS[column])
            stored = {
                "统一社会信用代码": result.uscc,
                "认定部门代码": result.authority_uscc,
                "证件号码": result.person_id,
                "法定代表人证件号码": result.legal_rep_id,
            }[column]
            assert stored == check.normalised
            if column == "证件号码":
                assert result.person_id_type == id_type(check) != ""
            if column == "法定代表人证件号码":
                assert result.legal_rep_id_type == id_type(check) != ""
            for warning in result.warnings:
                assert_no_value_in(warning, cell, column)
        verdicts.append((column, cell, imported))
    return verdicts


@given(
    st.lists(
        st.tuples(st.sampled_from(["统一社会信用代码", "认定部门代码"]), uscc_cells)
        | st.tuples(st.sampled_from(["证件号码", "法定代表人证件号码"]), id_cells),
        min_size=1,
        max_size=12,
    )
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_importer_and_identity_check_agree_on_every_code(cases: list[tuple[str, str]]) -> None:
    compare(cases)


@given(valid_usccs(), valid_usccs().flatmap(noisy), scientific_looking())
@settings(max_examples=60, deadline=None)
def test_valid_codes_import(code: str, typed: str, scientific: str) -> None:
    cases = [
        (c, v) for v in (code, typed, scientific) for c in ("统一社会信用代码", "认定部门代码")
    ]
    assert {v for _, _, v in compare(cases)} == {"valid"}


@given(broken_usccs())
@settings(max_examples=150, deadline=None)
def test_broken_codes_are_quarantined_or_warned(broken: tuple[str, str]) -> None:
    how, code = broken
    [(_, _, subject), (_, _, authority)] = compare(
        [("统一社会信用代码", code), ("认定部门代码", code)]
    )
    # A pre-2016 code is a warning, unless it is all digits ending 000: then it reads as a
    # spreadsheet truncation (damage).
    pre_2016 = how == "position_18" and not check_uscc(code).damaged
    assert subject == authority == ("warning" if pre_2016 else "invalid")


@given(valid_ids(), ids_15(), permits())
@settings(max_examples=60, deadline=None)
def test_ids_of_every_kind_import(idno: str, idno15: str, permit: str) -> None:
    cases = [(c, v) for v in (idno, idno15, permit) for c in ("证件号码", "法定代表人证件号码")]
    assert {v for _, _, v in compare(cases)} == {"valid"}


@given(broken_ids())
@settings(max_examples=150, deadline=None)
def test_broken_ids_are_quarantined(broken: tuple[str, str]) -> None:
    _, idno = broken
    verdicts = compare([("证件号码", idno), ("法定代表人证件号码", idno)])
    assert {v for _, _, v in verdicts} == {"invalid"}


def test_the_old_holes_are_closed() -> None:
    for code in OLD_IMPORTER_HOLES:
        assert check_uscc(code).status == INVALID
    verdicts = compare(
        [(c, code) for code in OLD_IMPORTER_HOLES for c in ("统一社会信用代码", "认定部门代码")]
    )
    assert {v for _, _, v in verdicts} == {"invalid"}


def test_scientific_looking_valid_codes_are_valid_everywhere() -> None:
    for code in SCIENTIFIC_LOOKING:
        for r in (check_uscc(code), check_uscc(code, strict=True), classify(code)):
            assert (r.kind, r.status, r.damaged, r.normalised) == ("uscc", VALID, False, code)
        assert check_expecting(code, "uscc").status == VALID
        assert check_values([(2, code)]).all_valid
        assert check_values([(2, code)], expect="uscc").all_valid
        assert check_uscc(code.lower()).status == VALID
    verdicts = compare(
        [(c, code) for code in SCIENTIFIC_LOOKING for c in ("统一社会信用代码", "认定部门代码")]
    )
    assert {v for _, _, v in verdicts} == {"valid"}
    # What a spreadsheet makes of a code is still damage: it fails as written.
    damaged = check_uscc("9.11100000000071E+17")
    assert (damaged.status, damaged.damaged) == (INVALID, True)


def test_pre_2016_exception_imports_with_a_warning(tmp_path: Path) -> None:
    code = "91350100M000100Y44"  # the worked example with position 18 wrong
    rows = [
        row_for("统一社会信用代码", code, 1),
        {**row_for("认定部门代码", code, 2), "统一社会信用代码": code},
    ]
    first, second = ListCsv.open(write_rows(tmp_path / "w.csv", rows)).rows()
    assert isinstance(first, ListRow) and isinstance(second, ListRow)
    assert first.uscc == code
    [warning] = first.warnings
    assert warning.startswith("统一社会信用代码: check character (position 18) fails")
    assert "before 2016" in warning
    assert [w.split(":")[0] for w in second.warnings] == ["统一社会信用代码", "认定部门代码"]


def test_id_types_and_upgrade(tmp_path: Path) -> None:
    idno15 = "110105491231002"
    permits_ = {
        "810000": make_id("810000", "19900101", "123"),
        "820000": make_id("820000", "19900101", "123"),
        "830000": make_id("830000", "19900101", "123"),
    }
    rows = [
        row_for("证件号码", idno15, 1),
        row_for("证件号码", "11010519491231002X", 2),
        *(row_for("证件号码", p, 3 + i) for i, p in enumerate(permits_.values())),
        row_for("法定代表人证件号码", idno15, 6),
        row_for("法定代表人证件号码", permits_["830000"], 7),
    ]
    results = list(ListCsv.open(write_rows(tmp_path / "t.csv", rows)).rows())
    assert all(isinstance(r, ListRow) for r in results), results
    listed = [r for r in results if isinstance(r, ListRow)]
    assert [(r.person_id, r.person_id_type) for r in listed[:5]] == [
        ("11010519491231002X", "resident_id_upgraded"),
        ("11010519491231002X", "resident_id"),
        (permits_["810000"], "hk_macao_residence_permit"),
        (permits_["820000"], "hk_macao_residence_permit"),
        (permits_["830000"], "taiwan_residence_permit"),
    ]
    assert upgrade_15(idno15) == "11010519491231002X"
    assert [(r.legal_rep_id, r.legal_rep_id_type) for r in listed[5:]] == [
        ("11010519491231002X", "resident_id_upgraded"),
        (permits_["830000"], "taiwan_residence_permit"),
    ]
    assert all(r.person_id_type == "" for r in listed[5:])
    assert all(r.legal_rep_id_type == "" for r in listed[:5])
    # The 15-digit ID and its upgrade are one person: one natural key.
    assert listed[0].natural_key()[1] == listed[1].natural_key()[1]


def test_a_15_digit_id_and_its_upgrade_are_one_entry_and_one_pseudonym(tmp_path: Path) -> None:
    from node.api import feeds
    from node.feeds.importer import row_to_entry
    from node.identity.pseudonym_key import PseudonymKey

    key = PseudonymKey.generate()
    rows = [
        row_for("证件号码", "110105491231002", 1),
        row_for("证件号码", "11010519491231002x", 2),
        {
            **row_for("统一社会信用代码", "91350100M000100Y44", 3),
            "法定代表人证件号码": make_id("830000", "19900101", "123"),
        },
    ]
    old, new, org = ListCsv.open(write_rows(tmp_path / "p.csv", rows)).rows()
    assert isinstance(old, ListRow) and isinstance(new, ListRow) and isinstance(org, ListRow)
    a = row_to_entry(old, feeds.PROVENANCE_AUTHORITATIVE, key)
    b = row_to_entry(new, feeds.PROVENANCE_AUTHORITATIVE, key)
    assert a.person_id == b.person_id == "11010519491231002X"
    assert a.person_pseudonym == b.person_pseudonym != ""
    assert a.person_id_masked == b.person_id_masked == "1101051949****002X"
    assert a.person_id_type == feeds.ID_TYPE_RESIDENT_ID_UPGRADED
    assert b.person_id_type == feeds.ID_TYPE_RESIDENT_ID
    assert list(a.warnings) == list(b.warnings) == []
    c = row_to_entry(org, feeds.PROVENANCE_AUTHORITATIVE, key)
    assert c.person_id_type == feeds.ID_TYPE_UNSPECIFIED
    assert c.legal_rep_id_type == feeds.ID_TYPE_TAIWAN_RESIDENCE_PERMIT
    [warning] = c.warnings
    assert warning.startswith("统一社会信用代码: check character (position 18) fails")
    assert not re.search(r"[0-9]{4}", warning.replace("2016", ""))


# ------------------------------------------------------------- the command line itself

FIXED = [
    ("统一社会信用代码", "91350100M000100Y43", "valid"),
    ("统一社会信用代码", "91350100M000100Y44", "warning"),
    *(("统一社会信用代码", c, "invalid") for c in OLD_IMPORTER_HOLES),
    *(("统一社会信用代码", c, "valid") for c in SCIENTIFIC_LOOKING),
    ("统一社会信用代码", "9.16201E+17", "invalid"),
    ("统一社会信用代码", "11010519491231002X", "invalid"),
    ("认定部门代码", "91350100M000100Y44", "warning"),
    ("认定部门代码", "B1370100MA3C4XY1X2", "invalid"),
    ("证件号码", "110105491231002", "valid"),
    ("证件号码", make_id("810000", "19900101", "123"), "valid"),
    ("证件号码", make_id("830000", "19900101", "123"), "valid"),
    ("证件号码", "110105194912310021", "invalid"),
    ("证件号码", "91350100M000100Y43", "invalid"),
    ("法定代表人证件号码", "110105491231002", "valid"),
    ("法定代表人证件号码", "1.10105194912E+17", "invalid"),
]


def test_identity_check_command_agrees_with_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from node.cli import main

    rows = [row_for(column, cell, n) for n, (column, cell, _) in enumerate(FIXED)]
    path = write_rows(tmp_path / "fixed.csv", rows)
    imported = {r.row: r for r in ListCsv.open(path).rows()}
    for column in COLUMN_EXPECTS:
        capsys.readouterr()
        main(["identity", "check", str(path), "--column", column, "--format", "json"])
        report = json.loads(capsys.readouterr().out)
        by_row = {r["row"]: r for r in report["rows"]}
        for n, (col, cell, expected) in enumerate(FIXED):
            if col != column:
                continue
            row = n + 2
            assert by_row[row]["status"] == expected, (column, cell, by_row[row])
            assert import_verdict(imported[row], column) == expected, (column, cell)
            if by_row[row]["kind"] in PERSONAL_KINDS:
                assert cell.upper() not in json.dumps(report)  # masked
