"""The canonical list CSV importer (adapters.list_csv) and the sample generator."""

from __future__ import annotations

import csv
import datetime
import io
import random
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters.list_csv as list_csv
from adapters.list_csv import (
    COLUMNS,
    CsvError,
    ListCsv,
    ListRow,
    Measure,
    Quarantined,
    parse_date,
    parse_measures,
)
from adapters.samples import MEASURES, generate_rows, write_csv, write_deploy_samples
from node.errors import InputError
from node.identity.codes import org_code_check_char, resident_id_check_char, uscc_check_char

SAMPLES = Path(__file__).resolve().parent.parent / "deploy" / "samples"


def make_uscc(prefix2: str, region: str, body8: str) -> str:
    first17 = prefix2 + region + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


def make_id(address: str, birth: str, sequence: str) -> str:
    first17 = address + birth + sequence
    return first17 + resident_id_check_char(first17)


AUTHORITY = make_uscc("11", "370100", "00429921")
# Position 17 wrong, position 18 right for the wrong one: only the organisation code fails.
BAD_POSITION_17 = "91350100M000100Y5" + uscc_check_char("91350100M000100Y5")
COMPANY = make_uscc("91", "370100", "MA3C7L2U")
PERSON_ID = make_id("370102", "19800101", "123")
REP_ID = "11010519491231002X"

ORG: dict[str, str] = {
    "主体名称": "济南示例科技有限公司",
    "主体类型": "法人和其他组织",
    "统一社会信用代码": COMPANY,
    "证件号码": "",
    "法定代表人": "王示例",
    "法定代表人证件号码": REP_ID,
    "名单类型": "黑名单",
    "名单名称": "政府采购严重违法失信行为记录名单",
    "列入原因": "提供虚假材料谋取中标、成交",
    "认定依据": "《中华人民共和国政府采购法》第七十七条",
    "认定文书号": "济财采罚〔2024〕1号",
    "认定部门": "济南市财政局（示例）",
    "认定部门代码": AUTHORITY,
    "列入日期": "2024-03-05",
    "严重程度": "严重",
    "公示截止日期": "2027-03-04",
    "惩戒措施": "GP.BAN:强制;BID.LIMIT",
}
PERSON: dict[str, str] = {
    **ORG,
    "主体名称": "李示例",
    "主体类型": "自然人",
    "统一社会信用代码": "",
    "证件号码": PERSON_ID,
    "法定代表人": "",
    "法定代表人证件号码": "",
    "认定文书号": "济财采罚〔2024〕2号",
}


PARSED_MEASURES = (Measure("GP.BAN", True), Measure("BID.LIMIT", False))


def write(
    path: Path,
    rows: Iterable[dict[str, str] | Sequence[str]],
    *,
    columns: Sequence[str] = COLUMNS,
    encoding: str = "utf-8",
) -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            if isinstance(row, dict):
                writer.writerow([row.get(c, "") for c in columns])
            else:
                writer.writerow(row)
    return path


def read(path: Path) -> list[ListRow | Quarantined]:
    return list(ListCsv.open(path).rows())


def one(path: Path) -> ListRow | Quarantined:
    [result] = read(path)
    return result


def quarantined(tmp_path: Path, row: dict[str, str]) -> Quarantined:
    result = one(write(tmp_path / "q.csv", [row]))
    assert isinstance(result, Quarantined), result
    return result


# --- samples and generator -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding", "count", "list_type"),
    [
        ("jinan-black.csv", "utf-8", 40, "black"),
        ("lanzhou-black.csv", "gb18030", 40, "black"),
        ("taiyuan-red.csv", "utf-8", 30, "red"),
    ],
)
def test_committed_samples_are_clean(name: str, encoding: str, count: int, list_type: str) -> None:
    f = ListCsv.open(SAMPLES / name)
    assert f.encoding == encoding
    rows = list(f.rows())
    assert len(rows) == count
    assert all(isinstance(r, ListRow) and r.list_type == list_type for r in rows)
    if list_type == "red":
        assert {r.severity for r in rows if isinstance(r, ListRow)} == {""}
    assert all("示例" in r.subject_name for r in rows if isinstance(r, ListRow))


