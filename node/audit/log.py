"""The node's audit log: a Merkle log of :class:`~node.audit.entry.AuditEntry` leaves on the
same machinery as the feeds (:class:`~node.feeds.logstore.LogStore`, RFC 6962, C2SP
checkpoints), with an ``audit_entries`` row per leaf for filtering.

:meth:`AuditLog.record` returns once the entry is durable; concurrent callers share one
transaction (group commit). An entry whose exchange id, direction and message number are
already recorded is not recorded twice: its caller gets the first one's index. On the
answering side (``fresh_on_replay``) the exchange id is the peer's, so a reused one does not
hide the call: it is recorded under a fresh id of this node's instead.

Checkpoints are signed by the audit key (:class:`~node.audit.local.AuditSigners`: the feed key
until the node's root lists an audit key), with their signing time, at most every
:data:`CHECKPOINT_SECONDS` while entries arrive, and at :meth:`AuditLog.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import and_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from keys import SigningKey, read_private_file, write_private_file
from node.audit.entry import AuditEntry, EntryError, parse_entry, response_digest, uuid7
from node.feeds import merkle, note
from node.feeds.logstore import (
    HASHES,
    LEAVES,
    LOGS,
    LogStore,
    PendingAppend,
    StaleCursor,
    append_rows,
    read_cursor,
    read_hashes,
    sign_grown,
)
from node.keys.signers import RoleSigners
from node.storage import Store
from node.storage.models import AuditEntryRecord
from node.storage.writer import Insert, Statement, Update, Writer

log = structlog.get_logger("creditnode.audit")

ENTRIES = AuditEntryRecord.__table__  # type: ignore[attr-defined]
ENTRY_COLUMNS: tuple[str, ...] = tuple(c.name for c in ENTRIES.columns)
ORIGIN_SUFFIX = "/audit"
CHECKPOINT_SECONDS = 1.0
_RETRIES = 8


class Signers(Protocol):
    """Whatever says which keys sign now (:class:`~node.audit.local.AuditSigners`)."""

    def signing_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]: ...


# Given the index its entry gets, a recorder sets it into the response and returns the exact
# bytes that will be sent (their SHA-256 goes into the entry).
Finish = Callable[[int], bytes]


SECRET_FILE = "audit.secret"  # noqa: S105 - a file name


def load_secret(home_root: Path) -> bytes:
    """The node-local secret officer ids and subject commitments are keyed with
    (``HOME/keys/audit.secret``, 32 random bytes, 0600), made on first use. It never leaves the
    node: without it an id or commitment reveals nothing, with it the node can find them."""
    path = home_root / "keys" / SECRET_FILE
    try:
        data = read_private_file(path)
    except FileNotFoundError:
        write_private_file(path, os.urandom(32).hex().encode() + b"\n")
        data = read_private_file(path)
    secret = bytes.fromhex(data.decode("ascii").strip())
    if len(secret) != 32:
        raise ValueError(f"{path}: not a 32-byte audit secret")
    return secret


def audit_origin(node_uri: str) -> str:
    """The audit log's origin: the node's feed origin (its URI) followed by ``/audit``."""
    return node_uri + ORIGIN_SUFFIX


def entry_row(idx: int, e: AuditEntry) -> dict[str, Any]:
    """The ``audit_entries`` row of leaf *idx*."""
    return {
        "idx": idx, "exchange": e.exchange, "direction": e.direction, "seq": e.seq, "at": e.at,
        "kind": e.kind, "outcome": e.outcome, "peer": e.peer, "method": e.method,
        "officer": e.officer, "department": e.department, "purpose": e.purpose,
        "subject": e.subject, "response": e.response, "values": e.values,
        "withheld": e.withheld, "remote": e.remote,
    }  # fmt: skip


@dataclass
class _Pending:
    entry: AuditEntry
    finish: Finish | None
    fresh_on_replay: bool
    future: asyncio.Future[int]


@dataclass
class _Plan:
    leaves: list[bytes] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    placed: list[tuple[_Pending, int]] = field(default_factory=list)
    replays: list[tuple[_Pending, int]] = field(default_factory=list)
    pending: PendingAppend = field(init=False)


class AuditLog:
    """The audit log of one node (see the module docstring)."""

    def __init__(self, store: Store, log_: LogStore, signers: Signers) -> None:
        self.store = store
        self.log = log_
        self.signers = signers
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._grew = asyncio.Event()
        self._closed = False
        self._unsigned_logged = False
        # The group-commit writer's own connection (None: an in-memory database, written
        # through the engine); made on the first entry.
        self._writer: Writer | None = None
        self._writer_made = False
        self.hook: Callable[[AuditEntry], bool] | None = None  # tests: False drops an entry

    @property
    def origin(self) -> str:
        return self.log.cursor.origin

    @classmethod
    async def open(cls, store: Store, node_uri: str, signers: Signers | SigningKey) -> AuditLog:
        if isinstance(signers, SigningKey):
            signers = RoleSigners.fixed(signers, "audit")
        return cls(store, await LogStore.open(store, audit_origin(node_uri)), signers)

    # ------------------------------------------------------------------- recording

    async def record(
        self,
        entry: AuditEntry,
        *,
        finish: Finish | None = None,
        fresh_on_replay: bool = False,
    ) -> int:
        """Return the entry's index once it is durable; raise if it could not be written
        (the caller must then not send its answer)."""
        if self._closed:
            raise RuntimeError("the audit log is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(entry, finish, fresh_on_replay, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="audit-log")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as exc:  # every waiter fails: its answer is not sent
                log.error("audit entries not recorded", entries=len(batch),
                          error=type(exc).__name__)  # fmt: skip
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)

    async def _write(self, batch: list[_Pending]) -> None:
        # Exchange ids are fresh almost always: the first attempt lets the unique index
        # (uq_audit_exchange) find a recorded one, saving a read on every commit; once it has,
        # the attempts after it look first, so a replay gets the first entry's index.
        look_first = False
        for attempt in range(_RETRIES):
            batch = [p for p in batch if not p.future.done()]
            if not batch:
                return
            keys = {(p.entry.exchange, p.entry.direction, p.entry.seq) for p in batch}
            try:
                writer = None if look_first else self._group_writer()
                if writer is not None:
                    # The common case: one transaction of the leaves, hashes, cursor and
                    # rows on the writer's own connection, durable when it returns.
                    plan = self._plan(batch, {})
                    if plan.leaves:
                        await writer.commit(self._statements(plan))
                else:
                    # One transaction: the idempotency check, the leaves, hashes, cursor, rows.
                    async with self.store.begin() as conn:
                        existing = await _existing(conn, keys) if look_first else {}
                        plan = self._plan(batch, existing)
                        if plan.leaves:
                            await self.log.write(conn, plan.pending)
                            await conn.execute(ENTRIES.insert(), plan.rows)
            except (StaleCursor, IntegrityError) as exc:
                # Another process (a CLI command's local entry) appended first, or recorded
                # the same exchange: take its tree and look again.
                look_first = look_first or isinstance(exc, IntegrityError)
                await self.log.reload()
                log.info("audit log moved under us; retrying", attempt=attempt)
                continue
            if plan.leaves:
                self.log.committed(plan.pending)
                self._grew.set()
            for p, idx in plan.replays:
                if p.finish is not None:
                    try:
                        p.finish(idx)
                    except Exception as exc:
                        p.future.set_exception(exc)
                        continue
                p.future.set_result(idx)
            for p, idx in plan.placed:
                if not p.future.done():
                    p.future.set_result(idx)
            return
        # Every attempt lost the race: the waiters fail (their answers are not sent) rather
        # than wait for a future nobody will ever settle.
        raise StaleCursor(f"could not append to {self.origin}: the log keeps moving")

    def _group_writer(self) -> Writer | None:
        if not self._writer_made:
            self._writer, self._writer_made = Writer.of(self.store), True
        return self._writer

    def _statements(self, plan: _Plan) -> list[Statement]:
        """The rows :meth:`LogStore.write` and the ``audit_entries`` insert would write."""
        rows = append_rows(self.log.log_id, plan.pending)
        stale = StaleCursor(f"log {self.origin} moved past size {rows.start}")
        return [
            Update(LOGS, rows.cursor, {"id": rows.log_id, "size": rows.start}, stale),
            Insert(LEAVES, ("log_id", "idx", "data"), rows.leaves),
            Insert(HASHES, ("log_id", "idx", "hash"), rows.hashes),
            Insert(ENTRIES, ENTRY_COLUMNS, [tuple(r[c] for c in ENTRY_COLUMNS) for r in plan.rows]),
        ]

    def _plan(self, batch: list[_Pending], existing: dict[tuple[str, str, int], int]) -> _Plan:
        """Indexes, leaves and rows for *batch* on top of the tree held."""
        plan = _Plan()
        start = self.log.frontier.size
        for p in batch:
            entry = p.entry
            key = (entry.exchange, entry.direction, entry.seq)
            if key in existing:
                if not p.fresh_on_replay:
                    plan.replays.append((p, existing[key]))
                    continue
                entry = entry.replace(
                    exchange=uuid7(),
                    reason="the peer's exchange id was already recorded: a fresh one is used",
                )
                key = (entry.exchange, entry.direction, entry.seq)
            idx = start + len(plan.leaves)
            try:
                if p.finish is not None:
                    entry = entry.with_response(response_digest(p.finish(idx)))
                data = entry.to_bytes()
            except Exception as exc:  # this entry only: the others are fine
                p.future.set_exception(exc)
                continue
            existing[key] = idx
            plan.placed.append((p, idx))
            if self.hook is not None and not self.hook(entry):
                continue  # a test's responder that "forgets" to log: nothing written
            plan.leaves.append(data)
            plan.rows.append(entry_row(idx, entry))
        plan.pending = self.log.prepare(plan.leaves)
        return plan

    # ---------------------------------------------------------------- checkpoints

    def _keys(self, at: dt.datetime) -> tuple[SigningKey, ...]:
        keys = self.signers.signing_keys(at)
        if not keys and not self._unsigned_logged:
            log.error("no audit key valid now that this node holds: audit checkpoints are "
                      "not signed until one is", origin=self.origin)  # fmt: skip
        self._unsigned_logged = not keys
        return keys

    async def sign_checkpoint(self) -> bytes:
        """Sign the committed tree if it grew since the last audit checkpoint; the newest
        signed note (b"" if none could be signed)."""
        signed, _ = await sign_grown(self.store, self.origin, self._keys)
        return signed

    async def run(self) -> None:
        """Sign a checkpoint at most every :data:`CHECKPOINT_SECONDS` while entries arrive
        (and for entries other processes appended)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grew.wait(), CHECKPOINT_SECONDS)
            self._grew.clear()
            try:
                await self.sign_checkpoint()
            except Exception:  # a busy database must not end signing
                log.exception("audit checkpoint not signed")
            await asyncio.sleep(CHECKPOINT_SECONDS)

    async def close(self) -> None:
        """Let recorded entries finish, then sign the last checkpoint."""
        self._closed = True
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await self.sign_checkpoint()

    # ------------------------------------------------------------------ reading

    async def read_entries(self, start: int, end: int) -> list[AuditEntry]:
        return [parse_entry(d) for d in await self.log.read_leaves(start, end)]


