"""Merging signed reports into one view, and the verdict a script acts on (pure, no I/O).

Every report is about the same subject (the USCC asked, or one person known to each origin by
its own pseudonym), so merging is by item: one row per (origin, entry id), whichever report
carried it first (this node's own first), in the national report's section order. Values come
from report payloads, which are hostile: each is bounded and kept as text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from node.api import feeds, officers

MAX_TEXT = 500
MAX_ITEMS = 2000
MAX_MEASURES = 50

# The national public credit report's section order (node.reports.payload.SECTIONS).
SECTION_ORDER = (
    "serious_dishonesty",
    "abnormal_operation",
    "administrative_penalties",
    "licences",
    "commitments",
    "evaluations",
    "watch_lists",
    "red_lists",
)
BLACK_SECTION = "serious_dishonesty"
RED_SECTION = "red_lists"

ANSWERED = officers.PARTNER_STATE_ANSWERED


class PayloadError(ValueError):
    """A report envelope or payload that cannot be read; the message never repeats a value."""


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def envelope_payload(envelope: bytes) -> dict[str, Any]:
    """The JSON payload a DSSE envelope carries (its signature is checked elsewhere)."""
    try:
        doc = json.loads(envelope.decode("utf-8"))
        payload = base64.b64decode(doc["payload"], validate=True)
        obj = json.loads(payload.decode("utf-8"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise PayloadError("not a DSSE envelope over a JSON payload") from None
    if not isinstance(obj, dict):
        raise PayloadError("the report payload is not a JSON object")
    return obj


def items_of(payload: Mapping[str, Any], reported_by: str) -> list[officers.CheckItem]:
    """The consolidated-view items of one report payload."""
    sections = payload.get("sections")
    if not isinstance(sections, Mapping):
        raise PayloadError("the report has no sections")
    out: list[officers.CheckItem] = []
    for section, items in sections.items():
        if not isinstance(items, list):
            raise PayloadError("a report section is not a list")
        for item in items:
            if not isinstance(item, Mapping):
                raise PayloadError("a report item is not an object")
            measures = item.get("measures")
            out.append(
                officers.CheckItem(
                    origin=_origin_name(_text(item.get("origin"))),
                    origin_city=_text(item.get("origin_city")),
                    section=_text(section),
                    list_type=_text(item.get("list_type")),
                    list_name=_text(item.get("list_name")),
                    measures=[
                        feeds.Measure(
                            code=_text(m.get("code")), mandatory=m.get("mandatory") is True
                        )
                        for m in (measures if isinstance(measures, list) else [])[:MAX_MEASURES]
                        if isinstance(m, Mapping)
                    ],
                    reason=_text(item.get("reason")),
                    legal_basis=_text(item.get("legal_basis")),
                    decision_doc_no=_text(item.get("decision_doc_no")),
                    authority_name=_text(item.get("authority_name")),
                    listing_date=_text(item.get("listing_date")),
                    entry_id=_text(item.get("entry_id")),
                    reported_by=reported_by,
                )
            )
            if len(out) > MAX_ITEMS:
                raise PayloadError("the report holds too many items")
    return out


def subject_of(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(name, USCC) of the report's subject, as far as it says."""
    subject = payload.get("subject")
    if not isinstance(subject, Mapping):
        return "", ""
    return _text(subject.get("subject_name") or subject.get("name")), _text(subject.get("uscc"))


def _origin_name(origin: str) -> str:
    """``creditnode://FED/NODE`` → ``NODE``; anything else as given."""
    if origin.startswith("creditnode://") and origin.count("/") == 3:
        return origin.rsplit("/", 1)[1]
    return origin


def _rank(item: officers.CheckItem) -> tuple[int, str]:
    order = SECTION_ORDER.index(item.section) if item.section in SECTION_ORDER else 99
    return (order, item.origin)


def merge(reports: Iterable[tuple[str, Sequence[officers.CheckItem]]]) -> list[officers.CheckItem]:
    """One row per (origin, entry id) across the reports, first report first, sorted."""
    seen: set[tuple[str, str]] = set()
    out: list[officers.CheckItem] = []
    for _, items in reports:
        for item in items:
            key = (item.origin, item.entry_id)
            if item.entry_id and key in seen:
                continue
            seen.add(key)
            out.append(item)
    # Newest listing first within a section and origin (two stable sorts).
    out.sort(key=lambda i: (i.listing_date, i.entry_id), reverse=True)
    return sorted(out, key=_rank)


def verdict(
    items: Sequence[officers.CheckItem], states: Sequence[officers.PartnerState.ValueType]
) -> officers.CheckOutcome.ValueType:
    """Black-listed wins (an answer is decisive whoever else is silent); then a silent partner
    makes it partial; then red-listed; else clear."""
    if any(i.section == BLACK_SECTION for i in items):
        return officers.CHECK_OUTCOME_BLACK_LISTED
    if any(s != ANSWERED for s in states):
        return officers.CHECK_OUTCOME_PARTIAL
    if any(i.section == RED_SECTION for i in items):
        return officers.CHECK_OUTCOME_RED_LISTED
    return officers.CHECK_OUTCOME_CLEAR


def merge_candidates(
    answers: Iterable[tuple[str, Iterable[tuple[str, str]]]],
) -> list[officers.CheckCandidate]:
    """Candidates of a name query from every node, one per USCC, with the nodes that know it."""
    by_uscc: dict[str, officers.CheckCandidate] = {}
    for node, candidates in answers:
        for uscc, name in candidates:
            uscc, name = _text(uscc)[:18], _text(name)
            if not uscc:
                continue
            cand = by_uscc.setdefault(uscc, officers.CheckCandidate(uscc=uscc, subject_name=name))
            if node not in cand.origins:
                cand.origins.append(node)
    return sorted(by_uscc.values(), key=lambda c: (c.subject_name, c.uscc))