def test_committed_samples_are_reproducible(tmp_path: Path) -> None:
    for path in write_deploy_samples(tmp_path):
        assert path.read_bytes() == (SAMPLES / path.name).read_bytes(), (
            f"deploy/samples/{path.name} is stale: run `python -m adapters.samples`"
        )


@pytest.mark.parametrize(
    ("list_type", "style", "encoding"),
    [("black", "iso", "utf-8"), ("watch", "slash", "gb18030"), ("red", "chinese", "utf-8-sig")],
)
def test_generated_rows_are_valid(
    tmp_path: Path, list_type: str, style: str, encoding: str
) -> None:
    rows = generate_rows(
        1500, seed=3, list_name="示例名单", list_type=list_type, region="620100", date_style=style
    )
    path = tmp_path / "g.csv"
    assert write_csv(path, rows, encoding=encoding) == 1500
    f = ListCsv.open(path)
    assert f.encoding == encoding
    results = list(f.rows())
    assert [r for r in results if isinstance(r, Quarantined)] == []
    listed = [r for r in results if isinstance(r, ListRow)]
    assert [r.warnings for r in listed if r.warnings] == []  # valid to the strict checks too
    assert {r.person_id_type for r in listed if r.person_id} <= {"resident_id"}
    assert {r.uscc[2:8] for r in listed if r.uscc} == {"620100"}
    assert {m.code for r in listed for m in r.measures} <= set(MEASURES)
    assert {r.subject_type for r in listed} >= {"legal_person", "sole_trader"}
    if list_type != "red":
        assert any(r.subject_type == "natural_person" for r in listed)
    assert f.bytes_read() == f.size_bytes() == path.stat().st_size


def test_generator_is_deterministic() -> None:
    def rows(seed: int) -> list[dict[str, str]]:
        return list(generate_rows(50, seed=seed, list_name="x", list_type="black", region="370100"))

    assert rows(1) == rows(1)
    assert rows(1) != rows(2)
    with pytest.raises(ValueError):
        list(generate_rows(1, seed=1, list_name="x", list_type="grey", region="370100"))
    with pytest.raises(ValueError):
        list(generate_rows(1, seed=1, list_name="x", list_type="red", region="999999"))


# --- encodings and header --------------------------------------------------------------------


