"""The border: what of this node's personal data each peer may receive, decided by the sharing
agreements in ``HOME/agreements/`` and nothing else.

Feeds are the first path through it: a feed leaf already commits to every personal field, so
what crosses is the *opening* of a committed field. Only fields the agreement's ``[feed.*]``
table sets to ``clear`` are opened; the masked ID and the alliance pseudonym are committed fields
of their own, so "send the masked form" or "send the pseudonym" means opening those fields, and
the subscriber verifies them against the same leaf. Any other feed form (a mask computed on the
fly) could not be verified against the leaf, so it is withheld. Fail closed: no agreements, a
broken agreement, an unknown peer or any error → no opening at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from node.api import feeds
from node.feeds.leaf import COMMITTED_FIELDS
from node.policy.agreement import Agreement, load_agreements
from node.policy.decide import decide

log = structlog.get_logger("creditnode.border")


@dataclass(frozen=True)
class FeedGrant:
    """The committed fields one peer's feed stream opens, and the agreement(s) that said so."""

    peer: str
    fields: frozenset[str]
    agreements: str  # "id v3" list, kept with every disclosure record

    def __bool__(self) -> bool:
        return bool(self.fields)


class Border:
    def __init__(self, agreements: Sequence[Agreement], problems: int = 0) -> None:
        self._agreements = tuple(agreements)
        self._problems = problems

    @classmethod
    def load(cls, directory: Path) -> Border:
        texts: dict[str, str] = {}
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                try:
                    texts[str(path)] = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    log.error(
                        "agreement unreadable: sharing nothing personal",
                        file=str(path),
                        error=type(exc).__name__,
                    )
                    return cls((), problems=1)
        loaded = load_agreements(texts)
        for p in loaded.problems:
            log.error("agreement problem: sharing nothing personal", problem=str(p))
        return cls(loaded.agreements, problems=len(loaded.problems))

    def feed_grant(self, peer: str) -> FeedGrant:
        """The openings *peer*'s feed may carry (none unless an agreement says so)."""
        if self._problems:
            return FeedGrant(peer, frozenset(), "")
        try:
            decision = decide(self._agreements, peer, None, "list_entry")
        except Exception:  # a policy error shares nothing
            log.exception("policy error: sharing nothing personal", peer=peer)
            return FeedGrant(peer, frozenset(), "")
        if decision.refused:
            return FeedGrant(peer, frozenset(), "")
        opened = frozenset(
            name for name, form in decision.opened().items()
            if form.kind == "clear" and name in COMMITTED_FIELDS
        )  # fmt: skip
        refs = ", ".join(f"{a.id} v{a.version}" for a in decision.agreements)
        return FeedGrant(peer, opened, refs)

    @staticmethod
    def openings(
        grant: FeedGrant, stored: Mapping[str, tuple[bytes, str]]
    ) -> list[feeds.FieldDisclosure]:
        """The openings of one leaf that *grant* lets out, from all of its stored openings."""
        return [
            feeds.FieldDisclosure(field=name, salt=salt, value=value)
            for name, (salt, value) in sorted(stored.items())
            if name in grant.fields
        ]
