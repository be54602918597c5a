"""What a holding city did about a partner's list entry, and each time it was matched: the
leaves of a node's actions log (issue 15; pure, no I/O).

A :class:`Response` says, for one entry (its origin's URI and entry id) and one measure, what
the city did: ``applied``, ``not_applicable`` (with the reason), ``pending``,
``suspended_objection`` or ``lifted`` (the measure ended after the origin removed the entry),
which department implements it (its USCC), on what date, and which officer recorded it (the
node's keyed pseudonymous id, never a name; none for the node's own records: ``lifted``, and a
suspension on objection and its end, see :data:`NODE_REASONS`). A :class:`Hit` says that a
check or lookup at this node matched an active entry, for which purpose and matter, on whose
behalf.

The leaf is canonical JSON (sorted keys, no spaces, UTF-8). :func:`parse_record` accepts exactly
the bytes ``to_bytes`` makes: an unknown, missing or repeated key, a wrong type, an
out-of-range value or a non-canonical spelling is refused, and nothing of the value is repeated
in the error.

>>> r = Response(origin="creditnode://yellow-river/jinan", entry="e1", measure="M01",
...              action="applied", department="11620100004299214Y", date="2026-11-30",
...              officer="0" * 32, at_us=0)
>>> parse_record(r.to_bytes()) == r
True
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Final

from keys import NodeIdentity
from node.audit.entry import EntryError, check_department, check_matter
from node.identity.validate import PERSONAL_KINDS, classify
from node.policy.agreement import PURPOSES

__all__ = [
    "ACTIONS",
    "MAX_RECORD_BYTES",
    "NODE_REASONS",
    "ActionRecord",
    "Hit",
    "RecordError",
    "Response",
    "check_entry_id",
    "check_measure",
    "check_origin",
    "parse_record",
]

VERSION: Final = 1
MAX_RECORD_BYTES: Final = 4096
MAX_REASON: Final = 300
MAX_INT: Final = 2**63 - 1

ACTIONS: Final = ("applied", "not_applicable", "pending", "suspended_objection", "lifted")
"""What a city did about one measure of an entry; ``lifted`` ends an ``applied`` one."""

NODE_REASONS: Final = {
    "suspended_objection": "the origin marked the entry under objection",
    "applied": "objection resolved",
}
"""The node's own (officer-less) records besides ``lifted``: each only with exactly this
reason, so an officer's response can never pass as one."""

