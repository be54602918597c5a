"""CSV files of the report's data classes (issue 14): one record per row, parsed and validated.

Four classes, each with its own columns (Chinese headers, any order, other columns ignored;
the national 双公示 spellings in ``ALIASES`` are accepted too). Every class starts with the
subject columns:

    行政相对人名称, 行政相对人类别, 行政相对人代码_1 (统一社会信用代码), 证件号码,
    optional 法定代表人, 法定代表人证件号码

(主体名称, 主体类型 and 统一社会信用代码 are accepted for the first three). The subject is
checked as a list row's is (``adapters.list_csv``): 法人和其他组织 / 法人及非法人组织 /
个体工商户 need a valid USCC, 自然人 an empty code and a valid resident ID or permit.

- ``penalty`` (双公示 行政处罚): 决定书文号, 违法行为类型, 违法事实, 处罚依据, 处罚类别, 处罚内容,
  罚款金额（万元）, 没收金额（万元）, 暂扣或吊销证照, 处罚决定日期, 处罚有效期, 公示截止期,
  处罚机关, 处罚机关统一社会信用代码, 数据来源单位, 数据来源单位统一社会信用代码; optional
  行政相对人代码_2 … 行政相对人代码_6. Amounts are decimals (up to 12 digits and 6 decimals,
  stored canonical: ``1.50`` → ``1.5``); a 处罚类别 naming 罚款 needs a 罚款金额. 公示截止期 is
  required and ends the record's publication.
- ``licence`` (双公示 行政许可): 许可文书, 类别, 证书名称, 证书编号, 内容, 决定日期, 有效期自,
  有效期至 (a date or 长期), 许可机关, 当前状态 (有效 or 无效); optional
  许可机关统一社会信用代码. A licence leaves active views after 有效期至.
- ``evaluation`` (信用评价): 评价类型 (综合, 纳税, 环境, 建筑, or another scheme's name), 评价等级
  (纳税: A, B, M, C or D), 评价周期, 评价日期, 有效期至, 评价机关; optional
  评价机关统一社会信用代码, 评价文书号.
- ``commitment`` (信用承诺): 承诺类型, 事项编号, 承诺日期, 履约期限 (may be empty), 受诺机关,
  承诺状态 (有效, 已履约, 未履约 or 虚假承诺); optional 受诺机关统一社会信用代码.

Dates take the list CSV's forms (``YYYY-MM-DD``, ``YYYY/M/D``, ``YYYY年M月D日``). Every data row
yields one RecordRow or one Quarantined (the list CSV's type: row, column, reason), in file
order; a reason names columns and rules, never a cell's value. A row repeating an earlier
row's natural key (subject code and 决定书文号 / 许可文书 / 评价类型 and 评价周期 / 事项编号) is
quarantined as "duplicate of row N".

>>> import pathlib, tempfile
>>> cols = ("行政相对人名称,行政相对人类别,行政相对人代码_1,证件号码,评价类型,评价等级,评价周期,"
...         "评价日期,有效期至,评价机关")
>>> row = ("示例科技有限公司,法人和其他组织,91350100M000100Y43,,纳税,A,2025,2026-04-01,"
...        "2027-03-31,示例税务局")
>>> with tempfile.TemporaryDirectory() as d:
...     p = pathlib.Path(d, "e.csv")
...     _ = p.write_text(cols + "\\n" + row + "\\n", encoding="utf-8")
...     [r] = RecordCsv.open(p, "evaluation").rows()
>>> r.entry.evaluation.grade, r.entry.disclosure_end, r.entry.list_code
('A', '2027-03-31', 'evaluation')
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.list_csv import (
    _BAD_CHARS,
    _SURROGATE,
    SUBJECT_TYPES,
    CsvError,
    Quarantined,
    _read_header,
    parse_date,
    sniff_encoding,
)
from node.api import feeds
from node.identity.codes import normalise_code
from node.identity.validate import (
    EXPECT_PERSON,
    EXPECT_USCC,
    INVALID,
    WARNING,
    check_expecting,
    id_type,
)

__all__ = [
    "ALIASES",
    "CLASS_COLUMNS",
    "RecordCsv",
    "RecordRow",
    "parse_amount",
]

SUBJECT_COLUMNS = ("行政相对人名称", "行政相对人类别", "行政相对人代码_1", "证件号码")
SUBJECT_OPTIONAL = ("法定代表人", "法定代表人证件号码")
PENALTY = (
    "决定书文号", "违法行为类型", "违法事实", "处罚依据", "处罚类别", "处罚内容",
    "罚款金额（万元）", "没收金额（万元）", "暂扣或吊销证照", "处罚决定日期", "处罚有效期",
    "公示截止期", "处罚机关",
    "处罚机关统一社会信用代码", "数据来源单位", "数据来源单位统一社会信用代码",
)  # fmt: skip
COUNTERPARTY = tuple(f"行政相对人代码_{n}" for n in range(2, 7))
LICENCE = (
    "许可文书", "类别", "证书名称", "证书编号", "内容", "决定日期", "有效期自", "有效期至",
    "许可机关", "当前状态",
)  # fmt: skip
EVALUATION = ("评价类型", "评价等级", "评价周期", "评价日期", "有效期至", "评价机关")
COMMITMENT = ("承诺类型", "事项编号", "承诺日期", "履约期限", "受诺机关", "承诺状态")

# class -> (required header columns, optional header columns)
CLASS_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "penalty": (SUBJECT_COLUMNS + PENALTY, SUBJECT_OPTIONAL + COUNTERPARTY),
    "licence": (SUBJECT_COLUMNS + LICENCE, (*SUBJECT_OPTIONAL, "许可机关统一社会信用代码")),
    "evaluation": (
        SUBJECT_COLUMNS + EVALUATION,
        (*SUBJECT_OPTIONAL, "评价机关统一社会信用代码", "评价文书号"),
    ),
    "commitment": (SUBJECT_COLUMNS + COMMITMENT, (*SUBJECT_OPTIONAL, "受诺机关统一社会信用代码")),
}
# Other spellings of a header (after NFKC): the lists' and the national 双公示 forms.
ALIASES: dict[str, str] = {
    "主体名称": "行政相对人名称",
    "主体类型": "行政相对人类别",
    "统一社会信用代码": "行政相对人代码_1",
    "行政相对人代码_1(统一社会信用代码)": "行政相对人代码_1",
    "行政处罚决定书文号": "决定书文号",
    "罚款金额(万元)": "罚款金额（万元）",
    "没收金额(万元)": "没收金额（万元）",
    "没收违法所得、没收非法财物的金额(万元)": "没收金额（万元）",
    "暂扣或吊销证照名称及编号": "暂扣或吊销证照",
    "处罚机关代码": "处罚机关统一社会信用代码",
    "数据来源单位代码": "数据来源单位统一社会信用代码",
    "行政许可决定文书号": "许可文书",
    "许可类别": "类别",
    "许可证书名称": "证书名称",
    "许可编号": "证书编号",
    "许可内容": "内容",
    "许可决定日期": "决定日期",
    "许可机关代码": "许可机关统一社会信用代码",
}
MAX_CELL = 2000  # characters; a longer cell is quarantined (hostile input stays bounded)
MAX_SHORT = 64  # grades, periods, codes of a counterparty
_AMOUNT = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
_SCHEMES = {
    "综合": feeds.EVALUATION_SCHEME_COMPREHENSIVE,
    "公共信用综合评价": feeds.EVALUATION_SCHEME_COMPREHENSIVE,
    "纳税": feeds.EVALUATION_SCHEME_TAX,
    "纳税信用": feeds.EVALUATION_SCHEME_TAX,
    "纳税信用等级评价": feeds.EVALUATION_SCHEME_TAX,
    "环境": feeds.EVALUATION_SCHEME_ENVIRONMENT,
    "环保": feeds.EVALUATION_SCHEME_ENVIRONMENT,
    "环境信用评价": feeds.EVALUATION_SCHEME_ENVIRONMENT,
    "建筑": feeds.EVALUATION_SCHEME_CONSTRUCTION,
    "建筑市场信用评价": feeds.EVALUATION_SCHEME_CONSTRUCTION,
}
TAX_GRADES = ("A", "B", "M", "C", "D")
_LICENCE_STATUS = {
    "有效": feeds.LICENCE_STATUS_VALID,
    "1": feeds.LICENCE_STATUS_VALID,
    "无效": feeds.LICENCE_STATUS_INVALID,
    "2": feeds.LICENCE_STATUS_INVALID,
}
_COMMITMENT_STATUS = {
    "有效": feeds.COMMITMENT_STATUS_IN_FORCE,
    "履行中": feeds.COMMITMENT_STATUS_IN_FORCE,
    "已履约": feeds.COMMITMENT_STATUS_FULFILLED,
    "未履约": feeds.COMMITMENT_STATUS_BREACHED,
    "失信": feeds.COMMITMENT_STATUS_BREACHED,
    "虚假承诺": feeds.COMMITMENT_STATUS_FALSE,
}
_PERPETUAL = frozenset({"长期", "永久", "长期有效"})
_SUBJECT = {
    "legal_person": feeds.SUBJECT_TYPE_LEGAL_PERSON,
    "sole_trader": feeds.SUBJECT_TYPE_SOLE_TRADER,
    "natural_person": feeds.SUBJECT_TYPE_NATURAL_PERSON,
}
_LABELS = {
    "penalty": "行政处罚",
    "licence": "行政许可",
    "evaluation": "信用评价",
    "commitment": "信用承诺",
}


def parse_amount(text: str) -> str | None:
    """A 万元 amount as a canonical decimal string ("" if empty), or None if malformed.

    >>> parse_amount("1.50"), parse_amount("０"), parse_amount(""), parse_amount("1e3")
    ('1.5', '0', '', None)
    """
    text = unicodedata.normalize("NFKC", text).replace(",", "").strip()
    if not text:
        return ""
    if _AMOUNT.fullmatch(text) is None:
        return None
    value = Decimal(text)
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One valid record: the full entry (personal fields included, no pseudonym yet) and the
    natural key it is diffed by."""

    row: int
    code: str  # the class
    key: tuple[str, ...]  # (class, subject code, the class's document key…)
    entry: feeds.ListEntry

    @property
    def display(self) -> str:
        """The row for a plan: the USCC (public) or the row number, never an ID."""
        who = self.entry.uscc or f"person (row {self.row})"
        return f"{who} {' '.join(self.key[2:])}"


