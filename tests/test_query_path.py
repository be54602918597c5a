"""The query path without needless hops (issue 17): admission cached per certificate and
dropped on any enrollment change, reads on plain driver connections that see committed data
only and answer byte for byte as the SQLAlchemy path did, and audit records that share one
commit, each durable before its caller goes on."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from sqlalchemy import and_, insert, select

from keys import SigningKey, certificate_fingerprint
from node.api import feeds, pb, query, rpc
from node.audit.entry import AuditEntry, now_us, uuid7
from node.audit.log import ENTRIES, AuditLog
from node.feeds.dates import shanghai_today
from node.feeds.publisher import Event, Publisher
from node.feeds.state import DISCLOSURES, STATE, active
from node.identity.codes import resident_id_check_char
from node.identity.pseudonym import own_pseudonym
from node.identity.pseudonym_key import PseudonymKey
from node.peers.gate import PeerGate
from node.runtime import Node
from node.services.query import QueryServicer
from node.storage import Store
from node.storage.peers import PeerRepository
from node.storage.reader import Reader
from node.storage.writer import Statement, Writer
from tests.conftest import FederationFactory
from tests.feedutil import org_entry, person_entry
from tests.helpers import channel_to

ORIGIN = "creditnode://yellow-river/jinan"


# ------------------------------------------------------------------------ admission


async def _info(stub: Any) -> pb.GetInfoResponse:
    got: pb.GetInfoResponse = await stub.GetInfo(pb.GetInfoRequest(), timeout=5)
    return got


class _Judged:
    """Which certificates each gate parsed and checked in full (not served from its cache)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[PeerGate, str]] = []
        judge = PeerGate._judge

        async def counting(gate: PeerGate, pem: bytes, *a: Any) -> Any:
            cert = x509.load_pem_x509_certificate(pem)
            self.seen.append((gate, certificate_fingerprint(cert)))
            return await judge(gate, pem, *a)

        monkeypatch.setattr(PeerGate, "_judge", counting)

    def count(self, at: Node, caller: Node) -> int:
        fingerprint = certificate_fingerprint(caller.home.tls.certificate)
        return sum(1 for g, f in self.seen if g is at.gate and f == fingerprint)