def expected_fields(row: ListRow | Quarantined) -> tuple[object, ...]:
    assert isinstance(row, ListRow), row
    return (row.subject_name, row.uscc, row.person_id, row.listing_date, row.measures)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_encodings(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path / "e.csv", [ORG, PERSON], encoding=encoding)
    f = ListCsv.open(path)
    assert f.encoding == encoding
    assert [expected_fields(r) for r in f.rows()] == [
        ("济南示例科技有限公司", COMPANY, "", datetime.date(2024, 3, 5), PARSED_MEASURES),
        ("李示例", "", PERSON_ID, datetime.date(2024, 3, 5), PARSED_MEASURES),
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_detection_survives_a_character_cut_at_the_prefix_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    path = write(tmp_path / "b.csv", [ORG], encoding=encoding)
    for size in range(2, path.stat().st_size + 2):
        monkeypatch.setattr(list_csv, "_PREFIX_BYTES", size)
        f = ListCsv.open(path)
        assert f.encoding == encoding, size
        assert isinstance(one(path), ListRow)


def test_column_order_does_not_matter_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    columns = [*COLUMNS, "备注", "序号"]
    random.Random(7).shuffle(columns)
    shuffled = write(tmp_path / "s.csv", [ORG, PERSON], columns=columns)
    plain = write(tmp_path / "p.csv", [ORG, PERSON])
    assert read(shuffled) == read(plain)
    assert ListCsv.open(shuffled).columns == tuple(columns)


def test_header_whitespace_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", [ORG])
    text = path.read_bytes().decode()
    header, rest = text.split("\r\n", 1)
    padded = ",".join(f" {c}\t" for c in header.split(","))
    path.write_text(padded + "\r\n" + rest, encoding="utf-8", newline="")
    assert isinstance(one(path), ListRow)


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    columns = [c for c in COLUMNS if c not in ("认定部门代码", "惩戒措施")]
    path = write(tmp_path / "m.csv", [], columns=columns)
    with pytest.raises(CsvError) as info:
        ListCsv.open(path)
    assert str(path) in str(info.value)
    assert "missing columns 认定部门代码, 惩戒措施" in str(info.value)
    assert isinstance(info.value, InputError)
    assert info.value.exit_code == 2


def test_duplicate_header_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", [], columns=[*COLUMNS, "列入日期"])
    with pytest.raises(CsvError, match=r"duplicate header column 列入日期 \(columns 14 and 18\)"):
        ListCsv.open(path)
    # a repeated column the importer does not read is harmless
    assert isinstance(
        one(write(tmp_path / "x.csv", [ORG], columns=[*COLUMNS, "备注", "备注"])), ListRow
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\xef\xbb\xbf", "is empty"),
        (b"\r\n\r\n", "is empty"),
        ("主体名称,名单名称\n".encode("utf-16"), "is UTF-16"),
        (",".join(COLUMNS).encode() + b"\n\xff\xfe\xff\xfe\x80\n", "neither UTF-8 nor GB18030"),
        (b"\xef\xbb\xbf" + ",".join(COLUMNS).encode("gb18030"), "byte-order mark but is not UTF-8"),
        (b"a,b,c\n1,2,3\n", "missing columns 主体名称, 主体类型"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CsvError, match=message) as info:
        ListCsv.open(path)
    assert str(info.value).startswith(f"{path}: ")


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="cannot read"):
        ListCsv.open(tmp_path / "absent.csv")
    with pytest.raises(CsvError, match="cannot read"):
        ListCsv.open(tmp_path)


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    assert read(write(tmp_path / "h.csv", [])) == []


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-05",
        "2024/3/5",
        "2024/03/05",
        "2024/3/05",
        "2024年3月5日",
        "2024年03月05日",
        " 2024-03-05 ",
    ],
)
def test_date_formats(tmp_path: Path, text: str) -> None:
    assert parse_date(text) == datetime.date(2024, 3, 5)
    row = one(write(tmp_path / "d.csv", [{**ORG, "列入日期": text}]))
    assert isinstance(row, ListRow)
    assert row.listing_date == datetime.date(2024, 3, 5)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2024-02-30", "is not a real calendar date"),
        ("2024年13月1日", "is not a real calendar date"),
        ("2024-3-5", "is not a date"),
        ("05/03/2024", "is not a date"),
        ("20240305", "is not a date"),
        ("2024.3.5", "is not a date"),
        ("２０２４-０３-０５", "is not a date"),
    ],
)
def test_bad_dates(text: str, reason: str) -> None:
    result = parse_date(text)
    assert isinstance(result, str)
    assert result.startswith(reason)
    assert parse_date("  ") is None


