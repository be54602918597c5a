"""The report's data classes carried in the feed beside the lists (issue 14), pure.

A record is a ``ListEntry`` with its ``record`` oneof set: the common fields hold what it
shares with a listing (subject, document, authority, dates, disclosure end) and the oneof
member its own fields. Its class code is the oneof member's name and is the entry's (and the
leaf's) ``list_code``, so a record lives in the same log, state, border and lifecycle as a
listing, and ``active(today)`` ends it at its disclosure end (a penalty's 公示截止期, a
licence's or an evaluation's valid-until).

    >>> CLASSES["penalty"].label, class_of(feeds.ListEntry(list_code="GP-BAN"))
    ('行政处罚', '')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from node.api import feeds, options

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RecordClass:
    """One data class: its code (the oneof member and list code) and its Chinese label."""

    code: str
    label: str
    message: type[object]


CLASSES: dict[str, RecordClass] = {
    "penalty": RecordClass("penalty", "行政处罚", feeds.AdministrativePenalty),
    "licence": RecordClass("licence", "行政许可", feeds.AdministrativeLicence),
    "evaluation": RecordClass("evaluation", "信用评价", feeds.CreditEvaluation),
    "commitment": RecordClass("commitment", "信用承诺", feeds.CreditCommitment),
}
RECORD_CODES = frozenset(CLASSES)


def _all_public() -> None:
    # A record's own fields travel in the body, which is public: a personal field added to a
    # record message would leave in clear. Refuse to load instead (fail closed).
    oneof = feeds.ListEntry.DESCRIPTOR.oneofs_by_name["record"]
    assert {f.name for f in oneof.fields} == RECORD_CODES
    for f in oneof.fields:
        assert f.message_type is not None
        for sub in f.message_type.fields:
            level = sub.GetOptions().Extensions[options.sensitivity]
            if level != options.SENSITIVITY_PUBLIC:
                raise RuntimeError(f"{f.message_type.name}.{sub.name} is not public")


_all_public()


def class_of(entry: feeds.ListEntry) -> str:
    """The entry's record class code, or "" for a list membership."""
    return entry.WhichOneof("record") or ""


def body_problem(entry: feeds.ListEntry) -> str:
    """Why a body's record and list code disagree, or its measures catalogue reference is
    malformed ("" if all is well)."""
    kind = class_of(entry)
    if entry.HasField("measures_catalogue"):
        ref = entry.measures_catalogue
        if kind:
            return "a record has no measures catalogue"
        if not _SHA256.fullmatch(ref.sha256) or not 0 < len(ref.label) <= 400:
            return "measures catalogue: needs a label of 1-400 characters and a SHA-256 in hex"
    if kind:
        if entry.list_code != kind:
            return f"a {kind} record must carry list code {kind!r}"
        if entry.list_type or entry.measures or entry.severity:
            return "a record has no list type, severity or measures"
    elif entry.list_code in RECORD_CODES:
        return f"list code {entry.list_code!r} is a record class, and the body has no record"
    return ""
