"""Check-character arithmetic and normalisation for the identifiers on credit lists (pure).

The USCC, organisation code and resident ID check characters, the resident ID's own checks
(used by node.identity.validate, which is where every identifier is validated: the list
importer, ``identity check`` and ``entity`` all go through it), normalisation and the court
masking pattern. Problems are reported as short reasons that give positions, never the value
itself (a resident ID is personal data, and reasons end up in logs and quarantine reports).

>>> uscc_check_char("91350100M000100Y4")                # GB 32100-2015 worked example
'3'
>>> normalise_code(" 9135 0100-m000100y43 ")
'91350100M000100Y43'
>>> resident_id_problem("11010519491231002X") is None
True
>>> resident_id_problem("110105194912310021")
'resident ID check character fails'
>>> court_mask("11010519491231002X")
'1101051949****002X'
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from functools import lru_cache
from operator import mul

from node.regions import lookup_region

__all__ = [
    "USCC_ALPHABET",
    "court_mask",
    "normalise_code",
    "org_code_check_char",
    "resident_id_check_char",
    "resident_id_problem",
    "uscc_check_char",
]

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 3^(i-1) mod 31, i = 1..17

_ORG_VALUE = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_PLAIN_CODE = re.compile(r"[0-9A-Za-z]*")

# Spaces of every kind and the hyphen-like characters NFKC leaves alone.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")


def uscc_check_char(first17: str) -> str:
    """The 18th character of a USCC whose first 17 characters are *first17* (GB 32100-2015).

    Raises ValueError if *first17* is not 17 characters of the USCC alphabet.
    """
    if len(first17) != 17:
        raise ValueError(f"need 17 characters, got {len(first17)}")
    try:
        total = sum(map(mul, map(_USCC_VALUE.__getitem__, first17), _USCC_WEIGHTS))
    except KeyError:
        raise ValueError("character outside the USCC alphabet") from None
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The check character of a GB 11714 organisation code whose body is *first8*.

    Raises ValueError if *first8* is not 8 characters of 0-9A-Z.
    """
    if len(first8) != 8:
        raise ValueError(f"need 8 characters, got {len(first8)}")
    try:
        total = sum(map(mul, map(_ORG_VALUE.__getitem__, first8), _ORG_WEIGHTS))
    except KeyError:
        raise ValueError("character outside 0-9A-Z") from None
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


@lru_cache(maxsize=8192)
def _known_division(code: str) -> bool:
    return lookup_region(code) is not None


def _id_sum(digits17: str) -> int:
    """Σ digit·weight over 17 ASCII digits (byte values are digit + 48, and Σ weights = 100)."""
    total: int = sum(map(mul, digits17.encode("ascii"), _ID_WEIGHTS))
    return total - 4800


def resident_id_problem(idno: str, *, today: datetime.date | None = None) -> str | None:
    """None if *idno* is a valid 18-character resident ID (GB 11643), else a short reason.

    Checks shape (17 digits and 0-9 or X), the check character, the birth date (a real date,
    not before 1900 and not after *today*, default the local date) and the address code (a
    GB/T 2260 division code, current or historical). The reason never contains any part of
    the ID.
    """
    if len(idno) != 18:
        return f"resident ID must be 18 characters, has {len(idno)}"
    if not _ID_SHAPE.fullmatch(idno):
        return "resident ID must be 17 digits followed by a digit or X"
    if _ID_CHECK[_id_sum(idno[:17]) % 11] != idno[17]:
        return "resident ID check character fails"
    year, month_day = divmod(int(idno[6:14]), 10000)
    try:
        born = datetime.date(year, *divmod(month_day, 100))
    except ValueError:
        return "resident ID birth date is not a date"
    if born.year < 1900:
        # No digits in the reason: it must share no four characters with any ID.
        return "resident ID birth date is implausibly early (before the twentieth century)"
    if born > (today or datetime.date.today()):
        return "resident ID birth date is in the future"
    if not _known_division(idno[:6]):
        return "resident ID address code is not a known division code"
    return None


def resident_id_check_char(first17: str) -> str:
    """The check character of a resident ID whose first 17 digits are *first17* (GB 11643)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need 17 digits")
    return _ID_CHECK[_id_sum(first17) % 11]


def normalise_code(text: str) -> str:
    """*text* as a code: full-width to half-width (NFKC), spaces and hyphens removed, upper-case."""
    if _PLAIN_CODE.fullmatch(text):  # the common case, already plain ASCII
        return text.upper()
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()


def court_mask(idno: str) -> str:
    """The court defaulter-list display form: characters 11-14 (1-based) replaced by ``*``.

    Only for 18-character IDs; anything else raises ValueError (without echoing the value),
    since the pattern would not hide the birth date of another format.
    """
    if len(idno) != 18:
        raise ValueError(f"court_mask needs an 18-character resident ID, got {len(idno)}")
    return f"{idno[:10]}****{idno[14:]}"
