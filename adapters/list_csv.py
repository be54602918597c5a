"""The canonical list CSV: one black, red or watch list entry per row (parsing and validation).

The header names these columns, in any order; other columns may follow and are ignored::

    主体名称,主体类型,统一社会信用代码,证件号码,法定代表人,法定代表人证件号码,名单类型,名单名称,
    列入原因,认定依据,认定文书号,认定部门,认定部门代码,列入日期,严重程度,公示截止日期,惩戒措施

Encoding: UTF-8 (with or without BOM) or GB18030, detected on the first 256 KiB (strict UTF-8
first, then GB18030); the file is then streamed, so a 1,000,000-row file never sits in memory.
Bytes further on that do not decode quarantine their row instead of failing the file.

Values (surrounding whitespace is stripped from every cell):

- 主体类型: 法人和其他组织 (legal_person), 个体工商户 (sole_trader), 自然人 (natural_person).
  Organisations and sole traders need a valid 统一社会信用代码; their 证件号码 is not used.
  A natural person has an empty 统一社会信用代码 and a valid resident ID in 证件号码.
  Codes and IDs are checked exactly as ``creditnode identity check`` checks those columns
  (node.identity.validate.check_expecting, lenient) and stored normalised (NFKC, spaces and
  hyphens removed, upper case; a 15-digit ID as its 18-digit upgrade). A resident ID is 18
  or 15 characters, or a Hong Kong / Macao / Taiwan residence permit number; ListRow says
  which (``person_id_type``, ``legal_rep_id_type``). A code accepted with a warning (a known
  pre-2016 USCC whose check character fails) is imported with the warning in ``warnings``.
- 主体类型 法人及非法人组织 (the Civil Code's spelling) is the same as 法人和其他组织.
- 名单类型: 黑名单 (black), 红名单 (red), 重点关注名单 (watch), 经营异常名录 (abnormal).
- 严重程度: 轻微 (minor), 一般 (general), 严重 (serious); may be empty on red lists only.
- Dates: ``YYYY-MM-DD``, ``YYYY/M/D`` (zero padding optional) or ``YYYY年M月D日``. 列入日期 is
  required; 公示截止日期 is optional and must not precede 列入日期.
- 认定日期 (decision date, from which disclosure periods run) is an optional column; when
  given it must not follow 列入日期. Whether a list requires it, and how long its entries are
  disclosed, is the list catalogue's business (node.feeds.catalogue), checked on import.
- 法定代表人证件号码: optional; if given, a valid resident ID or permit. 认定部门代码: a valid
  USCC.
- Required non-empty: 主体名称, 名单名称, 列入原因, 认定依据, 认定文书号, 认定部门.

惩戒措施 (measures) format: items separated by ``;`` or ``；``, each one of::

    CODE            unmarked: the measures catalogue's default (recommended when parsed alone)
    CODE:建议       recommended; ``：`` (full-width colon) also accepted
    CODE:推荐       recommended (推荐性措施, the Beijing opinions' word), the same as 建议
    CODE:强制       mandatory
    CODE(强制)      the same with ASCII or full-width brackets: CODE（建议）

CODE is 1-32 characters of ``[A-Za-z0-9._-]`` and is kept as written. Whitespace around items
and marks is ignored, and so are empty items (``A;;B;``). A cell may be empty on any list. A
malformed item or a code given twice quarantines the row.

Every data row yields exactly one ListRow or Quarantined, in file order (blank lines are not
rows and yield nothing). A quarantine reason names the column(s) at fault and never repeats a
cell value, so it cannot leak a person's name or ID number. Rows are numbered by the line they
start on (the header is row 1). A row repeating the natural key (名单名称, code or ID,
认定文书号) of an earlier valid row is quarantined as "duplicate of row N".

>>> import pathlib, tempfile
>>> header = ",".join(COLUMNS)
>>> row = ("示例科技有限公司,法人和其他组织,91350100M000100Y43,,示例,,黑名单,政府采购严重违法失信"
...        "行为记录名单,提供虚假材料,政府采购法第七十七条,示财采〔2024〕1号,示例市财政局,"
...        "91350100M000100Y43,2024/3/5,严重,2026年3月4日,ZFCG.JZ:强制;CZ.ZJ")
>>> with tempfile.TemporaryDirectory() as d:
...     p = pathlib.Path(d, "l.csv")
...     _ = p.write_text(header + "\\n" + row + "\\n", encoding="gb18030")
...     f = ListCsv.open(p)
...     [r] = f.rows()
>>> f.encoding, r.row, r.list_type, r.severity, r.listing_date.isoformat()
('gb18030', 2, 'black', 'serious', '2024-03-05')
>>> r.measures
(Measure(code='ZFCG.JZ', mandatory=True), Measure(code='CZ.ZJ', mandatory=False))
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from node.errors import InputError
from node.identity.codes import normalise_code
from node.identity.validate import (
    EXPECT_PERSON,
    EXPECT_USCC,
    INVALID,
    WARNING,
    CodeCheck,
    check_expecting,
    id_type,
)

__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "CsvError",
    "ListCsv",
    "ListRow",
    "Measure",
    "Quarantined",
    "UsccTally",
    "parse_date",
    "parse_measures",
    "sniff_encoding",
]

COLUMNS: tuple[str, ...] = (
    "主体名称",
    "主体类型",
    "统一社会信用代码",
    "证件号码",
    "法定代表人",
    "法定代表人证件号码",
    "名单类型",
    "名单名称",
    "列入原因",
    "认定依据",
    "认定文书号",
    "认定部门",
    "认定部门代码",
    "列入日期",
    "严重程度",
    "公示截止日期",
    "惩戒措施",
)

SUBJECT_TYPES = {
    "法人和其他组织": "legal_person",
    "个体工商户": "sole_trader",
    "自然人": "natural_person",
    "法人及非法人组织": "legal_person",
}
LIST_TYPES = {
    "黑名单": "black",
    "红名单": "red",
    "重点关注名单": "watch",
    "经营异常名录": "abnormal",
}
# Columns a file may have; read when present.
OPTIONAL_COLUMNS: tuple[str, ...] = ("认定日期",)
SEVERITIES = {"轻微": "minor", "一般": "general", "严重": "serious"}

_REQUIRED = tuple(
    (COLUMNS.index(c), c)
    for c in ("主体名称", "名单名称", "列入原因", "认定依据", "认定文书号", "认定部门")
)
_PREFIX_BYTES = 256 * 1024
_READ_BUFFER = 1024 * 1024
_MEMO_LIMIT = 4096

_DATE_FORMATS = (
    re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"),
    re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})"),
    re.compile(r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日"),
)
_MEASURE_SEP = re.compile(r"[;；]")
_MEASURE = re.compile(
    r"([A-Za-z0-9._-]{1,32})(?:\s*[:：]\s*(强制|建议|推荐)|\s*[(（]\s*(强制|建议|推荐)\s*[)）])?"
)
# Lone surrogates are undecodable bytes (surrogateescape); C0 controls other than tab/LF/CR.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class CsvError(InputError):
    """A list CSV that cannot be read at all (as opposed to a row that is quarantined)."""


@dataclass(frozen=True, slots=True)
class Measure:
    """A measure to apply: a code from the measures list, mandatory (强制) or recommended (建议
    or 推荐). ``marked`` is False when the cell left it unmarked: the measures catalogue's
    default then decides (node.feeds.measures)."""

    code: str
    mandatory: bool
    marked: bool = field(default=True, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListRow:
    """One valid list entry."""

    row: int  # line number in the file, header is row 1
    subject_name: str
    subject_type: str  # legal_person | sole_trader | natural_person
    uscc: str  # "" for natural persons
    person_id: str  # "" for organisations
    legal_rep_name: str
    legal_rep_id: str  # "" if not given
    list_type: str  # black | red | watch
    list_name: str
    reason: str
    legal_basis: str
    decision_doc_no: str
    authority_name: str
    authority_uscc: str
    listing_date: datetime.date
    severity: str  # "" | minor | general | serious
    disclosure_end: datetime.date | None
    measures: tuple[Measure, ...]
    # node.identity.validate.ID_TYPES name, "" when there is no such ID
    person_id_type: str
    legal_rep_id_type: str
    # Validation warnings, each "column: reason" (e.g. a known pre-2016 USCC defect); never
    # a personal value.
    warnings: tuple[str, ...]
    decision_date: datetime.date | None = None  # 认定日期, if the file gives it

    def natural_key(self) -> tuple[str, str, str]:
        """(list name, USCC or resident ID, decision document number)."""
        return (self.list_name, self.uscc or self.person_id, self.decision_doc_no)


@dataclass(slots=True)
class UsccTally:
    """The subject USCCs one pass over a file checked: how many, how many failed validation,
    how many passed only leniently (the pre-2016 check-character defect). Counts, no codes."""

    checked: int = 0
    invalid: int = 0
    lenient: int = 0


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A row that was not accepted, and why (never containing a personal value)."""

    row: int
    column: str | None  # Chinese column name, if one column is at fault
    reason: str


