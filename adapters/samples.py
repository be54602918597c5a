"""Deterministic synthetic list CSVs in the canonical format (adapters.list_csv), for demos,
tests and benchmarks.

Every generated row is valid: USCCs carry correct organisation-code and USCC check characters
and the requested division code in positions 3-8; natural persons get resident IDs with real
GB/T 2260 codes of the region's prefecture, plausible birth dates and correct check characters.
Names carry 示例 ("example") so nobody mistakes them for real entities. Resident IDs are random,
so one may coincide with a real person's number: never publish samples as real data.

Measure codes are the example measures catalogue's (deploy/measures.toml; ``MEASURES`` names
them), and a row only names measures that catalogue applies to its list.

>>> rows = list(generate_rows(2, seed=1, list_name="示例名单", list_type="red", region="370100"))
>>> [r["名单类型"] for r in rows], rows[0]["统一社会信用代码"][2:8]
(['红名单', '红名单'], '370100')

Regenerate the committed samples in deploy/samples with ``python -m adapters.samples``.
"""

from __future__ import annotations

import csv
import datetime
import itertools
import random
import sys
from collections.abc import Iterable, Iterator
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

from adapters.list_csv import COLUMNS, OPTIONAL_COLUMNS
from node.feeds.catalogue import ListSpec, add_months
from node.feeds.catalogue import load as load_catalogue
from node.feeds.measures import packaged as packaged_measures
from node.home import CATALOGUE_EXAMPLE
from node.identity.codes import USCC_ALPHABET
from node.regions import lookup_region, validate_region

__all__ = ["MEASURES", "generate_rows", "write_csv", "write_deploy_samples"]

MEASURES: dict[str, str] = {
    # punishments (black and watch lists)
    "GP.BAN": "限制参加政府采购活动",
    "BID.LIMIT": "限制参与工程招标投标",
    "SUB.LIMIT": "限制申请财政性资金支持",
    "LIC.STRICT": "行政许可从严审核",
    "INSP.FREQ": "提高监督检查频次",
    "HONOR.BAN": "取消评优评先资格",
    "TAX.STRICT": "纳税评估重点监控",
    "CONS.HIGH": "限制高消费",
    # incentives (red lists)
    "TAX.GREEN": "办税绿色通道",
    "LIC.FAST": "行政审批容缺受理",
    "INSP.LESS": "减少日常检查频次",
    "LOAN.PREF": "融资授信便利",
    "HONOR.PREF": "评优评先优先考虑",
}

_LIST_TYPES = {"black": "黑名单", "red": "红名单", "watch": "重点关注名单"}

