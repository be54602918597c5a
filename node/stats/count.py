"""Statistics the plans count, over one calendar period (pure: events in, a document out).

The collector (:mod:`node.stats.collect`) turns this node's records into events, each dated by
its Shanghai calendar day; :func:`tally` counts those of one :class:`Period`:

- entries added, updated and removed by list, removals by reason (the own feed's events);
- responses per measure, city and action (联合奖惩案例), received from partners about this
  node's entries and given by this node about theirs;
- hits by purpose and by requesting department, both ways;
- turnaround in days: repairs (listing date → removal date) and objections (raised →
  resolved, on time when resolved by the due date), each as count, median and maximum;
- the 重错码 rate: subject USCCs that failed validation or passed only leniently, over the
  imports finished in the period.

Each event falls in exactly one period of a kind (an objection is two events: its raising
and its resolution), so the months of a quarter add up to the quarter. Matters are counted,
never listed: no entry id, name or personal code goes into the document, and
:func:`check_no_personal` refuses one that would carry a value reading as a person's ID.

>>> p = Period.parse("quarter", "2026-Q4", today=dt.date(2026, 11, 30))
>>> p.label, p.first.isoformat(), p.last.isoformat(), [m.label for m in p.months()]
('2026-Q4', '2026-10-01', '2026-12-31', ['2026-10', '2026-11', '2026-12'])
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from node.errors import InputError
from node.identity.validate import INVALID, PERSONAL_KINDS, check_uscc, classify

MONTH, QUARTER = "month", "quarter"
KINDS: Final = (MONTH, QUARTER)
RECEIVED, GIVEN = "received", "given"  # actions: partners about ours / this node about theirs
RAISED = "raised"  # objections this node raised (RECEIVED: raised to its own entries)
RESPONSE, HIT = "response", "hit"
ADD, UPDATE, REMOVE = "add", "update", "remove"
REPAIR = "repair"
MAX_TEXT: Final = 200  # characters of any one name in the document

_MONTH_AT = re.compile(r"([0-9]{4})-([0-9]{2})")
_QUARTER_AT = re.compile(r"([0-9]{4})-[Qq]([1-4])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TOKEN = re.compile(r"[0-9A-Za-z]{8,}")


class StatsError(InputError):
    """A bad period, or a document that may not be made (exit 2); says what, never a value."""


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month or quarter (Asia/Shanghai dates)."""

    year: int
    kind: str
    number: int  # month 1-12, or quarter 1-4

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise StatsError(f"--period must be {' or '.join(KINDS)}")
        if not 2000 <= self.year <= 9998 or not 1 <= self.number <= (
            12 if self.kind == MONTH else 4
        ):
            raise StatsError("--at names no month or quarter between 2000 and 9998")

    @classmethod
    def of(cls, kind: str, day: dt.date) -> Period:
        """The period of *kind* that *day* falls in."""
        number = day.month if kind == MONTH else (day.month - 1) // 3 + 1
        return cls(day.year, kind, number)

    @classmethod
    def parse(cls, kind: str, at: str | None, *, today: dt.date) -> Period:
        """``--period`` and ``--at`` (YYYY-MM for a month, YYYY-Qn for a quarter; default the
        period *today* is in)."""
        if kind not in KINDS:
            raise StatsError(f"--period must be {' or '.join(KINDS)}")
        if at is None:
            return cls.of(kind, today)
        pattern, form = (_MONTH_AT, "YYYY-MM") if kind == MONTH else (_QUARTER_AT, "YYYY-Qn")
        m = pattern.fullmatch(at.strip())
        if m is None:
            raise StatsError(f"--at must be {form} for a {kind}")
        return cls(int(m[1]), kind, int(m[2]))

    @property
    def first(self) -> dt.date:
        month = self.number if self.kind == MONTH else 3 * self.number - 2
        return dt.date(self.year, month, 1)

    @property
    def last(self) -> dt.date:
        month = self.number if self.kind == MONTH else 3 * self.number
        following = dt.date(self.year + month // 12, month % 12 + 1, 1)
        return following - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        return (
            f"{self.year}-{self.number:02d}"
            if self.kind == MONTH
            else f"{self.year}-Q{self.number}"
        )

    def contains(self, day: dt.date) -> bool:
        return self.first <= day <= self.last

    def months(self) -> tuple[Period, ...]:
        """The months of this period, in order."""
        if self.kind == MONTH:
            return (self,)
        return tuple(Period(self.year, MONTH, 3 * self.number - 2 + i) for i in range(3))


@dataclass(frozen=True)
class FeedEvent:
    """An ADD, UPDATE or REMOVE this node published (dated by when it was logged)."""

    day: dt.date
    event: str  # add | update | remove
    list_code: str
    reason: str = ""  # a removal's reason: repair, expiry, correction, revocation, fulfilled
    listed: dt.date | None = None  # a removal: the entry's listing date, if known
    removed: dt.date | None = None  # a removal: the date it states (default: *day*)


@dataclass(frozen=True)
class ActionEvent:
    """A response or hit: a partner's about this node's entry (received, from its verified
    actions log) or this node's about a partner's (given, from its own actions log)."""

    day: dt.date
    direction: str  # received | given
    city: str  # the partner
    kind: str  # response | hit
    measure: str = ""
    action: str = ""
    purpose: str = ""
    department: str = ""  # USCC of the implementing (response) or requesting (hit) department


@dataclass(frozen=True)
class ObjectionEvent:
    """An objection: raised on one day, resolved (or not yet) on another."""

    side: str  # received (to this node's entry) | raised (by this node)
    raised: dt.date
    due: dt.date
    resolved: dt.date | None = None


@dataclass(frozen=True)
class ImportEvent:
    """An import finished, with the subject USCCs it checked."""

    day: dt.date
    list_name: str
    checked: int
    invalid: int
    lenient: int


@dataclass
class Events:
    """Everything :func:`tally` counts (a collector may pass more than one period's)."""

    feeds: list[FeedEvent] = field(default_factory=list)
    actions: list[ActionEvent] = field(default_factory=list)
    objections: list[ObjectionEvent] = field(default_factory=list)
    imports: list[ImportEvent] = field(default_factory=list)
    list_names: dict[str, str] = field(default_factory=dict)  # list code -> name


def text(value: str, limit: int = MAX_TEXT) -> str:
    """A name from a record, as the document may hold it: bounded, no control characters."""
    return _CONTROL.sub("\ufffd", value[:limit])


def _spread(days: Sequence[int]) -> dict[str, Any]:
    if not days:
        return {"count": 0, "median_days": None, "max_days": None}
    median = statistics.median(days)
    return {
        "count": len(days),
        "median_days": int(median) if float(median).is_integer() else float(median),
        "max_days": max(days),
    }


def _counts(counter: Counter[str]) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter)}