async def test_admission_is_cached_and_a_removal_refuses_the_next_call_on_the_same_connection(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(3, subscribe=False)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    judged = _Judged(monkeypatch)
    await jinan.directory.refresh()  # nothing admitted before is reused from here
    async with channel_to(jinan, lanzhou.home.tls) as ch, channel_to(jinan, taiyuan.home.tls) as t:
        stub, other = rpc.NodeServiceStub(ch), rpc.NodeServiceStub(t)
        for _ in range(5):
            await _info(stub)
        assert judged.count(jinan, lanzhou) == 1  # judged once, then served from the cache
        await _info(other)

        # Removed in this process: refused at its next call on the same connection.
        assert await jinan.remove_peer("lanzhou")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _info(stub)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "is not an enrolled peer" in (info.value.details() or "")

        # Removed by another process: refused once the enrollment generation is read (the
        # watch does so every 0.2 s; read here at once).
        await _info(other)
        before = judged.count(jinan, taiyuan)
        other_store = await Store.open(jinan.store.engine.url.render_as_string(False))
        try:
            assert await PeerRepository(other_store).remove("taiyuan")
        finally:
            await other_store.close()
        await jinan.directory.sync()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _info(other)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert judged.count(jinan, taiyuan) == before + 1  # judged again, not from the cache


async def test_a_cached_admission_is_judged_again_after_any_reload(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    judged = _Judged(monkeypatch)
    await jinan.directory.refresh()
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        stub = rpc.NodeServiceStub(ch)
        await _info(stub)
        await _info(stub)
        assert judged.count(jinan, lanzhou) == 1
        await jinan.directory.refresh()  # a reload, even one that changed nothing
        await _info(stub)
        assert judged.count(jinan, lanzhou) == 2


# --------------------------------------------------------------------------- reader


async def test_the_reader_sees_committed_rows_only(store: Store) -> None:
    reader = Reader.of(store)
    sql = "SELECT entry_id, entry FROM list_state WHERE log_id = ? AND entry_id = ?"
    eid = uuid.uuid4().hex
    row = {
        "log_id": 7, "entry_id": eid, "list_name": "x", "last_idx": 0, "entry": b"\x01\x02",
    }  # fmt: skip
    try:
        assert await reader.fetch(sql, [7, eid]) == []
        async with store.begin() as conn:
            await conn.execute(insert(STATE), [row])
            # Written but not committed: no reader sees it (on SQLite the writer's
            # connection holds the write lock; the reader reads the last commit).
            assert await reader.fetch(sql, [7, eid]) == []
        # Committed just now: the next read sees it, on every reader connection.
        seen = await asyncio.gather(*(reader.fetch(sql, [7, eid]) for _ in range(8)))
        assert all(rows == [(eid, b"\x01\x02")] for rows in seen)
    finally:
        await reader.close()


async def _reference_lookup(pub: Publisher, request: query.LookupRequest) -> bytes:
    """The answer as the SQLAlchemy path made it before issue 17 (kept here to compare)."""
    log_id = pub.log.log_id
    where = [STATE.c.log_id == log_id, active(shanghai_today())]
    async with pub.store.engine.connect() as conn:
        if request.WhichOneof("subject") == "uscc":
            where.append(STATE.c.uscc == request.uscc)
        else:
            ids = select(DISCLOSURES.c.entry_id).where(and_(
                DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.field == "person_pseudonym",
                DISCLOSURES.c.value == request.person_pseudonym))  # fmt: skip
            where.append(STATE.c.entry_id.in_(ids))
        rows = (await conn.execute(
            select(STATE.c.entry_id, STATE.c.last_idx, STATE.c.status, STATE.c.entry)
            .where(and_(*where))
            .order_by(STATE.c.listing_date.desc(), STATE.c.entry_id).limit(200)
        )).all()  # fmt: skip
        opened: dict[int, dict[str, str]] = {}
        if rows:
            for idx, name, value in await conn.execute(
                select(DISCLOSURES.c.idx, DISCLOSURES.c.field, DISCLOSURES.c.value).where(
                    and_(
                        DISCLOSURES.c.log_id == log_id,
                        DISCLOSURES.c.idx.in_([int(r.last_idx) for r in rows]),
                    )
                )
            ):
                opened.setdefault(int(idx), {})[name] = value
    answers = []
    for r in rows:
        entry = feeds.ListEntry.FromString(r.entry)
        entry.status = r.status
        for name, value in opened.get(int(r.last_idx), {}).items():
            setattr(entry, name, value)
        answers.append(
            query.LookupAnswer(entry_id=r.entry_id, leaf_index=int(r.last_idx), entry=entry)
        )
    return query.LookupResponse(answers=answers).SerializeToString(deterministic=True)


class _Context:
    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


async def test_lookup_answers_are_byte_identical_to_the_sqlalchemy_path(store: Store) -> None:
    pub = await Publisher.open(store, ORIGIN, SigningKey.generate(ORIGIN))
    key = PseudonymKey.generate()
    events, pseudonyms = [], []
    for i in range(12):
        body = f"37010219{60 + i % 3}0101{i % 3:03d}"  # three people, four entries each
        idno = body + resident_id_check_char(body)
        entry = person_entry(i, person_id=idno, name=f"张{i % 3}")
        entry.person_pseudonym = own_pseudonym(key, idno)
        entry.listing_date = f"2026-0{1 + i % 5}-1{i % 7}"
        pseudonyms.append(entry.person_pseudonym)
        events.append(Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry))
    orgs = [org_entry(i) for i in range(4)]
    events += [Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, e) for e in orgs]
    await pub.append(events)
    gone = events[0]  # removed: answered by neither path
    await pub.append([Event(gone.entry_id, feeds.EVENT_TYPE_REMOVE, gone.entry,
                            feeds.REMOVAL_REASON_CORRECTION, "2026-11-30", "更正")])  # fmt: skip
    servicer = QueryServicer(pub)  # on the store's reader, closed with the store
    asks = [query.LookupRequest(purpose="enforcement", person_pseudonym=p)
            for p in sorted(set(pseudonyms))]  # fmt: skip
    asks += [query.LookupRequest(purpose="enforcement", uscc=e.uscc) for e in orgs]
    asks.append(query.LookupRequest(purpose="enforcement", uscc="91110000000000000X"))
    hits = 0
    for ask in asks:
        got = await servicer.Lookup(ask, _Context())  # type: ignore[arg-type]
        hits += len(got.answers)
        assert got.SerializeToString(deterministic=True) == await _reference_lookup(pub, ask)
    assert hits == 11 + 4  # every live entry answered once


