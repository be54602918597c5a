"""Sharing agreements: versioned TOML files saying which personal fields leave, for whom, why
and in which form (pure: the caller reads the files and hands their text in).

Format
======

One file per peer, or per alliance profile. Every key is checked: a key this module does not
know is a problem, never silently ignored, because a misspelt key (``purpose`` for
``purposes``) must not quietly share less, or more, than its author meant. ::

    id = "jinan-lanzhou"              # required: letters, digits, '.', '_', '-'
    version = 3                       # required: integer >= 1, bumped on every change
    peers = ["lanzhou"]               # required: the peer names it applies to
    profile = "yellow-river"          # optional: marks an alliance profile (see below)
    basis = "黄河流域省会城市信用合作备忘录 (2022) 第四条"   # optional: the legal basis
    purposes = ["licensing_review", "procurement", "enforcement"]  # the purposes allowed

    [[rule]]                          # one data class, some allowed purposes, some fields
    data_class = "list_entry"
    purposes = ["licensing_review", "procurement"]
    [rule.fields]
    person_id = "pseudonym"
    legal_rep_id = "pseudonym"
    person_name = "withhold"

    [[rule]]
    data_class = "list_entry"
    purposes = ["enforcement"]
    fields = { person_id = "pseudonym" }

    [feed.list_entry]                 # the feed: what leaves with every published entry
    person_pseudonym = "clear"

    [measures]                        # optional: per shared list code, the measures (codes
    procurement-serious = ["GP.BAN"]  # of the measures catalogue) the receiving city commits
                                      # to implement (issue 15)

Forms: ``clear``; ``mask:<pattern>`` (:data:`node.policy.masks.PATTERNS`); ``pseudonym`` (the
alliance pseudonym of a resident ID); ``generalise:<date_month|date_year|amount_band>``;
``withhold``. **Anything not named is withheld**, so ``withhold`` only documents intent.
Public fields (classified ``SENSITIVITY_PUBLIC`` in the proto) always travel in clear; an
agreement may name them ``clear`` but no other form.

Purposes come from :data:`PURPOSES`. A rule's purposes must be among the agreement's
``purposes``; a request for a purpose the agreement does not list gets nothing personal.
The feed has no request purpose: only the ``[feed.<data class>]`` tables open fields for it,
and they open nothing for requests (see :mod:`node.policy.decide`).

An alliance profile is an agreement that every city of an alliance holds in the same form;
``profile`` names it, and ``peers`` still lists its members, because who may receive personal
data has to be readable in the file that grants it (listing one's own node is harmless).
Several files may name the same peer: their rules add up, and the same data class, purpose and
field given two different forms (in one file or across files) is a conflict, not a precedence.
Two files with the same ``id`` are a problem too: keep only the current version of each.

What one peer receives is judged as a whole (:mod:`node.policy.reidentify`): every form it
gets of one data class, over the feed table and all its purposes and across files, must leave
each resident ID and name at least the node's ``reidentification_threshold`` candidates
(default 10,000; the count of each form is in :data:`node.policy.masks.CANDIDATES`). A
court-masked ID leaves 32, a tax-masked one 2,900, a surname-masked name 3,500, a clear name 1,
and any ID mask leaves 1 next to a pseudonym or for a peer allowed any request purpose: the
origin's evaluation oracle gives it the pseudonym of each candidate, which it compares or
looks up. So at the default only the pseudonym and ``withhold`` pass, as in the example above;
a surname mask needs a threshold of 3,500 or less, and an ID mask can go only to a feed-only
peer (no purposes, no pseudonym) of a node whose threshold is at most its count.

Checking
========

:func:`check_agreement` returns every :class:`Problem` of one file, each with the file and
line (tomllib gives no positions, so lines are found by scanning the text: exact for ordinary
files, approximate for exotic layouts); :func:`validate` checks parsed agreements, including
conflicts and re-identifying combinations across files (these depend on every file that names
a peer and on the node's threshold, so one file alone is not checked for them);
:func:`load_agreements` does both for a directory's worth of texts and returns no agreement at
all if anything is wrong (a malformed agreement stops sharing, it never opens it).
:func:`parse_agreement` raises :class:`PolicyError` on the first file with a problem.

>>> text = '''
... id = "jinan-lanzhou"
... version = 3
... peers = ["lanzhou"]
... purposes = ["procurement"]
... [[rule]]
... data_class = "list_entry"
... purposes = ["procurement"]
... fields = { person_name = "mask:name_surname" }
... '''
>>> a = parse_agreement(text, source="lanzhou.toml")
>>> a.id, a.version, sorted(a.peers), str(a.rules[0].fields["person_name"])
('jinan-lanzhou', 3, ['lanzhou'], 'mask:name_surname')
>>> for p in check_agreement(text.replace("person_name", "person_phone"), source="x.toml"):
...     print(p)
x.toml:9: list_entry has no field 'person_phone'
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from google.protobuf.message import Message

from node.api import feeds, options
from node.policy import masks, reidentify

__all__ = [
    "CLEAR",
    "DATA_CLASSES",
    "FIELD_KINDS",
    "GENERALISER_KINDS",
    "PATTERN_KINDS",
    "PSEUDONYM",
    "PSEUDONYM_KINDS",
    "PURPOSES",
    "WITHHOLD",
    "Agreement",
    "Form",
    "FormKind",
    "Loaded",
    "PolicyError",
    "Problem",
    "Rule",
    "SourceMap",
    "check_agreement",
    "dump_agreement",
    "form_problem",
    "load_agreements",
    "message_fields",
    "parse_agreement",
    "public_fields",
    "validate",
]

# ------------------------------------------------------------------------------ catalogues

PURPOSES: Mapping[str, str] = MappingProxyType(
    {
        "licensing_review": "行政许可审查",
        "procurement": "政府采购",
        "bidding": "招标投标",
        "subsidy": "财政补贴",
        "enforcement": "执法检查",
        "market_entry": "市场准入",
        "honors": "评优评先",
        "credit_repair": "信用修复",
    }
)
"""The purposes a request may state, with their Chinese labels (the 逢办必查 checkpoints)."""

DATA_CLASSES: Mapping[str, type[Message]] = MappingProxyType({"list_entry": feeds.ListEntry})
"""Data classes an agreement can govern, by name, and the message that defines their fields."""

FIELD_KINDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "list_entry": MappingProxyType(
            {
                "person_name": "name",
                "legal_rep_name": "name",
                "person_id": "resident_id",
                "legal_rep_id": "resident_id",
                "person_id_masked": "masked_id",
                "person_pseudonym": "pseudonym",
                "listing_date": "date",
                "disclosure_end": "date",
            }
        )
    }
)
"""What kind of value each field holds, by data class: the compatibility table's left side.
A field missing here has no kind, and only ``clear`` or ``withhold`` can apply to it."""

PATTERN_KINDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "court_id": frozenset({"resident_id"}),
        "tax_id": frozenset({"resident_id"}),
        "name_surname": frozenset({"name"}),
        "phone_3_4": frozenset({"phone"}),
        "address_tail": frozenset({"address"}),
    }
)
"""The value kinds each mask pattern applies to (``mask:phone_3_4`` on an ID is a problem)."""

GENERALISER_KINDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "date_month": frozenset({"date"}),
        "date_year": frozenset({"date"}),
        "amount_band": frozenset({"amount"}),
    }
)
"""The value kinds each generalisation applies to."""

PSEUDONYM_KINDS: frozenset[str] = frozenset({"resident_id"})
"""The alliance pseudonym is computed from a resident ID, so only ID fields can take it."""

_TOP_KEYS = ("id", "version", "peers", "profile", "basis", "purposes", "rule", "feed", "measures")
# A list code and a measure code, as the list and measures catalogues write them.
_LIST_CODE = re.compile(r"[a-z0-9][a-z0-9.-]{0,39}")
_MEASURE_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_RULE_KEYS = ("data_class", "purposes", "fields")
# Names that go into logs, file names and audit records: keep them plain.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FORM_NAME = re.compile(r"[a-z0-9_]+")

Path = tuple[str | int, ...]

# --------------------------------------------------------------------------- errors, forms


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an agreement, where it is (line 0: not from a file)."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


class PolicyError(ValueError):
    """An agreement that must not be used; ``problems`` says why, each with file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)) or "invalid agreement")


