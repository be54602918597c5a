"""Entity names: normalisation for comparison, and ranking of look-alike candidates (pure).

Names are the weakest identifier on a credit list: the same enterprise is written with
full-width or half-width brackets, with or without spaces, as 有限责任公司 or 有限公司; and
different enterprises share most of their characters (region, industry, legal form). So:

* :func:`normalise_name` makes the spelling variants of one name compare equal;
* :func:`rank_names` only *ranks* candidates for an officer or operator to look at. A name
  alone never merges two entities, never links a record to a subject and never decides a
  match: that takes a code (USCC, or a crosswalked legacy code) or a person pseudonym.

>>> normalise_name(" 华为技术 有限责任公司。")
'华为技术有限公司'
>>> normalise_name("腾讯科技（深圳）有限公司") == normalise_name("腾讯科技(深圳)有限公司")
True
>>> [m.key for m in rank_names("华为技术有限公司", [("a", "中兴通讯股份有限公司"),
...                                                  ("b", "华为技术有限责任公司"),
...                                                  ("c", "华为技术服务有限公司")])]
['b', 'c']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MIN_SCORE",
    "NameMatch",
    "SearchPlan",
    "name_similarity",
    "normalise_name",
    "rank_names",
    "rank_normalised",
    "search_plan",
]

# Canonical legal-form spelling. The Company Law (art. 7) lets a limited-liability company
# use either 有限责任公司 or 有限公司; 有限公司 is what most registrations use, so both map to
# it. 股份有限公司 (joint-stock) is a different form and is left alone.
_FORM_VARIANTS = (("有限责任公司", "有限公司"),)

# Bracket pairs seen in names, after NFKC (which already maps （） and ［］ to ASCII).
_BRACKETS = str.maketrans(dict.fromkeys("[【〔〖｟", "(") | dict.fromkeys("]】〕〗｠", ")"))
# Middle dots in transliterated foreign names (阿里·巴巴): one spelling.
_DOTS = str.maketrans(dict.fromkeys("•‧∙・⋅", "·"))
_WHITESPACE = re.compile(r"\s+")

# Generic tails stripped before measuring similarity, longest first: otherwise two unrelated
# "…有限公司" share three of their bigrams and look alike.
_GENERIC_TAILS = (
    "股份有限公司",
    "有限公司",
    "(有限合伙)",
    "(普通合伙)",
    "有限合伙",
    "普通合伙",
    "专业合作社",
    "合作社",
    "分公司",
    "公司",
    "集团",
)

DEFAULT_MIN_SCORE = 0.55
"""Below this a candidate is dropped. Two names that share only a region prefix and a legal
form (北京市甲乙科技 / 北京市丙丁科技) score 0.5, so the bar sits just above."""


def normalise_name(name: str) -> str:
    """*name* in the form used for comparison.

    NFKC (full-width letters, digits and brackets to half-width), other bracket styles to
    ``()``, middle dots unified, all whitespace removed, Latin letters case-folded,
    有限责任公司 → 有限公司, trailing punctuation (``。.,;、`` and the like, not a closing
    bracket) stripped.
    """
    # NFKC again after case-folding (Unicode's NFKC_Casefold recipe) and after removing
    # whitespace (a combining mark NFKC split off a spacing accent joins its letter).
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    text = unicodedata.normalize("NFKC", _WHITESPACE.sub("", text))
    text = text.translate(_BRACKETS).translate(_DOTS)
    for variant, canonical in _FORM_VARIANTS:
        text = text.replace(variant, canonical)
    end = len(text)
    while end and unicodedata.category(text[end - 1]) in ("Po", "Pd"):
        end -= 1
    return text[:end]


def _core(normalised: str) -> str:
    """The distinctive part: generic legal-form and group tails removed (if anything is left)."""
    core = normalised
    changed = True
    while changed:
        changed = False
        for tail in _GENERIC_TAILS:
            if core.endswith(tail) and len(core) > len(tail):
                core = core[: -len(tail)]
                changed = True
    return core


def _grams(text: str) -> frozenset[str]:
    # Character bigrams suit Chinese (no word boundaries; most words are two characters).
    if len(text) < 2:
        return frozenset({text}) if text else frozenset()
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def name_similarity(a: str, b: str) -> float:
    """Similarity of two names in [0, 1]; 1.0 only when their normalised forms are equal.

    Character-bigram Dice coefficient on the names with generic tails removed, raised for
    containment (one name's core inside the other's, as with an abbreviated query), and
    capped at 0.95 for names that are not identical once normalised.

    >>> name_similarity("华为技术有限公司", "華為")      # no traditional→simplified mapping
    0.0
    >>> round(name_similarity("华为", "华为技术有限公司"), 3)
    0.775
    """
    na, nb = normalise_name(a), normalise_name(b)
    return _similarity(na, nb)


def _similarity(na: str, nb: str) -> float:
    if not na or not nb:
        return 0.0
    ca = _core(na)
    return _scored(na, ca, _grams(ca), nb)


def _scored(na: str, ca: str, ga: frozenset[str], nb: str) -> float:
    """:func:`_similarity` with *na*'s core and bigrams given (computed once per query)."""
    if not nb:
        return 0.0
    if na == nb:
        return 1.0
    cb = _core(nb)
    if ca == cb:
        return 0.95  # same name, different legal form or group suffix
    gb = _grams(cb)
    dice = 2 * len(ga & gb) / (len(ga) + len(gb))
    short, long_ = sorted((ca, cb), key=len)
    containment = 0.0
    if len(short) >= 2 and short in long_:
        containment = 0.6 + 0.35 * len(short) / len(long_)
    return min(0.95, max(dice, containment))


