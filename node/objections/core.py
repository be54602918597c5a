"""The objection and its state machine (pure: no I/O, no clock of its own).

    raised ──acknowledge──▶ under_objection ──uphold──▶ upheld   (correction | withdrawal)
                                           └──reject──▶ rejected (reason)

The origin acknowledges as it records the objection (and marks the entry), so only an
objection under objection is resolved.

Every transition is kept in the history; a resolution (upheld or rejected) carries the
deciding document's number and is on time when it falls on or before the due date
(Shanghai calendar day). Every text value came from someone else: it is bounded and checked
here, and rendered as text by whoever shows it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from dataclasses import dataclass, replace
from enum import StrEnum

from node.audit.entry import EntryError, check_uuid7, uuid7

SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# The grounds a holder may give, with the label an operator reads.
GROUNDS: dict[str, str] = {
    "identity_mismatch": "代码错误或身份不符",
    "content_error": "内容错误",
    "repaired_or_expired": "已修复或已过期",
    "decision_revoked": "决定已撤销",
}
OUTCOMES: dict[str, str] = {"correction": "更正", "withdrawal": "撤销"}

MAX_REASON = 500
MAX_DOC_NO = 100
MAX_ENTRY_ID = 64
MAX_ORIGIN = 200
MAX_HISTORY = 8  # four states, each entered once
_SHA256 = re.compile(r"[0-9a-f]{64}")
_OFFICER = re.compile(r"[0-9a-f]{32}")
_ENTRY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ORIGIN = re.compile(r"creditnode://[a-z0-9-]{1,63}/[a-z0-9-]{1,63}")
_NODE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class ObjectionError(ValueError):
    """A malformed objection, or a transition the state machine does not allow. The message
    names what is wrong, never the offending value."""


class State(StrEnum):
    RAISED = "raised"
    UNDER_OBJECTION = "under_objection"
    UPHELD = "upheld"
    REJECTED = "rejected"


LABELS: dict[State, str] = {
    State.RAISED: "已提出",
    State.UNDER_OBJECTION: "异议处理中",
    State.UPHELD: "异议成立",
    State.REJECTED: "异议不成立",
}
FINAL = frozenset({State.UPHELD, State.REJECTED})
# The transitions the machine allows: from → the states it may go to.
ALLOWED: dict[State, frozenset[State]] = {
    State.RAISED: frozenset({State.UNDER_OBJECTION}),
    State.UNDER_OBJECTION: frozenset({State.UPHELD, State.REJECTED}),
    State.UPHELD: frozenset(),
    State.REJECTED: frozenset(),
}


def check_text(value: str, what: str, limit: int, *, required: bool = True) -> str:
    """*value* stripped, if it is printable text of at most *limit* characters (no control or
    format characters: nothing that could rewrite a terminal or hide text)."""
    if not isinstance(value, str):
        raise ObjectionError(f"{what} is not text")
    text = value.strip()
    if required and not text:
        raise ObjectionError(f"{what} is empty")
    if len(text) > limit:
        raise ObjectionError(f"{what} is longer than {limit} characters")
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise ObjectionError(f"{what} holds a control or unassigned character")
    return text


def check_grounds(value: str) -> str:
    if value not in GROUNDS:
        raise ObjectionError(f"grounds must be one of {', '.join(GROUNDS)}")
    return value


def check_digest(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ObjectionError("evidence digest is not a lower-case SHA-256 hex digest")
    return value


def check_id(value: str) -> str:
    try:
        return check_uuid7(value)
    except EntryError:
        raise ObjectionError("objection id is not a canonical UUIDv7") from None


def check_entry_id(value: str) -> str:
    if not isinstance(value, str) or not _ENTRY_ID.fullmatch(value):
        raise ObjectionError("entry id is malformed")
    return value


def check_origin(value: str) -> str:
    if not isinstance(value, str) or not _ORIGIN.fullmatch(value):
        raise ObjectionError("origin is not a creditnode://FEDERATION/NODE address")
    return value


def check_node(value: str) -> str:
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise ObjectionError("node name is malformed")
    return value


def check_officer(value: str) -> str:
    """A pseudonymous officer id (32 hex, as ``node.audit.entry.officer_id`` makes), or ''."""
    if value and (not isinstance(value, str) or not _OFFICER.fullmatch(value)):
        raise ObjectionError("officer is not a pseudonymous officer id")
    return value


def _utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ObjectionError("a time without a time zone")
    # Millisecond precision: what the wire and the stored history carry.
    at = at.astimezone(dt.UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Transition:
    """One step of the history: the state entered, when, and what came with it."""

    state: State
    at: dt.datetime
    doc_no: str = ""
    reason: str = ""
    outcome: str = ""  # correction or withdrawal, an upheld objection only

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", State(self.state))
        object.__setattr__(self, "at", _utc(self.at))
        object.__setattr__(self, "doc_no", check_text(self.doc_no, "document number",
                                                      MAX_DOC_NO, required=False))  # fmt: skip
        object.__setattr__(self, "reason", check_text(self.reason, "reason", MAX_REASON,
                                                      required=False))  # fmt: skip
        final = self.state in FINAL
        if final != bool(self.doc_no):
            raise ObjectionError("a resolution, and only a resolution, has a document number")
        if (self.state == State.UPHELD) != bool(self.outcome):
            raise ObjectionError("an upheld objection, and only that, says its outcome")
        if self.outcome and self.outcome not in OUTCOMES:
            raise ObjectionError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if self.state == State.REJECTED and not self.reason:
            raise ObjectionError("a rejection states its reason")


@dataclass(frozen=True)
class Objection:
    """One objection to one entry of one origin, as either side holds it."""

    id: str
    origin: str  # the entry's origin node (creditnode://…)
    entry_id: str
    grounds: str
    evidence_sha256: str  # of a file the raiser keeps; the file never travels
    due: dt.date  # the origin resolves by this day (Shanghai)
    raised_by: str  # the raising node's name
    officer: str  # its pseudonymous officer id, or "" (the operator)
    history: tuple[Transition, ...]

    def __post_init__(self) -> None:
        check_id(self.id)
        check_origin(self.origin)
        check_entry_id(self.entry_id)
        check_grounds(self.grounds)
        check_digest(self.evidence_sha256)
        check_node(self.raised_by)
        check_officer(self.officer)
        if not isinstance(self.due, dt.date) or isinstance(self.due, dt.datetime):
            raise ObjectionError("due is not a date")
        check_history(self.history)

    @classmethod
    def raise_(
        cls, *, origin: str, entry_id: str, grounds: str, evidence_sha256: str, due: dt.date,
        raised_by: str, officer: str = "", at: dt.datetime, id: str | None = None,
    ) -> Objection:  # fmt: skip
        """A new objection, raised at *at*; *due* may not lie before the day it is raised."""
        at = _utc(at)
        if due < at.astimezone(SHANGHAI).date():
            raise ObjectionError("the due date has passed already")
        oid = id if id is not None else uuid7(at_ms=int(at.timestamp() * 1000))
        return cls(
            id=oid, origin=origin, entry_id=entry_id, grounds=grounds,
            evidence_sha256=evidence_sha256, due=due, raised_by=raised_by, officer=officer,
            history=(Transition(State.RAISED, at),),
        )  # fmt: skip

    @property
    def state(self) -> State:
        return self.history[-1].state

    @property
    def raised_at(self) -> dt.datetime:
        return self.history[0].at

    @property
    def resolution(self) -> Transition | None:
        last = self.history[-1]
        return last if last.state in FINAL else None

    def _to(self, step: Transition) -> Objection:
        if step.state not in ALLOWED[self.state]:
            raise ObjectionError(
                f"an objection {self.state.value} cannot become {step.state.value}"
            )
        if step.at < self.history[-1].at:
            raise ObjectionError("a transition before the one it follows")
        return replace(self, history=(*self.history, step))

    def acknowledge(self, at: dt.datetime) -> Objection:
        """The origin has it: the entry is under objection."""
        return self._to(Transition(State.UNDER_OBJECTION, at))

    def uphold(self, at: dt.datetime, *, outcome: str, doc_no: str, reason: str = "") -> Objection:
        return self._to(Transition(State.UPHELD, at, doc_no=doc_no, reason=reason, outcome=outcome))

    def reject(self, at: dt.datetime, *, reason: str, doc_no: str) -> Objection:
        return self._to(Transition(State.REJECTED, at, doc_no=doc_no, reason=reason))

    def on_time(self, today: dt.date) -> bool | None:
        """Resolved by the due date (Shanghai); None while open and not yet due; False once
        open past it."""
        res = self.resolution
        if res is not None:
            return res.at.astimezone(SHANGHAI).date() <= self.due
        return False if today > self.due else None


def check_history(history: tuple[Transition, ...]) -> None:
    """A history the machine could have made: raised first, allowed steps, time not going back."""
    if not history or len(history) > MAX_HISTORY:
        raise ObjectionError("an objection's history is empty or too long")
    if history[0].state != State.RAISED:
        raise ObjectionError("an objection's history starts with its raising")
    for before, after in itertools.pairwise(history):
        if after.state not in ALLOWED[before.state]:
            raise ObjectionError(
                f"an objection {before.state.value} cannot become {after.state.value}"
            )
        if after.at < before.at:
            raise ObjectionError("an objection's history goes back in time")


@dataclass(frozen=True)
class OnTime:
    """The on-time tally of a set of objections, as of a day."""

    resolved: int
    on_time: int
    open: int
    overdue: int

    @property
    def rate(self) -> float | None:
        return self.on_time / self.resolved if self.resolved else None


def on_time_tally(objections: list[Objection], today: dt.date) -> OnTime:
    resolved = sum(1 for o in objections if o.resolution is not None)
    timely = sum(1 for o in objections if o.resolution is not None and o.on_time(today))
    still = [o for o in objections if o.resolution is None]
    overdue = sum(1 for o in still if o.on_time(today) is False)
    return OnTime(resolved=resolved, on_time=timely, open=len(still), overdue=overdue)