FormKind = Literal["clear", "mask", "pseudonym", "generalise", "withhold"]
_FORM_KINDS: tuple[str, ...] = get_args(FormKind)
_NEEDS_PATTERN = frozenset({"mask", "generalise"})


@dataclass(frozen=True)
class Form:
    """The form a field leaves in: ``kind`` plus, for masks and generalisations, ``pattern``.

    :meth:`parse` checks the syntax only; whether the pattern exists and fits the field is
    :func:`form_problem`'s job, so hand-built forms are checked the same way as parsed ones.
    """

    kind: FormKind
    pattern: str | None = None

    def __str__(self) -> str:
        return self.kind if self.pattern is None else f"{self.kind}:{self.pattern}"

    @classmethod
    def parse(cls, text: str) -> Form:
        """``clear``, ``withhold``, ``pseudonym``, ``mask:<name>`` or ``generalise:<name>``."""
        kind, sep, pattern = text.partition(":")
        if kind not in _FORM_KINDS:
            raise ValueError(
                f"unknown form {text!r} (forms: clear, mask:<pattern>, pseudonym, "
                "generalise:<pattern>, withhold)"
            )
        if kind in _NEEDS_PATTERN:
            if not sep or not _FORM_NAME.fullmatch(pattern):
                raise ValueError(f"form {kind!r} needs a pattern name: {kind}:<pattern>")
            return cls(cast(FormKind, kind), pattern)
        if sep:
            raise ValueError(f"form {kind!r} takes no pattern")
        return cls(cast(FormKind, kind))