def _rate(part: int, whole: int) -> str | None:
    # Text with a fixed number of places: one spelling in the signed document.
    return f"{part / whole:.4f}" if whole else None


def _entries(events: Iterable[FeedEvent], names: Mapping[str, str]) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    by_list: dict[str, Counter[str]] = {}
    list_reasons: dict[str, Counter[str]] = {}
    for e in events:
        totals[e.event] += 1
        by_list.setdefault(e.list_code, Counter())[e.event] += 1
        if e.event == REMOVE:
            reasons[e.reason] += 1
            list_reasons.setdefault(e.list_code, Counter())[e.reason] += 1
    return {
        "added": totals[ADD],
        "updated": totals[UPDATE],
        "removed": totals[REMOVE],
        "removed_by_reason": _counts(reasons),
        "by_list": [
            {
                "list_code": text(code),
                "list_name": text(names.get(code, "")),
                "added": c[ADD],
                "updated": c[UPDATE],
                "removed": c[REMOVE],
                "removed_by_reason": _counts(list_reasons.get(code, Counter())),
            }
            for code, c in sorted(by_list.items())
        ],
    }


def _responses(events: Sequence[ActionEvent]) -> dict[str, Any]:
    cases: Counter[tuple[str, str, str]] = Counter((e.measure, e.city, e.action) for e in events)
    return {
        "total": len(events),
        "by_action": _counts(Counter(e.action for e in events)),
        "by_measure_city": [
            {"measure": text(m), "city": text(c), "action": text(a), "count": n}
            for (m, c, a), n in sorted(cases.items())
        ],
    }


