"""The measures catalogue: the punishment and reward measures (惩戒措施, 激励措施) list entries
may name, and the rules each one obeys (pure, except :func:`load` and :func:`load_home`).

A catalogue is a versioned TOML document (the national base, as the alliance uses it:
``deploy/measures.toml``) that cities may extend with a supplement of their own (Jinan's
失信惩戒措施补充清单: ``deploy/measures.jinan.toml``)::

    version = 1                          # integer >= 1, bumped on every change
    name = "national"                    # the document's name: a-z, 0-9, '.', '-'
    title = "全国失信惩戒措施基础清单（摘编示例）"  # optional
    extends = "national"                 # a supplement only: the base it extends

    [[measure]]
    code = "GP.BAN"                      # 1-32 of A-Z a-z 0-9 '.', '_', '-' (as CSVs write it)
    name = "限制参加政府采购活动"
    category = "rights-reducing"         # see CATEGORIES
    basis = "《中华人民共和国政府采购法》第二十二条、第七十七条"
    department = "财政部门"               # the implementing department's type
    lists = ["procurement-serious"]      # list codes (deploy/lists.*.toml) it applies to
    mandatory = true                     # 强制 by default, when a row leaves it unmarked

Punishment categories (black, watch and abnormal lists): ``rights-reducing`` (减损权益或增加义务),
``management`` (与公共管理相关), ``third-party`` (市场化、行业性惩戒, by institutions outside
government). Incentive categories (red lists): ``facilitation`` (便利服务), ``support``
(政策扶持、优先支持), ``market-incentive`` (市场化激励).

A supplement adds measures; repeating a base code with the same content is allowed (a city
restating the national measure), with different content it is a conflict, reported at the
supplement's line. Every key is checked: an unknown key is a problem, not ignored.
:func:`parse` raises one :class:`MeasuresError` listing every problem as ``source:line: message``.

>>> base = '''
... version = 2
... name = "national"
... [[measure]]
... code = "GP.BAN"
... name = "限制参加政府采购活动"
... category = "rights-reducing"
... basis = "政府采购法第二十二条"
... department = "财政部门"
... lists = ["procurement-serious"]
... mandatory = true
... '''
>>> cat = parse(base, source="measures.toml")
>>> m = cat.find("GP.BAN")
>>> m.name, m.incentive, cat.label
('限制参加政府采购活动', False, 'national v2')
>>> cat.problem([("GP.BAN", True)], list_code="tax-major", list_kind="black", reference=False)
'惩戒措施: measure 1 does not apply to tax-major (measures catalogue national v2)'
>>> try:
...     parse(base.replace("mandatory = true", "mandatory = 1"), source="measures.toml")
... except MeasuresError as e:
...     print(e)
measures.toml:11: measure GP.BAN: mandatory must be true or false
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from node.errors import ConfigError, CreditnodeError

if TYPE_CHECKING:
    # node.policy.agreement (20 ms with the masks and regions it loads) only when a document
    # is read: `lists` shows held catalogues' labels without parsing one.
    from node.policy.agreement import Agreement, Problem, SourceMap

__all__ = [
    "CATEGORIES",
    "INCENTIVE_CATEGORIES",
    "MEASURES_EXAMPLE",
    "PUNISHMENT_CATEGORIES",
    "Measure",
    "MeasureCatalogue",
    "MeasuresError",
    "agreement_check",
    "agreement_problems",
    "check",
    "from_documents",
    "home_files",
    "load",
    "load_home",
    "pack_documents",
    "packaged",
    "parse",
    "unpack_documents",
]

# The packaged national base (the same text as deploy/measures.toml).
MEASURES_EXAMPLE = Path(__file__).parent / "measures.toml"

PUNISHMENT_CATEGORIES: tuple[str, ...] = ("rights-reducing", "management", "third-party")
INCENTIVE_CATEGORIES: tuple[str, ...] = ("facilitation", "support", "market-incentive")
CATEGORIES: tuple[str, ...] = (*PUNISHMENT_CATEGORIES, *INCENTIVE_CATEGORIES)
CATEGORY_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "rights-reducing": "减损权益或增加义务",
        "management": "与公共管理相关",
        "third-party": "市场化、行业性惩戒",
        "facilitation": "便利服务",
        "support": "政策扶持",
        "market-incentive": "市场化激励",
    }
)
# Which list kinds (node.feeds.catalogue.KINDS) each side of the catalogue serves.
_PUNISHED_KINDS = frozenset({"black", "watch", "abnormal"})

_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")  # as adapters.list_csv reads a 惩戒措施 item
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,39}")  # document names and list codes
MAX_DOCUMENTS = 16  # a base and its supplements
MAX_CATALOGUE_BYTES = 4 << 20  # what a node fetches from a partner at most
_MAX_TEXT = 400  # names, bases and departments are short; a longer one is a mistake
_TOP_KEYS = frozenset({"version", "name", "title", "extends", "measure"})
_MEASURE_KEYS = frozenset({"code", "name", "category", "basis", "department", "lists", "mandatory"})


class MeasuresError(ConfigError):
    """A measures catalogue that must not be used; ``problems`` lists each as
    ``source:line: message``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__((self.problems[0] if self.problems else "invalid measures") + more)


