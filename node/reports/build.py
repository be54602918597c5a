"""Building and signing this node's report about one subject (the I/O edge: the store, the
home's root files and report keys).

:func:`build_report` is the one way a report is made: ``ReportService.GetReport`` calls it for
an enrolled peer with the border's decision for that peer and purpose, and the node calls it
for its own officers (``decision=None``: nothing personal in the report). Only active entries
of this node's own feed are reported (removed, repaired and expired entries never are); every
item is proved to the newest signed checkpoint, which the report carries with the witnesses'
cosignatures held for it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keys import SigningKey
from node.api import feeds
from node.audit.entry import uuid7
from node.feeds import merkle
from node.feeds.dates import shanghai_today
from node.feeds.logstore import LEAVES, read_hashes
from node.feeds.publisher import Publisher
from node.feeds.state import DISCLOSURES, STATE, active
from node.home import Home
from node.identity.pseudonym_key import PseudonymKey
from node.keys.roles import format_time, tuf_key
from node.keys.signers import RoleSigners
from node.keys.store import RootStore
from node.policy.decide import Decision, apply
from node.reports.envelope import report_file, sign_payload
from node.reports.payload import (
    FORMAT,
    INDIVIDUAL,
    MAX_ITEMS,
    ORGANISATION,
    ReportError,
    canonical,
    empty_sections,
    make_item,
    registration,
    section_of,
)
from node.witness.cosignature import note_body
from node.witness.store import cosignatures_of

MAX_CANDIDATES = 20
MAX_NAME = 100


@dataclass(frozen=True)
class Subject:
    """Whom a report is about: exactly one of a USCC, a person pseudonym (this node's, as the
    oblivious lookup gives it) or an organisation name (candidates only)."""

    uscc: str = ""
    person_pseudonym: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if sum(bool(v) for v in (self.uscc, self.person_pseudonym, self.name)) != 1:
            raise ReportError("name one subject: a USCC, a person pseudonym or a name")
        if len(self.uscc) > 18 or len(self.person_pseudonym) > 200 or len(self.name) > MAX_NAME:
            raise ReportError("subject is too long")


@dataclass(frozen=True)
class Asked:
    """Why and for whom a report is made (all of it goes into the signed payload)."""

    purpose: str
    matter: str = ""
    officer: str = ""  # pseudonymous id at the asking node
    department_uscc: str = ""
    requester: str = ""  # the asking peer's node name; "" for this node's own officers
    exchange: str = ""


@dataclass(frozen=True)
class Candidate:
    uscc: str
    subject_name: str
    items: int


@dataclass
class SignedReport:
    """A signed report (or, for a name query, only candidates)."""

    report_number: str = ""
    envelope: bytes = b""
    roots: dict[str, list[bytes]] = field(default_factory=dict)
    forms: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)

    def file(self) -> bytes:
        """The self-contained report file (``creditnode report verify`` reads it)."""
        return report_file(self.envelope, self.roots)


class ProofCache:
    """What a report cites that never changes, kept between reports: leaves and inclusion
    proofs of an append-only log (by index and tree size), the root chain (until a version is
    added), and the cosignatures of the newest checkpoint (re-read after COSIGNATURE_SECONDS:
    witnesses add theirs after it was signed). Nothing personal is kept."""

    MAX = 8192
    COSIGNATURE_SECONDS = 1.0

    def __init__(self) -> None:
        self._leaves: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._proofs: OrderedDict[tuple[int, int, int], list[bytes]] = OrderedDict()
        self._cosigned: tuple[bytes, float, list[str]] | None = None
        self._chain: tuple[tuple[int, ...], list[bytes]] = ((), [])

    @staticmethod
    def _put(cache: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
        cache[key] = value
        if len(cache) > limit:
            cache.popitem(last=False)

    async def proofs(
        self, conn: AsyncConnection, log_id: int, size: int, idxs: list[int]
    ) -> tuple[dict[int, bytes], dict[int, list[bytes]]]:
        """Leaf bytes and inclusion proofs to *size* of *idxs* (two queries at most)."""
        leaves = {i: self._leaves[(log_id, i)] for i in idxs if (log_id, i) in self._leaves}
        proofs = {i: self._proofs[(log_id, size, i)] for i in idxs
                  if (log_id, size, i) in self._proofs}  # fmt: skip
        need_leaves = [i for i in idxs if i not in leaves]
        if need_leaves:
            for idx, data in await conn.execute(
                select(LEAVES.c.idx, LEAVES.c.data).where(
                    and_(LEAVES.c.log_id == log_id, LEAVES.c.idx.in_(need_leaves))
                )
            ):
                leaves[int(idx)] = bytes(data)
                self._put(self._leaves, (log_id, int(idx)), bytes(data), self.MAX)
        need = [i for i in idxs if i not in proofs]
        if need:
            wanted = [h for i in need for h in merkle.inclusion_proof_indexes(size, i)]
            hashes = await read_hashes(conn, log_id, wanted)
            for i in need:
                proofs[i] = merkle.inclusion_proof(size, i, hashes)
                self._put(self._proofs, (log_id, size, i), proofs[i], self.MAX)
        return leaves, proofs

    async def cosignatures(self, conn: AsyncConnection, origin: str, signed: bytes) -> list[str]:
        now = time.monotonic()
        held = self._cosigned
        if held is not None and held[0] == signed and now - held[1] < self.COSIGNATURE_SECONDS:
            return held[2]
        lines = await cosignatures_of(conn, origin, note_body(signed))
        self._cosigned = (signed, now, lines)
        return lines

    def root_chain(self, home_root: Path) -> list[bytes]:
        store = RootStore(home_root)
        versions = tuple(sorted(store.versions()))
        if versions != self._chain[0]:
            self._chain = (versions, [store.read(v) for v in versions])
        return self._chain[1]


@dataclass
class ReportDeps:
    """What building a report needs of a node (``Node.report_deps``)."""

    home: Home
    publisher: Publisher
    signers: RoleSigners
    pseudonym_key: Callable[[], PseudonymKey] | None = None
    cache: ProofCache = field(default_factory=ProofCache)

    @classmethod
    def of(cls, home: Home, publisher: Publisher) -> ReportDeps:
        return cls(home, publisher, RoleSigners.of_home(home, "report"),
                   home.pseudonym_keys.current)  # fmt: skip


def _report_number(name: str, at: dt.datetime) -> str:
    return f"CR-{name.upper()}-{at:%Y%m%d}-{uuid7().replace('-', '')[-12:].upper()}"


async def build_report(
    deps: ReportDeps, subject: Subject, asked: Asked, *, decision: Decision | None = None
) -> SignedReport:
    """This node's signed report about *subject* for *asked*, its personal fields in the forms
    *decision* gives (None: none). A name query returns candidates and no report."""
    pub = deps.publisher
    log_id = pub.log.log_id
    today = shanghai_today()
    if subject.name:
        return SignedReport(candidates=await _candidates(pub, subject.name, today))
    where = [STATE.c.log_id == log_id, active(today)]
    if subject.uscc:
        where.append(STATE.c.uscc == subject.uscc)
    else:
        ids = select(DISCLOSURES.c.entry_id).where(and_(
            DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.field == "person_pseudonym",
            DISCLOSURES.c.value == subject.person_pseudonym))  # fmt: skip
        where.append(STATE.c.entry_id.in_(ids))
    opened: dict[int, dict[str, str]] = {}
    # Openings are read only when the decision opens a field (most reports carry none).
    wants_openings = decision is not None and bool(decision.opened())
    async with pub.store.engine.connect() as conn:
        rows = (await conn.execute(
            select(STATE.c.entry_id, STATE.c.last_idx, STATE.c.entry, STATE.c.body_salt)
            .where(and_(*where)).order_by(STATE.c.listing_date.desc(), STATE.c.entry_id)
            .limit(MAX_ITEMS + 1)
        )).all()  # fmt: skip
        if len(rows) > MAX_ITEMS:
            raise ReportError(f"more than {MAX_ITEMS} items: the subject needs a paged report")
        idxs = [int(r.last_idx) for r in rows]
        if any(i >= pub.latest_size for i in idxs):
            await pub.sign_checkpoint()  # an entry newer than the checkpoint: prove it too
        size, signed = pub.latest_size, pub.latest_note
        if idxs and wants_openings:
            for idx, name, value in await conn.execute(
                select(DISCLOSURES.c.idx, DISCLOSURES.c.field, DISCLOSURES.c.value).where(
                    and_(DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.idx.in_(idxs))
                )
            ):
                opened.setdefault(int(idx), {})[name] = value
        leaves, proofs = await deps.cache.proofs(conn, log_id, size, idxs)
        cosignatures = await deps.cache.cosignatures(conn, pub.origin, signed)
    key = deps.pseudonym_key() if deps.pseudonym_key is not None else None
    sections = empty_sections()
    forms: dict[str, str] = {}
    city = deps.home.settings.name
    subject_name = ""
    for r in rows:
        idx = int(r.last_idx)
        entry = feeds.ListEntry.FromString(r.entry)
        body = feeds.EntryBody(salt=bytes(r.body_salt or b""), entry=bytes(r.entry))
        full = feeds.ListEntry()
        full.CopyFrom(entry)
        for name, value in opened.get(idx, {}).items():
            setattr(full, name, value)
        personal = apply(decision, full, pseudonym_key=key) if decision is not None else {}
        if decision is not None:
            forms.update({n: str(decision.fields[n]) for n in personal})
        proof = proofs[idx]
        sections[section_of(entry)].append(make_item(
            origin=pub.origin, origin_city=city, entry_id=r.entry_id, leaf_index=idx,
            leaf=leaves[idx], body=body, proof=proof, entry=entry, personal=personal,
        ))  # fmt: skip
        subject_name = subject_name or entry.subject_name
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    number = _report_number(deps.home.settings.name, at)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "report_number": number,
        "issuer": pub.origin,
        "issuer_city": city,
        "issued_at": format_time(at),
        "variant": ORGANISATION if subject.uscc else INDIVIDUAL,
        "subject": {"uscc": subject.uscc, "name": subject_name} if subject.uscc else {},
        "registration": registration(subject.uscc) if subject.uscc else {},
        "asked": {
            "purpose": asked.purpose[:40], "matter": asked.matter[:100],
            "officer": asked.officer[:100], "department_uscc": asked.department_uscc[:18],
            "requester": asked.requester[:63], "exchange": asked.exchange[:36],
        },
        "agreements": [] if decision is None else [str(a) for a in decision.agreements],
        "forms": dict(sorted(forms.items())),
        "sections": sections,
        "checkpoints": {pub.origin: {"note": signed.decode("utf-8"),
                                     "cosignatures": cosignatures}},
    }  # fmt: skip
    root = deps.signers.root
    # Before root-init a verifier knows only the feed key (the peer bundle carries it), so the
    # feed key signs; with a root, the report keys it lists as valid now.
    keys = deps.signers.signing_keys(at) if root is not None else (deps.home.signing_key,)
    signing: list[tuple[SigningKey, str]] = []
    for k in keys:
        keyid = root.keyid_of(k.verifying_key) if root is not None else None
        signing.append((k, keyid or tuf_key(k.verifying_key).keyid))
    envelope = sign_payload(canonical(payload), signing)
    chain = deps.cache.root_chain(deps.home.paths.root)
    return SignedReport(
        report_number=number, envelope=envelope, roots={pub.origin: chain} if chain else {},
        forms=forms, payload=payload,
    )  # fmt: skip


async def _candidates(pub: Publisher, name: str, today: dt.date) -> list[Candidate]:
    """Organisations whose name contains *name* (LIKE metacharacters taken literally)."""
    pattern = "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with pub.store.engine.connect() as conn:
        rows = (await conn.execute(
            select(STATE.c.uscc, func.min(STATE.c.subject_name), func.count())
            .where(and_(STATE.c.log_id == pub.log.log_id, active(today), STATE.c.uscc != "",
                        STATE.c.subject_name.like(pattern, escape="\\")))
            .group_by(STATE.c.uscc).order_by(STATE.c.uscc).limit(MAX_CANDIDATES)
        )).all()  # fmt: skip
    return [Candidate(str(u), str(n), int(c)) for u, n, c in rows]
