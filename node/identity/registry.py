"""Identity over what this node holds: the crosswalk, resolving any identifier to USCCs, the
merged view of one entity across every origin, and the conflicts between cities' records."""

from __future__ import annotations

import collections.abc as cabc
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select

from adapters.crosswalk_csv import Mapping, read_crosswalk
from adapters.list_csv import Quarantined
from node.feeds import counts
from node.feeds.dates import shanghai_today
from node.feeds.logstore import LOGS
from node.feeds.state import DISCLOSURES, STATE, active
from node.identity.names import normalise_name
from node.identity.validate import CodeCheck, classify
from node.storage import Store, dialect
from node.storage.models import CrosswalkRecord, utcnow

CROSSWALK = CrosswalkRecord.__table__  # type: ignore[attr-defined]


async def load_crosswalk(store: Store, path: Path) -> tuple[int, list[Quarantined]]:
    """Load a registry export; return (mappings stored, quarantined rows)."""
    rows: list[tuple[str, str, str, str, object]] = []
    quarantined: list[Quarantined] = []
    now = utcnow()
    for item in read_crosswalk(path):
        if isinstance(item, Mapping):
            rows.append((item.legacy, item.uscc, item.kind, str(path)[:1000], now))
        else:
            quarantined.append(item)
    async with store.begin() as conn:
        await dialect.bulk_insert(
            conn, CROSSWALK, ("legacy", "uscc", "kind", "source", "loaded_at"), rows,
            conflict_keys=("legacy", "uscc"), update=("kind", "source", "loaded_at"),
        )  # fmt: skip
        await counts.note_crosswalk_candidates(conn, {r[0] for r in rows})
    return len(rows), quarantined


@dataclass(frozen=True)
class Resolution:
    check: CodeCheck
    usccs: tuple[str, ...]
    how: str  # one line: how the identifier led to the USCCs, or why it could not


def org_code_in_state() -> ColumnElement[str]:
    """``substr(uscc, 9, 9)`` of list_state: the organisation code a held USCC embeds.

    Literal 9s, not bound parameters: the planner uses the expression index of migration 0020
    (ix_list_state_org, on substr(uscc, 9, 9)) only for the very expression it indexes."""
    return func.substr(STATE.c.uscc, literal_column("9"), literal_column("9"))


def _org_code_of_tax_no(check: CodeCheck) -> str:
    return check.normalised[6:15]


async def resolve(store: Store, text: str) -> Resolution:
    """Resolve any identifier to the USCCs it names, saying plainly when it cannot."""
    check = classify(text)
    if check.status == "invalid":
        return Resolution(check, (), f"not a valid identifier: {check.reason}")
    if check.kind == "uscc":
        return Resolution(check, (check.normalised,), "a USCC names itself")
    async with store.engine.connect() as conn:
        if check.kind in ("org_code", "tax_no"):
            org = check.normalised if check.kind == "org_code" else _org_code_of_tax_no(check)
            crossed = (
                (await conn.execute(select(CROSSWALK.c.uscc).where(CROSSWALK.c.legacy == org)))
                .scalars()
                .all()
            )
            embedded = (await conn.execute(
                select(STATE.c.uscc).distinct().where(org_code_in_state() == org)
            )).scalars().all()  # fmt: skip
            found = tuple(sorted({*crossed, *embedded}))
            how = (f"organisation code {org} is positions 9-17 of "
                   f"{', '.join(found)}" if found else
                   f"no USCC held here embeds organisation code {org}, and no crosswalk "
                   "entry names it")  # fmt: skip
            return Resolution(check, found, how)
        if check.kind == "reg_no":
            found = tuple(sorted((await conn.execute(
                select(CROSSWALK.c.uscc).where(CROSSWALK.c.legacy == check.normalised)
            )).scalars().all()))  # fmt: skip
            how = (
                "linked by the registry crosswalk"
                if found
                else "a registration number links to a USCC only through a crosswalk, and the "
                "loaded crosswalk does not name it (load one: creditnode identity crosswalk)"
            )
            return Resolution(check, found, how)
    return Resolution(check, (), f"a {check.kind} is a person's identifier, not an entity's")