# theme -> (department, document abbreviations "penalty|award", [(reason, legal basis)]: two
# for black and watch lists then two for red lists, punishments, incentives)
_Theme = tuple[str, str, list[tuple[str, str]], list[str], list[str]]
_THEMES: dict[str, _Theme] = {
    "procurement": (
        "财政局",
        "财采罚|财采信",
        [
            (
                "提供虚假材料谋取中标、成交",
                "《中华人民共和国政府采购法》第七十七条第一款第（一）项",
            ),
            ("与其他供应商恶意串通", "《中华人民共和国政府采购法》第七十七条第一款第（三）项"),
            (
                "中标后无正当理由拒不签订政府采购合同",
                "《中华人民共和国政府采购法实施条例》第七十二条",
            ),
            (
                "向采购人、采购代理机构行贿或者提供其他不正当利益",
                "《中华人民共和国政府采购法》第七十七条第一款第（四）项",
            ),
        ],
        ["GP.BAN", "BID.LIMIT", "SUB.LIMIT", "HONOR.BAN"],
        ["LIC.FAST", "HONOR.PREF"],
    ),
    "tax": (
        "税务局",
        "税稽罚|税信",
        [
            (
                "偷税数额在100万元以上且占应纳税额10%以上",
                "《重大税收违法失信主体信息公布管理办法》第六条",
            ),
            ("虚开增值税专用发票", "《重大税收违法失信主体信息公布管理办法》第六条第（五）项"),
            ("连续三年纳税信用评价为A级", "《纳税信用管理办法（试行）》第三十条"),
            ("当年度纳税信用评价为A级", "《纳税信用管理办法（试行）》第三十条"),
        ],
        ["TAX.STRICT", "SUB.LIMIT", "HONOR.BAN", "LIC.STRICT"],
        ["TAX.GREEN", "LIC.FAST", "INSP.LESS", "LOAN.PREF"],
    ),
    "market": (
        "市场监督管理局",
        "市监罚|市监信",
        [
            (
                "生产销售不符合安全标准的产品，情节严重",
                "《市场监督管理严重违法失信名单管理办法》第二条",
            ),
            ("提交虚假材料取得登记", "《中华人民共和国市场主体登记管理条例》第四十四条"),
            ("连续三年无不良信用记录", "《社会信用体系建设规划纲要（2014-2020年）》"),
            ("被评为诚信经营示范单位", "《关于建立完善守信联合激励和失信联合惩戒制度的指导意见》"),
        ],
        ["INSP.FREQ", "LIC.STRICT", "HONOR.BAN", "GP.BAN", "CONS.HIGH"],
        ["INSP.LESS", "LIC.FAST", "HONOR.PREF", "LOAN.PREF"],
    ),
}

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
)
_GIVEN = "甲乙丙丁戊己庚辛壬癸"
_TRADE_WORDS = (
    "恒达",
    "鑫源",
    "华宇",
    "瑞丰",
    "金泰",
    "宏图",
    "盛世",
    "永安",
    "广信",
    "中诚",
    "天成",
    "东方",
    "和顺",
    "安泰",
    "博远",
    "汇通",
    "嘉禾",
    "九州",
    "润泽",
    "明德",
    "远航",
    "晟元",
    "德润",
    "锦程",
)
_INDUSTRIES = (
    "科技",
    "建筑工程",
    "商贸",
    "物流",
    "环保科技",
    "医疗器械",
    "信息技术",
    "建材",
    "餐饮管理",
    "印务",
    "电子",
    "机械设备",
    "园林绿化",
    "文化传媒",
    "农业开发",
    "家具",
)
_FORMS = ("有限公司", "有限责任公司", "股份有限公司")
_SHOP_KINDS = ("便利店", "五金店", "餐馆", "汽修部", "服装店", "电器维修部", "百货商行")

_LISTING_FIRST = datetime.date(2020, 1, 1)
_LISTING_DAYS = 5 * 365
_RECENT_DAYS = 300
# The committed samples are listed relative to this day, so they stay byte-for-byte stable.
SAMPLES_TODAY = datetime.date(2026, 11, 1)
_BIRTH_YEARS = range(1950, 2001)
# Disclosure periods (NDRC Order 2025 No. 36 maxima): minor 3 months, general 1 year, serious 3.
_DISCLOSURE_DAYS = {"轻微": 90, "一般": 365, "严重": 1095, "": 365}
_SEVERITY_DRAW = ("轻微",) * 2 + ("一般",) * 5 + ("严重",) * 3
_SEVERITY_CN = {"minor": "轻微", "general": "一般", "serious": "严重"}
_SEVERITY_EN = {v: k for k, v in _SEVERITY_CN.items()} | {"": ""}
_DECISION_LAG_DAYS = 15  # a listing follows its decision by 0-14 days

# Check-character arithmetic is linear in the characters, so the generator sums precomputed
# per-position parts instead of walking every code (a million rows must stay cheap).
_USCC_W = tuple(pow(3, i, 31) for i in range(17))
_ORG_W = (3, 7, 9, 10, 5, 8, 4, 2)
_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_Part = tuple[str, int, int]  # text, organisation-code partial sum, USCC partial sum


def _uscc_part(text: str, start: int) -> int:
    return sum(USCC_ALPHABET.index(c) * _USCC_W[start + k] for k, c in enumerate(text))


def _org_part(text: str, start: int) -> int:
    # start is the USCC index (8 = first body character); body chars of a USCC are 0-9A-Z
    return sum(int(c, 36) * _ORG_W[start - 8 + k] for k, c in enumerate(text))


