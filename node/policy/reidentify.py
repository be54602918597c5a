"""Re-identifying combinations (pure): the forms one peer receives, taken together.

A partner city is assumed honest but curious: it keeps everything it was ever sent (every feed
opening and every query answer, under every purpose its agreements allow) and may lay it all
side by side, and it may ask the origin's rate-limited evaluation oracle for the pseudonym of
any ID it guesses. It must learn no resident ID or name it did not already know. So the forms
one peer receives for one data class, across the ``[feed.<data class>]`` table and every
purpose, are judged together, by how many candidates they leave (the per-form numbers are
:data:`node.policy.masks.CANDIDATES`, with ``clear`` and the pseudonym beside them):

* **What is combined.** Two identities: the resident ID (``person_id`` and ``legal_rep_id`` in
  any form, ``person_id_masked`` in clear — it holds the court form — and ``person_pseudonym``
  in clear — the pseudonym) and the name (``person_name``, ``legal_rep_name``). The subject's
  and the legal representative's fields are pooled: one person can be the subject of one entry
  and the legal representative in another, and a pseudonym links them by value (a partner
  evaluates a candidate once and looks the result up among every pseudonym it holds).
* **How.** Forms of one identity hide together only what all of them hide (a court mask and a
  tax mask: characters 11-14), and leave the candidates of the form that hides exactly that;
  nothing hidden leaves 1, and a combination no form declares a count for counts as 1 (fail
  closed). Names have no verifier, so a name keeps what its forms leave.
* **Verifiers.** A candidate ID can be *checked* two ways, and either turns any narrowed set
  into the ID (1 candidate): a pseudonym the peer holds (it has each candidate evaluated and
  compares), and the *evaluation oracle with a look-up*: a peer that its agreements allow any
  request purpose may have the origin evaluate the pseudonym of any ID it guesses
  (``PseudonymService.Evaluate``) and ask ``QueryService.Lookup`` about that pseudonym, whose
  answer says whether, and in which entry (leaf index), that person is listed, so the entry it
  holds a masked ID of is itself the check. Hence an ID mask can reach only a peer with no
  request purpose (feed only) and no pseudonym; a pseudonym alone narrows nothing (the partner
  cannot compute pseudonyms itself, and the whole ID space is out of the oracle's reach).
* **When it is refused.** Fewer candidates than the node's threshold
  (``reidentification_threshold`` in ``creditnode.toml``, default :data:`DEFAULT_THRESHOLD`)
  is a :class:`Finding`; :func:`node.policy.agreement.validate` turns each into a problem with
  file and line, so ``policy check`` fails and every decision for the peer fails closed. A
  threshold of 1 judges nothing (what a node without this check would send); the node's
  configuration requires at least 2, so no clear name and no recoverable ID ever passes.

What this does not see: forms a peer was sent under an agreement version no longer in force
(a partner keeps those too), and two peers that pool what each received.

>>> feed = [Exposure("lanzhou.toml", 13, "person_id_masked", "masked_id", "clear", None),
...         Exposure("lanzhou.toml", 14, "person_pseudonym", "pseudonym", "clear", None)]
>>> for f in findings(feed, peer="lanzhou", threshold=10_000):
...     print(f.reason)
court_id mask (person_id_masked in the feed, lanzhou.toml:13) + pseudonym (person_pseudonym \
in the feed, lanzhou.toml:14): lanzhou could recover the ID
>>> for f in findings(feed[:1], peer="lanzhou", threshold=10_000):
...     print(f.reason)
court_id mask (person_id_masked in the feed, lanzhou.toml:13): lanzhou could narrow the ID to \
32 candidates, fewer than the threshold of 10,000
>>> findings(feed[:1], peer="lanzhou", threshold=32), findings(feed[1:], peer="lanzhou",
...                                                               threshold=10_000)
([], [])
>>> asks = oracle("lanzhou.toml", 4, ["procurement"])  # any request purpose: oracle and Lookup
>>> for f in findings([*feed[:1], asks], peer="lanzhou", threshold=32):
...     print(f.reason)
court_id mask (person_id_masked in the feed, lanzhou.toml:13) + pseudonym evaluations and \
look-ups (allowed for procurement, lanzhou.toml:4): lanzhou could recover the ID
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from node.policy import masks

__all__ = [
    "DEFAULT_THRESHOLD",
    "Exposure",
    "Finding",
    "Identity",
    "candidates",
    "findings",
    "identity_form",
    "oracle",
]

DEFAULT_THRESHOLD = 10_000
"""Candidates a peer's forms must leave of any ID or name (``reidentification_threshold``)."""

