"""The objection state machine (pure): transitions, history, on-time, hostile text."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from node.api import objections as pb
from node.objections.core import (
    ALLOWED,
    FINAL,
    GROUNDS,
    MAX_REASON,
    SHANGHAI,
    Objection,
    ObjectionError,
    State,
    Transition,
    check_history,
    check_text,
    on_time_tally,
)
from node.objections.wire import from_message, history_from_json, history_json, to_message

T0 = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # 10:00 Shanghai
DIGEST = hashlib.sha256(b"evidence").hexdigest()
ORIGIN = "creditnode://yellow-river/jinan"


def raised(due: dt.date = dt.date(2026, 12, 15), at: dt.datetime = T0) -> Objection:
    return Objection.raise_(
        origin=ORIGIN, entry_id="e1", grounds="content_error", evidence_sha256=DIGEST,
        due=due, raised_by="taiyuan", officer="0" * 32, at=at,
    )  # fmt: skip


def test_lifecycle_reject_keeps_reason_and_history() -> None:
    o = raised()
    assert o.state == State.RAISED and o.on_time(dt.date(2026, 12, 1)) is None
    o = o.acknowledge(T0 + dt.timedelta(minutes=1))
    o = o.reject(T0 + dt.timedelta(days=2), reason="材料不足", doc_no="济信复〔2026〕7号")
    assert [t.state for t in o.history] == [State.RAISED, State.UNDER_OBJECTION, State.REJECTED]
    assert o.resolution is not None and o.resolution.reason == "材料不足"
    assert o.on_time(dt.date(2027, 1, 1)) is True


def test_uphold_needs_outcome_and_doc_no() -> None:
    o = raised().acknowledge(T0)
    with pytest.raises(ObjectionError):
        o.uphold(T0, outcome="", doc_no="D1")
    with pytest.raises(ObjectionError):
        o.uphold(T0, outcome="correction", doc_no="")
    with pytest.raises(ObjectionError):
        o.uphold(T0, outcome="delete-everything", doc_no="D1")
    up = o.uphold(T0, outcome="withdrawal", doc_no="D1")
    assert up.state == State.UPHELD and up.resolution is not None
    assert up.resolution.outcome == "withdrawal"


def test_resolution_only_from_under_objection() -> None:
    o = raised()
    with pytest.raises(ObjectionError, match="raised cannot become rejected"):
        o.reject(T0, reason="r", doc_no="D")
    done = o.acknowledge(T0).reject(T0, reason="r", doc_no="D")
    with pytest.raises(ObjectionError):
        done.acknowledge(T0)
    with pytest.raises(ObjectionError):
        done.uphold(T0, outcome="correction", doc_no="D")
    with pytest.raises(ObjectionError):
        done.reject(T0, reason="r", doc_no="D")


def test_late_resolution_and_overdue() -> None:
    due = dt.date(2026, 12, 1)
    o = raised(due=due).acknowledge(T0)
    assert o.on_time(due) is None and o.on_time(due + dt.timedelta(days=1)) is False
    # 23:30 UTC on the due day is already the next day in Shanghai: late.
    late_at = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.UTC)
    assert late_at.astimezone(SHANGHAI).date() > due
    late = o.reject(late_at, reason="r", doc_no="D")
    assert late.on_time(due) is False
    tally = on_time_tally([late, o, raised()], dt.date(2026, 12, 2))
    assert (tally.resolved, tally.on_time, tally.open, tally.overdue) == (1, 0, 2, 1)
    assert tally.rate == 0.0


def test_due_in_the_past_refused() -> None:
    with pytest.raises(ObjectionError, match="passed"):
        raised(due=dt.date(2026, 11, 29))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grounds", "because"),
        ("evidence_sha256", "A" * 64),
        ("evidence_sha256", DIGEST[:-1]),
        ("entry_id", "e 1"),
        ("entry_id", "x" * 65),
        ("origin", "https://jinan"),
        ("raised_by", "Taiyuan"),
        ("officer", "张三"),
    ],
)
def test_malformed_fields_refused_without_echo(field: str, value: str) -> None:
    kwargs = dict(
        origin=ORIGIN, entry_id="e1", grounds="content_error", evidence_sha256=DIGEST,
        due=dt.date(2026, 12, 15), raised_by="taiyuan", officer="", at=T0,
    )  # fmt: skip
    kwargs[field] = value
    with pytest.raises(ObjectionError) as err:
        Objection.raise_(**kwargs)  # type: ignore[arg-type]
    assert value not in str(err.value) or value in GROUNDS


@given(st.text(max_size=MAX_REASON + 20))
def test_text_check_accepts_only_printable_bounded(text: str) -> None:
    try:
        out = check_text(text, "reason", MAX_REASON)
    except ObjectionError:
        return
    assert 0 < len(out) <= MAX_REASON
    assert not any(c in out for c in "\x00\x1b\n\r\u202e\u200b")


@pytest.mark.parametrize("bad", ["\x1b[31mred", "a\u202eb", "line\nbreak", "x" * 501, "  "])
def test_hostile_reason_refused(bad: str) -> None:
    o = raised().acknowledge(T0)
    with pytest.raises(ObjectionError):
        o.reject(T0, reason=bad, doc_no="D")


ACTIONS = st.lists(st.sampled_from(["ack", "uphold", "reject"]), max_size=6)


@given(ACTIONS, st.lists(st.integers(0, 10_000), min_size=6, max_size=6))
def test_state_machine_against_model(actions: list[str], gaps: list[int]) -> None:
    """Any sequence of actions: each is applied exactly when the model allows it, the
    history records each applied step in order, and the history always re-validates."""
    o = raised()
    model = State.RAISED
    at = T0
    target = {"ack": State.UNDER_OBJECTION, "uphold": State.UPHELD, "reject": State.REJECTED}
    steps = [State.RAISED]
    for action, gap in zip(actions, gaps, strict=False):
        at = at + dt.timedelta(seconds=gap)
        allowed = target[action] in ALLOWED[model]
        try:
            if action == "ack":
                o = o.acknowledge(at)
            elif action == "uphold":
                o = o.uphold(at, outcome="correction", doc_no="D1")
            else:
                o = o.reject(at, reason="理由", doc_no="D2")
        except ObjectionError:
            assert not allowed
            continue
        assert allowed
        model = target[action]
        steps.append(model)
    assert o.state == model
    assert [t.state for t in o.history] == steps
    check_history(o.history)
    assert (o.resolution is not None) == (model in FINAL)
    times = [t.at for t in o.history]
    assert times == sorted(times)


@given(st.lists(st.sampled_from(list(State)), min_size=1, max_size=5))
def test_history_validation_matches_transitions(states: list[State]) -> None:
    def step(s: State) -> Transition:
        if s == State.UPHELD:
            return Transition(s, T0, doc_no="D", outcome="correction")
        if s == State.REJECTED:
            return Transition(s, T0, doc_no="D", reason="r")
        return Transition(s, T0)

    history = tuple(step(s) for s in states)
    legal = states[0] == State.RAISED and all(
        b in ALLOWED[a] for a, b in itertools.pairwise(states)
    )
    if legal:
        check_history(history)
    else:
        with pytest.raises(ObjectionError):
            check_history(history)


def test_time_going_back_refused() -> None:
    o = raised().acknowledge(T0 + dt.timedelta(hours=1))
    with pytest.raises(ObjectionError, match="before"):
        o.reject(T0, reason="r", doc_no="D")


@given(st.binary(max_size=400))
def test_wire_parser_fails_closed_on_any_bytes(data: bytes) -> None:
    """Whatever a peer sends decodes to a valid objection or an ObjectionError, nothing else."""
    try:
        m = pb.Objection.FromString(data)
    except DecodeError:
        return
    try:
        o = from_message(m, origin=ORIGIN, raised_by="taiyuan")
    except ObjectionError:
        return
    check_history(o.history)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(JSONISH)
def test_stored_history_parser_fails_closed(value: object) -> None:
    try:
        history = history_from_json(json.dumps(value))
    except ObjectionError:
        return
    assert isinstance(history, tuple)


def test_wire_round_trip() -> None:
    o = raised().acknowledge(T0).uphold(T0, outcome="correction", doc_no="D", reason="更正")
    assert from_message(to_message(o), origin=ORIGIN, raised_by="taiyuan") == o
    assert history_from_json(history_json(o.history)) == o.history


def test_a_withdrawal_follows_the_lists_rule_and_any_entrys_decision_date() -> None:
    from pathlib import Path

    from node.api import feeds
    from node.feeds import catalogue
    from node.feeds.importer import Removal
    from node.objections.origin import withdrawal_problems

    root = Path(__file__).resolve().parent.parent
    spec = catalogue.load(root / "deploy" / "lists.yellow-river.toml").resolve(
        "procurement-serious"
    )
    entry = feeds.ListEntry(
        uscc="91350100M000100Y43", decision_doc_no="D", decision_date="2026-11-01",
        listing_date="2026-11-01", severity=feeds.SEVERITY_SERIOUS,
    )  # fmt: skip
    day = dt.date(2026, 11, 30)
    [early] = withdrawal_problems(spec, entry, "e1", Removal("repair", day, "X"))
    assert "repair is possible from 2027-11-01" in early
    assert withdrawal_problems(spec, entry, "e1", Removal("correction", day, "X")) == []
    # Not a listing of the catalogue (a report record, an entry added otherwise): only the
    # decision date binds.
    record = feeds.ListEntry(list_code="penalty", decision_date="2026-12-01")
    assert withdrawal_problems(None, record, "e1", Removal("repair", day, "X")) == [
        "the removal date precedes the decision date"
    ]
    later = Removal("repair", dt.date(2026, 12, 2), "X")
    assert withdrawal_problems(None, record, "e1", later) == []
