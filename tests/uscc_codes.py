"""Realistic USCC inputs for tests/test_uscc_fast.py and bench/uscc.py (fixed seeds)."""

from __future__ import annotations

import random
import re
from importlib import resources

from node.identity.codes import USCC_ALPHABET, org_code_check_char, uscc_check_char

# Authority and category as they occur on lists: mostly enterprises (91), then individual
# businesses (92), cooperatives (93), public institutions (12), social organisations (52).
_KINDS = ("91",) * 70 + ("92",) * 12 + ("93",) * 4 + ("12",) * 6 + ("52",) * 4 + ("11", "31")
_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def divisions() -> list[str]:
    """Every six-digit division code in python-stdnum's GB/T 2260 data (prefix + lines)."""
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    found: list[str] = []
    province = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head = line.split(maxsplit=1)[0]
        if not line[0].isspace():
            province = head
        elif re.fullmatch(r"\d{4}", head):
            found.append(province + head)
    return found


def valid_uscc(rng: random.Random, division: str) -> str:
    """A valid code: both check characters right."""
    kind = rng.choice(_KINDS)
    if rng.random() < 0.6:
        body = "MA" + "".join(rng.choice(_BODY) for _ in range(6))  # post-2015 assignments
    else:
        body = "".join(rng.choice("0123456789") for _ in range(8))
    first16 = kind + division + body + org_code_check_char(body)
    if first16[-1] not in USCC_ALPHABET:
        first16 = first16[:-1] + "0"  # cannot happen (checks are 0-9 or X), kept total
    return first16 + uscc_check_char(first16)


def realistic_mix(n: int, seed: int = 17) -> list[str]:
    """*n* inputs as a list column holds them: mostly valid, some defective or damaged."""
    rng = random.Random(seed)
    known = divisions()
    out: list[str] = []
    for _ in range(n):
        code = valid_uscc(rng, rng.choice(known))
        r = rng.random()
        if r < 0.88:
            pass
        elif r < 0.92:  # pre-2016 defect: wrong position 18
            code = code[:17] + rng.choice([c for c in USCC_ALPHABET if c != code[17]])
        elif r < 0.96:  # a typo anywhere
            i = rng.randrange(18)
            code = code[:i] + rng.choice(USCC_ALPHABET) + code[i + 1 :]
        elif r < 0.97:
            code = code.lower()
        elif r < 0.98:
            code = f" {code[:6]} {code[6:]} "
        elif r < 0.99:
            code = code[: rng.randrange(15, 18)]
        else:
            code = code[:9] + rng.choice("IOSVZ") + code[10:]
        out.append(code)
    return out