@dataclass(frozen=True)
class NameMatch:
    key: str
    name: str
    score: float
    exact: bool


def rank_names(
    query: str,
    candidates: Iterable[tuple[str, str]],
    *,
    limit: int = 10,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[NameMatch]:
    """Candidates ``(key, name)`` ranked by likeness to *query*, best first, at most *limit*.

    Exact matches (equal after :func:`normalise_name`) come first, score 1.0, in input
    order; then the rest by descending score (ties by name, then key, so the order is
    stable), dropping scores below *min_score*. This only ranks: a name match never merges
    entities or links a record on its own.
    """
    return rank_normalised(
        query, ((key, name, normalise_name(name)) for key, name in candidates),
        limit=limit, min_score=min_score,
    )  # fmt: skip


def rank_normalised(
    query: str,
    candidates: Iterable[tuple[str, str, str]],
    *,
    limit: int = 10,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[NameMatch]:
    """:func:`rank_names` for candidates ``(key, name, normalise_name(name))``: a name's
    normalised form as stored beside it (``list_state.name_norm``), not computed again, which
    was most of the cost of ranking a thousand candidates."""
    if limit <= 0:
        return []
    nq = normalise_name(query)
    if not nq:
        return []
    exact: list[NameMatch] = []
    near: list[tuple[float, str, str, NameMatch]] = []
    core = _core(nq)
    grams = _grams(core)
    for key, name, nc in candidates:
        if nc == nq:
            exact.append(NameMatch(key, name, 1.0, True))
            continue
        score = _scored(nq, core, grams, nc)
        if score >= min_score:
            near.append((-score, nc, key, NameMatch(key, name, score, False)))
    near.sort(key=lambda t: t[:3])
    return (exact + [t[3] for t in near])[:limit]


@dataclass(frozen=True)
class SearchPlan:
    """How to fetch candidates for a name query from the index (see node/identity/name_search.py).

    ``trigrams``: the query's three-character runs; a stored name sharing any one is a
    candidate. Empty when the query's distinctive part is one or two characters, too short for a
    trigram: then ``prefix`` is that part, and names that begin with it are the candidates.
    """

    trigrams: tuple[str, ...]
    prefix: str


def search_plan(query: str) -> SearchPlan | None:
    """The candidate fetch for *query*, or None when it normalises to nothing.

    Trigrams come from the query's core (generic tails such as 有限公司 removed, which every
    name shares), or from the whole normalised query when the core is the whole of it.

    >>> search_plan("华为技术有限责任公司")
    SearchPlan(trigrams=('为技术', '华为技'), prefix='')
    >>> search_plan("华为")
    SearchPlan(trigrams=(), prefix='华为')
    """
    nq = normalise_name(query)
    if not nq:
        return None
    core = _core(nq)
    if len(core) < 3:
        return SearchPlan((), core)
    return SearchPlan(tuple(sorted({core[i : i + 3] for i in range(len(core) - 2)})), "")
