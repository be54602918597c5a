"""What `status` says of a feed (pure): exactly one of :data:`FEED_STATES`, with its reason.

The stored mark of a log (``ok``, ``stalled``, ``tampered``, ``forked``: set by the
subscriber, gossip, a witness or the verifier) is one input; the standing findings of
``creditnode verify``, how far the mirror has applied what it verified, and whether this node
can reach the origin (measured outbound) are the others. Worse states win: a feed is never
shown ``ok`` while anything above says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

OK, LAGGING, STALLED, FORKED, TAMPERED = "ok", "lagging", "stalled", "forked", "tampered"
FEED_STATES = (OK, LAGGING, STALLED, FORKED, TAMPERED)
MAX_REASON = 300  # a reason quotes stored details, which came from the wire: bounded


@dataclass(frozen=True)
class FeedFacts:
    """What this node holds of one feed."""

    own: bool  # this node's own log (else a mirror of a peer's)
    stored: str  # the log's stored state
    detail: str = ""  # why it was marked (stored with the mark)
    findings: int = 0  # standing `creditnode verify` findings on it
    size: int = 0  # leaves applied
    checkpoint_size: int = 0  # leaves under the newest verified checkpoint
    reach: str = "unknown"  # mirrors: the origin's outbound state (up/unreachable/refused/...)
    reach_error: str = ""


@dataclass(frozen=True)
class FeedVerdict:
    state: str  # one of FEED_STATES
    reason: str  # "" for ok; one line otherwise


def _line(text: str) -> str:
    """One bounded line: a stored detail never spans lines or grows the table."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 1] + "…"


def judge_feed(f: FeedFacts) -> FeedVerdict:
    """The one state `status` shows for a feed, worst first."""
    if f.stored == FORKED:
        return FeedVerdict(FORKED, _line(f.detail or "forked (see `creditnode evidence`)"))
    if f.stored == TAMPERED:
        return FeedVerdict(TAMPERED, _line(f.detail or "tampered (see `creditnode evidence`)"))
    if f.findings:
        return FeedVerdict(
            TAMPERED, f"{f.findings} standing `creditnode verify` finding(s) on stored data"
        )
    if f.stored == STALLED:
        return FeedVerdict(STALLED, _line(f.detail or "stalled"))
    if f.stored != OK:  # a mark this version does not know: never shown as ok (fail closed)
        return FeedVerdict(STALLED, _line(f"unrecognised stored state {f.stored!r}"))
    if f.own:
        return FeedVerdict(OK, "")
    if f.reach == "refused":
        return FeedVerdict(STALLED, _line(f"the origin refuses this node: {f.reach_error}"))
    if f.size < f.checkpoint_size:
        return FeedVerdict(LAGGING, f"applied {f.size} of {f.checkpoint_size} verified leaves")
    if f.reach == "unreachable":
        return FeedVerdict(
            LAGGING, _line(f"origin unreachable (outbound), so newer leaves cannot arrive: "
                           f"{f.reach_error}")
        )  # fmt: skip
    return FeedVerdict(OK, "")