@dataclass(frozen=True)
class Measure:
    """One measure of the catalogue; ``where`` is the ``source:line`` that defines it."""

    code: str
    name: str
    category: str  # one of CATEGORIES
    basis: str
    department: str
    lists: tuple[str, ...]
    mandatory: bool
    where: str = ""

    @property
    def incentive(self) -> bool:
        return self.category in INCENTIVE_CATEGORIES

    def content(self) -> tuple[object, ...]:
        """What two definitions of one code must agree on."""
        return (self.code, self.name, self.category, self.basis, self.department,
                self.lists, self.mandatory)  # fmt: skip


@dataclass(frozen=True)
class MeasureCatalogue:
    """The measures in force: a base document and the supplements merged into it."""

    name: str
    version: int
    title: str
    measures: tuple[Measure, ...]
    supplements: tuple[tuple[str, int], ...]  # (name, version) of each supplement merged
    sha256: str  # of the documents' bytes, base first: what a subscriber compares
    source: str
    # The documents' bytes as hashed (each length-prefixed, base first): what a partner
    # fetches and checks against ``sha256`` (see :func:`from_documents`).
    documents: bytes = b""

    @property
    def label(self) -> str:
        """``national v2`` or ``national v2 + jinan v1``: the version an entry is checked by."""
        parts = [f"{self.name} v{self.version}"]
        parts += [f"{n} v{v}" for n, v in self.supplements]
        return " + ".join(parts)

    def find(self, code: str) -> Measure | None:
        for m in self.measures:
            if m.code == code:
                return m
        return None

    def problem(
        self,
        items: Iterable[tuple[str, bool]],
        *,
        list_code: str,
        list_kind: str,
        reference: bool,
    ) -> str | None:
        """Why a row's measures (code, marked 强制) break the catalogue, or None. Items are
        named by position, never by value: the reason repeats nothing of the row."""
        for n, (code, mandatory) in enumerate(items, 1):
            found = self.find(code)
            if found is None:
                return f"惩戒措施: measure {n} is not in the measures catalogue {self.label}"
            if list_code not in found.lists:
                return (
                    f"惩戒措施: measure {n} does not apply to {list_code} "
                    f"(measures catalogue {self.label})"
                )
            if found.incentive == (list_kind in _PUNISHED_KINDS):
                side = "an incentive" if found.incentive else "a punishment"
                return f"惩戒措施: measure {n} is {side}, and {list_code} is a {list_kind} list"
            if mandatory and reference:
                return (
                    f"惩戒措施: measure {n} is marked 强制, and an entry given for reference "
                    "(provenance reference) cannot make a measure mandatory"
                )
        return None

    def mandatory(self, code: str, marked: bool | None, *, reference: bool) -> bool:
        """Whether a measure is mandatory on an entry: as the row marks it, else the
        catalogue's default; never on an entry given for reference."""
        if reference:
            return False
        if marked is not None:
            return marked
        found = self.find(code)
        return found.mandatory if found is not None else False


@dataclass(frozen=True)
class _Doc:
    name: str
    version: int
    title: str
    extends: str
    measures: tuple[Measure, ...]
    text: str
    source: str