def _header(name: str) -> str:
    plain = unicodedata.normalize("NFKC", name).strip()
    return ALIASES.get(plain, ALIASES.get(name, name if name in _ALL else plain))


_ALL = frozenset(c for req, opt in CLASS_COLUMNS.values() for c in (*req, *opt))


class RecordCsv:
    """An opened record CSV of one class: encoding detected, header checked."""

    def __init__(self, path: Path, code: str, encoding: str) -> None:
        self.path = path
        self.code = code
        self.encoding = encoding

    @classmethod
    def open(cls, path: Path, code: str) -> RecordCsv:
        """Open *path* as a CSV of class *code*; CsvError if it cannot be read or lacks columns."""
        if code not in CLASS_COLUMNS:
            raise CsvError(f"unknown data class {code!r}: one of {', '.join(CLASS_COLUMNS)}")
        path = Path(path)
        encoding = sniff_encoding(path)
        opened = cls(path, code, encoding)
        with opened._reader() as (reader, _):
            opened._index(_read_header(path, reader))
        return opened

    def _reader(self) -> _Open:
        return _Open(self.path, self.encoding)

    def _index(self, header: tuple[str, ...]) -> dict[str, int]:
        required, optional = CLASS_COLUMNS[self.code]
        where: dict[str, int] = {}
        for i, raw in enumerate(header):
            name = _header(raw)
            if name in where and name in (*required, *optional):
                raise CsvError(
                    f"{self.path}: duplicate header column {name} (columns {where[name] + 1} "
                    f"and {i + 1})"
                )
            where.setdefault(name, i)
        missing = [c for c in required if c not in where]
        if missing:
            raise CsvError(f"{self.path}: missing columns {', '.join(missing)}")
        return {c: where[c] for c in (*required, *optional) if c in where}

    def rows(self) -> Iterator[RecordRow | Quarantined]:
        """Every data row in file order: a RecordRow or a Quarantined (streaming)."""
        with self._reader() as (reader, raw):
            header = _read_header(self.path, reader)
            checker = _Checker(self.code, self._index(header), len(header), self.encoding)
            last = reader.line_num
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    yield Quarantined(last + 1, None, f"malformed CSV record ({e})")
                    last = reader.line_num
                    continue
                start, last = last + 1, reader.line_num
                if record and any(c.strip() for c in record):
                    yield checker.check(start, record)
            del raw


