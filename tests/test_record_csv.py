"""The report's data-class CSVs (issue 14): every row is a record or quarantined with a reason
that names columns and rules, never a value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.list_csv import CsvError, Quarantined
from adapters.record_csv import CLASS_COLUMNS, RecordCsv, RecordRow, parse_amount
from node.api import feeds

USCC = "91350100M000100Y43"
AUTHORITY = "11370100MB0000000X"  # as tests/feedutil.py: a valid government USCC
PERSON = "370102198001011237"
TODAY = dt.date.today()
D = (TODAY - dt.timedelta(days=30)).isoformat()
END = (TODAY + dt.timedelta(days=300)).isoformat()

GOOD = {
    "penalty": {
        "行政相对人名称": "示例科技有限公司", "行政相对人类别": "法人和其他组织",
        "行政相对人代码_1": USCC, "证件号码": "", "决定书文号": "兰市监罚〔2026〕1号",
        "违法行为类型": "虚假宣传", "违法事实": "发布虚假广告", "处罚依据": "《广告法》第五十五条",
        "处罚类别": "罚款;警告", "处罚内容": "罚款二万元", "罚款金额（万元）": "2.00",
        "没收金额（万元）": "", "暂扣或吊销证照": "", "处罚决定日期": D, "处罚有效期": END,
        "公示截止期": END, "处罚机关": "兰州市市场监督管理局",
        "处罚机关统一社会信用代码": AUTHORITY,
        "数据来源单位": "兰州市市场监督管理局", "数据来源单位统一社会信用代码": AUTHORITY,
    },
    "licence": {
        "行政相对人名称": "示例科技有限公司", "行政相对人类别": "法人和其他组织",
        "行政相对人代码_1": USCC, "证件号码": "", "许可文书": "兰许〔2026〕9号", "类别": "普通",
        "证书名称": "食品经营许可证", "证书编号": "JY1620100000001", "内容": "预包装食品销售",
        "决定日期": D, "有效期自": D, "有效期至": "长期", "许可机关": "兰州市行政审批局",
        "当前状态": "有效",
    },
    "evaluation": {
        "行政相对人名称": "示例科技有限公司", "行政相对人类别": "法人和其他组织",
        "行政相对人代码_1": USCC, "证件号码": "", "评价类型": "纳税", "评价等级": "a",
        "评价周期": "2025", "评价日期": D, "有效期至": END, "评价机关": "太原市税务局",
    },
    "commitment": {
        "行政相对人名称": "示例科技有限公司", "行政相对人类别": "法人和其他组织",
        "行政相对人代码_1": USCC, "证件号码": "", "承诺类型": "审批替代型",
        "事项编号": "SX-2026-001", "承诺日期": D, "履约期限": END, "受诺机关": "济南市行政审批局",
        "承诺状态": "已履约",
    },
}  # fmt: skip


def _write(tmp: Path, rows: list[dict[str, str]], *, encoding: str = "utf-8") -> Path:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(r.get(c, "") for c in header) for r in rows]
    path = tmp / "records.csv"
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def _one(tmp: Path, code: str, **changes: str) -> RecordRow | Quarantined:
    row = {**GOOD[code], **changes}
    [item] = RecordCsv.open(_write(tmp, [row]), code).rows()
    return item


@pytest.mark.parametrize("code", sorted(GOOD))
def test_a_good_row_of_each_class(tmp_path: Path, code: str) -> None:
    item = _one(tmp_path, code)
    assert isinstance(item, RecordRow), item
    e = item.entry
    assert (e.list_code, e.WhichOneof("record"), e.uscc) == (code, code, USCC)
    assert e.decision_date == D and e.listing_date == D
    assert e.status == feeds.ENTRY_STATUS_ACTIVE


def test_fields_land_where_the_report_reads_them(tmp_path: Path) -> None:
    p = _one(tmp_path, "penalty")
    assert isinstance(p, RecordRow)
    e = p.entry
    assert (e.decision_doc_no, e.reason, e.legal_basis) == (
        "兰市监罚〔2026〕1号", "发布虚假广告", "《广告法》第五十五条",
    )  # fmt: skip
    assert (e.authority_name, e.authority_uscc, e.disclosure_end) == (
        "兰州市市场监督管理局", AUTHORITY, END,
    )  # fmt: skip
    assert (e.penalty.fine_amount, e.penalty.confiscated_amount) == ("2", "")
    assert e.penalty.data_source_uscc == AUTHORITY
    lic = _one(tmp_path, "licence")
    assert isinstance(lic, RecordRow)
    assert lic.entry.disclosure_end == "" and lic.entry.licence.status == feeds.LICENCE_STATUS_VALID
    ev = _one(tmp_path, "evaluation")
    assert isinstance(ev, RecordRow)
    assert ev.entry.evaluation.scheme == feeds.EVALUATION_SCHEME_TAX
    assert ev.entry.evaluation.grade == "A" and ev.entry.disclosure_end == END
    co = _one(tmp_path, "commitment")
    assert isinstance(co, RecordRow)
    assert co.entry.commitment.status == feeds.COMMITMENT_STATUS_FULFILLED
    assert co.entry.commitment.due == END and co.entry.disclosure_end == ""  # kept in views


BAD = [
    ("penalty", {"行政相对人代码_1": "91350100M0001"}, "行政相对人代码_1"),
    ("penalty", {"决定书文号": ""}, "决定书文号: must not be empty"),
    ("penalty", {"公示截止期": "2026-02-30"}, "公示截止期: is not a real calendar date"),
    ("penalty", {"公示截止期": "", "处罚有效期": ""}, "公示截止期: must not be empty"),
    ("penalty", {"公示截止期": "2000-01-01"}, "公示截止期: precedes 处罚决定日期"),
    ("penalty", {"罚款金额（万元）": "1e3"}, "罚款金额（万元）: is not a decimal"),
    ("penalty", {"罚款金额（万元）": ""}, "must not be empty when 处罚类别 includes 罚款"),
    ("penalty", {"处罚决定日期": "2999-01-01"}, "处罚决定日期: is in the future"),
    ("penalty", {"处罚机关统一社会信用代码": ""}, "处罚机关统一社会信用代码: must not be empty"),
    ("penalty", {"违法事实": "x" * 2001}, "违法事实: is longer than 2000 characters"),
    ("penalty", {"违法事实": "a\x07b"}, "违法事实: contains a control character"),
    ("penalty", {"行政相对人类别": "公司"}, "行政相对人类别: must be"),
    ("licence", {"有效期至": "2000-01-01"}, "有效期至: precedes 有效期自"),
    ("licence", {"当前状态": "注销中"}, "当前状态: must be 有效 or 无效"),
    ("evaluation", {"评价等级": "E"}, "评价等级: must be A, B, M, C or D for 纳税"),
    ("evaluation", {"有效期至": ""}, "有效期至: must not be empty"),
    ("commitment", {"承诺状态": "作废"}, "承诺状态: must be"),
    ("commitment", {"事项编号": ""}, "事项编号: must not be empty"),
]


@pytest.mark.parametrize(("code", "changes", "reason"), BAD)
def test_bad_rows_are_quarantined_naming_the_column(
    tmp_path: Path, code: str, changes: dict[str, str], reason: str
) -> None:
    item = _one(tmp_path, code, **changes)
    assert isinstance(item, Quarantined)
    assert reason in item.reason
    assert item.row == 2


def test_a_person_subject_and_no_id_in_any_reason(tmp_path: Path) -> None:
    person = {"行政相对人名称": "王五", "行政相对人类别": "自然人", "行政相对人代码_1": "",
              "证件号码": PERSON}  # fmt: skip
    ok = _one(tmp_path, "penalty", **person)
    assert isinstance(ok, RecordRow)
    assert (ok.entry.person_id, ok.entry.person_name, ok.entry.subject_name) == (PERSON, "王五", "")
    assert PERSON not in ok.display
    broken = PERSON[:-1] + ("0" if PERSON[-1] != "0" else "1")
    for changes in (
        {**person, "证件号码": broken},
        {**person, "行政相对人代码_1": USCC},
        {**person, "行政相对人代码_3": "12345678-9"},
    ):
        bad = _one(tmp_path, "penalty", **changes)
        assert isinstance(bad, Quarantined)
        assert broken not in bad.reason and PERSON not in bad.reason and "王五" not in bad.reason


def test_duplicates_wrong_widths_and_headers(tmp_path: Path) -> None:
    row = GOOD["evaluation"]
    path = _write(tmp_path, [row, row, {**row, "评价周期": "2024"}])
    path.write_text(path.read_text() + "a,b\n")
    items = list(RecordCsv.open(path, "evaluation").rows())
    assert [type(i).__name__ for i in items] == [
        "RecordRow",
        "Quarantined",
        "RecordRow",
        "Quarantined",
    ]
    assert items[1].reason == "duplicate of row 2"  # type: ignore[union-attr]
    assert "has 2 fields" in items[3].reason  # type: ignore[union-attr]
    missing = {k: v for k, v in row.items() if k != "评价等级"}
    with pytest.raises(CsvError, match="missing columns 评价等级"):
        RecordCsv.open(_write(tmp_path, [missing]), "evaluation")
    with pytest.raises(CsvError, match="unknown data class"):
        RecordCsv.open(path, "honour")


def test_national_spellings_and_gb18030(tmp_path: Path) -> None:
    national = {
        "行政相对人代码_1（统一社会信用代码）" if k == "行政相对人代码_1" else
        "罚款金额(万元)" if k == "罚款金额（万元）" else
        "行政处罚决定书文号" if k == "决定书文号" else k: v
        for k, v in GOOD["penalty"].items()
    }  # fmt: skip
    path = _write(tmp_path, [national], encoding="gb18030")
    opened = RecordCsv.open(path, "penalty")
    assert opened.encoding == "gb18030"
    [item] = opened.rows()
    assert isinstance(item, RecordRow) and item.entry.uscc == USCC


def test_every_class_names_its_columns() -> None:
    for code, (required, _) in CLASS_COLUMNS.items():
        assert set(GOOD[code]) == set(required), code


@given(st.decimals(min_value=0, max_value=Decimal("999999999999"), places=6, allow_nan=False))
def test_amounts_are_canonical_and_exact(value: Decimal) -> None:
    text = format(value, "f")
    parsed = parse_amount(text)
    assert parsed is not None
    assert Decimal(parsed) == value
    assert parse_amount(parsed) == parsed  # canonical: parsing again changes nothing
    assert "E" not in parsed and (parsed == "0" or not parsed.startswith("0") or parsed[1] == ".")


@given(st.text(max_size=20))
def test_amount_parser_never_raises(text: str) -> None:
    parsed = parse_amount(text)
    assert parsed is None or parsed == "" or Decimal(parsed) >= 0


cell = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=60, deadline=None)
@given(code=st.sampled_from(sorted(GOOD)), changes=st.dictionaries(st.sampled_from(
    sorted({c for g in GOOD.values() for c in g})), cell, max_size=5))  # fmt: skip
def test_any_cells_give_one_verdict_per_row_and_never_leak_the_id(
    tmp_path_factory: pytest.TempPathFactory, code: str, changes: dict[str, str]
) -> None:
    import csv
    import io

    row = {
        **GOOD[code],
        "证件号码": PERSON,
        **{k: v for k, v in changes.items() if k in GOOD[code]},
    }
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(row))
    writer.writerow(list(row.values()))
    path = tmp_path_factory.mktemp("h") / "r.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    try:
        items = list(RecordCsv.open(path, code).rows())
    except CsvError:
        return  # a header the cells broke (e.g. a newline in a name cell is fine; a NUL is not)
    assert len(items) <= 1
    for item in items:
        if isinstance(item, Quarantined):
            assert PERSON not in item.reason
        else:
            assert item.entry.list_code == code


def test_doctests() -> None:
    import doctest

    import adapters.record_csv
    import adapters.record_samples
    import node.feeds.classes

    for module in (adapters.record_csv, adapters.record_samples, node.feeds.classes):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_the_committed_samples_are_about_one_listed_entity() -> None:
    root = Path(__file__).resolve().parent.parent / "deploy/samples"
    [penalty] = RecordCsv.open(root / "lanzhou-penalty.csv", "penalty").rows()
    [evaluation] = RecordCsv.open(root / "taiyuan-evaluation.csv", "evaluation").rows()
    assert isinstance(penalty, RecordRow) and isinstance(evaluation, RecordRow)
    assert penalty.entry.uscc == evaluation.entry.uscc
    listed = (root / "lanzhou-black.csv").read_bytes().decode("gb18030")
    assert penalty.entry.uscc in listed