CLEAR = Form("clear")
WITHHOLD = Form("withhold")
PSEUDONYM = Form("pseudonym")

# ------------------------------------------------------------------- schema look-ups


# The schema is fixed for the life of the process, so these are computed once per argument
# (unknown data classes raise KeyError, which is not cached).
@cache
def message_fields(data_class: str) -> tuple[str, ...]:
    """Every field name of *data_class*'s message, in field-number order."""
    return tuple(f.name for f in DATA_CLASSES[data_class].DESCRIPTOR.fields)


@cache
def _sensitivity(data_class: str, name: str) -> int:
    fd = DATA_CLASSES[data_class].DESCRIPTOR.fields_by_name[name]
    return int(fd.GetOptions().Extensions[options.sensitivity])


@cache
def public_fields(data_class: str) -> frozenset[str]:
    """The fields classified public: always sent in clear, whatever an agreement says.

    For ``list_entry`` the rest is exactly ``node.feeds.leaf.COMMITTED_FIELDS`` (an unclassified
    field counts as non-public there and here).
    """
    return frozenset(
        n for n in message_fields(data_class) if _sensitivity(data_class, n) == _PUBLIC
    )


_PUBLIC = options.SENSITIVITY_PUBLIC
_SENSITIVE = options.SENSITIVITY_PERSONAL_SENSITIVE
_UNSPECIFIED = options.SENSITIVITY_UNSPECIFIED


def form_problem(data_class: str, name: str, form: Form) -> str | None:
    """Why *form* cannot apply to field *name* of *data_class*, or None if it can."""
    if data_class not in DATA_CLASSES:
        return f"unknown data class {data_class!r}"
    if name not in DATA_CLASSES[data_class].DESCRIPTOR.fields_by_name:
        return f"{data_class} has no field {name!r}"
    if form.kind not in _FORM_KINDS:
        return f"unknown form {str(form)!r}"
    sensitivity = _sensitivity(data_class, name)
    if sensitivity == _PUBLIC:
        if form.kind != "clear":
            return f"{name} is public and always sent in clear; it cannot be {form}"
        return None
    if form.kind == "withhold":
        return None
    if sensitivity == _UNSPECIFIED:
        return f"{name} has no sensitivity classification; it can only be withheld"
    kind = FIELD_KINDS.get(data_class, {}).get(name)
    if form.kind == "clear":
        if sensitivity == _SENSITIVE:
            # The domain rule: a raw resident ID never leaves its city. Masks and the alliance
            # pseudonym are the ways to share it.
            return f"{name} is sensitive personal data and never leaves in clear"
        return None
    if form.kind == "pseudonym":
        if kind not in PSEUDONYM_KINDS:
            return f"pseudonym applies to resident ID fields only, not {name}"
        return None
    registry, kinds = (
        (masks.PATTERNS, PATTERN_KINDS)
        if form.kind == "mask"
        else (masks.GENERALISERS, GENERALISER_KINDS)
    )
    pattern = form.pattern
    if pattern is None or pattern not in registry or pattern not in kinds:
        known = ", ".join(sorted(registry))
        return f"unknown {form.kind} pattern {pattern!r} (known: {known})"
    if kind not in kinds[pattern]:
        fits = ", ".join(sorted(kinds[pattern]))
        return f"{form} cannot apply to {name} (it applies to {fits} values)"
    return None