def parse_date(text: str) -> datetime.date | str | None:
    """A date in one of the accepted forms; None if *text* is empty; else a problem string."""
    text = text.strip()
    if not text:
        return None
    for pattern in _DATE_FORMATS:
        m = pattern.fullmatch(text)
        if m:
            try:
                return datetime.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return "is not a real calendar date"
    return "is not a date (expected YYYY-MM-DD, YYYY/M/D or YYYY年M月D日)"


def parse_measures(text: str) -> tuple[Measure, ...] | str:
    """The measures in a 惩戒措施 cell (format in the module docstring), or a problem string."""
    measures: list[Measure] = []
    seen: set[str] = set()
    for n, item in enumerate(_MEASURE_SEP.split(text), 1):
        item = item.strip()
        if not item:
            continue
        m = _MEASURE.fullmatch(item)
        if m is None:
            return f"item {n} is malformed (expected CODE, CODE:强制, CODE:建议 or CODE:推荐)"
        code = m[1]
        if code in seen:
            return f"item {n} repeats a measure code"
        seen.add(code)
        mark = m[2] or m[3]
        measures.append(Measure(code, mark == "强制", marked=mark is not None))
    return tuple(measures)


class ListCsv:
    """An opened list CSV: readable, encoding known, header checked. Iterate with rows()."""

    path: Path
    encoding: str  # "utf-8" | "utf-8-sig" | "gb18030"
    columns: tuple[str, ...]  # the header as found (whitespace stripped)

    def __init__(self, path: Path, encoding: str, columns: tuple[str, ...], size: int) -> None:
        self.path = path
        self.encoding = encoding
        self.columns = columns
        self._size = size
        self._stream: BinaryIO | None = None
        self._done = 0
        self.uscc = UsccTally()  # of the newest rows() pass

    @classmethod
    def open(cls, path: Path) -> ListCsv:
        """Open *path*, detect its encoding and check its header; raise CsvError if unusable."""
        path = Path(path)
        try:
            with path.open("rb") as f:
                prefix = f.read(_PREFIX_BYTES)
                complete = f.read(1) == b""
                size = f.seek(0, io.SEEK_END)
        except OSError as e:
            raise CsvError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from e
        if complete and not prefix.removeprefix(codecs.BOM_UTF8).strip():
            raise CsvError(f"{path}: is empty")
        encoding = _detect_encoding(path, prefix, complete)
        try:
            with path.open("rb") as f:
                text = io.TextIOWrapper(f, encoding=encoding, errors="surrogateescape", newline="")
                header = _read_header(path, csv.reader(text))
        except OSError as e:
            raise CsvError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from e
        _header_index(path, header)
        return cls(path, encoding, header, size)

    def size_bytes(self) -> int:
        """The file's size in bytes (for progress bars)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return self._size

    def bytes_read(self) -> int:
        """Bytes consumed so far by the running rows() iteration (read-ahead granularity)."""
        stream = self._stream
        if stream is None:
            return self._done
        try:
            return stream.tell()
        except (OSError, ValueError):
            return self._done

    def rows(self) -> Iterator[ListRow | Quarantined]:
        """Every data row, in file order, as a ListRow or a Quarantined (streaming)."""
        self.uscc = UsccTally()
        checker = _RowChecker(self.encoding, self.uscc)
        self._done = 0
        try:
            raw = self.path.open("rb", buffering=_READ_BUFFER)
        except OSError as e:
            raise CsvError(f"{self.path}: cannot read ({e.strerror or type(e).__name__})") from e
        with raw:
            self._stream = raw
            try:
                text = io.TextIOWrapper(
                    raw, encoding=self.encoding, errors="surrogateescape", newline=""
                )
                reader = csv.reader(text)
                header = _read_header(self.path, reader)
                checker.set_header(self.path, header)
                last_line = reader.line_num
                while True:
                    try:
                        record = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as e:
                        yield Quarantined(last_line + 1, None, f"malformed CSV record ({e})")
                        last_line = reader.line_num
                        continue
                    start, last_line = last_line + 1, reader.line_num
                    if record:
                        yield checker.check(start, record)
                self._done = raw.tell()
            finally:
                self._stream = None


def sniff_encoding(path: Path) -> str:
    """The encoding of a CSV file (utf-8, utf-8-sig or gb18030), as ListCsv.open detects it."""
    try:
        with Path(path).open("rb") as f:
            prefix = f.read(_PREFIX_BYTES)
            complete = f.read(1) == b""
    except OSError as e:
        raise CsvError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from e
    return _detect_encoding(Path(path), prefix, complete)


def _detect_encoding(path: Path, prefix: bytes, complete: bool) -> str:
    if prefix.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvError(f"{path}: is UTF-16; save it as UTF-8 or GB18030")
    if prefix.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", prefix[3:])]
    else:
        candidates = [("utf-8", prefix), ("gb18030", prefix)]
    for encoding, data in candidates:
        # An incremental decoder accepts a multibyte character cut at the prefix boundary.
        decoder = codecs.getincrementaldecoder(encoding.removesuffix("-sig"))("strict")
        try:
            decoder.decode(data, final=complete)
        except UnicodeDecodeError as e:
            if encoding == "utf-8-sig":
                raise CsvError(
                    f"{path}: starts with a UTF-8 byte-order mark but is not UTF-8 "
                    f"(byte {e.start + 3})"
                ) from None
            continue
        return encoding
    raise CsvError(f"{path}: is neither UTF-8 nor GB18030 text")


def _read_header(path: Path, reader: Iterator[list[str]]) -> tuple[str, ...]:
    try:
        for record in reader:
            if record:
                return tuple(c.strip().lstrip("\ufeff").strip() for c in record)
    except csv.Error as e:
        raise CsvError(f"{path}: header is not a CSV record ({e})") from None
    raise CsvError(f"{path}: is empty")


def _header_index(path: Path, header: tuple[str, ...]) -> tuple[int, ...]:
    where: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in where and (name in COLUMNS or name in OPTIONAL_COLUMNS):
            raise CsvError(
                f"{path}: duplicate header column {name} (columns {where[name] + 1} and {i + 1})"
            )
        where.setdefault(name, i)
    missing = [c for c in COLUMNS if c not in where]
    if missing:
        if _SURROGATE.search("".join(header)):
            raise CsvError(f"{path}: header does not decode; missing columns {', '.join(missing)}")
        raise CsvError(f"{path}: missing columns {', '.join(missing)}")
    return tuple(where[c] for c in COLUMNS)


class _RowChecker:
    """Validation state for one pass over a file: column positions, keys seen so far."""

    def __init__(self, encoding: str, uscc: UsccTally | None = None) -> None:
        self._encoding_name = "GB18030" if encoding == "gb18030" else "UTF-8"
        self._uscc = uscc if uscc is not None else UsccTally()
        self._today = datetime.date.today()
        self._index: tuple[int, ...] = ()
        self._width = 0
        self._decision_at: int | None = None
        # Natural key digest -> row. 16-byte BLAKE2b digests keep a million-row file's key set
        # around 100 MB instead of holding every key's text.
        self._seen: dict[bytes, int] = {}
        # Dates, measure lists and authorities repeat across rows: remember verdicts (bounded).
        self._authorities: dict[str, CodeCheck] = {}
        self._dates: dict[str, datetime.date | str | None] = {}
        self._measures: dict[str, tuple[Measure, ...] | str] = {}

    def set_header(self, path: Path, header: tuple[str, ...]) -> None:
        self._index = _header_index(path, header)
        self._width = len(header)
        self._decision_at = header.index("认定日期") if "认定日期" in header else None

    def _code(
        self,
        column: str,
        text: str,
        expect: str,
        problems: list[tuple[str, str]],
        warnings: list[str],
    ) -> CodeCheck | None:
        """*text* checked as what *column* holds (node.identity.validate.check_expecting,
        lenient, as `identity check`); None if invalid."""
        checked = check_expecting(text, expect, today=self._today)
        return checked if self._note(column, checked, problems, warnings) else None

    @staticmethod
    def _note(
        column: str, checked: CodeCheck, problems: list[tuple[str, str]], warnings: list[str]
    ) -> bool:
        """Record an invalid code's problem or a warning; True unless invalid. The reasons
        name positions and rules only, never the value (validate's contract)."""
        if checked.status == INVALID:
            problems.append((column, checked.reason))
            return False
        if checked.status == WARNING:
            warnings.append(f"{column}: {checked.reason}")
        return True

    def _count_uscc(self, text: str, checked: CodeCheck | None) -> None:
        """Count one subject USCC (the 重错码 rate): invalid, or accepted only leniently,
        i.e. valid with a warning that the strict check refuses."""
        tally = self._uscc
        tally.checked += 1
        if checked is None:
            tally.invalid += 1
        elif (
            checked.status == WARNING
            and check_expecting(text, EXPECT_USCC, strict=True, today=self._today).status == INVALID
        ):
            tally.lenient += 1

    def _date(self, text: str) -> datetime.date | str | None:
        try:
            return self._dates[text]
        except KeyError:
            result = parse_date(text)
            if len(self._dates) < _MEMO_LIMIT:
                self._dates[text] = result
            return result

    def check(self, line: int, record: list[str]) -> ListRow | Quarantined:
        if len(record) != self._width:
            return Quarantined(
                line, None, f"has {len(record)} fields, the header has {self._width}"
            )
        values = [record[i].strip() for i in self._index]
        problems: list[tuple[str, str]] = []
        if _BAD_CHARS.search("".join(values)):
            for column, value in zip(COLUMNS, values, strict=True):
                if _SURROGATE.search(value):
                    problems.append((column, f"is not valid {self._encoding_name} text"))
                elif _BAD_CHARS.search(value):
                    problems.append((column, "contains a control character"))
            return _quarantine(line, problems)
        (
            subject_name,
            subject_type_text,
            uscc_text,
            person_id_text,
            legal_rep_name,
            legal_rep_id_text,
            list_type_text,
            list_name,
            reason,
            legal_basis,
            decision_doc_no,
            authority_name,
            authority_text,
            listing_text,
            severity_text,
            end_text,
            measures_text,
        ) = values

        for position, column in _REQUIRED:
            if not values[position]:
                problems.append((column, "must not be empty"))

        # Codes and IDs: the checks of `creditnode identity check` (lenient), one code path.
        warnings: list[str] = []
        subject_type = SUBJECT_TYPES.get(subject_type_text)
        uscc = normalise_code(uscc_text)
        person_id = person_id_type = ""
        if subject_type is None:
            problems.append(("主体类型", "must be 法人和其他组织, 个体工商户 or 自然人"))
        elif subject_type == "natural_person":
            if uscc:
                problems.append(("统一社会信用代码", "must be empty for a natural person (自然人)"))
            if not normalise_code(person_id_text):
                problems.append(("证件号码", "must not be empty for a natural person (自然人)"))
            else:
                checked = self._code("证件号码", person_id_text, EXPECT_PERSON, problems, warnings)
                if checked is not None:
                    person_id, person_id_type = checked.normalised, id_type(checked)
        elif not uscc:
            problems.append(("统一社会信用代码", "must not be empty for an organisation"))
        else:
            checked = self._code("统一社会信用代码", uscc_text, EXPECT_USCC, problems, warnings)
            uscc = checked.normalised if checked is not None else uscc
            self._count_uscc(uscc_text, checked)

        legal_rep_id = legal_rep_id_type = ""
        if normalise_code(legal_rep_id_text):
            checked = self._code(
                "法定代表人证件号码", legal_rep_id_text, EXPECT_PERSON, problems, warnings
            )
            if checked is not None:
                legal_rep_id, legal_rep_id_type = checked.normalised, id_type(checked)

        list_type = LIST_TYPES.get(list_type_text)
        if list_type is None:
            problems.append(("名单类型", "must be 黑名单, 红名单 or 重点关注名单"))

        authority_uscc = normalise_code(authority_text)
        if not authority_uscc:
            problems.append(("认定部门代码", "must not be empty"))
        else:
            try:
                authority = self._authorities[authority_text]
            except KeyError:
                authority = check_expecting(authority_text, EXPECT_USCC, today=self._today)
                if len(self._authorities) < _MEMO_LIMIT:
                    self._authorities[authority_text] = authority
            if self._note("认定部门代码", authority, problems, warnings):
                authority_uscc = authority.normalised

        listing_date = self._date(listing_text)
        if listing_date is None:
            problems.append(("列入日期", "must not be empty"))
        elif isinstance(listing_date, str):
            problems.append(("列入日期", listing_date))

        severity = ""
        if severity_text:
            severity = SEVERITIES.get(severity_text, "")
            if not severity:
                problems.append(("严重程度", "must be 轻微, 一般 or 严重"))
        elif list_type in ("black", "watch"):
            problems.append(("严重程度", "must not be empty on a 黑名单 or 重点关注名单"))

        disclosure_end = self._date(end_text)
        if isinstance(disclosure_end, str):
            problems.append(("公示截止日期", disclosure_end))
        elif (
            isinstance(disclosure_end, datetime.date)
            and isinstance(listing_date, datetime.date)
            and disclosure_end < listing_date
        ):
            problems.append(("公示截止日期", "precedes 列入日期"))

        decision_date: datetime.date | None = None
        decided = self._date(record[self._decision_at]) if self._decision_at is not None else None
        if isinstance(decided, str):
            problems.append(("认定日期", decided))
        elif decided is not None:
            decision_date = decided
            if isinstance(listing_date, datetime.date) and decided > listing_date:
                problems.append(("认定日期", "follows 列入日期"))

        try:
            measures = self._measures[measures_text]
        except KeyError:
            measures = parse_measures(measures_text)
            if len(self._measures) < _MEMO_LIMIT:
                self._measures[measures_text] = measures
        if isinstance(measures, str):
            problems.append(("惩戒措施", measures))

        if (
            problems
            or subject_type is None
            or list_type is None
            or not isinstance(listing_date, datetime.date)
            or isinstance(disclosure_end, str)
            or isinstance(measures, str)
        ):
            return _quarantine(line, problems)

        code = uscc or person_id
        key = f"{len(list_name)}:{list_name}\x00{len(code)}:{code}\x00{decision_doc_no}"
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        first = self._seen.setdefault(digest, line)
        if first != line:
            return Quarantined(line, None, f"duplicate of row {first}")

        return ListRow(
            row=line,
            subject_name=subject_name,
            subject_type=subject_type,
            uscc=uscc,
            person_id=person_id,
            legal_rep_name=legal_rep_name,
            legal_rep_id=legal_rep_id,
            list_type=list_type,
            list_name=list_name,
            reason=reason,
            legal_basis=legal_basis,
            decision_doc_no=decision_doc_no,
            authority_name=authority_name,
            authority_uscc=authority_uscc,
            listing_date=listing_date,
            severity=severity,
            disclosure_end=disclosure_end,
            measures=measures,
            person_id_type=person_id_type,
            legal_rep_id_type=legal_rep_id_type,
            warnings=tuple(warnings),
            decision_date=decision_date,
        )


def _quarantine(line: int, problems: list[tuple[str, str]]) -> Quarantined:
    column = problems[0][0] if len(problems) == 1 else None
    return Quarantined(line, column, "; ".join(f"{c}: {m}" for c, m in problems))
