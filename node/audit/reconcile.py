"""Joining both sides' receipts of the exchanges between two nodes (pure).

Each side records an exchange under the requester's exchange id and the message's number in
its stream: the requester as ``out``, the responder as ``in``. Joined on (exchange, seq), an
``out`` here must meet an ``in`` there and the other way round. What one side recorded and
the other did not is listed, and so is a pair whose response hashes differ (the answer changed
on the way, or one side lies) or whose requester holds another audit index than the
responder's receipt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

OPPOSITE: Final = {"in": "out", "out": "in"}


@dataclass(frozen=True)
class Receipt:
    """One side's entry of an exchange, as far as joining needs it."""

    index: int
    exchange: str
    seq: int
    direction: str
    kind: str
    outcome: str
    at_us: int
    response: str = ""
    remote: int | None = None


@dataclass(frozen=True)
class Gap:
    """An exchange the two sides do not agree on."""

    exchange: str
    seq: int
    problem: str  # "only here", "only at peer", "response differs", "receipt index differs"
    here: Receipt | None
    there: Receipt | None

    @property
    def at_us(self) -> int:
        side = self.here or self.there
        assert side is not None
        return side.at_us


def reconcile(
    here: Iterable[Receipt],
    there: Iterable[Receipt],
    *,
    start_us: int,
    end_us: int,
    in_flight_from_us: int | None = None,
) -> list[Gap]:
    """The exchanges with a problem whose entry (on either side) falls in [start, end).

    Both inputs should cover a wider window than [start, end) (clocks and the time between
    the two records differ a little); only gaps inside it are reported. Entries that are not
    exchanges (``local``) are ignored. An entry recorded on one side only at or after
    *in_flight_from_us* is an exchange still in flight (the responder records before it
    answers, the requester once the answer is in), not a gap."""
    ours = {(r.exchange, r.seq): r for r in here if r.direction in OPPOSITE}
    theirs = {(r.exchange, r.seq): r for r in there if r.direction in OPPOSITE}
    gaps: list[Gap] = []
    for key in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(key), theirs.get(key)
        one = a or b
        if (a is None or b is None) and in_flight_from_us is not None:
            assert one is not None
            if one.at_us >= in_flight_from_us:
                continue
        if a is None:
            assert b is not None
            gap = Gap(key[0], key[1], "only at peer", None, b)
        elif b is None:
            gap = Gap(key[0], key[1], "only here", a, None)
        elif b.direction != OPPOSITE[a.direction]:
            gap = Gap(key[0], key[1], "both sides claim the same direction", a, b)
        elif a.response and b.response and a.response != b.response:
            gap = Gap(key[0], key[1], "response differs", a, b)
        elif _receipt_mismatch(a, b):
            gap = Gap(key[0], key[1], "receipt index differs", a, b)
        else:
            continue
        if any(start_us <= s.at_us < end_us for s in (gap.here, gap.there) if s is not None):
            gaps.append(gap)
    return sorted(gaps, key=lambda g: (g.at_us, g.exchange, g.seq))


def _receipt_mismatch(a: Receipt, b: Receipt) -> bool:
    """The requester holds another index than the responder's entry of the exchange."""
    out, resp = (a, b) if a.direction == "out" else (b, a)
    return out.remote is not None and out.remote != resp.index
