"""Named masking and generalisation patterns (pure): how a personal value leaves in a reduced form.

Each pattern is a function ``str -> str`` with a *published shape*: a regular expression that
every output matches exactly (:data:`SHAPES`), so a receiver, an auditor or a test can tell a
masked value from a raw one by looking at it. An input that does not fit the pattern raises
:class:`ValueError` and the caller withholds the field (fail closed): a pattern applied to the
wrong kind of value could leave more of it visible than the pattern promises (a court mask on a
15-digit ID would reveal the birth date). Error messages describe the expected shape only; they
never contain the input, nor any digit that could be read as part of it.

Masks (:data:`PATTERNS`, used as ``mask:<name>`` in agreements):

================  =====================================================  ======================
name              what is kept                                           example
================  =====================================================  ======================
``court_id``      resident ID, characters 11-14 hidden (court            ``1101051949****002X``
                  defaulter lists)
``tax_id``        resident ID, the birth date (characters 7-14) hidden   ``110105********002X``
                  (tax lists)
``name_surname``  the surname (compound surnames such as 欧阳            ``张*``, ``欧阳**``
                  included), one ``*`` for every other character
``phone_3_4``     an 11-digit mobile number: first 3 and last 4 digits   ``138****5678``
``address_tail``  the administrative prefix up to the first 区/县/市     ``北京市朝阳区****``
                  after the province (else the first six characters)
================  =====================================================  ======================

Generalisations (:data:`GENERALISERS`, used as ``generalise:<name>``): ``date_month``
(``YYYY-MM-DD`` → ``YYYY-MM``), ``date_year`` (→ ``YYYY``) and ``amount_band`` (an amount in
yuan → a label of :data:`AMOUNT_BANDS`).

Every form declares how many candidate values it leaves for its field (:data:`CANDIDATES`,
with ``clear`` and the pseudonym beside it): a court-masked ID leaves 32 (the month-days that
fit the visible check character), a tax-masked ID 2,900, a surname-masked name 3,500 (a
one-character given name). :mod:`node.policy.reidentify` adds them up per peer.

>>> PATTERNS["court_id"]("11010519491231002X")
'1101051949****002X'
>>> PATTERNS["tax_id"]("11010519491231002X")
'110105********002X'
>>> [PATTERNS["name_surname"](n) for n in ("张三", "李小明", "欧阳娜娜", "欧阳")]
['张*', '李**', '欧阳**', '欧*']
>>> PATTERNS["phone_3_4"]("13812345678")
'138****5678'
>>> PATTERNS["address_tail"]("山东省济南市历下区泉城路1号")
'山东省济南市****'
>>> PATTERNS["address_tail"]("北京市朝阳区建国路88号")
'北京市朝阳区****'
>>> GENERALISERS["date_month"]("2024-02-29"), GENERALISERS["date_year"]("2024-02-29")
('2024-02', '2024')
>>> GENERALISERS["amount_band"]("25000.50")
'1万-10万'
>>> PATTERNS["court_id"]("110105491231002")
Traceback (most recent call last):
...
ValueError: court_id needs a resident ID of eighteen characters: seventeen digits, then a digit or X
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from node.identity.codes import court_mask

__all__ = [
    "AMOUNT_BANDS",
    "CANDIDATES",
    "CLEAR_CANDIDATES",
    "COMPOUND_SURNAMES",
    "GENERALISERS",
    "ID_HIDDEN",
    "PATTERNS",
    "PSEUDONYM_CANDIDATES",
    "RESIDENT_ID_SPACE",
    "SHAPES",
    "address_tail",
    "amount_band",
    "court_id",
    "date_month",
    "date_year",
    "name_surname",
    "phone_3_4",
    "surname_of",
    "tax_id",
]

# ------------------------------------------------------------------------------ resident IDs

# Only the canonical 18-character form (what the node stores after normalising at import): the
# masks below promise which characters stay, and that promise holds only for this layout.
_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
_ID_SHAPE_MESSAGE = "a resident ID of eighteen characters: seventeen digits, then a digit or X"


def _resident_id(value: str, pattern: str) -> str:
    # fullmatch on a str with [0-9] (not \d) so full-width or other Unicode digits never pass.
    if not isinstance(value, str) or not _RESIDENT_ID.fullmatch(value):
        raise ValueError(f"{pattern} needs {_ID_SHAPE_MESSAGE}")
    return value


def court_id(value: str) -> str:
    """Court defaulter-list form: characters 11-14 (the birth month and day) become ``****``."""
    return court_mask(_resident_id(value, "court_id"))


def tax_id(value: str) -> str:
    """Tax-list form: the birth date, characters 7-14, becomes ``********``."""
    idno = _resident_id(value, "tax_id")
    return f"{idno[:6]}{'*' * 8}{idno[14:]}"


# ------------------------------------------------------------------------------------ names

# CJK unified ideographs, extension A, compatibility ideographs and extensions B-H: the
# characters a Chinese personal name is written in.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_NAME = re.compile(f"[{_HAN}]{{2,20}}")

_COMPOUND_SURNAMES_TEXT = (
    # The compound surnames of the 百家姓 in use today, and the traditional spellings of the
    # common ones (the Beijing list sources are in traditional characters).
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 令狐 夏侯 司徒 司空 闻人 端木 宇文 "
    "轩辕 澹台 公冶 太叔 申屠 濮阳 淳于 单于 呼延 南宫 钟离 万俟 赫连 西门 独孤 百里 东郭 "
    "南门 左丘 梁丘 第五 拓跋 闾丘 公羊 谷梁 宗政 仲孙 叔孙 亓官 司寇 子车 颛孙 巫马 公西 "
    "漆雕 乐正 壤驷 公良 夹谷 宰父 羊舌 微生 东门 呼衍 "
    "歐陽 司馬 諸葛 東方 尉遲 公孫 長孫 鍾離 軒轅 聞人 單于 東郭 閭丘 南宮 赫連 獨孤 濮陽 "
    "仲孫 叔孫 顓孫 樂正 壤駟 夾谷 東門"
)
COMPOUND_SURNAMES: frozenset[str] = frozenset(_COMPOUND_SURNAMES_TEXT.split())


def surname_of(name: str) -> str:
    """The surname of a Han-character *name* as :func:`name_surname` keeps it.

    A compound surname counts only when a given name follows it: ``欧阳`` alone is read as the
    single surname 欧 and the given name 阳, so at least one character is always hidden.
    """
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2]
    return name[:1]


def name_surname(value: str) -> str:
    """The surname, then one ``*`` for every other character (张三 → 张*, 欧阳小明 → 欧阳**).

    Only names of two to twenty Han characters: transliterated names with a middle dot
    (阿依古丽·买买提) and Latin-script names have no surname this pattern could keep, so they
    are refused and the field is withheld.
    """
    if not isinstance(value, str) or not _HAN_NAME.fullmatch(value):
        raise ValueError("name_surname needs a name of two to twenty Han characters")
    surname = surname_of(value)
    return surname + "*" * (len(value) - len(surname))


# ----------------------------------------------------------------------------------- phones

# Mainland mobile numbers: eleven digits, 1 then 3-9. Landlines, +86 forms and numbers with
# separators are refused: the 3 + 4 split is defined for this layout only.
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def phone_3_4(value: str) -> str:
    """First three and last four digits of a mobile number kept, the middle four ``****``."""
    if not isinstance(value, str) or not _MOBILE.fullmatch(value):
        raise ValueError("the phone mask needs an eleven-digit mainland mobile number")
    return f"{value[:3]}****{value[7:]}"


# -------------------------------------------------------------------------------- addresses

# Provincial-level prefixes: the four municipalities, the autonomous regions and SARs by name
# (their names end in 区, which must not be mistaken for a district), else anything ending 省.
_PROVINCE = re.compile(
    "北京市|天津市|上海市|重庆市|内蒙古自治区|广西壮族自治区|西藏自治区|宁夏回族自治区"
    f"|新疆维吾尔自治区|香港特别行政区|澳门特别行政区|[{_HAN}]{{2,3}}省"
)
# The first 区/县/市 after the province, reached through Han characters only and never through
# a street-level marker: otherwise "泉城路1号超市" would keep the street and the number.
_ADMIN = re.compile(f"(?:(?![区县市路街巷弄号村楼栋室])[{_HAN}]){{1,15}}[区县市]")
_FALLBACK_KEEP = 6


def address_tail(value: str) -> str:
    """The administrative prefix, then ``****``.

    The prefix is the province (if the address starts with one) and everything up to and
    including the first 区, 县 or 市 after it (山东省济南市…, 北京市朝阳区…,
    新疆维吾尔自治区乌鲁木齐市…); if there is none, the first six characters. Something must
    follow the prefix, or there would be nothing to hide and the pattern does not fit.
    """
    if not isinstance(value, str) or not value.isprintable() or "*" in value:
        raise ValueError("address_tail needs a printable address without asterisks")
    province = _PROVINCE.match(value)
    start = province.end() if province else 0
    admin = _ADMIN.match(value, start)
    keep = admin.end() if admin else _FALLBACK_KEEP
    if len(value) <= keep:
        raise ValueError("address_tail needs an address longer than its administrative prefix")
    return value[:keep] + "****"


# ------------------------------------------------------------------------ generalisations

_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _date(value: str, pattern: str) -> tuple[str, str]:
    m = _ISO_DATE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{pattern} needs a date written YYYY-MM-DD")
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"{pattern} needs a real calendar date") from None
    return m[1], m[2]


def date_month(value: str) -> str:
    """``YYYY-MM-DD`` → ``YYYY-MM`` (a real calendar date only)."""
    year, month = _date(value, "date_month")
    return f"{year}-{month}"


def date_year(value: str) -> str:
    """``YYYY-MM-DD`` → ``YYYY`` (a real calendar date only)."""
    return _date(value, "date_year")[0]


AMOUNT_BANDS: tuple[tuple[Decimal | None, str], ...] = (
    (Decimal(10_000), "<1万"),
    (Decimal(100_000), "1万-10万"),
    (Decimal(1_000_000), "10万-100万"),
    (None, "≥100万"),
)
"""The amount bands, in yuan: ``(upper bound, label)``, each band half-open ``[lower, upper)``,
the last unbounded. So 9999.99 → ``<1万``, 10000 → ``1万-10万``, 1000000 → ``≥100万``. Four
bands are what a check officer needs (small, moderate, large, very large fine or subsidy)."""

# Plain non-negative decimal yuan: no sign, exponent, separators or currency symbol, so that
# "1e9" or "1,000" cannot be misread into the wrong band.
_AMOUNT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,4})?")


def amount_band(value: str) -> str:
    """An amount in yuan → its band label from :data:`AMOUNT_BANDS`."""
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        raise ValueError("amount_band needs a non-negative amount in yuan, like digits.digits")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # unreachable after the regex; kept so a change cannot leak
        raise ValueError("amount_band needs a non-negative amount in yuan") from None
    for upper, label in AMOUNT_BANDS:
        if upper is None or amount < upper:
            return label
    raise AssertionError("the last band is unbounded")  # pragma: no cover


# ------------------------------------------------------------------------------ registries

PATTERNS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "court_id": court_id,
        "tax_id": tax_id,
        "name_surname": name_surname,
        "phone_3_4": phone_3_4,
        "address_tail": address_tail,
    }
)
"""Masks by name (``mask:<name>`` in an agreement). Read-only: a pattern is code, not data."""

GENERALISERS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {"date_month": date_month, "date_year": date_year, "amount_band": amount_band}
)
"""Generalisations by name (``generalise:<name>`` in an agreement)."""

_SURNAMES = "|".join(sorted(COMPOUND_SURNAMES))
SHAPES: Mapping[str, re.Pattern[str]] = MappingProxyType(
    {
        "court_id": re.compile(r"[0-9]{10}\*{4}[0-9]{3}[0-9X]"),
        "tax_id": re.compile(r"[0-9]{6}\*{8}[0-9]{3}[0-9X]"),
        "name_surname": re.compile(f"(?:{_SURNAMES}|[{_HAN}])\\*{{1,19}}"),
        "phone_3_4": re.compile(r"1[3-9][0-9]\*{4}[0-9]{4}"),
        "address_tail": re.compile(r"[^*]{1,}\*{4}"),
        "date_month": re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])"),
        "date_year": re.compile(r"[0-9]{4}"),
        "amount_band": re.compile("|".join(re.escape(label) for _, label in AMOUNT_BANDS)),
    }
)
"""The published shape of every output, by pattern name: each output ``fullmatch``-es it."""

# ------------------------------------------------------------------------ candidates left
#
# How many values of its field each form leaves a receiver who holds its output and nothing
# else: the candidates it would have to tell apart to recover the value. Each number is for
# the person it protects least (a form that shows how much it hides is counted at its
# narrowest), rounded down, so that a combination judged by these numbers never leaves fewer
# candidates than they say. node.policy.reidentify combines them per peer; tests/
# test_reidentify.py recounts each against the validator and runs the search they bound.

RESIDENT_ID_SPACE = 10**11
"""What ``withhold`` leaves of a resident ID (and what a pseudonym leaves without an evaluation
oracle): 3,350 current county-level division codes x ~32,870 birth dates (90 years) x 1,000
sequence numbers, the check character then fixed, ~1.1 x 10^11, rounded down."""

CLEAR_CANDIDATES = 1
"""``clear`` leaves the value itself."""

PSEUDONYM_CANDIDATES = 1
"""The pseudonym leaves one candidate *given an evaluation oracle*: the origin evaluates a
partner's blinded guesses (rate limited), so a receiver holding a pseudonym tests candidates
one evaluation each and keeps the one that matches. Without the origin's key it narrows
nothing offline, so on its own it leaves :data:`RESIDENT_ID_SPACE`, out of reach of a
rate-limited oracle; next to any form that narrows the ID, it recovers the ID. (The oracle
alone does as much for a peer that may look pseudonyms up: :mod:`node.policy.reidentify`.)"""

ID_HIDDEN: Mapping[str, frozenset[int]] = MappingProxyType(
    {
        "court_id": frozenset(range(11, 15)),  # the birth month and day
        "tax_id": frozenset(range(7, 15)),  # the birth date
    }
)
"""The 1-based character positions of a resident ID each ID mask hides. Two masks of the same
ID hide together only what both hide (court + tax: characters 11-14)."""

CANDIDATES: Mapping[str, int] = MappingProxyType(
    {
        # Characters 11-14 hidden, the birth year visible: 365 or 366 month-days. The check
        # character (visible) is sum(digit x weight) mod 11 over characters 1-17, with weights
        # 7 9 10 5 at 11-14, so only month-days with the visible check's residue remain:
        # 32 to 35 of them, 32 for the least populated residue in common and leap years alike.
        # (A birth year that is the current year leaves fewer; nobody born this year is a list
        # subject or a legal representative.)
        "court_id": 32,
        # Characters 7-14, the birth date, hidden; address, sequence and check visible. A list
        # subject or legal representative is an adult (16 or older) and at most about 105:
        # 90 years of dates, ~32,870, of which the visible check character keeps 1 in 11: at
        # least 2,981 in any 90-year window, rounded down to 2,900.
        "tax_id": 2_900,
        # The surname stays and one "*" per other character, so the length shows and a
        # one-character given name is the narrowest case: any character a given name is
        # written in. Counted as the 3,500 characters of the first tier (常用字) of the
        # 通用规范汉字表 (2013), among which nearly every given-name character is; the whole
        # table (8,105, what household registration accepts) would overstate what a guesser
        # tries. Two hidden characters leave 3,500² ~ 12 million.
        "name_surname": 3_500,
        # The middle four digits of a mobile number, no check digit: 10^4.
        "phone_3_4": 10_000,
        # Everything after the district, county or city: street, number, building, room. Not
        # countable exactly; 1,000 is a floor for the smallest county seat.
        "address_tail": 1_000,
        # The day of the month: 28 at fewest (February of a common year).
        "date_month": 28,
        # The day of the year: 365 at fewest.
        "date_year": 365,
        # The narrowest band, "<1万", holds 10,000 whole-yuan amounts (more with jiao and fen).
        "amount_band": 10_000,
    }
)
"""Candidate values each mask and generalisation leaves for its field, by pattern name (see
the comments above for how each was counted); ``clear`` leaves :data:`CLEAR_CANDIDATES`, the
pseudonym :data:`PSEUDONYM_CANDIDATES` given an evaluation oracle."""