# ----------------------------------------------------------------------------- source map

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\\n]|\\.)*"'
_LITERAL = r"'[^'\n]*'"
_PART = f"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER_RE = re.compile(rf"\s*(\[\[?)\s*({_DOTTED})\s*\]")
_KEY_RE = re.compile(rf"\s*({_DOTTED})\s*=")
_INLINE_KEY_RE = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_PART)


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = []
    for part in _PART_RE.findall(dotted):
        if part.startswith('"'):
            try:
                part = json.loads(part)  # TOML basic-string escapes are JSON's, near enough
            except ValueError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


class SourceMap:
    """Line numbers of the keys of a TOML text, by path (``("rule", 0, "fields", "x")``).

    tomllib reports no positions, so the text is scanned line by line: table headers (with
    array-of-tables indexes), ``key = value`` lines (dotted keys included) and the keys of
    single-line inline tables. Multi-line strings are skipped. A path not found falls back to
    its nearest recorded ancestor, then to line 1: right for ordinary files, approximate for
    exotic ones (arrays of inline tables), never an exception.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        self._spans: dict[Path, tuple[int, int]] = {}
        self._text = text.splitlines()
        arrays: dict[Path, int] = {}
        table: Path = ()
        open_span: Path | None = None
        in_string: str | None = None

        def resolve(parts: Iterable[str]) -> Path:
            path: Path = ()
            for part in parts:
                path += (part,)
                if path in arrays:  # a dotted name through an array names its last element
                    path += (arrays[path] - 1,)
            return path

        def close(line: int) -> None:
            if open_span is not None:
                self._spans[open_span] = (self._spans[open_span][0], line)

        for lineno, raw in enumerate(self._text, 1):
            if in_string is not None:
                if in_string in raw:
                    in_string = None
                continue
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER_RE.match(raw)
            key = None if header else _KEY_RE.match(raw)
            if header:
                close(lineno)
                open_span = None
                parts = _key_parts(header[2])
                if header[1] == "[[":
                    base = (*resolve(parts[:-1]), parts[-1])
                    arrays[base] = arrays.get(base, 0) + 1
                    self._lines.setdefault(base, lineno)
                    table = (*base, arrays[base] - 1)
                else:
                    table = resolve(parts)
                self._lines.setdefault(table, lineno)
            elif key:
                close(lineno)
                path = table + _key_parts(key[1])
                self._lines.setdefault(path, lineno)
                self._spans.setdefault(path, (lineno, lineno + 1))
                open_span = path
                rest = raw[key.end() :]
                if rest.lstrip().startswith("{"):
                    for inner in _INLINE_KEY_RE.finditer(rest):
                        self._lines.setdefault(path + _key_parts(inner[1]), lineno)
            for delimiter in ('"""', "'''"):
                if raw.count(delimiter) % 2:
                    in_string = delimiter
                    break
        close(len(self._text) + 1)

    def line(self, path: Path) -> int:
        """The line of *path*, else of its nearest recorded ancestor, else 1."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return 1

    def value_line(self, path: Path, value: str) -> int:
        """The line where string *value* appears in the value of key *path* (a multi-line
        array), else the key's line."""
        span = self._spans.get(path)
        if span is not None:
            quoted = (json.dumps(value, ensure_ascii=False), f"'{value}'")
            for lineno in range(span[0], span[1]):
                if any(q in self._text[lineno - 1] for q in quoted):
                    return lineno
        return self.line(path)


# ----------------------------------------------------------------------------- agreements


@dataclass(frozen=True)
class Rule:
    """Forms for some fields of one data class, for some purposes (or for the feed)."""

    data_class: str
    purposes: frozenset[str]
    fields: Mapping[str, Form]
    feed: bool = False
    """A ``[feed.<data class>]`` table: applies to the feed only, and has no purposes."""
    origin: Path = field(default=(), compare=False, repr=False)
    """Where the rule is in its file (``("rule", 2)`` or ``("feed", "list_entry")``)."""

    def __post_init__(self) -> None:
        # Frozen all the way down: a rule is evidence of what was agreed.
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "purposes", frozenset(self.purposes))

    def field_path(self, name: str) -> Path:
        return self.origin + ((name,) if self.feed else ("fields", name))