@pytest.mark.parametrize(
    ("text", "measures"),
    [
        ("", ()),
        ("GP.BAN", (Measure("GP.BAN", False),)),
        ("GP.BAN:强制", (Measure("GP.BAN", True),)),
        ("GP.BAN：建议", (Measure("GP.BAN", False),)),
        (
            "a(强制)；b（建议）;c (强制) ",
            (Measure("a", True), Measure("b", False), Measure("c", True)),
        ),
        (" A1_x-9 : 强制 ;; B ;", (Measure("A1_x-9", True), Measure("B", False))),
        ("X" * 32, (Measure("X" * 32, False),)),
    ],
)
def test_measures(text: str, measures: tuple[Measure, ...]) -> None:
    assert parse_measures(text) == measures


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("GP BAN", "item 1 is malformed"),
        ("A;B:必须", "item 2 is malformed"),
        ("X" * 33, "item 1 is malformed"),
        ("A:强制:建议", "item 1 is malformed"),
        ("禁止参加政府采购", "item 1 is malformed"),
        ("A(强制", "item 1 is malformed"),
        ("A,B", "item 1 is malformed"),
        ("A;B:强制;A", "item 3 repeats a measure code"),
    ],
)
def test_bad_measures(text: str, reason: str) -> None:
    result = parse_measures(text)
    assert isinstance(result, str)
    assert result.startswith(reason)


def test_valid_rows_are_normalised(tmp_path: Path) -> None:
    org = {
        **ORG,
        "统一社会信用代码": " " + COMPANY.lower()[:8] + "-" + COMPANY[8:] + " ",
        "认定部门代码": "".join(chr(ord(c) + 0xFEE0) for c in AUTHORITY),  # full-width
        "法定代表人证件号码": REP_ID.lower(),
        "证件号码": "ignored for organisations",
        "主体名称": "  济南示例科技有限公司\u3000",
    }
    person = {**PERSON, "证件号码": PERSON_ID[:6] + " " + PERSON_ID[6:], "名单类型": "重点关注名单"}
    red = {**ORG, "名单类型": "红名单", "严重程度": "", "公示截止日期": "", "惩戒措施": ""}
    red["认定文书号"] = "济财采信〔2024〕1号"
    first, second, third = read(write(tmp_path / "n.csv", [org, person, red]))
    assert first == ListRow(
        row=2,
        subject_name="济南示例科技有限公司",
        subject_type="legal_person",
        uscc=COMPANY,
        person_id="",
        legal_rep_name="王示例",
        legal_rep_id=REP_ID,
        list_type="black",
        list_name="政府采购严重违法失信行为记录名单",
        reason="提供虚假材料谋取中标、成交",
        legal_basis="《中华人民共和国政府采购法》第七十七条",
        decision_doc_no="济财采罚〔2024〕1号",
        authority_name="济南市财政局（示例）",
        authority_uscc=AUTHORITY,
        listing_date=datetime.date(2024, 3, 5),
        severity="serious",
        disclosure_end=datetime.date(2027, 3, 4),
        measures=PARSED_MEASURES,
        person_id_type="",
        legal_rep_id_type="resident_id",
        warnings=(),
    )
    assert first.natural_key() == (
        "政府采购严重违法失信行为记录名单",
        COMPANY,
        "济财采罚〔2024〕1号",
    )
    assert isinstance(second, ListRow)
    assert (second.subject_type, second.uscc, second.person_id) == ("natural_person", "", PERSON_ID)
    assert second.list_type == "watch"
    assert second.natural_key()[1] == PERSON_ID
    assert isinstance(third, ListRow)
    assert (third.list_type, third.severity, third.disclosure_end, third.measures) == (
        "red",
        "",
        None,
        (),
    )


def test_sole_trader(tmp_path: Path) -> None:
    uscc = make_uscc("92", "370102", "MA3C7L2U")
    row = one(
        write(tmp_path / "s.csv", [{**ORG, "主体类型": "个体工商户", "统一社会信用代码": uscc}])
    )
    assert isinstance(row, ListRow)
    assert (row.subject_type, row.uscc) == ("sole_trader", uscc)


# --- quarantine ------------------------------------------------------------------------------

