"""An objection to and from its wire message and its stored history (pure). Everything read
passes the core's checks: a peer's message is as hostile as any other input."""

from __future__ import annotations

import datetime as dt
import json

from node.api import objections as pb
from node.objections.core import (
    MAX_HISTORY,
    Objection,
    ObjectionError,
    Transition,
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def _ms(at: dt.datetime) -> int:
    return (at - _EPOCH) // dt.timedelta(milliseconds=1)


def _at(ms: object) -> dt.datetime:
    if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= _MAX_MS:
        raise ObjectionError("a transition time out of range")
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _due(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ObjectionError("due is not a YYYY-MM-DD date") from None
    if day.isoformat() != text:
        raise ObjectionError("due is not a YYYY-MM-DD date")
    return day


def step_of(t: Transition) -> pb.ObjectionStep:
    return pb.ObjectionStep(
        state=t.state.value, at_unix_ms=_ms(t.at), doc_no=t.doc_no, reason=t.reason,
        outcome=t.outcome,
    )  # fmt: skip


def transition_of(step: pb.ObjectionStep) -> Transition:
    try:
        return Transition(
            step.state,  # type: ignore[arg-type]  # State() checks it
            _at(int(step.at_unix_ms)), doc_no=step.doc_no, reason=step.reason,
            outcome=step.outcome,
        )  # fmt: skip
    except ValueError as exc:
        if isinstance(exc, ObjectionError):
            raise
        raise ObjectionError("a transition names an unknown state") from None


def to_message(o: Objection) -> pb.Objection:
    return pb.Objection(
        id=o.id, entry_id=o.entry_id, grounds=o.grounds, evidence_sha256=o.evidence_sha256,
        due=o.due.isoformat(), officer=o.officer, history=[step_of(t) for t in o.history],
    )  # fmt: skip


def from_message(m: pb.Objection, *, origin: str, raised_by: str) -> Objection:
    """The objection *m* names, of an entry of *origin*, raised by *raised_by* (both known to
    the reader from the connection, never from the message)."""
    if len(m.history) > MAX_HISTORY:
        raise ObjectionError("an objection's history is too long")
    return Objection(
        id=m.id, origin=origin, entry_id=m.entry_id, grounds=m.grounds,
        evidence_sha256=m.evidence_sha256, due=_due(m.due), raised_by=raised_by,
        officer=m.officer, history=tuple(transition_of(s) for s in m.history),
    )  # fmt: skip


def history_json(history: tuple[Transition, ...]) -> str:
    return json.dumps(
        [
            {
                "state": t.state.value,
                "at_ms": _ms(t.at),
                "doc_no": t.doc_no,
                "reason": t.reason,
                "outcome": t.outcome,
            }
            for t in history
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def history_from_json(text: str) -> tuple[Transition, ...]:
    try:
        raw = json.loads(text)
    except ValueError:
        raise ObjectionError("a stored history is not JSON") from None
    if not isinstance(raw, list) or len(raw) > MAX_HISTORY:
        raise ObjectionError("a stored history is not a list of transitions")
    steps = []
    for item in raw:
        if not isinstance(item, dict):
            raise ObjectionError("a stored transition is not an object")
        texts = [item.get(k, "") for k in ("state", "doc_no", "reason", "outcome")]
        if not all(isinstance(t, str) for t in texts):
            raise ObjectionError("a stored transition holds a value that is not text")
        state, doc_no, reason, outcome = texts
        try:
            steps.append(
                Transition(
                    state, _at(item.get("at_ms")), doc_no=doc_no, reason=reason, outcome=outcome
                )
            )
        except ObjectionError:
            raise
        except ValueError:
            raise ObjectionError("a stored transition names an unknown state") from None
    return tuple(steps)
