"""Follow-up at the origin (pure): per own entry, measure and partner city, whether the city
responded, what it last did (applied, not applicable, pending, suspended, lifted), how many
hits it recorded, and whether its response is overdue.

A measure is *responded* once the city recorded any response other than ``pending`` for it;
it is *overdue* when the entry is active, it is not responded, and today is past the day the
entry was published in this node's feed (Shanghai) plus the list's deadline in days
(``response_days`` per list code, else the default): a partner cannot respond before it could
receive the entry, and an entry listed years ago but published today is not overdue today.
Without a known publication time the clock starts at the listing date. The newest record (by
its recording time, then its leaf index) decides the state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

NONE: Final = "none"  # no response recorded
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class OwnEntry:
    """One of this node's entries with the measures it asks partners to apply."""

    entry: str
    list_code: str
    listing_date: dt.date | None
    measures: tuple[str, ...]
    active: bool
    published: dt.datetime | None = None  # the signed time of the feed's first checkpoint
    # holding its ADD leaf (None: not known)


@dataclass(frozen=True)
class Seen:
    """A verified record a partner sent about one of this node's entries."""

    peer: str
    idx: int
    kind: str  # response | hit
    entry: str
    measure: str = ""
    action: str = ""
    reason: str = ""
    department: str = ""
    date: str = ""
    at_us: int = 0
    purpose: str = ""


@dataclass
class Status:
    """What one partner did about one measure of one entry."""

    entry: str
    list_code: str
    measure: str
    peer: str
    action: str = NONE
    reason: str = ""
    department: str = ""
    date: str = ""
    responded: bool = False
    lifted: bool = False
    hits: int = 0
    due: str = ""  # YYYY-MM-DD ("" without a publication time or listing date)
    clock: str = ""  # what the deadline runs from: published | listed | "" (nothing known)
    overdue: bool = False
    history: list[str] = field(default_factory=list)  # every action, oldest first

    def as_json(self) -> dict[str, object]:
        return {
            "entry": self.entry, "list": self.list_code, "measure": self.measure,
            "city": self.peer, "action": self.action, "reason": self.reason,
            "department": self.department, "date": self.date, "responded": self.responded,
            "lifted": self.lifted, "hits": self.hits, "due": self.due, "clock": self.clock,
            "overdue": self.overdue, "history": list(self.history),
        }  # fmt: skip


def clock_start(entry: OwnEntry) -> tuple[dt.date | None, str]:
    """The day the response deadline runs from, and which: the Shanghai day the entry was
    published in this node's feed, else its listing date."""
    if entry.published is not None:
        if entry.published.tzinfo is None:
            raise ValueError("a publication time without a time zone")
        return entry.published.astimezone(SHANGHAI).date(), "published"
    if entry.listing_date is not None:
        return entry.listing_date, "listed"
    return None, ""


def deadline(entry: OwnEntry, days: Mapping[str, int], default_days: int) -> dt.date | None:
    start, _ = clock_start(entry)
    if start is None:
        return None
    return start + dt.timedelta(days=days.get(entry.list_code, default_days))


def follow_up(
    entries: Iterable[OwnEntry],
    peers: Sequence[str],
    seen: Iterable[Seen],
    *,
    today: dt.date,
    days: Mapping[str, int],
    default_days: int,
) -> list[Status]:
    """One :class:`Status` per (entry, measure, partner), ordered by entry, measure, partner.
    Records about an entry or measure not given, or from a partner not in *peers*, are left
    out (a partner since removed, a measure since dropped)."""
    by_key: dict[tuple[str, str], list[Seen]] = {}
    hits: dict[tuple[str, str], int] = {}
    for s in seen:
        if s.kind == "hit":
            hits[(s.entry, s.peer)] = hits.get((s.entry, s.peer), 0) + 1
        elif s.kind == "response":
            by_key.setdefault((s.entry, s.peer), []).append(s)
    out: list[Status] = []
    for e in sorted(entries, key=lambda x: x.entry):
        due = deadline(e, days, default_days)
        _, clock = clock_start(e)
        for measure in sorted(set(e.measures)):
            for peer in sorted(set(peers)):
                st = Status(e.entry, e.list_code, measure, peer, hits=hits.get((e.entry, peer), 0))
                st.due = due.isoformat() if due is not None else ""
                st.clock = clock
                mine = sorted(
                    (r for r in by_key.get((e.entry, peer), ()) if r.measure == measure),
                    key=lambda r: (r.at_us, r.idx),
                )
                for r in mine:
                    st.history.append(r.action)
                    st.action, st.reason, st.department, st.date = (
                        r.action, r.reason, r.department, r.date,
                    )  # fmt: skip
                    if r.action != "pending":
                        st.responded = True
                st.lifted = st.action == "lifted"
                st.overdue = e.active and not st.responded and due is not None and today > due
                out.append(st)
    return out