BAD_CASES: list[tuple[dict[str, str], str, str]] = [
    ({**ORG, "主体名称": " "}, "主体名称", "must not be empty"),
    ({**ORG, "主体类型": "企业"}, "主体类型", "must be 法人和其他组织, 个体工商户 or 自然人"),
    ({**ORG, "统一社会信用代码": ""}, "统一社会信用代码", "must not be empty for an organisation"),
    (
        {**ORG, "统一社会信用代码": COMPANY[:17]},
        "统一社会信用代码",
        "must be 18 characters, has 17",
    ),
    (
        {**ORG, "统一社会信用代码": COMPANY[:4] + "I" + COMPANY[5:]},
        "统一社会信用代码",
        "character at position 5 is not allowed",
    ),
    (
        {**ORG, "统一社会信用代码": "91350100M000100Y54"},
        "统一社会信用代码",
        "check characters at positions 17 and 18 both fail",
    ),
    (
        {**ORG, "统一社会信用代码": BAD_POSITION_17},
        "统一社会信用代码",
        "organisation code check (position 17) fails",
    ),
    ({**ORG, "统一社会信用代码": "9.16201E+17"}, "统一社会信用代码", "spreadsheet damage:"),
    # What the importer used to take and `identity check` did not: authority, category,
    # division (GB 32100 positions 1-8).
    (
        {**ORG, "统一社会信用代码": "B1370100MA3C4XY1X2"},
        "统一社会信用代码",
        "registration authority 'B' (position 1) is not defined",
    ),
    (
        {**ORG, "统一社会信用代码": "95370100MA3C4XY1XP"},
        "统一社会信用代码",
        "category '5' is not defined for authority '9'",
    ),
    (
        {**ORG, "统一社会信用代码": "91999999MA3C4XY1XT"},
        "统一社会信用代码",
        "division code (positions 3-8) is not a known GB/T 2260 code",
    ),
    ({**ORG, "统一社会信用代码": PERSON_ID}, "统一社会信用代码", "not a USCC: it is a resident ID"),
    ({**ORG, "认定部门代码": "B1370100MA3C4XY1X2"}, "认定部门代码", "registration authority"),
    (
        {**PERSON, "统一社会信用代码": COMPANY},
        "统一社会信用代码",
        "must be empty for a natural person",
    ),
    ({**PERSON, "证件号码": ""}, "证件号码", "must not be empty for a natural person"),
    (
        {**PERSON, "证件号码": PERSON_ID[:17] + ("0" if PERSON_ID[17] != "0" else "1")},
        "证件号码",
        "resident ID check character fails",
    ),
    (
        {**PERSON, "证件号码": make_id("370102", "19800230", "123")},
        "证件号码",
        "birth date is not a date",
    ),
    ({**PERSON, "证件号码": make_id("999999", "19800101", "123")}, "证件号码", "address code"),
    ({**PERSON, "证件号码": COMPANY}, "证件号码", "not a resident ID or residence permit number"),
    ({**PERSON, "证件号码": "3.70102198E+17"}, "证件号码", "spreadsheet damage:"),
    ({**PERSON, "证件号码": PERSON_ID[:16]}, "证件号码", "must be 18 characters (15 for a"),
    (
        {**ORG, "法定代表人证件号码": REP_ID[:-1] + "1"},
        "法定代表人证件号码",
        "check character fails",
    ),
    ({**ORG, "名单类型": "灰名单"}, "名单类型", "must be 黑名单, 红名单 or 重点关注名单"),
    ({**ORG, "名单名称": ""}, "名单名称", "must not be empty"),
    ({**ORG, "列入原因": ""}, "列入原因", "must not be empty"),
    ({**ORG, "认定依据": ""}, "认定依据", "must not be empty"),
    ({**ORG, "认定文书号": ""}, "认定文书号", "must not be empty"),
    ({**ORG, "认定部门": ""}, "认定部门", "must not be empty"),
    ({**ORG, "认定部门代码": ""}, "认定部门代码", "must not be empty"),
    (
        {**ORG, "认定部门代码": AUTHORITY[:16] + ("0" if AUTHORITY[16] != "0" else "1") + "0"},
        "认定部门代码",
        "check characters at positions 17 and 18 both fail",
    ),
    ({**ORG, "列入日期": ""}, "列入日期", "must not be empty"),
    ({**ORG, "列入日期": "2024-02-30"}, "列入日期", "is not a real calendar date"),
    ({**ORG, "列入日期": "March 5"}, "列入日期", "is not a date"),
    ({**ORG, "严重程度": "很严重"}, "严重程度", "must be 轻微, 一般 or 严重"),
    ({**ORG, "严重程度": ""}, "严重程度", "must not be empty on a 黑名单 or 重点关注名单"),
    ({**ORG, "名单类型": "重点关注名单", "严重程度": ""}, "严重程度", "must not be empty"),
    ({**ORG, "公示截止日期": "2024-03-04"}, "公示截止日期", "precedes 列入日期"),
    ({**ORG, "公示截止日期": "2027/02/29"}, "公示截止日期", "is not a real calendar date"),
    ({**ORG, "惩戒措施": "GP.BAN:必须"}, "惩戒措施", "item 1 is malformed"),
    ({**ORG, "惩戒措施": "A;A"}, "惩戒措施", "item 2 repeats a measure code"),
    ({**ORG, "列入原因": "提供\x00虚假材料"}, "列入原因", "contains a control character"),
]