Identity = Literal["ID", "name"]

# What a field's value is (node.policy.agreement.FIELD_KINDS) and the form it leaves in → which
# identity it shows, and in which form of that identity: the masked-ID field holds the court
# form of the ID, the pseudonym field the pseudonym.
_AS: Mapping[tuple[str, str], tuple[Identity, str]] = MappingProxyType(
    {
        ("masked_id", "clear"): ("ID", "mask:court_id"),
        ("pseudonym", "clear"): ("ID", "pseudonym"),
    }
)
_IDENTITY_OF_KIND: Mapping[str, Identity] = MappingProxyType(
    {"resident_id": "ID", "masked_id": "ID", "pseudonym": "ID", "name": "name", "oracle": "ID"}
)
# The forms that check a candidate ID rather than narrow it (see the module's "Verifiers").
_VERIFIERS = frozenset({"pseudonym", "oracle"})
# The parts of each identity a mask hides (a name mask hides the given name).
_HIDDEN: Mapping[Identity, Mapping[str, frozenset[object]]] = MappingProxyType(
    {
        "ID": masks.ID_HIDDEN,
        "name": MappingProxyType({"name_surname": frozenset({"given name"})}),
    }
)
# What is left when no form narrows anything: the whole ID space, and for a name at least the
# 500-odd surnames in common use times a one-character given name.
_WHOLE: Mapping[Identity, int] = MappingProxyType(
    {"ID": masks.RESIDENT_ID_SPACE, "name": 500 * masks.CANDIDATES["name_surname"]}
)


@dataclass(frozen=True)
class Exposure:
    """One form one peer receives for one field, and where an agreement grants it."""

    source: str
    line: int
    field: str
    kind: str | None
    """What the field holds (:data:`node.policy.agreement.FIELD_KINDS`), None if nothing known."""
    form: str
    """The form as written: ``clear``, ``mask:court_id``, ``pseudonym``…"""
    purpose: str | None
    """The purpose it is granted for; None: the feed."""

    @property
    def where(self) -> str:
        if self.kind == "oracle":
            return f"allowed for {self.purpose}"
        if self.purpose is None:
            return f"{self.field} in the feed"
        return f"{self.field} for {self.purpose}"

    def _order(self) -> tuple[str, int, str, str, str]:
        return (self.source, self.line, self.field, self.form, self.purpose or "")


@dataclass(frozen=True)
class Finding:
    """A set of forms that leaves one identity fewer candidates than the threshold."""

    identity: Identity
    candidates: int
    exposures: tuple[Exposure, ...]
    """The forms that narrow it, each at its first grant (the first is where to report it)."""
    reason: str

    @property
    def source(self) -> str:
        return self.exposures[0].source

    @property
    def line(self) -> int:
        return self.exposures[0].line


def oracle(source: str, line: int, purposes: Iterable[str]) -> Exposure:
    """The evaluation oracle and look-ups a peer has because an agreement (*source*, *line*)
    allows it the request *purposes*: an exposure of its own, checking candidate IDs."""
    return Exposure(source, line, "purposes", "oracle", "oracle", ", ".join(sorted(purposes)))