_ENTRY_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:-]{0,63}")
_MEASURE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}")
_OFFICER = re.compile(r"[0-9a-f]{32}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DIGIT_RUN = re.compile(r"[0-9](?:[\s\-./]*[0-9]){13,}")
_TOKEN = re.compile(r"[0-9A-Za-z]{8,}")


class RecordError(EntryError):
    """A response or hit (or a value for one) is malformed; the message never repeats it."""


def check_origin(value: object) -> str:
    """A node's feed origin: ``creditnode://<federation>/<node>``, as its URI is spelled."""
    if not isinstance(value, str) or len(value) > 200:
        raise RecordError("origin is not a node URI")
    try:
        ident = NodeIdentity.parse(value)
    except ValueError:
        raise RecordError("origin is not a node URI") from None
    if ident.uri != value:
        raise RecordError("origin is not a node URI in canonical form")
    return value


def check_entry_id(value: object) -> str:
    if not isinstance(value, str) or not _ENTRY_ID.fullmatch(value):
        raise RecordError("entry id must be 1 to 64 letters, digits or ._:-")
    return value


def check_measure(value: object) -> str:
    if not isinstance(value, str) or not _MEASURE.fullmatch(value):
        raise RecordError("measure code must be 1 to 32 letters, digits or ._-")
    return value


def check_reason(value: object) -> str:
    """Bounded free text with no control character and nothing that reads as a person's ID."""
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise RecordError(f"reason must be text of at most {MAX_REASON} characters")
    if _CONTROL.search(value):
        raise RecordError("reason contains a control character")
    flat = unicodedata.normalize("NFKC", value)
    if _DIGIT_RUN.search(flat) or any(
        classify(t).kind in PERSONAL_KINDS for t in _TOKEN.findall(flat)
    ):
        raise RecordError("reason reads as holding a person's ID: not recorded")
    return value


def _check_date(value: object) -> str:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise RecordError("date must be YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise RecordError("date is not a calendar date") from None
    if day.year < 2000:
        raise RecordError("date is before 2000")
    return value


def _check_int(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise RecordError(f"{what} must be a non-negative 63-bit integer")
    return value


def _check_department(value: object, *, required: bool) -> str:
    if not isinstance(value, str) or (required and not value):
        raise RecordError("department must be the implementing department's USCC")
    try:
        return check_department(value)
    except EntryError:
        raise RecordError("department is not a valid USCC") from None


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Response:
    """What this city did about one measure of one partner entry (see the module docstring)."""

    origin: str
    entry: str
    measure: str
    action: str
    department: str
    date: str  # the day the action took effect (YYYY-MM-DD, Asia/Shanghai)
    officer: str  # the keyed pseudonymous id (32 hex); "" for the node's own acknowledgement
    at_us: int  # when it was recorded (Unix microseconds)
    reason: str = ""

    def __post_init__(self) -> None:
        check_origin(self.origin)
        check_entry_id(self.entry)
        check_measure(self.measure)
        if self.action not in ACTIONS:
            raise RecordError(f"action must be one of {', '.join(ACTIONS)}")
        check_reason(self.reason)
        if self.action == "not_applicable" and not self.reason.strip():
            raise RecordError("not_applicable needs the reason")
        # The node's own "lifted" acknowledgement names no officer and may name no department.
        _check_department(self.department, required=self.action != "lifted")
        _check_date(self.date)
        if not isinstance(self.officer, str) or (
            self.officer and not _OFFICER.fullmatch(self.officer)
        ):
            raise RecordError("officer must be a keyed id (32 hex)")
        if not self.officer and not (
            self.action == "lifted" or NODE_REASONS.get(self.action) == self.reason
        ):
            raise RecordError("a response names the officer who recorded it")
        _check_int(self.at_us, "at_us")

    def to_bytes(self) -> bytes:
        return _canonical({"v": VERSION, "kind": "response", **asdict(self)})


@dataclass(frozen=True)
class Hit:
    """A check or lookup at this node matched a partner's active entry."""

    origin: str
    entry: str
    purpose: str
    matter: str
    department: str  # the requesting department's USCC ("" if none was given)
    at_us: int

    def __post_init__(self) -> None:
        check_origin(self.origin)
        check_entry_id(self.entry)
        if not isinstance(self.purpose, str) or self.purpose not in PURPOSES:
            raise RecordError("purpose is not in the alliance catalogue")
        try:
            check_matter(self.matter)
        except (EntryError, TypeError):
            raise RecordError("matter must be bounded text with no person's ID") from None
        _check_department(self.department, required=False)
        _check_int(self.at_us, "at_us")

    def to_bytes(self) -> bytes:
        return _canonical({"v": VERSION, "kind": "hit", **asdict(self)})


ActionRecord = Response | Hit

_RESPONSE_KEYS = frozenset({"v", "kind", *Response.__dataclass_fields__})
_HIT_KEYS = frozenset({"v", "kind", *Hit.__dataclass_fields__})


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise RecordError("record repeats a key")
    return dict(pairs)


def _reject_number(text: str) -> None:
    raise RecordError("record holds a fraction or a non-finite number")


def parse_record(data: bytes) -> ActionRecord:
    """The record in *data*, which must be exactly its canonical bytes. Raises RecordError."""
    if not isinstance(data, bytes) or len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"a record is at most {MAX_RECORD_BYTES} bytes")
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_number,
            parse_float=_reject_number,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise RecordError("record is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise RecordError("record is not a JSON object")
    kind = obj.get("kind")
    keys = _RESPONSE_KEYS if kind == "response" else _HIT_KEYS if kind == "hit" else None
    if keys is None:
        raise RecordError("record kind must be response or hit")
    if set(obj) != keys:
        raise RecordError("record has unknown or missing fields")
    if obj.pop("v") != VERSION or type(obj.get("at_us")) is not int:
        raise RecordError(f"record version is not {VERSION}, or its time is not an integer")
    del obj["kind"]
    if not all(isinstance(v, str) for k, v in obj.items() if k != "at_us"):
        raise RecordError("record fields other than at_us are text")
    record: ActionRecord = Response(**obj) if kind == "response" else Hit(**obj)
    if record.to_bytes() != data:
        raise RecordError("record is not in canonical form")
    return record
