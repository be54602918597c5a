"""The pure core of ``creditnode identity check``: validate a column of codes, count, report.

Each ``(row number, cell text)`` goes through :func:`node.identity.validate.classify` (or,
for a column whose kind is known, :func:`~node.identity.validate.check_expecting`); a
row whose normalised code already appeared in an earlier row is a duplicate (重错码 are a
tracked defect class). Duplicates keep the status their own validation gave, and point at
the first row holding the code. The report never holds a personal ID in the clear: inputs
are kept in display form only (resident IDs and permits masked).

``all_valid`` (the command's exit status 0) requires every row ``valid`` and no duplicate;
a ``warning`` (e.g. a pre-2016 USCC with a bad check character) or a duplicate makes it
false, so a load fed from the file is reviewed first. An empty batch is all valid.

>>> report = check_values([(2, "91350100M000100Y43"), (3, "11010519491231002X"),
...                        (4, "9.16201E+17"), (5, "９１３５０１００Ｍ０００１００Ｙ４３")])
>>> {k: v for k, v in report.to_json().items() if k != "rows"}
{'valid': 3, 'warning': 0, 'invalid': 1, 'duplicate': 1, 'damaged': 1}
>>> report.to_json()["rows"][1]["input"], report.rows[3].duplicate_of, report.all_valid
('1101051949****002X', 2, False)
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.identity.validate import INVALID, VALID, WARNING, check_expecting, classify

__all__ = ["BatchReport", "RowResult", "check_values"]


@dataclass(frozen=True)
class RowResult:
    row: int
    input_display: str  # the cell as given, personal IDs masked
    kind: str
    status: str  # as validated: "valid" | "warning" | "invalid"
    reason: str
    damaged: bool
    duplicate_of: int | None  # row number of the first row with the same code

    def to_json(self) -> dict[str, Any]:
        """The row as ``row``, ``input``, ``kind``, ``status``, ``reason``.

        A duplicate says so in ``reason`` (the row's own reason, if any, comes first).
        """
        reason = self.reason
        if self.duplicate_of is not None:
            note = f"duplicate of row {self.duplicate_of}"
            reason = f"{reason}; {note}" if reason else note
        return {
            "row": self.row,
            "input": self.input_display,
            "kind": self.kind,
            "status": self.status,
            "reason": reason,
        }


@dataclass(frozen=True)
class BatchReport:
    rows: tuple[RowResult, ...]

    def _count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def valid(self) -> int:
        return self._count(VALID)

    @property
    def warning(self) -> int:
        return self._count(WARNING)

    @property
    def invalid(self) -> int:
        return self._count(INVALID)

    @property
    def duplicate(self) -> int:
        """Rows repeating an earlier row's code (the first occurrence is not counted)."""
        return sum(1 for r in self.rows if r.duplicate_of is not None)

    @property
    def damaged(self) -> int:
        return sum(1 for r in self.rows if r.damaged)

    @property
    def all_valid(self) -> bool:
        """Every row valid and none a duplicate: warnings and duplicates count as not valid."""
        return all(r.status == VALID and r.duplicate_of is None for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """Totals ``valid``, ``warning``, ``invalid``, ``duplicate``, ``damaged`` and ``rows``."""
        return {
            "valid": self.valid,
            "warning": self.warning,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "damaged": self.damaged,
            "rows": [r.to_json() for r in self.rows],
        }


def check_values(
    values: Iterable[tuple[int, str]],
    *,
    strict: bool = False,
    today: datetime.date | None = None,
    expect: str | None = None,
) -> BatchReport:
    """Validate ``(row number, cell text)`` pairs; see the module docstring.

    With *expect* (``"uscc"`` or ``"person"``, what a column of a list CSV holds: see
    :data:`node.identity.validate.COLUMN_EXPECTS`) a value of another kind is invalid, exactly
    as the list importer decides (:func:`node.identity.validate.check_expecting`).
    """
    today = today or datetime.date.today()  # one date for the whole batch, even over midnight
    first_row: dict[str, int] = {}
    rows: list[RowResult] = []
    for row, text in values:
        if expect is None:
            checked = classify(text, strict=strict, today=today)
        else:
            checked = check_expecting(text, expect, strict=strict, today=today)
        duplicate_of: int | None = None
        # Keyed on the normalised code, so a 15-digit ID meets its 18-digit upgrade and
        # full-width or spaced spellings meet the plain one; "" (hopeless) never matches.
        if checked.normalised:
            duplicate_of = first_row.setdefault(checked.normalised, row)
            if duplicate_of == row:
                duplicate_of = None
        rows.append(
            RowResult(
                row=row,
                input_display=checked.display(),
                kind=checked.kind,
                status=checked.status,
                reason=checked.reason,
                damaged=checked.damaged,
                duplicate_of=duplicate_of,
            )
        )
    return BatchReport(tuple(rows))
