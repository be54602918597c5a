"""GB/T 2260 administrative division codes (pure lookups over python-stdnum's dataset).

>>> from node.regions import lookup_region
>>> lookup_region("370100").name
'济南市'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
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


@lru_cache(maxsize=1)
def _blocks() -> dict[str, list[str]] | None:
    """stdnum's cn/loc database split by province: each two-digit top-level line with the
    indented lines under it. None if the file is not in that shape (then it is read whole)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    for line in text.splitlines(keepends=True):
        if not line.strip() or line.startswith("#"):
            continue
        if not line[0].isspace():
            prefix = line.split(maxsplit=1)[0]
            if not re.fullmatch(r"\d{2}", prefix) or prefix in blocks:
                return None
            current = blocks[prefix] = []
        elif current is None:
            return None
        current.append(line)
    return blocks


@lru_cache(maxsize=64)
def _province_db(prefix: str) -> Any:
    """The database for one province only: parsing all of it costs 40 ms a process (every
    command that loads a home validates its region), one province's part well under 1 ms."""
    blocks = _blocks()
    if blocks is None:
        return _db()
    return numdb.read(blocks.get(prefix, []))


def _split(name: str) -> tuple[str, bool]:
    m = _HISTORY.match(name)
    if not m:
        return name, True
    return m.group(3), m.group(2) is None


def lookup_region(code: str) -> Region | None:
    """The division named by a six-digit code, current or historical, or None if unknown."""
    if not re.fullmatch(r"\d{6}", code):
        return None
    parts = _province_db(code[:2]).info(code)
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
