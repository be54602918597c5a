"""The alliance's list catalogue: which lists exist, and the rules each one obeys (pure, except
:func:`load`).

A catalogue is a versioned TOML document (the alliance's example:
``deploy/lists.yellow-river.toml``; a node's copy: ``HOME/lists.toml``, setting ``catalogue``)::

    version = 1                          # integer >= 1, bumped on every change
    alliance = "yellow-river"            # the federation it serves
    title = "黄河流域省会城市信用联盟名单目录"   # optional

    [disclosure]                         # the general rule: terms by severity
    rule = "…"                           # what it says
    citation = "《信用修复管理办法》…"      # where it says it
    minor = { min_months = 0, max_months = 3, shared = false }
    general = { min_months = 3, max_months = 12, shared = true }
    serious = { min_months = 12, max_months = 36, shared = true }

    [[list]]
    code = "procurement-serious"         # the alliance's code: a-z, 0-9, '.', '-'
    name = "政府采购严重违法失信行为记录名单"  # the official name (名单名称)
    kind = "black"                       # black | red | watch | abnormal (经营异常名录)
    rule = "…"                           # the governing rule, and its citation
    citation = "《中华人民共和国政府采购法》第七十七条"
    term = { kind = "window", min_months = 12, max_months = 36 }
    repair_after_months = 12             # optional: the term's minimum by default
    severities = ["serious"]             # optional: the only severities it may hold
    requires_decision_date = false       # optional: rows must give 认定日期
    id_mask = "court_id"                 # court_id | tax_id | none: the masked ID it publishes
    public_fields = []                   # personal ListEntry fields its rule makes public

Terms (months, from the decision date 认定日期, i.e. 列入日期 when a list does not require it):
``severity`` (the ``[disclosure]`` window of the row's severity; a minor entry is not shared
unless its window says ``shared = true``), ``window`` (``min_months`` to ``max_months``),
``fixed`` (``months``, extendable up to ``extendable_to_months``) and ``until_fulfilled``
(until the obligation is met; ``max_months`` optional). A row's 公示截止日期 must fall inside
its window: no earlier than the minimum less one day (a period "of one year" from 2024-03-05
may end on 2025-03-04 or 2025-03-05) and no later than the maximum; a list with a maximum needs
a 公示截止日期, except an ``until_fulfilled`` one. A repair removal may come once the repair
minimum has passed.

Every key is checked: an unknown key is a problem, not ignored. :func:`parse` raises one
:class:`CatalogueError` listing every problem as ``source:line: message``.

>>> text = '''
... version = 1
... alliance = "yellow-river"
... [disclosure]
... rule = "by severity"
... citation = "NDRC Order 2025 No. 36"
... minor = { min_months = 0, max_months = 3, shared = false }
... general = { min_months = 3, max_months = 12, shared = true }
... serious = { min_months = 12, max_months = 36, shared = true }
... [[list]]
... code = "procurement-serious"
... name = "政府采购严重违法失信行为记录名单"
... kind = "black"
... rule = "一至三年内禁止参加政府采购活动"
... citation = "政府采购法第七十七条"
... term = { kind = "window", min_months = 12, max_months = 36 }
... id_mask = "court_id"
... public_fields = []
... '''
>>> cat = parse(text, source="lists.toml")
>>> spec = cat.resolve("政府采购严重违法失信行为记录名单")
>>> spec.code, spec.kind, spec.window("serious").max_months
('procurement-serious', 'black', 36)
>>> import datetime as dt
>>> problem = spec.window_problem("serious", dt.date(2024, 3, 5), dt.date(2028, 3, 5))
>>> problem.split(" entries")[0], "12 to 36 months" in problem, problem.endswith("longer")
('公示截止日期: 政府采购严重违法失信行为记录名单', True, True)
>>> spec.repair_from("serious", dt.date(2024, 3, 5)).isoformat()
'2025-03-05'
>>> try:
...     parse(text.replace("kind = \\"black\\"", "kind = \\"grey\\""), source="lists.toml")
... except CatalogueError as e:
...     print(e)
lists.toml:13: list procurement-serious: kind must be one of black, red, watch, abnormal
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from node.api import feeds
from node.errors import ConfigError, InputError
from node.feeds.classes import RECORD_CODES
from node.feeds.leaf import COMMITTED_FIELDS
from node.policy.agreement import SourceMap, toml_error_line

__all__ = [
    "ID_MASKS",
    "KINDS",
    "SEVERITIES",
    "TERM_KINDS",
    "Catalogue",
    "CatalogueError",
    "Disclosure",
    "ListSpec",
    "Term",
    "Window",
    "add_months",
    "check",
    "load",
    "parse",
]

Kind = Literal["black", "red", "watch", "abnormal"]
KINDS: tuple[str, ...] = ("black", "red", "watch", "abnormal")
KIND_LABELS: Mapping[str, str] = MappingProxyType(
    {"black": "黑名单", "red": "红名单", "watch": "重点关注名单", "abnormal": "经营异常名录"}
)
LIST_TYPES: Mapping[str, int] = MappingProxyType(
    {
        "black": feeds.LIST_TYPE_BLACK,
        "red": feeds.LIST_TYPE_RED,
        "watch": feeds.LIST_TYPE_WATCH,
        "abnormal": feeds.LIST_TYPE_ABNORMAL,
    }
)
SEVERITIES: tuple[str, ...] = ("minor", "general", "serious")
SEVERITY_LABELS: Mapping[str, str] = MappingProxyType(
    {"minor": "轻微", "general": "一般", "serious": "严重", "": "(none)"}
)
TERM_KINDS: tuple[str, ...] = ("severity", "window", "fixed", "until_fulfilled")
ID_MASKS: tuple[str, ...] = ("court_id", "tax_id", "none")
# Personal fields a list rule may publish (committed fields other than the raw IDs).
_PUBLISHABLE = frozenset(COMMITTED_FIELDS) - {"person_id", "legal_rep_id"}
_CODE = re.compile(r"[a-z0-9][a-z0-9.-]{0,39}")

_TOP_KEYS = frozenset({"version", "alliance", "title", "disclosure", "list"})
_DISCLOSURE_KEYS = frozenset({"rule", "citation", *SEVERITIES})
_WINDOW_KEYS = frozenset({"min_months", "max_months", "shared"})
_LIST_KEYS = frozenset(
    {
        "code", "name", "kind", "rule", "citation", "term", "repair_after_months", "severities",
        "requires_decision_date", "id_mask", "public_fields",
    }
)  # fmt: skip
_TERM_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "severity": frozenset({"kind"}),
        "window": frozenset({"kind", "min_months", "max_months"}),
        "fixed": frozenset({"kind", "months", "extendable_to_months"}),
        "until_fulfilled": frozenset({"kind", "max_months"}),
    }
)


class CatalogueError(ConfigError):
    """A catalogue that must not be used; ``problems`` lists each as ``source:line: message``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__((self.problems[0] if self.problems else "invalid catalogue") + more)


