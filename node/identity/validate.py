"""Validators for every identifier a credit list carries, with one result type (pure, no I/O).

Each ``check_*`` function takes the cell text as given and returns a :class:`CodeCheck`:
what kind of identifier it is, whether it is ``valid``, ``warning`` (accepted, with a known
defect) or ``invalid``, the normalised form, and a short reason. :func:`classify` works out
the kind from the shape when the column does not say.

Reasons give positions and rules, never the value: a resident ID is personal data, and
reasons end up in logs, quarantine reports and CLI output. Use :meth:`CodeCheck.display`
to print the input itself (personal IDs come out masked).

Spreadsheets damage long numeric codes in recognisable ways (scientific notation, digits
after the 15th turned into zeros, ``.0`` suffixes, thousands separators, lost leading
zeros); those come back ``invalid`` with ``damaged=True`` and a reason starting
``spreadsheet damage:``, so the operator re-exports the column as text instead of hunting
typos. Only a value that fails its checks as written is called damaged: a valid code that
happens to read as a number (``911100000000071E05``) is valid.

>>> check_uscc("91350100M000100Y43").status          # GB 32100-2015 worked example
'valid'
>>> check_uscc("9.16201E+17").reason[:19]
'spreadsheet damage:'
>>> r = classify("110105491231002", today=datetime.date(2025, 6, 1))
>>> r.kind, r.status, r.display()
('resident_id_15', 'valid', '110105******002')
>>> r.normalised == upgrade_15("110105491231002") == "11010519491231002X"
True
>>> classify("440301103097413").kind                  # a 注册号, MOD 11,10 check
'reg_no'
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Final

from node.identity import uscc_fast
from node.identity.codes import (
    USCC_ALPHABET,
    court_mask,
    normalise_code,
    org_code_check_char,
    resident_id_check_char,
    resident_id_problem,
    uscc_check_char,
)
from node.regions import lookup_region

__all__ = [
    "AUTHORITIES",
    "COLUMN_EXPECTS",
    "EXPECT_PERSON",
    "EXPECT_USCC",
    "ID_TYPES",
    "INVALID",
    "KINDS",
    "NATIONAL_DIVISION",
    "PERMIT_PREFIXES",
    "PERSONAL_KINDS",
    "VALID",
    "WARNING",
    "CodeCheck",
    "check_expecting",
    "check_org_code",
    "check_reg_no",
    "check_resident_id",
    "check_tax_no",
    "check_uscc",
    "classify",
    "id_type",
    "mask_personal",
    "mod11_10_check_digit",
    "mod11_10_valid",
    "org_code_of",
    "upgrade_15",
]

VALID: Final = "valid"
WARNING: Final = "warning"
INVALID: Final = "invalid"

KINDS: Final = (
    "uscc",
    "org_code",
    "tax_no",
    "reg_no",
    "resident_id",
    "resident_id_15",
    "permit",
    "unknown",
)
PERSONAL_KINDS: Final = frozenset({"resident_id", "resident_id_15", "permit"})

# GB 32100-2015 Table 1 as amended: registration authority → (name, {category: name}).
AUTHORITIES: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "1": (
        "机构编制",
        {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"},
    ),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": (
        "司法行政",
        {
            "1": "律师执业机构",
            "2": "公证处",
            "3": "基层法律服务所",
            "4": "司法鉴定机构",
            "5": "仲裁委员会",
            "9": "其他",
        },
    ),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": (
        "旅游",
        {
            "1": "外国旅游部门常驻代表机构",
            "2": "港澳台地区旅游部门常驻内地（大陆）代表机构",
            "9": "其他",
        },
    ),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": (
        "农业",
        {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"},
    ),
    "Y": ("其他", {"1": ""}),
}

# Positions 3-8 of codes issued by central (national-level) registration authorities.
NATIONAL_DIVISION: Final = "100000"

# 港澳台居民居住证 numbers: a fixed address code, then the resident-ID layout and check.
PERMIT_PREFIXES: Final = {"810000": "香港", "820000": "澳门", "830000": "台湾"}

# Valid legacy codes do not name a USCC by themselves; the note says so (status stays valid).
_ORG_NOTE = "organisation code alone needs a crosswalk or the USCC to identify the entity"
_TAX_NOTE = "legacy tax registration number: resolving it to a USCC needs a crosswalk"
_REG_NOTE = "registration number (注册号): linked to a USCC only through registry data"

_USCC_CHARS = frozenset(USCC_ALPHABET)
_ORG_BODY_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_LETTERS_HINT = frozenset("IOSVZ")

# Excel's text-cell markers and invisible characters pasted from web pages: cosmetic, not damage.
_FORMULA_TEXT = re.compile(r'="(.*)"', re.S)
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
# A number in scientific notation, as Excel, LibreOffice or a float's repr writes it.
_SCIENTIFIC = re.compile(r"\+?(\d+(?:[.,]\d*)?)E(\+?)(\d{1,3})", re.I)
# A whole number formatted with thousands separators and/or a ".0" suffix.
_FORMATTED = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(\.0+)?")
# Without one of these (in ASCII text) neither pattern above can match.
_NUMBER_MARKS = re.compile(r"[Ee.,]")


@dataclass(frozen=True)
class CodeCheck:
    """The verdict on one identifier.

    ``reason`` is empty for a plain valid code. A valid legacy code (organisation code, tax
    or registration number) carries a note that it does not resolve to a USCC by itself,
    and a valid but ambiguous value says what else it could be.
    """

    input: str
    kind: str
    status: str
    normalised: str
    reason: str
    damaged: bool = False
    uscc: str = ""

    def display(self) -> str:
        """The input, safe to print: personal IDs masked, other codes as given.

        An ``unknown`` value with 14 or more digits is masked too: it is most likely a
        resident ID with a digit missing or added, and still personal data.
        """
        if self.kind in PERSONAL_KINDS or (
            self.kind == "unknown" and sum(c.isdigit() for c in self.input) >= 14
        ):
            return mask_personal(self.input)
        return self.input


def mask_personal(text: str) -> str:
    """*text* with the personal part hidden, whatever shape it is in.

    18 characters: court style (characters 11-14); 15 digits: the six-digit birth date
    (characters 7-12); anything else: every digit after the sixth (an address code says
    little about a person), except an exponent's digits.

    >>> mask_personal("11010519491231002x")
    '1101051949****002X'
    >>> mask_personal("110105491231002")
    '110105******002'
    >>> mask_personal("1.10105194912E+17")
    '1.10105******E+17'
    """
    code = normalise_code(_unwrap(text))
    if len(code) == 18 and code.isascii() and code.isalnum():
        return court_mask(code)
    if len(code) == 15 and code.isascii() and code.isdigit():
        return f"{code[:6]}******{code[12:]}"
    out: list[str] = []
    seen = 0
    exponent = False
    flat = unicodedata.normalize("NFKC", text)
    scientific = _SCIENTIFIC.fullmatch(_SPACES.sub("", flat)) is not None
    for ch in flat:
        if scientific and ch in "Ee":
            exponent = True
        if ch.isdigit() and not exponent:
            seen += 1
            out.append(ch if seen <= 6 else "*")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------- helpers


@lru_cache(maxsize=16384)
def _known_division(code: str) -> bool:
    return lookup_region(code) is not None


def _plausible_birth(yyyymmdd: str, today: datetime.date | None) -> bool:
    """A real date between 1900-01-01 and *today* (default: the local date)."""
    if len(yyyymmdd) != 8 or not yyyymmdd.isascii() or not yyyymmdd.isdigit():
        return False
    try:
        born = datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return born.year >= 1900 and born <= (today or datetime.date.today())


def _first_bad(code: str, allowed: frozenset[str], offset: int = 0) -> int | None:
    """1-based position (plus *offset*) of the first character not in *allowed*."""
    for i, c in enumerate(code, 1):
        if c not in allowed:
            return i + offset
    return None


def _bad_char_reason(position: int, char: str) -> str:
    reason = f"character at position {position} is not allowed"
    if char in _LETTERS_HINT:
        # The letters left out so they are not read as 1, 0, 5, U and 2.
        reason += " (I, O, S, V and Z are never used)"
    return reason


def _unwrap(text: str) -> str:
    """Remove what carries no information: ``="…"`` and ``'`` text markers, invisible chars."""
    t = _INVISIBLE.sub("", text).strip()
    m = _FORMULA_TEXT.fullmatch(t)
    if m:
        t = m.group(1).strip()
    if t[:1] in ("'", "‘", "’"):  # the curly quotes are what Word / WPS paste
        t = t[1:].strip()
    return t


