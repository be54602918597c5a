"""Registry crosswalk exports: legacy identifiers (注册号, 组织机构代码) mapped to USCCs.

The header names 统一社会信用代码 and at least one of 注册号 / 组织机构代码, in any order (other
columns are ignored); UTF-8 or GB18030. Every row is either a mapping or quarantined with its
reason::

    注册号,组织机构代码,统一社会信用代码
    370100000012345,,91370100MA3C8XXXXX
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adapters.list_csv import CsvError, Quarantined, sniff_encoding
from node.identity.validate import check_org_code, check_reg_no, check_uscc

USCC_COLUMN = "统一社会信用代码"
LEGACY_COLUMNS = {"注册号": "reg_no", "组织机构代码": "org_code"}


@dataclass(frozen=True, slots=True)
class Mapping:
    row: int
    kind: str  # reg_no | org_code
    legacy: str
    uscc: str


def read_crosswalk(path: Path) -> Iterator[Mapping | Quarantined]:
    """Every row's mappings (one per legacy column filled in) or its quarantine."""
    encoding = sniff_encoding(path)
    with Path(path).open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if USCC_COLUMN not in header or not set(LEGACY_COLUMNS) & set(header):
            raise CsvError(f"{path}: header needs {USCC_COLUMN} and 注册号 or 组织机构代码")
        col = {
            name: header.index(name) for name in (USCC_COLUMN, *LEGACY_COLUMNS) if name in header
        }
        for line, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(record) < len(header):
                yield Quarantined(line, None, f"row has {len(record)} fields, header {len(header)}")
                continue
            uscc = check_uscc(record[col[USCC_COLUMN]])
            if uscc.status == "invalid":
                yield Quarantined(line, USCC_COLUMN, f"{USCC_COLUMN}: {uscc.reason}")
                continue
            checked = [
                (
                    name,
                    kind,
                    (check_reg_no if kind == "reg_no" else check_org_code)(record[col[name]]),
                )
                for name, kind in LEGACY_COLUMNS.items()
                if name in col and record[col[name]].strip()
            ]
            bad = next(((n, c) for n, _, c in checked if c.status == "invalid"), None)
            if bad is not None:
                yield Quarantined(line, bad[0], f"{bad[0]}: {bad[1].reason}")
                continue
            if not checked:
                yield Quarantined(line, None, "no legacy identifier in 注册号 or 组织机构代码")
                continue
            for _name, kind, c in checked:
                yield Mapping(line, kind, c.normalised, uscc.normalised)