@pytest.mark.parametrize(("row", "column", "problem"), BAD_CASES)
def test_bad_rows_are_quarantined_naming_the_column(
    tmp_path: Path, row: dict[str, str], column: str, problem: str
) -> None:
    q = quarantined(tmp_path, row)
    assert q.row == 2
    assert q.column == column
    assert q.reason.startswith(f"{column}: ")
    assert problem in q.reason
    assert "\n" not in q.reason


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    q = quarantined(tmp_path, {**ORG, "名单类型": "灰名单", "列入日期": "", "惩戒措施": "?"})
    assert q.column is None
    assert q.reason == (
        "名单类型: must be 黑名单, 红名单 or 重点关注名单; 列入日期: must not be empty; "
        "惩戒措施: item 1 is malformed (expected CODE, CODE:强制, CODE:建议 or CODE:推荐)"
    )


def test_wrong_field_count(tmp_path: Path) -> None:
    values = [ORG[c] for c in COLUMNS]
    path = write(tmp_path / "f.csv", [values[:-1], [*values, "extra"], values])
    short, long, good = read(path)
    assert short == Quarantined(2, None, "has 16 fields, the header has 17")
    assert long == Quarantined(3, None, "has 18 fields, the header has 17")
    assert isinstance(good, ListRow)


def test_undecodable_bytes_quarantine_only_their_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = io.StringIO()
    csv.writer(good).writerows([COLUMNS, [ORG[c] for c in COLUMNS]])
    lines = good.getvalue().encode().splitlines(keepends=True)
    bad = lines[1].replace("虚假".encode(), b"\xff\xfe")  # in 列入原因
    other = lines[1].replace(b"1\xe5\x8f\xb7", b"3\xe5\x8f\xb7")  # a different 认定文书号
    path = tmp_path / "u.csv"
    path.write_bytes(lines[0] + lines[1] + bad + other)
    # beyond the detection prefix, as in a large file that goes bad half-way
    monkeypatch.setattr(list_csv, "_PREFIX_BYTES", len(lines[0] + lines[1]))
    first, second, third = read(path)
    assert isinstance(first, ListRow)
    assert second == Quarantined(3, "列入原因", "列入原因: is not valid UTF-8 text")
    assert isinstance(third, ListRow)
    assert third.row == 4