@dataclass(frozen=True)
class Agreement:
    """One sharing agreement, as parsed from one file (or built by hand, then validated)."""

    id: str
    version: int
    peers: frozenset[str]
    purposes: frozenset[str]
    rules: tuple[Rule, ...]
    profile: str | None = None
    basis: str | None = None
    source: str = "<agreement>"
    lines: SourceMap | None = field(default=None, compare=False, repr=False)
    measures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """List code → the measure codes the receiving city commits to implement for it (checked
    against the catalogues in force by the caller of :func:`load_agreements`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "peers", frozenset(self.peers))
        object.__setattr__(self, "purposes", frozenset(self.purposes))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(
            self, "measures", MappingProxyType({k: tuple(v) for k, v in self.measures.items()})
        )

    def line(self, path: Path) -> int:
        return 0 if self.lines is None else self.lines.line(path)

    def value_line(self, path: Path, value: str) -> int:
        return 0 if self.lines is None else self.lines.value_line(path, value)

    def problem(self, path: Path, message: str, *, value: str | None = None) -> Problem:
        line = self.line(path) if value is None else self.value_line(path, value)
        return Problem(self.source, line, message)


# --------------------------------------------------------------------------------- checks

# The key of one field's form: (data class, purpose or None for the feed, field).
_Slot = tuple[str, str | None, str]


def _slots(rule: Rule) -> Iterable[tuple[str | None, str, Form]]:
    purposes: Iterable[str | None] = [None] if rule.feed else sorted(rule.purposes)
    for purpose in purposes:
        for name, form in rule.fields.items():
            yield purpose, name, form


def _describe(slot: _Slot) -> str:
    data_class, purpose, name = slot
    return f"{data_class} {name} for {purpose or 'the feed'}"


def _agreement_problems(a: Agreement, *, checked: frozenset[str] = frozenset()) -> list[Problem]:
    """Everything wrong inside one agreement. *checked*: top-level keys whose type problems the
    parser already reported (so a mistyped id is not also reported as a missing one)."""
    out: list[Problem] = []
    if "id" not in checked and not (isinstance(a.id, str) and _ID.fullmatch(a.id)):
        out.append(
            a.problem(("id",), "missing or malformed id (letters, digits, '.', '_', '-')")
            if a.id
            else a.problem(("id",), "missing id")
        )
    if "version" not in checked and (
        isinstance(a.version, bool) or not isinstance(a.version, int) or a.version < 1
    ):
        out.append(a.problem(("version",), "missing version: an integer, 1 or more"))
    if "peers" not in checked:
        if not a.peers:
            out.append(a.problem(("peers",), "missing peers: name the peers it applies to"))
        elif any(not isinstance(p, str) or not p.strip() for p in a.peers):
            out.append(a.problem(("peers",), "peer names must be non-empty strings"))
    for purpose in sorted(a.purposes):
        if purpose not in PURPOSES:
            out.append(a.problem(("purposes",), _unknown_purpose(purpose), value=purpose))
    first: dict[_Slot, tuple[Form, Rule]] = {}
    for rule in a.rules:
        if rule.data_class not in DATA_CLASSES:
            out.append(
                a.problem(
                    rule.origin + (() if rule.feed else ("data_class",)),
                    f"unknown data class {rule.data_class!r} (known: {', '.join(DATA_CLASSES)})",
                )
            )
            continue
        for purpose in sorted(rule.purposes):
            where = (*rule.origin, "purposes")
            if purpose not in PURPOSES:
                out.append(a.problem(where, _unknown_purpose(purpose), value=purpose))
            elif purpose not in a.purposes:
                out.append(
                    a.problem(
                        where,
                        f"rule names purpose {purpose!r}, which the agreement's purposes "
                        "do not allow",
                        value=purpose,
                    )
                )
        if not rule.feed and not rule.purposes:
            out.append(a.problem(rule.origin, "rule has no purposes"))
        for name, form in rule.fields.items():
            reason = form_problem(rule.data_class, name, form)
            if reason is not None:
                out.append(a.problem(rule.field_path(name), reason))
        for when, name, form in _slots(rule):
            slot = (rule.data_class, when, name)
            seen = first.setdefault(slot, (form, rule))
            if seen[0] != form:
                out.append(
                    a.problem(
                        rule.field_path(name),
                        f"conflicting rules: {_describe(slot)} is {form} here but "
                        f"{seen[0]} at line {a.line(seen[1].field_path(name))}",
                    )
                )
    return out


def _unknown_purpose(purpose: str) -> str:
    return f"unknown purpose {purpose!r} (known: {', '.join(PURPOSES)})"


def validate(
    agreements: Sequence[Agreement], *, threshold: int = reidentify.DEFAULT_THRESHOLD
) -> list[Problem]:
    """Every problem of *agreements* taken together: each one's own, the same id twice,
    conflicting forms for a peer that several agreements name, and re-identifying combinations:
    the forms a peer receives of one data class, across the feed and every purpose, that leave
    some ID or name fewer than *threshold* candidates (:mod:`node.policy.reidentify`)."""
    out = [p for a in agreements for p in _agreement_problems(a)]
    by_id: dict[str, Agreement] = {}
    for a in agreements:
        other = by_id.setdefault(a.id, a)
        if other is not a:
            out.append(
                a.problem(
                    ("id",),
                    f"agreement id {a.id!r} is also used by {other.source} (version "
                    f"{other.version}); keep only the current version of each agreement",
                )
            )
    # Across files: for every peer, the first form each slot got, and from where.
    first: dict[tuple[str, _Slot], tuple[Form, Agreement, Rule]] = {}
    reported: set[tuple[_Slot, int, int]] = set()
    for a in agreements:
        for peer in sorted(p for p in a.peers if isinstance(p, str)):
            for rule in a.rules:
                for when, name, form in _slots(rule):
                    slot = (rule.data_class, when, name)
                    seen = first.setdefault((peer, slot), (form, a, rule))
                    other = seen[1]
                    pair = (slot, id(other), id(a))
                    if other is a or seen[0] == form or pair in reported:
                        continue  # same file: _agreement_problems reports it
                    reported.add(pair)
                    out.append(
                        a.problem(
                            rule.field_path(name),
                            f"conflicting rules for peer {peer!r}: {_describe(slot)} is "
                            f"{form} here but {seen[0]} in {other.source}:"
                            f"{other.line(seen[2].field_path(name))}",
                        )
                    )
    out += _reidentifying(agreements, threshold)
    return sorted(out)


def _reidentifying(agreements: Sequence[Agreement], threshold: int) -> list[Problem]:
    """A problem for every peer and data class whose forms, all together, re-identify."""
    received: dict[tuple[str, str], list[reidentify.Exposure]] = {}
    asks: dict[str, tuple[Agreement, set[str]]] = {}  # peer → first agreement with purposes
    for a in sorted(agreements, key=lambda a: a.source):
        for peer in sorted(p for p in a.peers if isinstance(p, str)):
            allowed = {p for p in a.purposes if p in PURPOSES}
            if allowed:
                asks.setdefault(peer, (a, set()))[1].update(allowed)
            for rule in a.rules:
                if rule.data_class not in DATA_CLASSES:
                    continue
                public = public_fields(rule.data_class)
                kinds = FIELD_KINDS.get(rule.data_class, {})
                for when, name, form in _slots(rule):
                    if name in public or form_problem(rule.data_class, name, form) is not None:
                        continue  # public: always clear; a bad form is a problem of its own
                    exposure = reidentify.Exposure(
                        a.source, a.line(rule.field_path(name)), name, kinds.get(name),
                        str(form), when,
                    )  # fmt: skip
                    received.setdefault((peer, rule.data_class), []).append(exposure)
    out = []
    for (peer, data_class), exposures in sorted(received.items()):
        if peer in asks:  # it may have IDs evaluated and look them up: a verifier
            a, allowed = asks[peer]
            exposures.append(reidentify.oracle(a.source, a.line(("purposes",)), allowed))
        for f in reidentify.findings(exposures, peer=peer, threshold=threshold):
            out.append(
                Problem(
                    f.source,
                    f.line,
                    f"re-identifying combination for peer {peer!r} ({data_class}): {f.reason}",
                )
            )
    return out


# -------------------------------------------------------------------------------- parsing

_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


def toml_error_line(exc: tomllib.TOMLDecodeError, text: str) -> int:
    """The line tomllib stopped at in *text* (it reports it only inside its message)."""
    m = _TOML_POSITION.search(str(exc))
    # "(at end of document)" has no number: the last line is where the reader gave up.
    return int(m[1]) if m else max(1, len(text.splitlines()))


def _toml_problem(exc: tomllib.TOMLDecodeError, text: str, source: str) -> Problem:
    return Problem(source, toml_error_line(exc, text), f"not valid TOML: {exc}")


def _strings(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return cast(list[str], value)
    return None


class _Builder:
    """Turns a TOML document into an :class:`Agreement`, reporting type and shape problems (the
    rest is :func:`_agreement_problems`'s). Bad parts are dropped, and reported."""

    def __init__(self, doc: dict[str, Any], source: str, lines: SourceMap) -> None:
        self.doc, self.source, self.lines = doc, source, lines
        self.problems: list[Problem] = []
        self.checked: set[str] = set()

    def report(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line(path), message))
        if len(path) == 1 and isinstance(path[0], str):
            self.checked.add(path[0])

    def build(self) -> Agreement:
        doc = self.doc
        for key in doc:
            if key not in _TOP_KEYS:
                self.report((key,), f"unknown key {key!r} (keys: {', '.join(_TOP_KEYS)})")
        ident = doc.get("id", "")
        if not isinstance(ident, str):
            self.report(("id",), "id must be a string")
            ident = ""
        version = doc.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            self.report(("version",), "version must be an integer")
            version = 0
        peers = _strings(doc.get("peers", []))
        if peers is None:
            self.report(("peers",), "peers must be a list of peer names")
        purposes = _strings(doc.get("purposes", []))
        if purposes is None:
            self.report(("purposes",), "purposes must be a list of purpose names")
        profile = self.optional_string("profile")
        basis = self.optional_string("basis")
        return Agreement(
            id=ident,
            version=version,
            peers=frozenset(peers or ()),
            purposes=frozenset(purposes or ()),
            rules=(*self.rules(), *self.feed()),
            profile=profile,
            basis=basis,
            source=self.source,
            lines=self.lines,
            measures=self.measures(),
        )

    def measures(self) -> dict[str, tuple[str, ...]]:
        raw = self.doc.get("measures", {})
        if not isinstance(raw, dict):
            self.report(("measures",), "measures must be a table: [measures] list-code = [codes]")
            return {}
        out: dict[str, tuple[str, ...]] = {}
        for list_code, codes in raw.items():
            where: Path = ("measures", list_code)
            if not _LIST_CODE.fullmatch(list_code):
                self.report(where, "measures: a key must be a list code (a-z, 0-9, '.', '-')")
                continue
            values = _strings(codes)
            if not values or not all(_MEASURE_CODE.fullmatch(v) for v in values):
                self.report(
                    where, f"measures.{list_code} must be a non-empty list of measure codes "
                    "(1-32 of A-Z, a-z, 0-9, '.', '_', '-')",
                )  # fmt: skip
                continue
            if len(set(values)) != len(values):
                self.report(where, f"measures.{list_code} repeats a measure code")
                continue
            out[list_code] = tuple(values)
        return out

    def optional_string(self, key: str) -> str | None:
        value = self.doc.get(key)
        if value is None or isinstance(value, str):
            return value
        self.report((key,), f"{key} must be a string")
        return None

    def rules(self) -> Iterable[Rule]:
        raw = self.doc.get("rule", [])
        if not isinstance(raw, list):
            self.report(("rule",), "rule must be an array of tables: [[rule]]")
            return
        for i, table in enumerate(raw):
            origin: Path = ("rule", i)
            if not isinstance(table, dict):
                self.report(origin, "a rule must be a table")
                continue
            for key in table:
                if key not in _RULE_KEYS:
                    self.report(
                        (*origin, key),
                        f"unknown key {key!r} in a rule (keys: {', '.join(_RULE_KEYS)})",
                    )
            data_class = table.get("data_class")
            purposes = _strings(table.get("purposes"))
            fields = table.get("fields", {})
            ok = True
            if not isinstance(data_class, str):
                self.report((*origin, "data_class"), "a rule needs data_class, a string")
                ok = False
            if not purposes:
                self.report(
                    (*origin, "purposes"), "a rule needs purposes, a non-empty list of names"
                )
                ok = False
            if not isinstance(fields, dict):
                self.report((*origin, "fields"), "fields must be a table of field = form")
                ok = False
            if ok:
                forms = self.forms(fields, (*origin, "fields"))
                yield Rule(cast(str, data_class), frozenset(purposes or ()), forms, False, origin)

    def feed(self) -> Iterable[Rule]:
        raw = self.doc.get("feed", {})
        if not isinstance(raw, dict):
            self.report(("feed",), "feed must be a table: [feed.<data class>]")
            return
        for data_class, table in raw.items():
            origin: Path = ("feed", data_class)
            if not isinstance(table, dict):
                self.report(origin, f"feed.{data_class} must be a table of field = form")
                continue
            yield Rule(data_class, frozenset(), self.forms(table, origin), True, origin)

    def forms(self, table: dict[str, Any], where: Path) -> dict[str, Form]:
        out: dict[str, Form] = {}
        for name, text in table.items():
            if not isinstance(text, str):
                self.report((*where, name), f"the form of {name} must be a string")
                continue
            try:
                out[name] = Form.parse(text)
            except ValueError as exc:
                self.report((*where, name), str(exc))
        return out