def add_months(day: dt.date, months: int) -> dt.date:
    """*day* plus *months* calendar months, clamped to the month's end (2024-02-29 + 12 →
    2025-02-28)."""
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


@dataclass(frozen=True)
class Window:
    """How long an entry is disclosed, in months from its decision date, and by which rule."""

    min_months: int
    max_months: int | None  # None: no maximum (until fulfilled)
    shared: bool
    rule: str  # the citation that sets it

    def describe(self) -> str:
        if self.max_months is None:
            return f"at least {self.min_months} months" if self.min_months else "no fixed term"
        if self.min_months == self.max_months:
            return f"{self.max_months} months"
        return f"{self.min_months} to {self.max_months} months"


@dataclass(frozen=True)
class Disclosure:
    """The general rule: windows by severity."""

    rule: str
    citation: str
    windows: Mapping[str, Window]


@dataclass(frozen=True)
class Term:
    kind: str  # one of TERM_KINDS
    min_months: int = 0
    max_months: int | None = None


@dataclass(frozen=True)
class ListSpec:
    """One list of the catalogue and the rules it obeys."""

    code: str
    name: str
    kind: str  # one of KINDS
    rule: str
    citation: str
    term: Term
    repair_after_months: int | None  # None: the window's minimum
    severities: tuple[str, ...]  # empty: any
    requires_decision_date: bool
    id_mask: str  # one of ID_MASKS
    public_fields: tuple[str, ...]
    disclosure: Disclosure

    @property
    def list_type(self) -> int:
        """The ListEntry.list_type of this list's kind."""
        return LIST_TYPES[self.kind]

    def window(self, severity: str) -> Window:
        """The disclosure window of an entry of *severity* ("" when the row gives none)."""
        if self.term.kind == "severity":
            found = self.disclosure.windows.get(severity)
            if found is not None:
                return found
            # No severity given: the general rule's longest window applies.
            return self.disclosure.windows["serious"]
        return Window(self.term.min_months, self.term.max_months, True, self.citation)

    def shared(self, severity: str) -> bool:
        """Whether an entry of *severity* is shared at all (minor entries are not, by default)."""
        return self.window(severity).shared

    def window_problem(self, severity: str, decision: dt.date, end: dt.date | None) -> str | None:
        """Why a row's disclosure period breaks this list's rule, or None. The reason names the
        rule and never repeats a row's value."""
        if self.severities and severity not in self.severities:
            allowed = ", ".join(SEVERITY_LABELS[s] for s in self.severities)
            return f"严重程度: {self.name} holds {allowed} entries only ({self.citation})"
        if self.term.kind == "severity" and not severity:
            return (
                f"严重程度: must not be empty: {self.name}'s term depends on it ({self.citation})"
            )
        window = self.window(severity)
        label = f"{SEVERITY_LABELS[severity]} entries of {self.name}"
        if self.term.kind != "severity":
            label = f"{self.name} entries"
        span = f"{label} are disclosed {window.describe()} from the decision ({window.rule})"
        if end is None:
            if window.max_months is None or self.term.kind == "until_fulfilled":
                return None
            return f"公示截止日期: must not be empty: {span}"
        if end < decision:
            return "公示截止日期: precedes the decision date"
        if window.min_months and end < add_months(decision, window.min_months) - dt.timedelta(1):
            return f"公示截止日期: {span}; this row's period is shorter"
        if window.max_months is not None and end > add_months(decision, window.max_months):
            return f"公示截止日期: {span}; this row's period is longer"
        return None

    def repair_months(self, severity: str) -> int:
        """Months after the decision before a repair removal may come."""
        if self.repair_after_months is not None:
            return self.repair_after_months
        return self.window(severity).min_months

    def repair_from(self, severity: str, decision: dt.date) -> dt.date:
        """The first day a repair removal of an entry of *severity* may take effect."""
        return add_months(decision, self.repair_months(severity))