def test_duplicate_natural_key(tmp_path: Path) -> None:
    same_key_other_values = {**ORG, "列入原因": "另一原因", "列入日期": "2024/3/6"}
    other_doc = {**ORG, "认定文书号": "济财采罚〔2024〕9号"}
    other_list = {**ORG, "名单名称": "另一名单"}
    person_again = {**PERSON, "主体名称": "李示例二"}
    rows = [ORG, PERSON, same_key_other_values, other_doc, other_list, person_again, ORG]
    results = read(write(tmp_path / "k.csv", rows))
    assert [type(r).__name__ for r in results] == [
        "ListRow",
        "ListRow",
        "Quarantined",
        "ListRow",
        "ListRow",
        "Quarantined",
        "Quarantined",
    ]
    assert results[2] == Quarantined(4, None, "duplicate of row 2")
    assert results[5] == Quarantined(7, None, "duplicate of row 3")
    assert results[6] == Quarantined(8, None, "duplicate of row 2")


def test_a_quarantined_row_does_not_claim_its_key(tmp_path: Path) -> None:
    broken = {**ORG, "列入日期": "bad"}
    first, second = read(write(tmp_path / "k.csv", [broken, ORG]))
    assert isinstance(first, Quarantined)
    assert isinstance(second, ListRow)


def test_every_row_is_accounted_for_and_numbered_by_line(tmp_path: Path) -> None:
    multiline = {**ORG, "列入原因": '第一行\n第二行, 含"引号"', "认定文书号": "m1"}
    rows: list[dict[str, str] | Sequence[str]] = [
        ORG,
        {**ORG, "认定文书号": "a"},
        multiline,
        {**ORG, "认定文书号": "b", "列入日期": "x"},
        ["too", "short"],
        PERSON,
        ORG,
        {**PERSON, "证件号码": "0" * 18},
    ]
    path = write(tmp_path / "a.csv", rows)
    text = path.read_bytes().decode()
    path.write_text(text.replace("\r\ntoo,short\r\n", "\r\ntoo,short\r\n\r\n"), newline="")
    results = read(path)
    assert len(results) == len(rows)
    assert [r.row for r in results] == [2, 3, 4, 6, 7, 9, 10, 11]  # blank line 8 skipped
    assert isinstance(results[2], ListRow)
    assert results[2].reason == '第一行\n第二行, 含"引号"'
    kinds = [isinstance(r, ListRow) for r in results]
    assert kinds == [True, True, True, False, False, True, False, False]


def test_rows_can_be_iterated_twice_with_fresh_duplicate_state(tmp_path: Path) -> None:
    f = ListCsv.open(write(tmp_path / "t.csv", [ORG, PERSON]))
    assert list(f.rows()) == list(f.rows())
    assert all(isinstance(r, ListRow) for r in f.rows())