def _org_ok(code9: str) -> bool:
    """GB 11714: 8 body characters 0-9A-Z, then the check character."""
    return (
        len(code9) == 9
        and _first_bad(code9[:8], _ORG_BODY_CHARS) is None
        and org_code_check_char(code9[:8]) == code9[8]
    )


def _result(
    inp: str,
    kind: str,
    status: str,
    normalised: str,
    reason: str = "",
    *,
    damaged: bool = False,
    uscc: str = "",
) -> CodeCheck:
    return CodeCheck(inp, kind, status, normalised, reason, damaged=damaged, uscc=uscc)


def _plain(code: str) -> str:
    """*code* if it is plain ASCII letters and digits (worth keeping as normalised), else ""."""
    return code if code.isascii() and code.isalnum() else ""


# ---------------------------------------------------------------- spreadsheet damage


@dataclass(frozen=True)
class _Damage:
    reason: str
    digits: str  # the value as a digit string (trailing digits possibly zeroed)
    exact: bool  # the digits are the original value: only the formatting is damaged
    shown: int  # how many leading digits are the original ones


def _formatting_damage(text: str) -> _Damage | None:
    """Scientific notation, ``.0`` suffix or thousands separators on a whole number."""
    if text.isascii() and not _NUMBER_MARKS.search(text):
        return None  # the common case: nothing a number format adds (fast path)
    u = _SPACES.sub("", unicodedata.normalize("NFKC", text))
    m = _SCIENTIFIC.fullmatch(u)
    if m:
        mantissa = m.group(1).replace(",", ".")
        try:
            value = Decimal(mantissa).scaleb(int(m.group(3)))
        except InvalidOperation:  # pragma: no cover - the pattern only admits numbers
            return None
        if value != value.to_integral_value() or value <= 0:
            return None
        digits = str(int(value))
        if not 5 <= len(digits) <= 20:
            return None
        shown = len(mantissa.replace(".", "").lstrip("0"))
        if shown >= len(digits):
            return _Damage(
                "spreadsheet damage: stored as a number and shown in scientific notation "
                "(all digits still present); store the column as text",
                digits,
                exact=True,
                shown=len(digits),
            )
        return _Damage(
            "spreadsheet damage: stored as a number and shown in scientific notation; only "
            f"{shown} of {len(digits)} digits survive, re-export the column as text",
            digits,
            exact=False,
            shown=shown,
        )
    m = _FORMATTED.fullmatch(u)
    if m and (m.group(2) or "," in m.group(1)):
        digits = m.group(1).replace(",", "")
        what = "a '.0' suffix" if m.group(2) else "thousands separators"
        if m.group(2) and "," in m.group(1):
            what = "thousands separators and a '.0' suffix"
        if len(digits) > 15:
            # A spreadsheet or a float keeps 15-17 significant digits: the tail is suspect.
            return _Damage(
                f"spreadsheet damage: formatted as a number ({what}); digits after the "
                "15th may have been altered, re-export the column as text",
                digits,
                exact=False,
                shown=15,
            )
        return _Damage(
            f"spreadsheet damage: formatted as a number ({what}); store the column as text",
            digits,
            exact=True,
            shown=len(digits),
        )
    return None