async def test_lookup_reads_do_not_scan_100k_entries(tmp_path: Path) -> None:
    """Lookup's one statement visits a handful of rows of a 100k-entry log (SQLite, counted
    with a progress handler), by USCC and by pseudonym, its openings joined."""
    url = f"sqlite:///{tmp_path / 'big.db'}"
    store = await Store.open(url)  # migrated; the reader needs only its URL
    reader = Reader.of(store)
    await store.close()
    n = 100_000
    db = sqlite3.connect(tmp_path / "big.db")
    with db:
        db.executemany(
            "INSERT INTO list_state (log_id, entry_id, list_name, list_type, subject_type, "
            "subject_name, uscc, status, removal_reason, listing_date, severity, "
            "disclosure_end, last_idx, entry, list_code) "
            "VALUES (1, ?, 'l', 0, 0, '', ?, ?, 0, '2026-01-01', 0, '', ?, x'01', '')",
            ((f"e{i:06d}", f"U{i:017d}", feeds.ENTRY_STATUS_ACTIVE, i) for i in range(n)),
        )
        db.executemany(
            "INSERT INTO disclosures (log_id, idx, field, entry_id, salt, value) "
            "VALUES (1, ?, 'person_pseudonym', ?, x'00', ?)",
            ((i, f"e{i:06d}", f"p{i}") for i in range(n)),
        )
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.set_progress_handler(count, 100)  # one call per 100 VM instructions
    servicer = QueryServicer(_FixedLog(1), reader)  # type: ignore[arg-type]
    try:
        today = shanghai_today().isoformat()
        active = [1, feeds.ENTRY_STATUS_ACTIVE, b"", today]
        for sql, params in [
            (servicer._answers["uscc"], [*active, "U00000000000054321", 1]),
            (servicer._answers["person_pseudonym"], [*active, 1, "p54321", 1]),
        ]:
            steps = 0
            # The entry, with its one opening joined (the fixture's pseudonym).
            assert [(r[0], r[4], r[5]) for r in db.execute(sql, params).fetchall()] == [
                ("e054321", "person_pseudonym", "p54321")
            ]
            assert steps < 50, steps  # a scan would take thousands of calls
    finally:
        await reader.close()
        db.close()


class _FixedLog:
    """Just what the servicer reads of a publisher (the reader is given)."""

    def __init__(self, log_id: int) -> None:
        self.log = type("Log", (), {"log_id": log_id})()
        self.store = None


# ------------------------------------------------------------------------ recording


def _entry() -> AuditEntry:
    return AuditEntry(
        exchange=uuid7(), at_us=now_us(), direction="in", kind="query", outcome="hit",
        peer="lanzhou", purpose="enforcement",
    )  # fmt: skip


async def test_concurrent_records_share_one_commit_and_each_is_durable_before_it_returns(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await AuditLog.open(store, ORIGIN, SigningKey.generate(ORIGIN))
    await log.record(_entry())  # the log's first commit, alone
    commits: list[int] = []
    real = Writer.commit

    async def counted(writer: Writer, statements: Sequence[Statement]) -> None:
        commits.append(1)  # the group-commit writer's transactions (its own connection)
        await real(writer, statements)

    monkeypatch.setattr(Writer, "commit", counted)
    # A separate pool on the same database: what a restarted node (or a crash) finds.
    other = await Store.open(db_url)
    durable: list[bool] = []

    async def one(e: AuditEntry) -> None:
        idx = await log.record(e)
        async with other.engine.connect() as conn:  # read at once, before anything else
            found = (
                await conn.execute(select(ENTRIES.c.idx).where(ENTRIES.c.exchange == e.exchange))
            ).scalar_one_or_none()
        durable.append(found == idx)

    try:
        await asyncio.gather(*(one(_entry()) for _ in range(16)))
    finally:
        await other.close()
    assert durable == [True] * 16
    assert 1 <= len(commits) <= 2  # 16 concurrent records: one commit (two if one raced ahead)
    # And the log abandoned now (no close, no checkpoint) still holds all 17 once reopened.
    reopened = await AuditLog.open(store, ORIGIN, SigningKey.generate(ORIGIN))
    assert reopened.log.frontier.size == 17