class _Open:
    def __init__(self, path: Path, encoding: str) -> None:
        self.path, self.encoding = path, encoding

    def __enter__(self) -> tuple[Any, io.BufferedReader]:  # a csv reader
        try:
            self.raw = self.path.open("rb")
        except OSError as e:
            raise CsvError(f"{self.path}: cannot read ({e.strerror or type(e).__name__})") from e
        text = io.TextIOWrapper(self.raw, encoding=self.encoding, errors="surrogateescape",
                                newline="")  # fmt: skip
        return csv.reader(text), self.raw

    def __exit__(self, *exc: object) -> None:
        self.raw.close()


Problems = list[tuple[str, str]]


class _Checker:
    def __init__(self, code: str, index: dict[str, int], width: int, encoding: str) -> None:
        self.code = code
        self.index = index
        self.width = width
        self.encoding_name = "GB18030" if encoding == "gb18030" else "UTF-8"
        self.today = datetime.date.today()
        self.seen: dict[bytes, int] = {}

    def check(self, line: int, record: list[str]) -> RecordRow | Quarantined:
        if len(record) != self.width:
            return Quarantined(line, None, f"has {len(record)} fields, the header has {self.width}")
        cells = {c: record[i].strip() for c, i in self.index.items()}
        problems: Problems = []
        for column, value in cells.items():
            if _SURROGATE.search(value):
                problems.append((column, f"is not valid {self.encoding_name} text"))
            elif _BAD_CHARS.search(value):
                problems.append((column, "contains a control character"))
            elif len(value) > MAX_CELL:
                problems.append((column, f"is longer than {MAX_CELL} characters"))
        if problems:
            return _quarantine(line, problems)
        entry = feeds.ListEntry(list_code=self.code, list_name=_LABELS[self.code])
        warnings: list[str] = []
        subject_code = self._subject(cells, entry, problems, warnings)
        key = _BUILDERS[self.code](self, cells, entry, problems, warnings)
        if problems:
            return _quarantine(line, problems)
        entry.warnings.extend(warnings)
        entry.status = feeds.ENTRY_STATUS_ACTIVE
        natural = (self.code, subject_code, *key)
        digest = hashlib.blake2b("\x1f".join(natural).encode(), digest_size=16).digest()
        first = self.seen.setdefault(digest, line)
        if first != line:
            return Quarantined(line, None, f"duplicate of row {first}")
        return RecordRow(line, self.code, natural, entry)

    # ------------------------------------------------------------------ common parts

    def _code(self, column: str, text: str, expect: str, problems: Problems,
              warnings: list[str]) -> str | None:  # fmt: skip
        checked = check_expecting(text, expect, today=self.today)
        if checked.status == INVALID:
            problems.append((column, checked.reason))
            return None
        if checked.status == WARNING:
            warnings.append(f"{column}: {checked.reason}")
        return checked.normalised

    def _subject(self, cells: dict[str, str], entry: feeds.ListEntry, problems: Problems,
                 warnings: list[str]) -> str:  # fmt: skip
        name = cells["行政相对人名称"]
        if not name:
            problems.append(("行政相对人名称", "must not be empty"))
        kind = SUBJECT_TYPES.get(cells["行政相对人类别"])
        uscc_text = cells["行政相对人代码_1"]
        id_text = cells["证件号码"]
        code = ""
        if kind is None:
            problems.append(("行政相对人类别", "must be 法人和其他组织, 个体工商户 or 自然人"))
        elif kind == "natural_person":
            if normalise_code(uscc_text):
                problems.append(("行政相对人代码_1", "must be empty for a natural person (自然人)"))
            if not normalise_code(id_text):
                problems.append(("证件号码", "must not be empty for a natural person (自然人)"))
            else:
                checked = check_expecting(id_text, EXPECT_PERSON, today=self.today)
                if checked.status == INVALID:
                    problems.append(("证件号码", checked.reason))
                else:
                    if checked.status == WARNING:
                        warnings.append(f"证件号码: {checked.reason}")
                    code = checked.normalised
                    entry.person_id = code
                    entry.person_id_type = _ID_TYPES[id_type(checked)]
                    entry.person_name = name
        elif not normalise_code(uscc_text):
            problems.append(("行政相对人代码_1", "must not be empty for an organisation"))
        else:
            code = self._code("行政相对人代码_1", uscc_text, EXPECT_USCC, problems, warnings) or ""
            entry.uscc = code
            entry.subject_name = name
        if kind is not None:
            entry.subject_type = _SUBJECT[kind]
        rep_id = cells.get("法定代表人证件号码", "")
        if normalise_code(rep_id):
            checked = check_expecting(rep_id, EXPECT_PERSON, today=self.today)
            if checked.status == INVALID:
                problems.append(("法定代表人证件号码", checked.reason))
            else:
                entry.legal_rep_id = checked.normalised
                entry.legal_rep_id_type = _ID_TYPES[id_type(checked)]
        entry.legal_rep_name = cells.get("法定代表人", "")
        return code

    @staticmethod
    def _required(cells: dict[str, str], columns: tuple[str, ...], problems: Problems) -> None:
        for c in columns:
            if not cells.get(c):
                problems.append((c, "must not be empty"))

    @staticmethod
    def _date(cells: dict[str, str], column: str, problems: Problems) -> datetime.date | None:
        parsed = parse_date(cells.get(column, ""))
        if isinstance(parsed, str):
            problems.append((column, parsed))
            return None
        return parsed

    def _decided(
        self, cells: dict[str, str], column: str, problems: Problems
    ) -> datetime.date | None:
        decided = self._date(cells, column, problems)
        if decided is not None and decided > self.today:
            problems.append((column, "is in the future"))
        return decided

    def _authority(self, cells: dict[str, str], name_col: str, code_col: str,
                   entry: feeds.ListEntry, problems: Problems, warnings: list[str],
                   *, required: bool) -> None:  # fmt: skip
        entry.authority_name = cells.get(name_col, "")
        text = cells.get(code_col, "")
        if not normalise_code(text):
            if required:
                problems.append((code_col, "must not be empty"))
            return
        entry.authority_uscc = self._code(code_col, text, EXPECT_USCC, problems, warnings) or ""

    @staticmethod
    def _not_before(problems: Problems, later: tuple[str, datetime.date | None],
                    earlier: tuple[str, datetime.date | None]) -> None:  # fmt: skip
        if later[1] is not None and earlier[1] is not None and later[1] < earlier[1]:
            problems.append((later[0], f"precedes {earlier[0]}"))

    @staticmethod
    def _short(cells: dict[str, str], column: str, problems: Problems) -> str:
        value = cells.get(column, "")
        if len(value) > MAX_SHORT:
            problems.append((column, f"is longer than {MAX_SHORT} characters"))
        return value

    # ------------------------------------------------------------------ classes

    def penalty(self, cells: dict[str, str], entry: feeds.ListEntry, problems: Problems,
                warnings: list[str]) -> tuple[str, ...]:  # fmt: skip
        self._required(cells, ("决定书文号", "违法行为类型", "违法事实", "处罚依据", "处罚类别",
                               "处罚内容", "处罚决定日期", "公示截止期", "处罚机关",
                               "数据来源单位"), problems)  # fmt: skip
        self._authority(cells, "处罚机关", "处罚机关统一社会信用代码", entry, problems, warnings,
                        required=True)  # fmt: skip
        source_uscc = ""
        if normalise_code(cells["数据来源单位统一社会信用代码"]):
            source_uscc = self._code("数据来源单位统一社会信用代码",
                                     cells["数据来源单位统一社会信用代码"], EXPECT_USCC,
                                     problems, warnings) or ""  # fmt: skip
        else:
            problems.append(("数据来源单位统一社会信用代码", "must not be empty"))
        decided = self._decided(cells, "处罚决定日期", problems)
        valid = self._date(cells, "处罚有效期", problems)
        end = self._date(cells, "公示截止期", problems)
        self._not_before(problems, ("处罚有效期", valid), ("处罚决定日期", decided))
        self._not_before(problems, ("公示截止期", end), ("处罚决定日期", decided))
        amounts: list[str] = []
        for column in ("罚款金额（万元）", "没收金额（万元）"):
            amount = parse_amount(cells[column])
            if amount is None:
                problems.append((column, "is not a decimal amount in 万元 (e.g. 1.5)"))
            amounts.append(amount or "")
        if "罚款" in cells["处罚类别"] and not amounts[0]:
            problems.append(("罚款金额（万元）", "must not be empty when 处罚类别 includes 罚款"))
        counterparty = [self._short(cells, c, problems) for c in COUNTERPARTY]
        while counterparty and not counterparty[-1]:
            counterparty.pop()
        if entry.subject_type == feeds.SUBJECT_TYPE_NATURAL_PERSON and any(counterparty):
            problems.append(("行政相对人代码_2", "codes _2 to _6 are an organisation's"))
        entry.decision_doc_no = cells["决定书文号"]
        entry.reason = cells["违法事实"]
        entry.legal_basis = cells["处罚依据"]
        self._dates(entry, decided, end)
        entry.penalty.CopyFrom(
            feeds.AdministrativePenalty(
                violation_type=cells["违法行为类型"],
                category=cells["处罚类别"],
                content=cells["处罚内容"],
                fine_amount=amounts[0],
                confiscated_amount=amounts[1],
                licence_suspended=cells["暂扣或吊销证照"],
                valid_until=valid.isoformat() if valid else "",
                data_source=cells["数据来源单位"],
                data_source_uscc=source_uscc,
                counterparty_codes=counterparty,
            )
        )
        return (cells["决定书文号"],)

    def licence(self, cells: dict[str, str], entry: feeds.ListEntry, problems: Problems,
                warnings: list[str]) -> tuple[str, ...]:  # fmt: skip
        self._required(cells, ("许可文书", "类别", "内容", "决定日期", "有效期自", "有效期至",
                               "许可机关", "当前状态"), problems)  # fmt: skip
        self._authority(cells, "许可机关", "许可机关统一社会信用代码", entry, problems, warnings,
                        required=False)  # fmt: skip
        decided = self._decided(cells, "决定日期", problems)
        start = self._date(cells, "有效期自", problems)
        until_text = cells["有效期至"]
        until = None if until_text in _PERPETUAL else self._date(cells, "有效期至", problems)
        self._not_before(problems, ("有效期至", until), ("有效期自", start))
        status = _LICENCE_STATUS.get(cells["当前状态"])
        if status is None and cells["当前状态"]:
            problems.append(("当前状态", "must be 有效 or 无效"))
        entry.decision_doc_no = cells["许可文书"]
        self._dates(entry, decided, until)
        entry.licence.CopyFrom(
            feeds.AdministrativeLicence(
                category=self._short(cells, "类别", problems),
                certificate_name=cells["证书名称"],
                certificate_no=cells["证书编号"],
                content=cells["内容"],
                valid_from=start.isoformat() if start else "",
                valid_until=until.isoformat() if until else "",
                status=status or feeds.LICENCE_STATUS_UNSPECIFIED,
            )
        )
        return (cells["许可文书"],)

    def evaluation(self, cells: dict[str, str], entry: feeds.ListEntry, problems: Problems,
                   warnings: list[str]) -> tuple[str, ...]:  # fmt: skip
        self._required(cells, EVALUATION, problems)
        self._authority(cells, "评价机关", "评价机关统一社会信用代码", entry, problems, warnings,
                        required=False)  # fmt: skip
        scheme_name = self._short(cells, "评价类型", problems)
        scheme = _SCHEMES.get(scheme_name, feeds.EVALUATION_SCHEME_OTHER)
        grade = self._short(cells, "评价等级", problems).upper()
        if scheme == feeds.EVALUATION_SCHEME_TAX and grade and grade not in TAX_GRADES:
            problems.append(("评价等级", "must be A, B, M, C or D for 纳税"))
        period = self._short(cells, "评价周期", problems)
        issued = self._decided(cells, "评价日期", problems)
        until = self._date(cells, "有效期至", problems)
        self._not_before(problems, ("有效期至", until), ("评价日期", issued))
        entry.decision_doc_no = cells.get("评价文书号", "")
        self._dates(entry, issued, until)
        entry.evaluation.CopyFrom(
            feeds.CreditEvaluation(
                scheme=scheme,
                scheme_name=scheme_name,
                grade=grade,
                period=period,
                issued=issued.isoformat() if issued else "",
                valid_until=until.isoformat() if until else "",
            )
        )
        return (scheme_name, period)

    def commitment(self, cells: dict[str, str], entry: feeds.ListEntry, problems: Problems,
                   warnings: list[str]) -> tuple[str, ...]:  # fmt: skip
        self._required(
            cells, ("承诺类型", "事项编号", "承诺日期", "受诺机关", "承诺状态"), problems
        )
        self._authority(cells, "受诺机关", "受诺机关统一社会信用代码", entry, problems, warnings,
                        required=False)  # fmt: skip
        made = self._decided(cells, "承诺日期", problems)
        due = self._date(cells, "履约期限", problems)
        self._not_before(problems, ("履约期限", due), ("承诺日期", made))
        status = _COMMITMENT_STATUS.get(cells["承诺状态"])
        if status is None and cells["承诺状态"]:
            problems.append(("承诺状态", "must be 有效, 已履约, 未履约 or 虚假承诺"))
        matter = self._short(cells, "事项编号", problems)
        # A commitment stays in views whatever its due date: whether it was kept is the point.
        self._dates(entry, made, None)
        entry.commitment.CopyFrom(
            feeds.CreditCommitment(
                type=self._short(cells, "承诺类型", problems),
                matter_no=matter,
                made=made.isoformat() if made else "",
                due=due.isoformat() if due else "",
                status=status or feeds.COMMITMENT_STATUS_UNSPECIFIED,
            )
        )
        return (matter,)

    @staticmethod
    def _dates(entry: feeds.ListEntry, decided: datetime.date | None,
               end: datetime.date | None) -> None:  # fmt: skip
        if decided is not None:
            entry.decision_date = entry.listing_date = decided.isoformat()
        entry.disclosure_end = end.isoformat() if end is not None else ""


Builder = Callable[
    [_Checker, dict[str, str], feeds.ListEntry, Problems, list[str]], tuple[str, ...]
]
_BUILDERS: dict[str, Builder] = {
    "penalty": _Checker.penalty,
    "licence": _Checker.licence,
    "evaluation": _Checker.evaluation,
    "commitment": _Checker.commitment,
}
_ID_TYPES = {
    "": feeds.ID_TYPE_UNSPECIFIED,
    "resident_id": feeds.ID_TYPE_RESIDENT_ID,
    "resident_id_upgraded": feeds.ID_TYPE_RESIDENT_ID_UPGRADED,
    "hk_macao_residence_permit": feeds.ID_TYPE_HK_MACAO_RESIDENCE_PERMIT,
    "taiwan_residence_permit": feeds.ID_TYPE_TAIWAN_RESIDENCE_PERMIT,
}


def _quarantine(line: int, problems: Problems) -> Quarantined:
    column = problems[0][0] if len(problems) == 1 else None
    return Quarantined(line, column, "; ".join(f"{c}: {m}" for c, m in problems))