def _truncated(code: str) -> bool:
    """18 digits ending in 000: what a spreadsheet leaves of a longer number (15 digits kept)."""
    return len(code) == 18 and code.isascii() and code.isdigit() and code.endswith("000")


_TRUNCATED_REASON = (
    "spreadsheet damage: the last 3 digits are 000 and the checks fail; a spreadsheet keeps "
    "only 15 significant digits, re-export the column as text"
)


def _damaged(inp: str, kind: str, damage: _Damage, recovered: CodeCheck | None) -> CodeCheck:
    """An invalid, damaged result; when only formatting was lost, keep the recovered code."""
    reason = damage.reason
    normalised = ""
    if recovered is not None and recovered.status != INVALID:
        normalised = recovered.normalised
        reason += "; the recovered value passes its checks"
    return _result(inp, kind, INVALID, normalised, reason, damaged=True)


# ------------------------------------------------------------------------------ USCC


def _full_path_only(code: str) -> int:
    """A verdict function that reads nothing: every code takes the full path (the reference)."""
    return uscc_fast.FALLBACK


# Tests and bench/uscc.py set this to _full_path_only to compare the fast path with the full.
_verdict: Callable[[str], int] = uscc_fast.uscc_verdict

_UNKNOWN_DIVISION = "division code (positions 3-8) is not a known GB/T 2260 code"
_FINAL_DEFECT = (
    "check character (position 18) fails but the embedded organisation code passes: "
    "a known defect of some codes issued before 2016"
)
_FINAL_DEFECT_STRICT = (
    "check character (position 18) fails; the embedded organisation code passes "
    "(accepted as a pre-2016 defect only in lenient mode)"
)
_ORG_FAILS = "organisation code check (position 17) fails"
_BOTH_FAIL = "check characters at positions 17 and 18 both fail"


_new_object = object.__new__


def _uscc_check(inp: str, status: str, code: str, reason: str, uscc: str) -> CodeCheck:
    """CodeCheck(inp, "uscc", status, code, reason, uscc=uscc), built at half the cost: the
    frozen dataclass's __init__ sets each of its seven fields through object.__setattr__."""
    check: CodeCheck = _new_object(CodeCheck)
    check.__dict__.update(
        input=inp,
        kind="uscc",
        status=status,
        normalised=code,
        reason=reason,
        damaged=False,
        uscc=uscc,
    )
    return check


def _uscc_common(inp: str, code: str, verdict: int, strict: bool) -> CodeCheck:
    """:func:`_uscc` for an upper-case *code* that uscc_fast read (*verdict*): same results."""
    if not _division_ok(code[2:8]):
        return _uscc_check(inp, INVALID, code, _UNKNOWN_DIVISION, "")
    if verdict == uscc_fast.BOTH_OK:
        return _uscc_check(inp, VALID, code, "", code)
    if verdict == uscc_fast.ORG_ONLY:
        # Known real defect: codes assigned before the rules settled (mostly pre-2016)
        # whose position 18 was computed wrongly; the registry still lists them.
        if strict:
            return _uscc_check(inp, INVALID, code, _FINAL_DEFECT_STRICT, "")
        return _uscc_check(inp, WARNING, code, _FINAL_DEFECT, code)
    if verdict == uscc_fast.FINAL_ONLY:
        return _uscc_check(inp, INVALID, code, _ORG_FAILS, "")
    return _uscc_check(inp, INVALID, code, _BOTH_FAIL, "")