def identity_form(kind: str | None, form: str) -> tuple[Identity, str] | None:
    """Which identity a field of *kind* shows in *form*, and as which form of it; None if it
    shows none (withheld, or a field that holds neither an ID nor a name)."""
    if form == "withhold" or kind is None or kind not in _IDENTITY_OF_KIND:
        return None
    if (kind, form) in _AS:
        return _AS[(kind, form)]
    identity = _IDENTITY_OF_KIND[kind]
    if kind in ("masked_id", "pseudonym"):
        return identity, "clear"  # any other form of a derived field: counted as the value
    return identity, form


def _label(identity: Identity, form: str) -> str:
    if form == "pseudonym":
        return "pseudonym"
    if form == "oracle":
        return "pseudonym evaluations and look-ups"
    if form.startswith("mask:"):
        return f"{form.removeprefix('mask:')} mask"
    return f"{form} {identity}" if form == "clear" else f"{form} ({identity})"


def _hides(identity: Identity, form: str) -> frozenset[object] | None:
    """What *form* leaves hidden of the identity; None: all of it (nothing narrowed)."""
    if form in _VERIFIERS:
        return None  # narrows nothing; checks candidates
    kind, _, pattern = form.partition(":")
    if kind == "mask":
        return _HIDDEN[identity].get(pattern, frozenset())  # an unknown mask hides nothing
    return frozenset()  # clear, or a form with no declared count: counted as the value


def _count(identity: Identity, hidden: frozenset[object]) -> int:
    if not hidden:
        return masks.CLEAR_CANDIDATES
    for pattern, parts in _HIDDEN[identity].items():
        if parts == hidden:
            return masks.CANDIDATES[pattern]
    return 1  # a combination no form declares a count for: fail closed


def candidates(identity: Identity, forms: Iterable[str]) -> int:
    """How many values of *identity* a receiver of every form in *forms* is left with (forms of
    that identity, as :func:`identity_form` gives them; ``oracle`` for the evaluation oracle
    with look-ups)."""
    chosen = set(forms)
    narrowing = [h for f in chosen if (h := _hides(identity, f)) is not None]
    if not narrowing:
        return _WHOLE[identity]
    if chosen & _VERIFIERS:
        return masks.PSEUDONYM_CANDIDATES
    return _count(identity, frozenset.intersection(*narrowing))


def _essential(identity: Identity, forms: Sequence[str]) -> list[str]:
    """The narrowing forms without which the rest would leave more (every one of them next to
    a verifier, which checks whatever any of them leaves)."""
    narrowing = [f for f in forms if _hides(identity, f) is not None]
    verifiers = [f for f in ("pseudonym", "oracle") if f in forms]
    if verifiers:
        return [*narrowing, *verifiers]
    count = candidates(identity, narrowing)
    kept = [f for f in narrowing if candidates(identity, [g for g in narrowing if g != f]) > count]
    return kept or narrowing[:1]


def findings(exposures: Iterable[Exposure], *, peer: str, threshold: int) -> list[Finding]:
    """Every identity the *exposures* (all one peer receives of one data class) narrow below
    *threshold* candidates, with the forms that do it and why, in one line."""
    first: dict[Identity, dict[str, Exposure]] = {"ID": {}, "name": {}}
    for e in sorted(exposures, key=Exposure._order):
        shown = identity_form(e.kind, e.form)
        if shown is not None:
            first[shown[0]].setdefault(shown[1], e)
    out: list[Finding] = []
    for identity, by_form in first.items():
        forms = sorted(by_form, key=lambda f: by_form[f]._order())
        count = candidates(identity, forms)
        if count >= threshold:
            continue
        essential = _essential(identity, forms)
        named = " + ".join(
            f"{_label(identity, f)} ({by_form[f].where}, {by_form[f].source}:{by_form[f].line})"
            for f in essential
        )
        if count > 1:
            outcome = (
                f"{peer} could narrow the {identity} to {count:,} candidates, fewer than the "
                f"threshold of {threshold:,}"
            )
        elif _VERIFIERS.intersection(essential):
            outcome = f"{peer} could recover the {identity}"
        else:
            outcome = f"{peer} would have the {identity}"
        out.append(
            Finding(identity, count, tuple(by_form[f] for f in essential), f"{named}: {outcome}")
        )
    return out