def _hits(events: Sequence[ActionEvent]) -> dict[str, Any]:
    return {
        "total": len(events),
        "by_purpose": _counts(Counter(text(e.purpose) for e in events)),
        "by_department": _counts(Counter(text(e.department) for e in events)),
        "by_city": _counts(Counter(text(e.city) for e in events)),
    }


def _objections(events: Sequence[ObjectionEvent], period: Period) -> dict[str, Any]:
    raised = sum(1 for o in events if period.contains(o.raised))
    done = [o for o in events if o.resolved is not None and period.contains(o.resolved)]
    on_time = sum(1 for o in done if o.resolved is not None and o.resolved <= o.due)
    days = [(o.resolved - o.raised).days for o in done if o.resolved is not None]
    return {
        "raised": raised,
        "resolved": len(done),
        "on_time": on_time,
        "late": len(done) - on_time,
        "on_time_rate": _rate(on_time, len(done)),
        "turnaround": _spread(days),
    }


def _usccs(events: Sequence[ImportEvent]) -> dict[str, Any]:
    checked = sum(e.checked for e in events)
    invalid = sum(e.invalid for e in events)
    lenient = sum(e.lenient for e in events)
    per: dict[str, list[ImportEvent]] = {}
    for e in events:
        per.setdefault(text(e.list_name), []).append(e)
    return {
        "imports": len(events),
        "checked": checked,
        "invalid": invalid,
        "lenient": lenient,
        "invalid_rate": _rate(invalid, checked),
        "lenient_rate": _rate(lenient, checked),
        "flawed_rate": _rate(invalid + lenient, checked),
        "by_list": [
            {
                "list_name": name,
                "imports": len(evs),
                "checked": sum(e.checked for e in evs),
                "invalid": sum(e.invalid for e in evs),
                "lenient": sum(e.lenient for e in evs),
            }
            for name, evs in sorted(per.items())
        ],
    }


def tally(events: Events, period: Period) -> dict[str, Any]:
    """The counts of *events* that fall in *period* (the document's ``counts``)."""
    feeds = [e for e in events.feeds if period.contains(e.day)]
    actions = [e for e in events.actions if period.contains(e.day)]
    imports = [e for e in events.imports if period.contains(e.day)]
    repairs = [
        ((e.removed or e.day) - e.listed).days
        for e in feeds
        if e.event == REMOVE and e.reason == REPAIR and e.listed is not None
    ]

    def pick(direction: str, kind: str) -> list[ActionEvent]:
        return [a for a in actions if a.direction == direction and a.kind == kind]

    return {
        "entries": _entries(feeds, events.list_names),
        "responses": {d: _responses(pick(d, RESPONSE)) for d in (RECEIVED, GIVEN)},
        "hits": {d: _hits(pick(d, HIT)) for d in (RECEIVED, GIVEN)},
        "turnaround": {
            "repair": _spread(repairs),
            "objections": {
                side: _objections([o for o in events.objections if o.side == side], period)
                for side in (RECEIVED, RAISED)
            },
        },
        "uscc": _usccs(imports),
    }


def period_json(period: Period) -> dict[str, str]:
    return {
        "kind": period.kind,
        "label": period.label,
        "first": period.first.isoformat(),
        "last": period.last.isoformat(),
        "time_zone": "Asia/Shanghai",
    }


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def check_no_personal(doc: Mapping[str, Any]) -> None:
    """Refuse a document holding a value that reads as a person's ID (whole or in a longer
    text): statistics count matters, they never carry one."""
    for s in _strings(doc):
        for token in (s, *_TOKEN.findall(s)):
            # A department's USCC may also read as an ID: the code's own check says which.
            if classify(token).kind in PERSONAL_KINDS and check_uscc(token).status == INVALID:
                raise StatsError("a value in the statistics reads as a person's ID: not issued")