async def _existing(
    conn: AsyncConnection, keys: set[tuple[str, str, int]]
) -> dict[tuple[str, str, int], int]:
    found: dict[tuple[str, str, int], int] = {}
    ordered = sorted(keys)
    for i in range(0, len(ordered), 200):
        chunk = ordered[i : i + 200]
        rows = await conn.execute(
            select(ENTRIES.c.exchange, ENTRIES.c.direction, ENTRIES.c.seq, ENTRIES.c.idx).where(
                tuple_(ENTRIES.c.exchange, ENTRIES.c.direction, ENTRIES.c.seq).in_(chunk)
            )
        )
        for ex, d, s, idx in rows:
            found[(str(ex), str(d), int(s))] = int(idx)
    return found


# ------------------------------------------------------------------- verification


@dataclass(frozen=True)
class AuditFinding:
    """Something stored in the audit log that does not verify: the first bad leaf index or
    ``audit_entries`` row, and why (never a data value)."""

    index: int | None
    problem: str

    def describe(self) -> str:
        where = "audit log" if self.index is None else f"audit leaf {self.index}"
        return f"{where}: {self.problem}"


async def verify_audit_log(
    store: Store,
    node_uri: str,
    keys: note.Verifiers | None = None,
    *,
    chunk: int = 4096,
) -> list[AuditFinding]:
    """Re-check the audit log leaf by leaf: every leaf parses strictly and hashes to its
    stored hash, the leaves give the recorded root and the signed checkpoint's root (its
    signature checked with *keys* when given), and each ``audit_entries`` row is exactly its
    leaf's (none missing, changed or extra). Empty when everything verifies; otherwise the
    first problem of each kind."""
    origin = audit_origin(node_uri)
    findings: list[AuditFinding] = []
    async with store.engine.connect() as conn:
        cursor = await read_cursor(conn, origin)
    if cursor is None:
        return []
    cp_root: bytes | None = None
    if cursor.checkpoint_note:
        try:
            cp = (
                note.open_checkpoint(cursor.checkpoint_note, keys, origin=origin)
                if keys is not None
                else note.stored_checkpoint(cursor.checkpoint_note)
            )
        except note.NoteError as exc:
            findings.append(AuditFinding(None, f"signed checkpoint does not verify: {exc}"))
        else:
            if cp.size != cursor.checkpoint_size or cp.size > cursor.size:
                findings.append(AuditFinding(None, "signed checkpoint size disagrees with log"))
            else:
                cp_root = cp.root
    frontier = merkle.Frontier()
    kinds: set[str] = set()

    def add(index: int | None, kind: str, problem: str) -> None:
        if kind not in kinds:
            kinds.add(kind)
            findings.append(AuditFinding(index, problem))

    pos = 0
    while pos < cursor.size:
        end = min(pos + chunk, cursor.size)
        async with store.engine.connect() as conn:
            leaves = {
                int(i): bytes(d)
                for i, d in await conn.execute(
                    select(LEAVES.c.idx, LEAVES.c.data).where(
                        and_(
                            LEAVES.c.log_id == cursor.log_id,
                            LEAVES.c.idx >= pos,
                            LEAVES.c.idx < end,
                        )
                    )
                )
            }
            rows = {
                int(r["idx"]): dict(r)
                for r in (
                    await conn.execute(
                        select(ENTRIES).where(and_(ENTRIES.c.idx >= pos, ENTRIES.c.idx < end))
                    )
                ).mappings()
            }
            leaf_idx = [merkle.stored_hash_index(0, i) for i in range(pos, end)]
            try:
                stored = await read_hashes(conn, cursor.log_id, leaf_idx)
            except LookupError:
                stored = {}
                add(pos, "hash-missing", "stored leaf hashes are missing")
        for i in range(pos, end):
            data = leaves.get(i)
            if data is None:
                add(i, "leaf-missing", "leaf is missing")
                frontier.append(bytes(32))
                continue
            h = merkle.leaf_hash(data)
            want = stored.get(merkle.stored_hash_index(0, i))
            if want is not None and want != h:
                add(i, "leaf-hash", "leaf does not hash to its stored hash (leaf edited)")
            frontier.append(h)
            at_checkpoint = frontier.size == cursor.checkpoint_size and cp_root is not None
            if at_checkpoint and frontier.root() != cp_root:
                add(i, "checkpoint-root", "leaves do not give the signed checkpoint's root")
            try:
                entry = parse_entry(data)
            except EntryError as exc:
                add(i, "leaf-parse", f"leaf is not a valid entry: {exc}")
                continue
            row = rows.pop(i, None)
            if row is None:
                add(i, "row-missing", "audit_entries row is missing (deleted)")
            elif not _same_row(row, entry_row(i, entry)):
                add(i, "row-changed", "audit_entries row differs from its leaf (edited)")
        for i in sorted(rows):
            add(i, "row-extra", "audit_entries row has no leaf (inserted)")
        pos = end
    # One statement, one snapshot: entries appended since the cursor was read are not extra.
    size_now = select(LOGS.c.size).where(LOGS.c.id == cursor.log_id).scalar_subquery()
    async with store.engine.connect() as conn:
        beyond = (
            await conn.execute(select(ENTRIES.c.idx).where(ENTRIES.c.idx >= size_now).limit(1))
        ).first()
    if beyond is not None:
        add(int(beyond[0]), "row-extra", "audit_entries row has no leaf (inserted)")
    if frontier.root() != cursor.root:
        add(None, "root", "leaves do not give the recorded root")
    if cursor.checkpoint_size == 0 and cp_root is not None and cp_root != merkle.empty_root():
        add(None, "checkpoint-root", "signed checkpoint of size 0 has a non-empty root")
    return sorted(findings, key=lambda f: -1 if f.index is None else f.index)


def _same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    for k, v in b.items():
        got = a.get(k)
        if isinstance(v, dt.datetime) and isinstance(got, dt.datetime):
            if got.tzinfo is None:
                got = got.replace(tzinfo=dt.UTC)
            if got != v:
                return False
        elif got != v:
            return False
    return True