def _uscc(inp: str, code: str, strict: bool) -> CodeCheck:
    verdict = _verdict(code)
    if verdict:
        return _uscc_common(inp, code, verdict, strict)

    def bad(reason: str) -> CodeCheck:
        return _result(inp, "uscc", INVALID, _plain(code), reason)

    if len(code) != 18:
        return bad(f"USCC must be 18 characters, has {len(code)}")
    pos = _first_bad(code, _USCC_CHARS)
    if pos is not None:
        return bad(_bad_char_reason(pos, code[pos - 1]))
    authority, category, division = code[0], code[1], code[2:8]
    if authority not in AUTHORITIES:
        return bad(f"registration authority '{authority}' (position 1) is not defined")
    if category not in AUTHORITIES[authority][1]:
        return bad(f"category '{category}' is not defined for authority '{authority}'")
    org_ok = org_code_check_char(code[8:16]) == code[16]
    final_ok = uscc_check_char(code[:17]) == code[17]
    # Positions 1-8 look right from here on: a 000 tail with failing checks is a truncation.
    if not (org_ok and final_ok) and _truncated(code) and _division_ok(division):
        return _result(inp, "uscc", INVALID, code, _TRUNCATED_REASON, damaged=True)
    if not division.isdigit():
        return bad("division code (positions 3-8) must be 6 digits")
    if not _division_ok(division):
        return bad(_UNKNOWN_DIVISION)
    if org_ok and final_ok:
        return _result(inp, "uscc", VALID, code, uscc=code)
    if org_ok:
        # Known real defect: codes assigned before the rules settled (mostly pre-2016)
        # whose position 18 was computed wrongly; the registry still lists them.
        if strict:
            return bad(_FINAL_DEFECT_STRICT)
        return _result(inp, "uscc", WARNING, code, _FINAL_DEFECT, uscc=code)
    if final_ok:
        return bad(_ORG_FAILS)
    return bad(_BOTH_FAIL)


def _division_ok(division: str) -> bool:
    return division == NATIONAL_DIVISION or _known_division(division)


def check_uscc(code: str, *, strict: bool = False) -> CodeCheck:
    """Validate a 统一社会信用代码 (GB 32100-2015), structure and both check characters.

    Lenient mode (default) accepts, as ``warning``, a code whose position 18 fails while the
    embedded organisation code passes (a known defect of some pre-2016 codes); *strict*
    rejects it.

    >>> check_uscc("91350100M000100Y44").status
    'warning'
    >>> check_uscc("91350100M000100Y44", strict=True).status
    'invalid'
    >>> check_uscc("95350100M000100Y43").reason
    "category '5' is not defined for authority '9'"
    """
    if code.isascii():
        upper = code.upper()
        verdict = _verdict(upper)
        # Plain letters and digits in the common shape: nothing to unwrap or normalise. Of
        # the number formats _formatting_damage knows, only scientific notation fits letters
        # and digits, and only as digits around one E: that case takes the full path.
        if verdict and not ("E" in upper and upper.replace("E", "", 1).isdigit()):
            return _uscc_common(code, upper, verdict, strict)
    text = _unwrap(code)
    plain = normalise_code(text)
    damage = _formatting_damage(text)
    # A code that passes as written is never damage, however much it looks like a number
    # (911100000000071E05 is a valid USCC and also reads as 9.11100000000071E+19).
    if damage is not None and _uscc(code, plain, False).status == INVALID:
        recovered = _uscc(code, damage.digits, strict) if damage.exact else None
        return _damaged(code, "uscc", damage, recovered)
    return _uscc(code, plain, strict)


def org_code_of(uscc: str) -> str:
    """The organisation code embedded in *uscc* (positions 9-17, no hyphen).

    >>> org_code_of("91350100M000100Y43")
    'M000100Y4'
    """
    code = normalise_code(uscc)
    if len(code) != 18:
        raise ValueError(f"a USCC has 18 characters, got {len(code)}")
    return code[8:17]


# ------------------------------------------------------------------- organisation code