def test_progress_counters(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    write_csv(path, generate_rows(300, seed=1, list_name="x", list_type="black", region="140100"))
    f = ListCsv.open(path)
    assert f.size_bytes() == path.stat().st_size
    assert f.bytes_read() == 0
    it = f.rows()
    next(it)
    assert 0 < f.bytes_read() <= f.size_bytes()
    for _ in it:
        pass
    assert f.bytes_read() == f.size_bytes()


# --- properties ------------------------------------------------------------------------------

NAME_CHARS = "王李刘陈杨黄赵吴周伟芳娜敏静丽磊洋勇艳"  # none occurs in any reason text
ADDRESSES = ["110105", "370102", "620102", "140105", "440103"]
MUTATIONS = [
    "none",
    "check",
    "birth",
    "address",
    "truncate",
    "id_in_uscc",
    "id_as_authority",
    "id_as_rep",
    "id_everywhere",
    "bad_type",
    "short_row",
    "duplicate",
    "lowercase_x",
]


@st.composite
def people(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.text(NAME_CHARS, min_size=2, max_size=4))
    birth = draw(st.dates(datetime.date(1930, 1, 1), datetime.date(2005, 12, 31)))
    idno = make_id(
        draw(st.sampled_from(ADDRESSES)),
        f"{birth:%Y%m%d}",
        draw(st.text("0123456789", min_size=3, max_size=3)),
    )
    return name, idno


def mutate(mutation: str, name: str, idno: str) -> list[str]:
    row = {**PERSON, "主体名称": name, "证件号码": idno}
    if mutation == "check":
        row["证件号码"] = idno[:17] + ("X" if idno[17] != "X" else "0")
    elif mutation == "birth":
        row["证件号码"] = make_id(idno[:6], idno[6:10] + "1332", idno[14:17])
    elif mutation == "address":
        row["证件号码"] = make_id("999999", idno[6:14], idno[14:17])
    elif mutation == "truncate":
        row["证件号码"] = idno[:-1]
    elif mutation == "id_in_uscc":
        row["统一社会信用代码"] = idno
    elif mutation == "id_as_authority":
        row["认定部门代码"] = idno
    elif mutation == "id_as_rep":
        row["法定代表人"] = name
        row["法定代表人证件号码"] = idno[:-1] + ("1" if idno[-1] != "1" else "2")
    elif mutation == "id_everywhere":
        row = {c: idno for c in COLUMNS}
        row["主体名称"] = name
    elif mutation == "bad_type":
        row["主体类型"] = name
    elif mutation == "lowercase_x":
        row["证件号码"] = idno.lower() + "x"
    values = [row[c] for c in COLUMNS]
    if mutation == "short_row":
        values = values[:5]
    return values


@given(st.lists(st.tuples(people(), st.sampled_from(MUTATIONS)), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_personal_value_in_any_reason(cases: list[tuple[tuple[str, str], str]]) -> None:
    rows: list[Sequence[str]] = []
    secrets: list[str] = []
    for (name, idno), mutation in cases:
        values = mutate(mutation, name, idno)
        rows.append(values)
        if mutation == "duplicate":
            rows.append(values)
        secrets += [name, *(idno[k : k + 6] for k in range(13))]
    with tempfile.TemporaryDirectory() as d:
        results = read(write(Path(d, "p.csv"), rows))
    assert len(results) == len(rows)
    for result in results:
        if isinstance(result, Quarantined):
            for secret in secrets:
                assert secret not in result.reason


cells = st.text(max_size=12) | st.sampled_from(
    ["", "自然人", "法人和其他组织", "黑名单", "红名单", "严重", "2024-01-01", COMPANY, PERSON_ID]
)


@given(
    st.lists(st.lists(cells, min_size=15, max_size=19), min_size=1, max_size=6),
    st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_cells_never_raise(table: list[list[str]], encoding: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d, "a.csv"), table, encoding=encoding)
        results = read(path)
    assert len(results) == len(table)
    assert all(isinstance(r, ListRow | Quarantined) for r in results)
    assert [r.row for r in results] == sorted({r.row for r in results})


@given(
    st.lists(st.sampled_from(COLUMNS), min_size=17, max_size=17, unique=True),
    st.dictionaries(st.sampled_from(COLUMNS), st.text(max_size=20), max_size=6),
    st.sampled_from([ORG, PERSON]),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mostly_valid_rows_with_arbitrary_cells(
    columns: list[str], changes: dict[str, str], base: dict[str, str]
) -> None:
    row = {**base, **changes}
    with tempfile.TemporaryDirectory() as d:
        result = one(write(Path(d, "m.csv"), [row], columns=columns))
    if isinstance(result, Quarantined):
        assert result.reason
        assert result.column is None or result.reason.startswith(f"{result.column}: ")
    else:
        assert result.natural_key()[1] in (result.uscc, result.person_id)


@given(st.binary(max_size=300), st.booleans())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_give_csv_error_or_rows(data: bytes, with_header: bool) -> None:
    header = (",".join(COLUMNS) + "\r\n").encode() if with_header else b""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "b.csv")
        path.write_bytes(header + data)
        try:
            f = ListCsv.open(path)
        except CsvError:
            return
        results = list(f.rows())
    assert all(isinstance(r, ListRow | Quarantined) for r in results)