def _parse(text: str, source: str) -> tuple[Agreement | None, list[Problem]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [_toml_problem(exc, text, source)]
    builder = _Builder(doc, source, SourceMap(text))
    agreement = builder.build()
    problems = builder.problems + _agreement_problems(agreement, checked=frozenset(builder.checked))
    return agreement, sorted(problems)


def check_agreement(text: str, *, source: str) -> list[Problem]:
    """Every problem of one agreement file (empty: the file is good on its own)."""
    return _parse(text, source)[1]


def parse_agreement(text: str, *, source: str) -> Agreement:
    """The agreement in *text*; :class:`PolicyError` listing every problem if it has any."""
    agreement, problems = _parse(text, source)
    if problems or agreement is None:
        raise PolicyError(problems)
    return agreement


@dataclass(frozen=True)
class Loaded:
    """The agreements of a node, or none at all if any of them has a problem."""

    agreements: tuple[Agreement, ...]
    problems: tuple[Problem, ...]


def load_agreements(
    texts: Mapping[str, str],
    *,
    threshold: int = reidentify.DEFAULT_THRESHOLD,
    check: Callable[[Sequence[Agreement]], list[Problem]] | None = None,
) -> Loaded:
    """Parse and cross-check every agreement file (*texts*: source name → text); *threshold*
    is the node's ``reidentification_threshold`` (see :func:`validate`); *check* adds the
    problems the caller finds against what it holds (the measures an agreement names against
    the node's measures and list catalogues: :func:`node.feeds.measures.agreement_check`).

    Fail closed: if any file has any problem, no agreement is returned, so the node shares
    nothing personal with anyone until an operator fixes it (a broken file may be the one that
    names a peer, and we cannot tell which peers a file we cannot read was meant for).
    """
    parsed: list[Agreement] = []
    problems: list[Problem] = []
    for source in sorted(texts):
        agreement, found = _parse(texts[source], source)
        problems += found
        if agreement is not None and not found:
            parsed.append(agreement)
    problems += [p for p in validate(parsed, threshold=threshold) if p not in problems]
    if check is not None and parsed:
        problems += [p for p in check(parsed) if p not in problems]
    if problems:
        return Loaded((), tuple(sorted(problems)))
    return Loaded(tuple(parsed), ())


# -------------------------------------------------------------------------------- dumping


def _string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(name: str) -> str:
    return name if re.fullmatch(_BARE, name) else _string(name)


def _array(values: Iterable[str]) -> str:
    return "[" + ", ".join(_string(v) for v in sorted(values)) + "]"


def dump_agreement(a: Agreement) -> str:
    """*a* as agreement TOML: ``parse_agreement(dump_agreement(a), source=a.source) == a`` for
    a valid agreement whose feed rules come after its other rules (as parsing builds them)."""
    out = [f"id = {_string(a.id)}", f"version = {a.version}", f"peers = {_array(a.peers)}"]
    if a.profile is not None:
        out.append(f"profile = {_string(a.profile)}")
    if a.basis is not None:
        out.append(f"basis = {_string(a.basis)}")
    out.append(f"purposes = {_array(a.purposes)}")
    if a.measures:
        out += ["", "[measures]"]
        out += [f"{_key(k)} = [{', '.join(_string(c) for c in v)}]" for k, v in a.measures.items()]
    feed: dict[str, dict[str, Form]] = {}
    for rule in a.rules:
        if rule.feed:
            feed.setdefault(rule.data_class, {}).update(rule.fields)
            continue
        out += ["", "[[rule]]", f"data_class = {_string(rule.data_class)}"]
        out += [f"purposes = {_array(rule.purposes)}", "[rule.fields]"]
        out += [f"{_key(n)} = {_string(str(f))}" for n, f in rule.fields.items()]
    for data_class, fields in feed.items():
        out += ["", f"[feed.{_key(data_class)}]"]
        out += [f"{_key(n)} = {_string(str(f))}" for n, f in fields.items()]
    return "\n".join(out) + "\n"