@dataclass(frozen=True)
class Catalogue:
    version: int
    alliance: str
    title: str
    disclosure: Disclosure
    lists: tuple[ListSpec, ...]
    source: str

    def find(self, code_or_name: str) -> ListSpec | None:
        """The list with this code or official name, if any."""
        wanted = code_or_name.strip()
        for spec in self.lists:
            if wanted in (spec.code, spec.name):
                return spec
        return None

    def resolve(self, code_or_name: str) -> ListSpec:
        """The list with this code or official name; InputError (exit 2) if there is none."""
        spec = self.find(code_or_name)
        if spec is None:
            raise InputError(
                f"--list {code_or_name!r} is not in the list catalogue {self.source} "
                f"(version {self.version}); known: {', '.join(s.code for s in self.lists)}"
            )
        return spec


_SEVERITY_ENUM: Mapping[str, int] = MappingProxyType(
    {
        "": feeds.SEVERITY_UNSPECIFIED,
        "minor": feeds.SEVERITY_MINOR,
        "general": feeds.SEVERITY_GENERAL,
        "serious": feeds.SEVERITY_SERIOUS,
    }
)
SEVERITY_NAMES: Mapping[int, str] = MappingProxyType({v: k for k, v in _SEVERITY_ENUM.items()})


class _Reader:
    """Walks a parsed document, recording each problem at its line."""

    def __init__(self, doc: dict[str, Any], source: str, lines: SourceMap) -> None:
        self.doc = doc
        self.source = source
        self.lines = lines
        self.problems: list[tuple[int, str]] = []

    def problem(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append((self.lines.line(path), message))

    def keys(
        self,
        table: Mapping[str, Any],
        allowed: frozenset[str],
        path: tuple[str | int, ...],
        what: str,
    ) -> None:
        for key in table:
            if key not in allowed:
                self.problem((*path, key), f"{what}: unknown key {key!r}")

    def text(
        self, table: Mapping[str, Any], key: str, path: tuple[str | int, ...], what: str
    ) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problem((*path, key), f"{what}: {key} must be a non-empty string")
            return ""
        return value.strip()

    def months(
        self,
        table: Mapping[str, Any],
        key: str,
        path: tuple[str | int, ...],
        what: str,
        *,
        required: bool = True,
    ) -> int | None:
        if key not in table:
            if required:
                self.problem(path, f"{what}: {key} is required")
            return None
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1200:
            self.problem((*path, key), f"{what}: {key} must be a whole number of months, 0-1200")
            return None
        return value

    def table(
        self, parent: Mapping[str, Any], key: str, path: tuple[str | int, ...], what: str
    ) -> dict[str, Any]:
        value = parent.get(key)
        if not isinstance(value, dict):
            self.problem((*path, key), f"{what}: {key} must be a table")
            return {}
        return cast(dict[str, Any], value)

    def disclosure(self) -> Disclosure:
        table = self.table(self.doc, "disclosure", (), "catalogue")
        path: tuple[str | int, ...] = ("disclosure",)
        self.keys(table, _DISCLOSURE_KEYS, path, "disclosure")
        rule = self.text(table, "rule", path, "disclosure") if table else ""
        citation = self.text(table, "citation", path, "disclosure") if table else ""
        windows: dict[str, Window] = {}
        for severity in SEVERITIES:
            what = f"disclosure.{severity}"
            w = self.table(table, severity, path, "disclosure") if table else {}
            wpath = (*path, severity)
            self.keys(w, _WINDOW_KEYS, wpath, what)
            lo = self.months(w, "min_months", wpath, what) if w else None
            hi = self.months(w, "max_months", wpath, what) if w else None
            shared = w.get("shared", True)
            if not isinstance(shared, bool):
                self.problem((*wpath, "shared"), f"{what}: shared must be true or false")
                shared = True
            if lo is not None and hi is not None and lo > hi:
                self.problem((*wpath, "min_months"), f"{what}: min_months exceeds max_months")
            windows[severity] = Window(lo or 0, hi if hi is not None else 0, shared, citation)
        return Disclosure(rule, citation, MappingProxyType(windows))

    def term(self, spec: Mapping[str, Any], path: tuple[str | int, ...], what: str) -> Term:
        term = self.table(spec, "term", path, what)
        if not term:
            return Term("until_fulfilled")
        tpath = (*path, "term")
        kind = term.get("kind")
        if kind not in TERM_KINDS:
            self.problem(
                (*tpath, "kind"), f"{what}: term kind must be one of {', '.join(TERM_KINDS)}"
            )
            return Term("until_fulfilled")
        self.keys(term, _TERM_KEYS[kind], tpath, f"{what}: {kind} term")
        if kind == "severity":
            return Term("severity")
        if kind == "window":
            lo = self.months(term, "min_months", tpath, what)
            hi = self.months(term, "max_months", tpath, what)
            if lo is not None and hi is not None and lo > hi:
                self.problem((*tpath, "min_months"), f"{what}: term min_months exceeds max_months")
            return Term("window", lo or 0, hi if hi is not None else 0)
        if kind == "fixed":
            months = self.months(term, "months", tpath, what)
            longest = self.months(term, "extendable_to_months", tpath, what, required=False)
            if months is not None and longest is not None and longest < months:
                self.problem(
                    (*tpath, "extendable_to_months"),
                    f"{what}: term extendable_to_months is shorter than months",
                )
            months = months or 0
            return Term("fixed", months, longest if longest is not None else months)
        longest = self.months(term, "max_months", tpath, what, required=False)
        return Term("until_fulfilled", 0, longest)

    def one_list(self, i: int, spec: Any, disclosure: Disclosure) -> ListSpec | None:
        path: tuple[str | int, ...] = ("list", i)
        if not isinstance(spec, dict):
            self.problem(path, f"list {i + 1}: must be a table ([[list]])")
            return None
        code = spec.get("code")
        what = f"list {code}" if isinstance(code, str) and code else f"list {i + 1}"
        self.keys(spec, _LIST_KEYS, path, what)
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            self.problem(
                (*path, "code"),
                f"{what}: code must be 1-40 characters of a-z, 0-9, '.', '-' (starting with a "
                "letter or digit)",
            )
        elif code in RECORD_CODES:
            # The report's data classes use these as list codes in the same feed (issue 14).
            self.problem((*path, "code"), f"{what}: code {code} is a data class's, not a list's")
        name = self.text(spec, "name", path, what)
        kind = spec.get("kind")
        if kind not in KINDS:
            self.problem((*path, "kind"), f"{what}: kind must be one of {', '.join(KINDS)}")
        rule = self.text(spec, "rule", path, what)
        citation = self.text(spec, "citation", path, what)
        term = self.term(spec, path, what)
        repair = self.months(spec, "repair_after_months", path, what, required=False)
        severities = spec.get("severities", [])
        if not isinstance(severities, list) or any(s not in SEVERITIES for s in severities):
            self.problem(
                (*path, "severities"),
                f"{what}: severities must be a list of {', '.join(SEVERITIES)}",
            )
            severities = []
        needs_date = spec.get("requires_decision_date", False)
        if not isinstance(needs_date, bool):
            self.problem(
                (*path, "requires_decision_date"),
                f"{what}: requires_decision_date must be true or false",
            )
            needs_date = False
        id_mask = spec.get("id_mask")
        if id_mask not in ID_MASKS:
            self.problem(
                (*path, "id_mask"), f"{what}: id_mask must be one of {', '.join(ID_MASKS)}"
            )
        public = spec.get("public_fields")
        if not isinstance(public, list) or not all(isinstance(f, str) for f in public):
            self.problem((*path, "public_fields"), f"{what}: public_fields must be a list of names")
            public = []
        for name_ in public:
            if name_ not in _PUBLISHABLE:
                self.problem(
                    (*path, "public_fields"),
                    f"{what}: public_fields: {name_!r} is not a personal field a rule can publish "
                    f"(one of {', '.join(sorted(_PUBLISHABLE))})",
                )
        if not isinstance(code, str) or kind not in KINDS or id_mask not in ID_MASKS:
            return None
        return ListSpec(
            code=code,
            name=name,
            kind=str(kind),
            rule=rule,
            citation=citation,
            term=term,
            repair_after_months=repair,
            severities=tuple(cast(list[str], severities)),
            requires_decision_date=needs_date,
            id_mask=str(id_mask),
            public_fields=tuple(cast(list[str], public)),
            disclosure=disclosure,
        )

    def catalogue(self) -> Catalogue:
        self.keys(self.doc, _TOP_KEYS, (), "catalogue")
        version = self.doc.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self.problem(("version",), "catalogue: version must be an integer >= 1")
            version = 0
        alliance = self.text(self.doc, "alliance", (), "catalogue")
        title = self.doc.get("title", "")
        if not isinstance(title, str):
            self.problem(("title",), "catalogue: title must be a string")
            title = ""
        disclosure = self.disclosure()
        raw = self.doc.get("list")
        if not isinstance(raw, list) or not raw:
            self.problem(("list",), "catalogue: needs at least one [[list]]")
            raw = []
        lists: list[ListSpec] = []
        codes: dict[str, int] = {}
        names: dict[str, int] = {}
        for i, item in enumerate(raw):
            spec = self.one_list(i, item, disclosure)
            if spec is None:
                continue
            for seen, value, key in ((codes, spec.code, "code"), (names, spec.name, "name")):
                if value in seen:
                    self.problem(
                        ("list", i, key), f"list {spec.code}: {key} repeats list {seen[value] + 1}"
                    )
                seen.setdefault(value, i)
            lists.append(spec)
        return Catalogue(version, alliance, title, disclosure, tuple(lists), self.source)


def _read(text: str, source: str) -> tuple[Catalogue | None, list[str]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{source}:{toml_error_line(exc, text)}: not valid TOML: {exc}"]
    reader = _Reader(doc, source, SourceMap(text))
    catalogue = reader.catalogue()
    return catalogue, [f"{source}:{line}: {message}" for line, message in sorted(reader.problems)]


def check(text: str, *, source: str) -> list[str]:
    """Every problem of a catalogue text, as ``source:line: message`` (empty: it is good)."""
    return _read(text, source)[1]


def parse(text: str, *, source: str) -> Catalogue:
    """The catalogue in *text*; CatalogueError naming every problem if there is any."""
    catalogue, problems = _read(text, source)
    if problems or catalogue is None:
        raise CatalogueError(problems)
    return catalogue


def load(path: Path) -> Catalogue:
    """Read and parse the catalogue file at *path* (the only I/O here)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueError(
            [f"{path}: missing (copy deploy/lists.yellow-river.toml there, or set `catalogue`)"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError([f"{path}: cannot read ({exc})"]) from None
    return parse(text, source=str(path))


def list_kinds(path: Path) -> dict[str, str]:
    """List code → kind of the catalogue at *path* (what the measures catalogue checks by)."""
    return {s.code: s.kind for s in load(path).lists}
