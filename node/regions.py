"""GB/T 2260 administrative division codes (pure lookups over python-stdnum's dataset).

>>> from node.regions import lookup_region
>>> lookup_region("370100").name
'济南市'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stdnum import numdb

_HISTORY = re.compile(r"^\[(\d{4})?-(\d{4})?\](.*)$")


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    province: str
    current: bool


@lru_cache(maxsize=1)
def _db() -> Any:
    return numdb.get("cn/loc")


def _split(name: str) -> tuple[str, bool]:
    m = _HISTORY.match(name)
    if not m:
        return name, True
    return m.group(3), m.group(2) is None


def lookup_region(code: str) -> Region | None:
    """The division named by a six-digit code, current or historical, or None if unknown."""
    if not re.fullmatch(r"\d{6}", code):
        return None
    parts = _db().info(code)
    if len(parts) != 2 or "county" not in parts[1][1]:
        return None
    province, _ = _split(parts[0][1].get("province", ""))
    name, current = _split(parts[1][1]["county"])
    return Region(code=code, name=name, province=province, current=current)


def validate_region(code: str) -> Region:
    """Return the region or raise ValueError saying why *code* is not a division code."""
    if not re.fullmatch(r"\d{6}", code):
        raise ValueError(f"region code {code!r} must be six digits (GB/T 2260, e.g. 370100)")
    region = lookup_region(code)
    if region is None:
        raise ValueError(f"region code {code} is not a GB/T 2260 division code")
    return region