def _id_part(text: str, start: int) -> int:
    return sum(int(c) * _ID_W[start + k] for k, c in enumerate(text))


def _pair_table(chars: str, start: int) -> list[_Part]:
    return [
        (a + b, _org_part(a + b, start), _uscc_part(a + b, start)) for a in chars for b in chars
    ]


@lru_cache(maxsize=1)
def _body_tables() -> tuple[list[list[_Part]], list[list[_Part]]]:
    """Pair tables for USCC positions 9-16: MA-style bodies (letters) and legacy digit ones."""
    letters = [[("MA", _org_part("MA", 8), _uscc_part("MA", 8))]]
    letters += [_pair_table(USCC_ALPHABET, start) for start in (10, 12, 14)]
    digits = [_pair_table("0123456789", start) for start in (8, 10, 12, 14)]
    return letters, digits


@lru_cache(maxsize=1)
def _example_lists() -> dict[str, ListSpec]:
    return {s.name: s for s in load_catalogue(CATALOGUE_EXAMPLE).lists}


def _disclosure_end(
    spec: ListSpec | None, decision: datetime.date, severity: str, r: int
) -> datetime.date | None:
    """An end date inside the list's window (the packaged catalogue's rule for a list it
    knows, else the general maxima by severity)."""
    if spec is None:
        return decision + datetime.timedelta(days=_DISCLOSURE_DAYS[severity])
    window = spec.window(_SEVERITY_EN[severity])
    if window.max_months is None:
        return None
    low = max(window.min_months, 1)
    months = low + r % (window.max_months - low + 1)
    return add_months(decision, months) - datetime.timedelta(days=1)


def _applies(code: str, list_code: str) -> bool:
    measure = packaged_measures().find(code)
    return measure is not None and list_code in measure.lists


def _theme(list_name: str) -> _Theme:
    if "采购" in list_name:
        return _THEMES["procurement"]
    if "税" in list_name:
        return _THEMES["tax"]
    return _THEMES["market"]


def _person_divisions(region: str) -> list[str]:
    """Current county-level codes in the region's prefecture (or the region itself)."""
    codes = []
    for i in range(1, 100):
        code = f"{region[:4]}{i:02d}"
        found = lookup_region(code)
        if found is not None and found.current:
            codes.append(code)
    return codes or [region]


def _format_date(day: datetime.date, style: str) -> str:
    if style == "slash":
        return f"{day.year}/{day.month}/{day.day}"
    if style == "chinese":
        return f"{day.year}年{day.month}月{day.day}日"
    return day.isoformat()