@dataclass
class Membership:
    origin: str
    list_name: str
    list_type: int
    status: int
    removal_reason: int
    listing_date: str
    disclosure_end: str
    severity: int
    subject_name: str


@dataclass
class EntityView:
    key: str
    memberships: list[Membership] = field(default_factory=list)

    @property
    def names(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for m in self.memberships:
            if m.subject_name:
                out[m.origin].add(m.subject_name)
        return dict(out)


async def _memberships(store: Store, own: str, where: object) -> list[Membership]:
    """Active memberships only: a repaired, removed or expired entry is not the entity's any
    more, wherever it was listed."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(LOGS.c.peer, STATE)
            .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
            .where(and_(where, active(shanghai_today())))  # type: ignore[arg-type]
            .order_by(LOGS.c.peer, STATE.c.listing_date)
        )
        return [
            Membership(r.peer or own, r.list_name, r.list_type, r.status, r.removal_reason,
                       r.listing_date, r.disclosure_end, r.severity, r.subject_name)
            for r in rows
        ]  # fmt: skip


async def entity_by_uscc(store: Store, own: str, uscc: str) -> EntityView:
    return EntityView(uscc, await _memberships(store, own, STATE.c.uscc == uscc))


async def entity_by_person(
    store: Store, own: str, pseudonyms: cabc.Mapping[str, str]
) -> EntityView:
    """Everything held about a person, found by each origin's own pseudonym of it (never by
    the raw ID): *pseudonyms* maps an origin's URI to its pseudonym of the person, computed here
    for this node's own log and obtained obliviously from each peer for theirs."""
    if not pseudonyms:
        return EntityView("")
    async with store.engine.connect() as conn:
        pairs = (await conn.execute(
            select(DISCLOSURES.c.log_id, DISCLOSURES.c.entry_id)
            .select_from(DISCLOSURES.join(LOGS, LOGS.c.id == DISCLOSURES.c.log_id))
            .where(and_(DISCLOSURES.c.field == "person_pseudonym", or_(*(
                and_(LOGS.c.origin == origin, DISCLOSURES.c.value == p)
                for origin, p in sorted(pseudonyms.items())))))
        )).all()  # fmt: skip
    key = ",".join(sorted(pseudonyms.values()))
    if not pairs:
        return EntityView(key)
    cond = [and_(STATE.c.log_id == lid, STATE.c.entry_id == eid) for lid, eid in pairs]
    return EntityView(key, await _memberships(store, own, or_(*cond)))


@dataclass(frozen=True)
class Conflict:
    kind: str  # names | legacy | invalid_code
    key: str
    detail: str


async def find_conflicts(store: Store, own: str) -> list[Conflict]:
    """Same USCC under materially different names; one legacy code naming two USCCs; codes in
    peers' feeds that fail validation (重错码 candidates).

    Without reading every row (issue 17): the writers keep ``conflict_candidates`` (USCCs and
    codes that ever had two names or two USCCs) and ``code_suspect`` (a partial index of
    peers' failing codes), a superset of today's conflicts; only the candidates' active rows
    are read, and judged by :func:`judge_conflicts`, the rule :func:`find_conflicts_scan`
    applies to every row, so the answer is the same."""
    async with store.engine.connect() as conn:
        usccs: set[str] = set()
        codes: set[str] = set()
        for kind, key in await conn.execute(candidate_queries()["candidates"]):
            (usccs if kind == "uscc" else codes).add(key)
        usccs |= set((await conn.execute(candidate_queries()["suspect"])).scalars())
        today = active(shanghai_today())
        rows: dict[tuple[object, ...], tuple[str | None, str, str, str]] = {}
        for where, keys in ((STATE.c.uscc, sorted(usccs)), (counts.ORG, sorted(codes))):
            for i in range(0, len(keys), _CHUNK):
                for r in await conn.execute(
                    select(STATE.c.log_id, STATE.c.entry_id, LOGS.c.peer, STATE.c.uscc,
                           STATE.c.subject_name, STATE.c.list_name)
                    .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                    .where(and_(STATE.c.uscc != "", today, where.in_(keys[i : i + _CHUNK])))
                ):  # fmt: skip
                    rows[r[0], r[1]] = (r[2], r[3], r[4], r[5])
        crossed: list[tuple[str, str]] = []  # (legacy, uscc)
        legacy = sorted(codes)
        for i in range(0, len(legacy), _CHUNK):
            crossed.extend(
                (await conn.execute(
                    select(CROSSWALK.c.legacy, CROSSWALK.c.uscc)
                    .where(CROSSWALK.c.legacy.in_(legacy[i : i + _CHUNK]))
                )).all()
            )  # fmt: skip
    return judge_conflicts(own, list(rows.values()), sorted((a, b) for a, b in crossed))


