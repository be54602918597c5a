"""The common case of USCC validation from precomputed tables (pure, no imports, mypyc-ready).

:func:`uscc_verdict` reads an 18-character code as nine two-character pairs, one dictionary
lookup each. A pair's value packs its share of both check sums (GB 32100-2015 position 18,
mod 31; the embedded GB 11714 organisation code's position 17, mod 11). The tables hold only
what the common case allows: a defined authority and category, six digits for the division,
the USCC alphabet elsewhere, upper case. Anything else misses a table and comes back
:data:`FALLBACK`, for node.identity.validate's full path, which words the reasons; so does a
failing code ending in ``000`` (maybe a spreadsheet truncation, which the full path judges).
The division code's lookup is left to the caller.

>>> uscc_verdict("91350100M000100Y43") == BOTH_OK
True
>>> uscc_verdict("91350100M000100Y44") == ORG_ONLY
True
>>> uscc_verdict("95350100M000100Y43")   # category 5 is not defined for authority 9
0
"""

from __future__ import annotations

from typing import Final

__all__ = ["BOTH_OK", "FALLBACK", "FINAL_ONLY", "NEITHER", "ORG_ONLY", "uscc_verdict"]

FALLBACK: Final = 0  # not the common case: use the full path
BOTH_OK: Final = 1  # both check characters pass
ORG_ONLY: Final = 2  # position 18 fails, the organisation code (position 17) passes
FINAL_ONLY: Final = 3  # position 17 fails, position 18 passes
NEITHER: Final = 4  # both fail

_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_CHARS: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS: Final = "0123456789"
# Registration authority → the categories GB 32100-2015 (as amended) defines for it; must
# match node.identity.validate.AUTHORITIES (a test compares them).
CATEGORIES: Final[dict[str, str]] = {
    "1": "1239",
    "2": "19",
    "3": "123459",
    "4": "19",
    "5": "1239",
    "6": "129",
    "7": "129",
    "8": "19",
    "9": "123",
    "A": "19",
    "N": "1239",
    "Y": "1",
}

# A pair's packed value: its mod-31 share in bits 0-8 (nine shares < 31 sum below 512), its
# mod-11 share in bits 9-17, and _NO_ORG when position 17 is a letter no organisation code
# check yields.
_ORG_SHIFT: Final = 9
_SUM_MASK: Final = (1 << _ORG_SHIFT) - 1
_NO_ORG: Final = 1 << 20
_USCC_WEIGHTS: Final = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS: Final = [3, 7, 9, 10, 5, 8, 4, 2]


def _uscc_value(c: str) -> int:
    return _ALPHABET.index(c)


def _share(position: int, c: str) -> tuple[int, int, bool]:
    """Shares of character *c* (upper case) at 0-based *position*: mod 31, mod 11, org-able."""
    value = _uscc_value(c)
    if position == 17:
        # The check character itself: the code passes when the whole sum is 0 mod 31.
        return value, 0, True
    uscc = value * _USCC_WEIGHTS[position] % 31
    if 8 <= position < 16:
        return uscc, _ORG_CHARS.index(c) * _ORG_WEIGHTS[position - 8] % 11, True
    if position == 16:
        # Check character c passes when (sum + c) is 0 mod 11, with X for 10 and 0 for 11.
        if c == "X":
            return uscc, 10, True
        if c in _DIGITS:
            return uscc, int(c), True
        return uscc, 0, False
    return uscc, 0, True


def _pair_table(position: int) -> dict[str, int]:
    """Every allowed pair at *position* and *position* + 1."""
    if position == 0:
        pairs = [(a, c) for a, cats in CATEGORIES.items() for c in cats]
    elif position < 8:
        pairs = [(a, b) for a in _DIGITS for b in _DIGITS]
    else:
        pairs = [(a, b) for a in _ALPHABET for b in _ALPHABET]
    table: dict[str, int] = {}
    for a, b in pairs:
        ua, oa, fine_a = _share(position, a)
        ub, ob, fine_b = _share(position + 1, b)
        value = (ua + ub) % 31 + ((oa + ob) % 11 << _ORG_SHIFT)
        if not (fine_a and fine_b):
            value += _NO_ORG
        table[a + b] = value
    return table


_P0: Final = _pair_table(0)
_P2: Final = _pair_table(2)
_P4: Final = _pair_table(4)
_P6: Final = _pair_table(6)
_P8: Final = _pair_table(8)
_P10: Final = _pair_table(10)
_P12: Final = _pair_table(12)
_P14: Final = _pair_table(14)
_P16: Final = _pair_table(16)


def uscc_verdict(code: str) -> int:
    """Which check characters of *code* pass, or :data:`FALLBACK` if it is not the common case.

    The common case: 18 characters, defined authority and category, six digits at positions
    3-8, the upper-case USCC alphabet elsewhere, and not a failing code that ends
    in ``000``. The division code itself is not looked up.
    """
    if len(code) != 18:
        return FALLBACK
    try:
        total = (
            _P0[code[0:2]]
            + _P2[code[2:4]]
            + _P4[code[4:6]]
            + _P6[code[6:8]]
            + _P8[code[8:10]]
            + _P10[code[10:12]]
            + _P12[code[12:14]]
            + _P14[code[14:16]]
            + _P16[code[16:18]]
        )
    except KeyError:
        return FALLBACK
    final_ok = (total & _SUM_MASK) % 31 == 0
    org_ok = total < _NO_ORG and (total >> _ORG_SHIFT) % 11 == 0
    if final_ok and org_ok:
        return BOTH_OK
    if code.endswith("000"):
        return FALLBACK
    if org_ok:
        return ORG_ONLY
    return FINAL_ONLY if final_ok else NEITHER