class _Reader:
    """Walks one parsed document, recording each problem at its line."""

    def __init__(self, doc: dict[str, Any], source: str, lines: SourceMap) -> None:
        self.doc = doc
        self.source = source
        self.lines = lines
        self.problems: list[tuple[int, str]] = []

    def line(self, path: tuple[str | int, ...]) -> int:
        return self.lines.line(path)

    def problem(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append((self.line(path), message))

    def text(
        self,
        table: Mapping[str, Any],
        key: str,
        path: tuple[str | int, ...],
        what: str,
        *,
        required: bool = True,
    ) -> str:
        value = table.get(key, None if required else "")
        if (
            not isinstance(value, str)
            or (required and not value.strip())
            or len(value) > _MAX_TEXT
            or any(unicodedata.category(c) in ("Cc", "Cf") for c in value)
        ):
            need = "a non-empty string" if required else "a string"
            self.problem(
                (*path, key), f"{what}: {key} must be {need} of at most {_MAX_TEXT} characters "
                "without control or format characters",
            )  # fmt: skip
            return ""
        return value.strip()

    def measure(self, i: int, raw: Any) -> Measure | None:
        path: tuple[str | int, ...] = ("measure", i)
        if not isinstance(raw, dict):
            self.problem(path, f"measure {i + 1}: must be a table ([[measure]])")
            return None
        code = raw.get("code")
        ok_code = isinstance(code, str) and _CODE.fullmatch(code) is not None
        what = f"measure {code}" if ok_code else f"measure {i + 1}"
        for key in raw:
            if key not in _MEASURE_KEYS:
                self.problem((*path, key), f"{what}: unknown key {key!r}")
        if not ok_code:
            self.problem(
                (*path, "code"), f"{what}: code must be 1-32 characters of A-Z, a-z, 0-9, '.', "
                "'_', '-'",
            )  # fmt: skip
        name = self.text(raw, "name", path, what)
        category = raw.get("category")
        if category not in CATEGORIES:
            self.problem(
                (*path, "category"), f"{what}: category must be one of {', '.join(CATEGORIES)}"
            )
        basis = self.text(raw, "basis", path, what)
        department = self.text(raw, "department", path, what)
        lists = raw.get("lists")
        if (
            not isinstance(lists, list)
            or not lists
            or not all(isinstance(c, str) and _NAME.fullmatch(c) for c in lists)
        ):
            self.problem((*path, "lists"), f"{what}: lists must be a non-empty list of list codes")
            lists = []
        elif len(set(lists)) != len(lists):
            self.problem((*path, "lists"), f"{what}: lists repeats a list code")
        mandatory = raw.get("mandatory")
        if not isinstance(mandatory, bool):
            self.problem((*path, "mandatory"), f"{what}: mandatory must be true or false")
            mandatory = False
        if not ok_code or category not in CATEGORIES:
            return None
        return Measure(
            code=cast(str, code), name=name, category=str(category), basis=basis,
            department=department, lists=tuple(cast(list[str], lists)), mandatory=mandatory,
            where=f"{self.source}:{self.line(path)}",
        )  # fmt: skip

    def document(self, text: str) -> _Doc:
        for key in self.doc:
            if key not in _TOP_KEYS:
                self.problem((key,), f"measures: unknown key {key!r}")
        version = self.doc.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
            self.problem(("version",), "measures: version must be an integer >= 1")
            version = 0
        names: list[str] = []
        for key in ("name", "extends"):
            value = self.doc.get(key, "")
            if not isinstance(value, str) or (
                (value or key == "name") and not _NAME.fullmatch(value)
            ):
                self.problem(
                    (key,), f"measures: {key} must be 1-40 characters of a-z, 0-9, '.', '-'"
                )
                value = ""
            names.append(value)
        title = self.text(self.doc, "title", (), "measures", required=False)
        raw = self.doc.get("measure")
        if not isinstance(raw, list) or not raw:
            self.problem(("measure",), "measures: needs at least one [[measure]]")
            raw = []
        measures: list[Measure] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            m = self.measure(i, item)
            if m is None:
                continue
            if m.code in seen:
                self.problem(
                    ("measure", i, "code"), f"measure {m.code}: code repeats measure {seen[m.code]}"
                )
                continue
            seen[m.code] = i + 1
            measures.append(m)
        return _Doc(names[0], version, title, names[1], tuple(measures), text, self.source)


def _read(text: str, source: str) -> tuple[_Doc | None, list[str]]:
    from node.policy.agreement import SourceMap, toml_error_line

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{source}:{toml_error_line(exc, text)}: not valid TOML: {exc}"]
    reader = _Reader(doc, source, SourceMap(text))
    read = reader.document(text)
    return read, [f"{source}:{line}: {message}" for line, message in sorted(reader.problems)]


def _merge(base: _Doc, supplements: Sequence[_Doc]) -> tuple[MeasureCatalogue, list[str]]:
    problems: list[str] = []
    if base.extends:
        problems.append(f"{base.source}:1: measures: a base document must not extend another")
    merged: dict[str, Measure] = {m.code: m for m in base.measures}
    names = {base.name}
    blob = pack_documents([d.text for d in (base, *supplements)])
    for doc in supplements:
        if doc.extends != base.name:
            problems.append(
                f"{doc.source}:1: measures: a supplement must say extends = {base.name!r}"
            )
        if doc.name in names:
            problems.append(f"{doc.source}:1: measures: name {doc.name!r} is already in use")
        names.add(doc.name)
        for m in doc.measures:
            prior = merged.get(m.code)
            if prior is None:
                merged[m.code] = m
            elif prior.content() != m.content():
                problems.append(
                    f"{m.where}: measure {m.code} conflicts with its definition at {prior.where}"
                )
    catalogue = MeasureCatalogue(
        name=base.name, version=base.version, title=base.title,
        measures=tuple(merged.values()),
        supplements=tuple((d.name, d.version) for d in supplements),
        sha256=hashlib.sha256(blob).hexdigest(), source=base.source, documents=blob,
    )  # fmt: skip
    return catalogue, problems


def check(
    text: str,
    *,
    source: str,
    supplements: Sequence[tuple[str, str]] = (),
    list_kinds: Mapping[str, str] | None = None,
) -> list[str]:
    """Every problem of a base text and its supplements (``(text, source)`` pairs), as
    ``source:line: message`` (empty: good). With *list_kinds* (list code → kind, from the
    list catalogue), every list a measure names must exist and be of the measure's side."""
    return _build(text, source, supplements, list_kinds)[1]


def _build(
    text: str,
    source: str,
    supplements: Sequence[tuple[str, str]],
    list_kinds: Mapping[str, str] | None,
) -> tuple[MeasureCatalogue | None, list[str]]:
    base, problems = _read(text, source)
    docs: list[_Doc] = []
    for sup_text, sup_source in supplements:
        doc, found = _read(sup_text, sup_source)
        problems += found
        if doc is not None:
            if not doc.extends and not found:
                problems.append(f"{sup_source}:1: measures: a supplement must set extends")
            docs.append(doc)
    if base is None:
        return None, problems
    catalogue, found = _merge(base, docs)
    problems += found
    if list_kinds is not None:
        for m in catalogue.measures:
            for code in m.lists:
                kind = list_kinds.get(code)
                if kind is None:
                    problems.append(
                        f"{m.where}: measure {m.code}: list {code} is not in the list catalogue"
                    )
                elif m.incentive == (kind in _PUNISHED_KINDS):
                    side = "an incentive" if m.incentive else "a punishment"
                    problems.append(
                        f"{m.where}: measure {m.code} is {side}; list {code} is a {kind} list"
                    )
    return catalogue, problems


def parse(
    text: str,
    *,
    source: str,
    supplements: Sequence[tuple[str, str]] = (),
    list_kinds: Mapping[str, str] | None = None,
) -> MeasureCatalogue:
    """The catalogue in *text* with *supplements* merged; MeasuresError naming every problem."""
    catalogue, problems = _build(text, source, supplements, list_kinds)
    if problems or catalogue is None:
        raise MeasuresError(problems)
    return catalogue


def pack_documents(texts: Sequence[str]) -> bytes:
    """Documents as hashed and published: each one's UTF-8 bytes after its length (8 bytes,
    big-endian), base first; length-prefixed so that no two sequences of documents hash alike."""
    return b"".join(len(b).to_bytes(8, "big") + b for b in (t.encode() for t in texts))


def unpack_documents(blob: bytes) -> list[str]:
    """The documents of :func:`pack_documents` (MeasuresError if *blob* is not such a packing)."""
    texts: list[str] = []
    pos = 0
    while pos < len(blob):
        size = int.from_bytes(blob[pos : pos + 8], "big")
        if len(blob) < pos + 8 or size > len(blob) - pos - 8 or len(texts) >= MAX_DOCUMENTS:
            raise MeasuresError(["measures catalogue: malformed document packing"])
        try:
            texts.append(blob[pos + 8 : pos + 8 + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise MeasuresError(["measures catalogue: a document is not UTF-8"]) from None
        pos += 8 + size
    if not texts:
        raise MeasuresError(["measures catalogue: no documents"])
    return texts


def from_documents(blob: bytes, sha256: str, *, source: str) -> MeasureCatalogue:
    """The catalogue a partner published under *sha256*, from the documents it served: the
    bytes must hash to the digest (the one committed in its signed leaves) and parse.
    MeasuresError otherwise; *source* names where they came from in problems."""
    if len(blob) > MAX_CATALOGUE_BYTES:
        raise MeasuresError(
            [f"{source}: measures catalogue larger than {MAX_CATALOGUE_BYTES} bytes"]
        )
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise MeasuresError([f"{source}: measures catalogue does not hash to the digest asked for"])
    texts = unpack_documents(blob)
    names = [f"{source}#{i}" for i in range(len(texts))]
    supplements = list(zip(texts[1:], names[1:], strict=True))
    catalogue = parse(texts[0], source=names[0], supplements=supplements)
    if catalogue.sha256 != sha256:  # the same packing hashed: a bug, never accepted
        raise MeasuresError([f"{source}: measures catalogue digest differs once parsed"])
    return catalogue


def _text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MeasuresError([f"{path}: missing"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MeasuresError([f"{path}: cannot read ({exc})"]) from None


def load(
    path: Path,
    supplements: Sequence[Path] = (),
    *,
    list_kinds: Mapping[str, str] | None = None,
) -> MeasureCatalogue:
    """Read and parse a base document and its supplements (the only I/O here)."""
    return parse(
        _text(path),
        source=str(path),
        supplements=[(_text(p), str(p)) for p in supplements],
        list_kinds=list_kinds,
    )


@functools.cache
def packaged() -> MeasureCatalogue:
    """The packaged national base (MEASURES_EXAMPLE), read once."""
    return load(MEASURES_EXAMPLE)


def home_files(root: Path) -> tuple[Path, list[Path]]:
    """A node home's measures documents: ``HOME/measures.toml`` (the packaged national base
    when absent) and the city's supplement ``HOME/measures.supplement.toml`` if present."""
    base = root / "measures.toml"
    supplement = root / "measures.supplement.toml"
    return (
        base if base.exists() else MEASURES_EXAMPLE,
        [supplement] if supplement.exists() else [],
    )


def load_home(root: Path, *, list_kinds: Mapping[str, str] | None = None) -> MeasureCatalogue:
    """The measures catalogue in force at the node home *root* (see :func:`home_files`)."""
    base, supplements = home_files(root)
    return load(base, supplements, list_kinds=list_kinds)


def agreement_problems(
    agreements: Sequence[Agreement],
    catalogue: MeasureCatalogue,
    list_codes: Iterable[str] | None = None,
) -> list[Problem]:
    """Every measure an agreement's ``[measures]`` names that the catalogue in force does not
    have, or that does not apply to the list it is named for; with *list_codes* (the list
    catalogue's), every list named must be one of them. One line each, naming file and field."""
    lists = None if list_codes is None else frozenset(list_codes)
    out: list[Problem] = []
    for a in agreements:
        for list_code, codes in a.measures.items():
            where = ("measures", list_code)
            if lists is not None and list_code not in lists:
                out.append(a.problem(where, f"measures.{list_code}: no list {list_code} in the "
                                            "list catalogue"))  # fmt: skip
                continue
            for code in codes:
                found = catalogue.find(code)
                if found is None:
                    reason = f"is not in the measures catalogue {catalogue.label}"
                elif list_code not in found.lists:
                    reason = f"does not apply to {list_code} (measures catalogue {catalogue.label})"
                else:
                    continue
                out.append(a.problem(where, f"measures.{list_code}: measure {code} {reason}",
                                     value=code))  # fmt: skip
    return out


def agreement_check(
    root: Path, list_kinds: Callable[[], Mapping[str, str]] | None = None
) -> Callable[[Sequence[Agreement]], list[Problem]]:
    """The check :func:`node.policy.agreement.load_agreements` runs at the node home *root*:
    the catalogue in force is read only when an agreement names measures, and one that cannot
    be read is a problem of that agreement (fail closed). *list_kinds* gives the list
    catalogue's codes (None: list codes are not checked)."""

    def check(agreements: Sequence[Agreement]) -> list[Problem]:
        naming = [a for a in agreements if a.measures]
        if not naming:
            return []
        try:
            kinds = list_kinds() if list_kinds is not None else None
            catalogue = load_home(root, list_kinds=kinds)
        except CreditnodeError as exc:
            return [a.problem(("measures",), f"measures: the measures catalogue in force cannot "
                              f"be read: {exc}") for a in naming]  # fmt: skip
        return agreement_problems(naming, catalogue, None if kinds is None else kinds.keys())

    return check