_CHUNK = 500


def candidate_queries() -> dict[str, Select[*tuple[Any, ...]]]:
    """What :func:`find_conflicts` reads before the candidates' rows: the recorded candidates,
    and peers' suspect codes from their partial index. Neither reads list_state's rows."""
    return {
        "candidates": select(counts.CANDIDATES.c.kind, counts.CANDIDATES.c.key),
        "suspect": select(STATE.c.uscc)
        .where(STATE.c.code_suspect == literal_column("1"))
        .distinct(),
    }


async def find_conflicts_scan(store: Store, own: str) -> list[Conflict]:
    """:func:`find_conflicts` by loading every active row: the reference it must equal, kept
    for the equivalence test and the bench (O(n); not for a routine path)."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            select(LOGS.c.peer, STATE.c.uscc, STATE.c.subject_name, STATE.c.list_name)
            .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
            .where(and_(STATE.c.uscc != "", active(shanghai_today())))
        )).all()  # fmt: skip
        crossed = (
            await conn.execute(
                select(CROSSWALK.c.legacy, CROSSWALK.c.uscc).order_by(CROSSWALK.c.legacy)
            )
        ).all()
    return judge_conflicts(own, [tuple(r) for r in rows], [tuple(r) for r in crossed])


def judge_conflicts(
    own: str,
    rows: cabc.Iterable[tuple[str | None, str, str, str]],
    crossed: cabc.Iterable[tuple[str, str]],
) -> list[Conflict]:
    """The conflicts among active *rows* (peer or None for this node, USCC, subject name,
    list name) and *crossed* (legacy code, USCC) crosswalk rows (pure)."""
    out: list[Conflict] = []
    names: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    by_org: dict[str, set[str]] = defaultdict(set)
    checked: dict[str, CodeCheck] = {}
    invalid: dict[tuple[str, str], str] = {}
    for peer, uscc, name, list_name in rows:
        origin = peer or own
        if name:
            names[uscc][normalise_name(name)].add(f"{origin}: {name}")
        by_org[uscc[8:17]].add(uscc)
        if peer is not None:
            check = checked.get(uscc) or checked.setdefault(uscc, classify(uscc))
            # Lenient warnings count too: a code that fails its final check is a 重错码
            # candidate even if pre-2016 exceptions mean it may be real.
            if check.status != "valid" or check.kind != "uscc":
                invalid[uscc, f"{origin} / {list_name}"] = check.reason or f"is a {check.kind}"
    out.extend(
        Conflict("invalid_code", uscc, f"{where}: {why}")
        for (uscc, where), why in sorted(invalid.items())
    )
    for uscc, variants in sorted(names.items()):
        if len(variants) > 1:
            shown = "; ".join(sorted(n for group in variants.values() for n in group))
            out.append(Conflict("names", uscc, shown))
    legacy: dict[str, set[str]] = defaultdict(set)
    for code, uscc in crossed:
        legacy[code].add(uscc)
    for org, usccs in by_org.items():
        if len(usccs) > 1:
            legacy[org] |= usccs
    for code, usccs in sorted(legacy.items()):
        if len(usccs) > 1:
            out.append(Conflict("legacy", code, f"resolves to {', '.join(sorted(usccs))}"))
    return out