def _org(inp: str, code: str) -> CodeCheck:
    def bad(reason: str) -> CodeCheck:
        return _result(inp, "org_code", INVALID, _plain(code), reason)

    if code.isascii() and code.isdigit() and 5 <= len(code) <= 8:
        # A spreadsheet drops leading zeros of an all-digit code (central bodies' codes
        # start with 0000). Claim damage only if the padded code passes its check.
        padded = code.zfill(9)
        if _org_ok(padded):
            lost = 9 - len(code)
            zeros = "a leading zero" if lost == 1 else f"{lost} leading zeros"
            return _result(
                inp,
                "org_code",
                INVALID,
                padded,
                f"spreadsheet damage: likely lost {zeros} (padded to 9 characters the "
                "organisation code check passes); store the column as text",
                damaged=True,
            )
    if len(code) != 9:
        return bad(f"organisation code must be 9 characters, has {len(code)}")
    pos = _first_bad(code[:8], _ORG_BODY_CHARS)
    if pos is not None:
        return bad(f"character at position {pos} is not allowed")
    if code[8] not in "0123456789X":
        return bad("character at position 9 is not allowed")
    if org_code_check_char(code[:8]) != code[8]:
        return bad("organisation code check character (position 9) fails")
    return _result(inp, "org_code", VALID, code, _ORG_NOTE)


def check_org_code(code: str) -> CodeCheck:
    """Validate a GB 11714 organisation code, ``XXXXXXXX-X`` or without the hyphen.

    A valid code keeps status ``valid`` with a note: it names no USCC by itself.

    >>> r = check_org_code("D2143569-X")
    >>> r.status, r.normalised, r.uscc
    ('valid', 'D2143569X', '')
    """
    text = _unwrap(code)
    plain = normalise_code(text)
    damage = _formatting_damage(text)
    if damage is not None and _org(code, plain).status == INVALID:
        recovered = _org(code, damage.digits.zfill(9)) if damage.exact else None
        return _damaged(code, "org_code", damage, recovered)
    return _org(code, plain)


# ------------------------------------------------------------------- tax registration


def _tax(inp: str, code: str) -> CodeCheck:
    def bad(reason: str) -> CodeCheck:
        return _result(inp, "tax_no", INVALID, _plain(code), reason)

    if len(code) != 15:
        return bad(f"tax registration number must be 15 characters, has {len(code)}")
    division, org = code[:6], code[6:]
    if not (division.isascii() and division.isdigit()):
        return bad("division code (positions 1-6) must be 6 digits")
    if not _known_division(division):
        return bad("division code (positions 1-6) is not a known GB/T 2260 code")
    pos = _first_bad(org[:8], _ORG_BODY_CHARS, offset=6)
    if pos is not None:
        return bad(f"character at position {pos} is not allowed")
    if org[8] not in "0123456789X":
        return bad("character at position 15 is not allowed")
    if org_code_check_char(org[:8]) != org[8]:
        return bad("organisation code check (position 15) fails")
    return _result(inp, "tax_no", VALID, code, _TAX_NOTE)


def check_tax_no(code: str) -> CodeCheck:
    """Validate a 15-character tax registration number: division code + organisation code.

    >>> check_tax_no("440300192203821").status
    'valid'
    """
    text = _unwrap(code)
    plain = normalise_code(text)
    damage = _formatting_damage(text)
    if damage is not None and _tax(code, plain).status == INVALID:
        recovered = _tax(code, damage.digits) if damage.exact else None
        return _damaged(code, "tax_no", damage, recovered)
    return _tax(code, plain)


# ----------------------------------------------------------- business registration no.