class _CodeMaker:
    """Valid USCCs and resident IDs from random bits, by table lookups."""

    def __init__(self, rng: random.Random, region: str) -> None:
        self._bits = rng.getrandbits
        self._region = region
        self._letters, self._digits = _body_tables()
        self._prefix = {p: _uscc_part(p + region, 0) for p in ("11", "91", "92")}
        self._divisions = [(d, _id_part(d, 0)) for d in _person_divisions(region)]
        self._years = [(str(y), _id_part(str(y), 6)) for y in _BIRTH_YEARS]
        days = [datetime.date(2001, 1, 1) + datetime.timedelta(days=k) for k in range(365)]
        self._month_days = [(f"{d:%m%d}", _id_part(f"{d:%m%d}", 10)) for d in days]
        self._sequences = [(f"{k:03d}", _id_part(f"{k:03d}", 14)) for k in range(1000)]

    def uscc(self, prefix2: str) -> str:
        r = self._bits(64)
        tables = self._letters if r % 10 < 7 else self._digits  # most codes since 2015: MA…
        r //= 10
        body, org, total = "", 0, self._prefix[prefix2]
        for table in tables:
            text, o, u = table[r % len(table)]
            r //= len(table)
            body += text
            org += o
            total += u
        c = 11 - org % 11
        check = "X" if c == 10 else "0" if c == 11 else str(c)
        total += USCC_ALPHABET.index(check) * _USCC_W[16]
        return f"{prefix2}{self._region}{body}{check}{USCC_ALPHABET[(31 - total % 31) % 31]}"

    def resident_id(self) -> str:
        r = self._bits(64)
        division, a = self._divisions[r % len(self._divisions)]
        r //= len(self._divisions)
        year, b = self._years[r % len(self._years)]
        r //= len(self._years)
        month_day, c = self._month_days[r % 365]
        sequence, d = self._sequences[(r // 365) % 1000]
        return f"{division}{year}{month_day}{sequence}{_ID_CHECK[(a + b + c + d) % 11]}"


def generate_rows(
    n: int,
    *,
    seed: int,
    list_name: str,
    list_type: str,
    region: str,
    date_style: str = "iso",
    today: datetime.date | None = None,
) -> Iterator[dict[str, str]]:
    """*n* valid rows of one list (keys: adapters.list_csv.COLUMNS), the same for the same seed.

    *list_type* is black, red or watch; *region* a GB/T 2260 code (the subjects' and the
    authority's USCC division); *date_style* iso (YYYY-MM-DD), slash (YYYY/M/D) or chinese
    (YYYY年M月D日). The list name picks plausible reasons and authorities (采购, 税, other).
    With *today*, listing dates fall in the 300 days before it, so most entries are still
    within their disclosure period on that day; without it, in 2020-2024. Each row's 认定日期
    precedes its 列入日期 by 0-14 days; for a list the packaged catalogue
    (deploy/lists.yellow-river.toml) knows, severities and 公示截止日期 follow that list's rule,
    otherwise the general maxima by severity.
    """
    if list_type not in _LIST_TYPES:
        raise ValueError(f"list_type must be black, red or watch, not {list_type!r}")
    if date_style not in ("iso", "slash", "chinese"):
        raise ValueError(f"date_style must be iso, slash or chinese, not {date_style!r}")
    city = validate_region(region).name
    short = city.removesuffix("市").removesuffix("地区") or city
    rng = random.Random(seed)  # noqa: S311 -- synthetic data, reproducible by seed
    bits = rng.getrandbits
    codes = _CodeMaker(rng, region)
    department, doc_abbr, reasons, punishments, incentives = _theme(list_name)
    red = list_type == "red"
    reasons = reasons[2:] if red else reasons[:2]
    list_type_cn = _LIST_TYPES[list_type]
    authority_name = f"{city}{department}（示例）"
    authority_uscc = codes.uscc("11")
    doc_prefix = short + doc_abbr.split("|")[1 if red else 0]
    person_percent = 0 if red else 15  # red lists here are organisations only

    people = [f"{s}示例{g}" for s in _SURNAMES for g in _GIVEN]
    companies = [f"{short}{t}示例{i}{f}" for t in _TRADE_WORDS for i in _INDUSTRIES for f in _FORMS]
    spec = _example_lists().get(list_name)
    severities: tuple[str, ...] = ("",) if red else _SEVERITY_DRAW
    if spec is not None and spec.severities:
        severities = tuple(_SEVERITY_CN[s] for s in spec.severities)
    catalogue = incentives if red else punishments
    if spec is not None:
        # Only measures the measures catalogue applies to this list (限制高消费 is a court's).
        catalogue = [c for c in catalogue if _applies(c, spec.code)]
    measures = [
        ";".join(p) if red else ";".join([p[0] + ":强制", *(c + ":建议" for c in p[1:])])
        for k in (1, 2, 3)
        for p in itertools.permutations(catalogue, k)
    ]
    first, days = _LISTING_FIRST, _LISTING_DAYS
    if today is not None:
        first, days = today - datetime.timedelta(days=_RECENT_DAYS), _RECENT_DAYS
    listing = [first + datetime.timedelta(days=k) for k in range(days)]
    listing_text = [_format_date(d, date_style) for d in listing]
    end_text: dict[tuple[int, int, str, int], str] = {}
    decision_text: dict[tuple[int, int], str] = {}

    for i in range(n):
        r = bits(64)
        roll = r % 100
        r //= 100
        if roll < person_percent:
            subject_type, uscc, person_id = "自然人", "", codes.resident_id()
            subject_name = people[r % len(people)]
            rep_name = rep_id = ""
        else:
            person_id = ""
            rep_name = people[r % len(people)]
            r //= len(people)
            rep_id = codes.resident_id() if r % 2 else ""
            r //= 2
            if roll < person_percent + 10:
                subject_type, uscc = "个体工商户", codes.uscc("92")
                subject_name = f"{short}{rep_name[0]}记示例{_SHOP_KINDS[r % len(_SHOP_KINDS)]}"
            else:
                subject_type, uscc = "法人和其他组织", codes.uscc("91")
                subject_name = companies[r % len(companies)]
        r = bits(64)
        day = r % days
        r //= days
        severity = severities[r % len(severities)]
        r //= len(severities)
        lag = r % _DECISION_LAG_DAYS
        r //= _DECISION_LAG_DAYS
        term = r % 64
        r //= 64
        decided = decision_text.get((day, lag))
        if decided is None:
            decided = _format_date(listing[day] - datetime.timedelta(days=lag), date_style)
            decision_text[day, lag] = decided
        end = end_text.get((day, lag, severity, term))
        if end is None:
            decision = listing[day] - datetime.timedelta(days=lag)
            end_day = _disclosure_end(spec, decision, severity, term)
            end = "" if end_day is None else _format_date(end_day, date_style)
            end_text[day, lag, severity, term] = end
        reason, basis = reasons[r % len(reasons)]
        r //= len(reasons)
        yield {
            "主体名称": subject_name,
            "主体类型": subject_type,
            "统一社会信用代码": uscc,
            "证件号码": person_id,
            "法定代表人": rep_name,
            "法定代表人证件号码": rep_id,
            "名单类型": list_type_cn,
            "名单名称": list_name,
            "列入原因": reason,
            "认定依据": basis,
            "认定文书号": f"{doc_prefix}〔{listing[day].year}〕{i + 1}号",
            "认定部门": authority_name,
            "认定部门代码": authority_uscc,
            "列入日期": listing_text[day],
            "严重程度": severity,
            "公示截止日期": end,
            "惩戒措施": measures[r % len(measures)],
            "认定日期": decided,
        }


def write_csv(path: Path, rows: Iterable[dict[str, str]], *, encoding: str = "utf-8") -> int:
    """Write *rows* (keys: COLUMNS, and OPTIONAL_COLUMNS when given) as a list CSV with a
    header; return the number of rows."""
    getter = itemgetter(*COLUMNS)
    count = 0

    def counted() -> Iterator[tuple[str, ...]]:
        nonlocal count
        for row in rows:
            count += 1
            yield (*getter(row), *(row.get(c, "") for c in OPTIONAL_COLUMNS))

    with Path(path).open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow((*COLUMNS, *OPTIONAL_COLUMNS))
        writer.writerows(counted())
    return count


def write_deploy_samples(directory: Path) -> list[Path]:
    """Write the three committed samples (Jinan black, Lanzhou black in GB18030, Taiyuan red)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specs = [
        (
            "jinan-black.csv",
            40,
            "政府采购严重违法失信行为记录名单",
            "black",
            "370100",
            "iso",
            "utf-8",
        ),
        (
            "lanzhou-black.csv",
            40,
            "重大税收违法失信主体名单",
            "black",
            "620100",
            "slash",
            "gb18030",
        ),
        ("taiyuan-red.csv", 30, "纳税信用A级纳税人名单", "red", "140100", "chinese", "utf-8"),
    ]
    written = []
    for seed, (name, n, list_name, list_type, region, style, encoding) in enumerate(specs, 1):
        path = directory / name
        rows = generate_rows(
            n,
            seed=seed,
            list_name=list_name,
            list_type=list_type,
            region=region,
            date_style=style,
            today=SAMPLES_TODAY,
        )
        write_csv(path, rows, encoding=encoding)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("deploy/samples")
    for p in write_deploy_samples(target):
        print(p)