def mod11_10_valid(digits: str) -> bool:
    """ISO 7064 MOD 11,10 over *digits*, check digit included.

    P₁ = 10; for each digit a: S = (P + a) mod 10, taken as 10 when 0; P = 2·S mod 11.
    The number is valid when the last S is 1 (equivalently the final P is 2).

    >>> mod11_10_valid("794623"), mod11_10_valid("794624")
    (True, False)
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("MOD 11,10 needs a non-empty string of digits")
    p = 10
    s = 10
    for ch in digits:
        s = (p + ord(ch) - 48) % 10 or 10
        p = (2 * s) % 11
    return s == 1


def mod11_10_check_digit(digits: str) -> str:
    """The digit that makes *digits* + it pass MOD 11,10 (exactly one does).

    >>> mod11_10_check_digit("44030110309741")
    '3'
    """
    for c in "0123456789":
        if mod11_10_valid(digits + c):
            return c
    raise AssertionError("unreachable: MOD 11,10 has a check digit for every prefix")


def _reg(inp: str, code: str) -> CodeCheck:
    def bad(reason: str) -> CodeCheck:
        return _result(inp, "reg_no", INVALID, _plain(code), reason)

    if len(code) != 15:
        return bad(f"registration number must be 15 digits, has {len(code)} characters")
    for i, c in enumerate(code, 1):
        if not ("0" <= c <= "9"):
            return bad(f"character at position {i} is not a digit")
    if not _division_ok(code[:6]):
        return bad("division code (positions 1-6) is not a known GB/T 2260 code")
    if not mod11_10_valid(code):
        return bad("check digit (position 15) fails (ISO 7064 MOD 11,10)")
    return _result(inp, "reg_no", VALID, code, _REG_NOTE)


def check_reg_no(code: str) -> CodeCheck:
    """Validate a 15-digit business registration number (工商注册号), MOD 11,10 check.

    >>> check_reg_no("440301103097413").status, check_reg_no("440301103097414").status
    ('valid', 'invalid')
    """
    text = _unwrap(code)
    damage = _formatting_damage(text)
    if damage is not None:
        recovered = _reg(code, damage.digits) if damage.exact else None
        return _damaged(code, "reg_no", damage, recovered)
    return _reg(code, normalise_code(text))


# ------------------------------------------------------------ resident IDs and permits


def upgrade_15(idno: str) -> str:
    """The 18-digit form of a first-generation 15-digit ID: insert "19", add the check char.

    >>> upgrade_15("110105491231002")
    '11010519491231002X'
    """
    code = normalise_code(idno)
    if len(code) != 15 or not code.isascii() or not code.isdigit():
        raise ValueError("a first-generation resident ID is 15 digits")
    first17 = f"{code[:6]}19{code[6:]}"
    return first17 + resident_id_check_char(first17)


def _rid15(inp: str, code: str, today: datetime.date | None) -> CodeCheck:
    def bad(reason: str) -> CodeCheck:
        return _result(inp, "resident_id_15", INVALID, _plain(code), reason)

    if not (code.isascii() and code.isdigit()):
        return bad("first-generation resident ID must be 15 digits")
    if not _plausible_birth(f"19{code[6:12]}", today):
        return bad("resident ID birth date is not a date")
    if not _known_division(code[:6]):
        return bad("resident ID address code is not a known division code")
    return _result(inp, "resident_id_15", VALID, upgrade_15(code))


def _rid18(inp: str, code: str, today: datetime.date | None) -> CodeCheck:
    permit = code[:6] in PERMIT_PREFIXES
    kind = "permit" if permit else "resident_id"
    problem = resident_id_problem(code, today=today)
    if permit and problem == "resident ID address code is not a known division code":
        problem = None  # 830000 is not in GB/T 2260; the prefix itself is the rule
    if problem is None:
        return _result(inp, kind, VALID, code)
    if (
        _truncated(code)
        and (permit or _known_division(code[:6]))
        and _plausible_birth(code[6:14], today)
    ):
        # Address code and birth date intact, the tail zeroed: a spreadsheet truncation.
        return _result(inp, kind, INVALID, code, _TRUNCATED_REASON, damaged=True)
    if permit:
        problem = problem.replace("resident ID", "residence permit number", 1)
    return _result(inp, kind, INVALID, _plain(code), problem)


def _rid(inp: str, code: str, today: datetime.date | None) -> CodeCheck:
    if len(code) == 15:
        return _rid15(inp, code, today)
    if len(code) == 18:
        return _rid18(inp, code, today)
    return _result(
        inp,
        "resident_id",
        INVALID,
        "",
        f"resident ID must be 18 characters (15 for a first-generation ID), has {len(code)}",
    )


def check_resident_id(idno: str, *, today: datetime.date | None = None) -> CodeCheck:
    """Validate a resident ID (18 characters, GB 11643; or 15 digits, first generation) or
    a Hong Kong / Macao / Taiwan residence permit number (810000 / 820000 / 830000 prefix).

    A 15-digit ID's normalised form is its 18-digit upgrade. Reasons never contain the ID.

    >>> check_resident_id("11010519491231002X").status
    'valid'
    >>> check_resident_id("110105194912310021").reason
    'resident ID check character fails'
    """
    text = _unwrap(idno)
    damage = _formatting_damage(text)
    if damage is not None:
        kind = "resident_id_15" if len(damage.digits) == 15 else "resident_id"
        if damage.digits[:6] in PERMIT_PREFIXES:
            kind = "permit"
        recovered = _rid(idno, damage.digits, today) if damage.exact else None
        return _damaged(idno, kind, damage, recovered)
    return _rid(idno, normalise_code(text), today)


# ------------------------------------------------------------------------- classify


def _with_note(result: CodeCheck, note: str) -> CodeCheck:
    reason = f"{result.reason}; {note}" if result.reason else note
    return dataclasses.replace(result, reason=reason)


def _uscc_shaped(code: str) -> bool:
    """Positions 1-8 read as authority, category and a known division."""
    authority = AUTHORITIES.get(code[0])
    return authority is not None and code[1] in authority[1] and _division_ok(code[2:8])


def _id_shaped(code: str, today: datetime.date | None) -> bool:
    """Positions 1-10 read as an address code and a birth year."""
    year = code[6:10]
    return (
        _known_division(code[:6])
        and year.isdigit()
        and 1900 <= int(year) <= (today or datetime.date.today()).year
    )


def _classify_18(inp: str, code: str, strict: bool, today: datetime.date | None) -> CodeCheck:
    if not _ID_SHAPE.fullmatch(code):
        # Letters (other than a final X) only occur in a USCC, unless this is an ID with a
        # stray character: address code and birth date say which.
        if _known_division(code[:6]) and _plausible_birth(code[6:14], today):
            return _rid18(inp, code, today)
        return _uscc(inp, code, strict)
    if code[:6] in PERMIT_PREFIXES:
        # As a USCC, 8/1 + "0000…" has no valid division: always a permit.
        return _rid18(inp, code, today)
    rid = _rid18(inp, code, today)
    uscc = _uscc(inp, code, strict)
    if rid.status == VALID:
        if uscc.status == VALID:
            # Privacy first: treated (and masked) as the personal ID it may be.
            return _with_note(rid, "also a valid USCC; treated as a resident ID")
        return rid
    if uscc.status != INVALID:
        return uscc
    # Neither validates: decide by shape and say why it is invalid.
    if rid.damaged:
        return rid
    if uscc.damaged:
        return uscc
    if _plausible_birth(code[6:14], today):
        return rid
    if _uscc_shaped(code):
        return uscc
    if _id_shaped(code, today):
        return rid
    return uscc


def _classify_15(inp: str, code: str, today: datetime.date | None) -> CodeCheck:
    if not (code.isascii() and code.isdigit()):
        # Letters fit only a tax number (its organisation-code part).
        return _tax(inp, code)
    reg = _reg(inp, code)
    rid = _rid15(inp, code, today)
    tax = _tax(inp, code)
    if rid.status == VALID:
        # About 1 in 10 old IDs also pass MOD 11,10; mask rather than risk showing an ID.
        also = [
            name
            for r, name in ((reg, "registration number"), (tax, "tax number"))
            if r.status == VALID
        ]
        if also:
            return _with_note(rid, f"also a valid {' and '.join(also)}; treated as a personal ID")
        return rid
    if reg.status == VALID:
        if tax.status == VALID:
            return _with_note(reg, "also a valid tax registration number")
        return reg
    if tax.status == VALID:
        return tax
    if _plausible_birth(f"19{code[6:12]}", today):
        return rid
    return reg


def _guess_damaged_kind(damage: _Damage, today: datetime.date | None) -> str:
    """The kind a damaged number most likely was, from its length and surviving digits.

    Where the surviving digits cannot tell a personal ID from a public code, lean to the
    personal kind, so the value is masked.
    """
    digits, n = damage.digits[: damage.shown], len(damage.digits)
    if n == 18:
        if digits[:6] in PERMIT_PREFIXES:
            return "permit"
        # Resident IDs start with an address code and a 19xx/20xx birth year.
        if (
            len(digits) >= 6
            and _known_division(digits[:6])
            and (len(digits) < 8 or digits[6:8] in ("19", "20"))
        ):
            return "resident_id"
        return "uscc"
    if n == 15:
        if (
            len(digits) >= 6
            and _known_division(digits[:6])
            and (len(digits) < 12 or _plausible_birth(f"19{digits[6:12]}", today))
        ):
            return "resident_id_15"
        return "reg_no"
    if 5 <= n <= 9:
        return "org_code"
    return "unknown"


def classify(text: str, *, strict: bool = False, today: datetime.date | None = None) -> CodeCheck:
    """Recognise the kind of identifier in *text* by its shape and validate it.

    18 characters: USCC or resident ID / permit, decided by which validates (a value
    valid as both is treated as a resident ID, so it is masked), otherwise by shape.
    15: registration number, first-generation ID or tax number, likewise. 9: organisation
    code. 5-8 digits: an organisation code that lost leading zeros, if padding makes it
    pass. Anything else: ``unknown``.

    >>> classify("91350100M000100Y43").kind
    'uscc'
    >>> classify("9135010").reason.startswith("not a recognised code: 7 digits")
    True
    """
    unwrapped = _unwrap(text)
    code = normalise_code(unwrapped)
    damage = _formatting_damage(unwrapped)
    # Damage only if the value fails as written: a valid code that reads as a number in
    # scientific notation (911100000000071E05) is a valid code.
    if damage is not None and _classify_code(text, code, False, today).status == INVALID:
        recovered = classify(damage.digits, strict=strict, today=today) if damage.exact else None
        if recovered is not None and recovered.kind != "unknown":
            kind = recovered.kind
        else:
            kind = _guess_damaged_kind(damage, today)
        return _damaged(text, kind, damage, recovered)
    return _classify_code(text, code, strict, today)


def _classify_code(text: str, code: str, strict: bool, today: datetime.date | None) -> CodeCheck:
    """:func:`classify` for a normalised *code*, spreadsheet formatting ruled out."""
    n = len(code)
    if n == 18:
        return _classify_18(text, code, strict, today)
    if n == 15:
        return _classify_15(text, code, today)
    if n == 9:
        return _org(text, code)
    if code.isascii() and code.isdigit() and 5 <= n <= 8:
        org = _org(text, code)
        if org.damaged:
            return org
    return _result(text, "unknown", INVALID, "", _unknown_reason(code))


def _unknown_reason(code: str) -> str:
    if not code:
        return "empty"
    if code.isascii() and code.isdigit():
        shape = f"{len(code)} digits"
    elif code.isascii() and code.isalnum():
        shape = f"{len(code)} letters and digits"
    else:
        return f"not a code: {len(code)} characters, including some that are not letters or digits"
    return (
        f"not a recognised code: {shape} (USCC and resident ID have 18 characters, "
        "registration and tax numbers and first-generation IDs 15, organisation codes 9)"
    )


# ------------------------------------------------------------- a column of known kind

# What a column holds, when its name says so: list CSV imports and `identity check` validate
# these columns the same way, through check_expecting.
EXPECT_USCC: Final = "uscc"
EXPECT_PERSON: Final = "person"
COLUMN_EXPECTS: Final[dict[str, str]] = {
    "统一社会信用代码": EXPECT_USCC,
    "认定部门代码": EXPECT_USCC,
    "证件号码": EXPECT_PERSON,
    "法定代表人证件号码": EXPECT_PERSON,
}
_EXPECTED_KINDS: Final = {EXPECT_USCC: frozenset({"uscc"}), EXPECT_PERSON: PERSONAL_KINDS}
_EXPECTED_NAMES: Final = {
    EXPECT_USCC: "a USCC",
    EXPECT_PERSON: "a resident ID or residence permit number",
}
_KIND_NAMES: Final = {
    "uscc": "a USCC",
    "org_code": "an organisation code",
    "tax_no": "a tax registration number",
    "reg_no": "a registration number (注册号)",
    "resident_id": "a resident ID",
    "resident_id_15": "a first-generation resident ID",
    "permit": "a residence permit number",
}

# ListEntry.person_id_type / legal_rep_id_type, by name (node.api.feeds.ID_TYPE_*).
ID_TYPES: Final = (
    "resident_id",
    "resident_id_upgraded",
    "hk_macao_residence_permit",
    "taiwan_residence_permit",
)


def check_expecting(
    text: str, expect: str, *, strict: bool = False, today: datetime.date | None = None
) -> CodeCheck:
    """:func:`classify` *text*, then require the kind the column holds (*expect*).

    *expect* is ``"uscc"`` or ``"person"`` (a resident ID, 15 or 18 characters, or a
    residence permit number). A value of another kind is ``invalid``, saying what it reads
    as; its kind stays what :func:`classify` found, so a personal value stays masked. In a
    USCC column, a value valid both as a resident ID and as a USCC is taken as the USCC.
    In a personal column, a value that is no valid code of any kind gets the resident ID
    check's reason. Reasons never repeat the value or a digit of an ID.

    >>> check_expecting("91350100M000100Y43", "uscc").status
    'valid'
    >>> r = check_expecting("91350100M000100Y43", "person")
    >>> r.status, r.reason
    ('invalid', 'not a resident ID or residence permit number: it is a USCC')
    >>> check_expecting("11010519491231002X", "uscc").reason
    'not a USCC: it is a resident ID'
    """
    try:
        wanted = _EXPECTED_KINDS[expect]
    except KeyError:
        raise ValueError(f"expect must be {EXPECT_USCC!r} or {EXPECT_PERSON!r}") from None
    result = classify(text, strict=strict, today=today)
    if result.kind in wanted or result.damaged:
        return result
    code = normalise_code(_unwrap(text))
    personal = result.kind in PERSONAL_KINDS
    if result.status == INVALID and not personal:
        # No valid code of any kind, nor one that reads as personal: the expected kind's own
        # rule says what is wrong (a wrong length or character, never echoing the value).
        if expect == EXPECT_USCC:
            return dataclasses.replace(result, reason=_uscc(text, code, strict).reason)
        return dataclasses.replace(_rid(text, code, today), normalised="")
    if expect == EXPECT_USCC and personal and result.status != INVALID:
        as_uscc = _uscc(text, code, strict)
        if as_uscc.status != INVALID:
            return as_uscc  # valid both ways: the column says which it is
    name = _KIND_NAMES[result.kind]
    what = f"reads as {name} ({result.reason})" if result.status == INVALID else f"it is {name}"
    return dataclasses.replace(
        result,
        status=INVALID,
        normalised="",
        uscc="",
        reason=f"not {_EXPECTED_NAMES[expect]}: {what}",
    )


def id_type(check: CodeCheck) -> str:
    """Which of :data:`ID_TYPES` a valid personal identifier is ("" for anything else).

    >>> id_type(check_resident_id("110105491231002", today=datetime.date(2025, 6, 1)))
    'resident_id_upgraded'
    """
    if check.status == INVALID:
        return ""
    if check.kind == "resident_id":
        return "resident_id"
    if check.kind == "resident_id_15":
        return "resident_id_upgraded"
    if check.kind == "permit":
        prefix = check.normalised[:6]
        if prefix == "830000":
            return "taiwan_residence_permit"
        if prefix in PERMIT_PREFIXES:
            return "hk_macao_residence_permit"
    return ""
