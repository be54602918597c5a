"""The raiser's side: send an objection to the entry's origin, and fetch what became of it.

What comes back is checked against what was sent: the same objection, its history extending
the one held here, each step one the state machine allows."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from sqlalchemy import and_, select

from node.api import feeds, objections_rpc
from node.api import objections as pb
from node.audit.entry import EntryError, check_matter
from node.audit.local import opened_audit, out_entry
from node.audit.log import AuditLog
from node.audit.wire import new_asker
from node.errors import InputError, PeerError
from node.feeds.logstore import LOGS
from node.feeds.state import STATE
from node.home import Home
from node.objections import store
from node.objections.core import Objection, ObjectionError
from node.objections.wire import from_message, to_message
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer, PeerDirectory
from node.storage import Store

TIMEOUT = 10.0
RAISE = "/creditnode.v1.ObjectionService/Raise"
STATUS = "/creditnode.v1.ObjectionService/Status"
MAX_EVIDENCE_BYTES = 256 * 1024 * 1024


def evidence_digest(path: Path) -> str:
    """SHA-256 of the evidence file; the file itself stays here."""
    h = hashlib.sha256()
    try:
        if not path.is_file():
            raise InputError(f"--evidence {path}: not a file")
        if path.stat().st_size > MAX_EVIDENCE_BYTES:
            raise InputError(f"--evidence {path}: larger than {MAX_EVIDENCE_BYTES} bytes")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"--evidence {path}: cannot read ({exc.strerror})") from None
    return h.hexdigest()


def parse_entry_ref(text: str) -> tuple[str, str]:
    """``ORIGIN:ID`` → (peer name, entry id)."""
    origin, sep, entry_id = text.strip().partition(":")
    if not sep or not origin or not entry_id:
        raise InputError("--entry is ORIGIN:ENTRY_ID (an enrolled peer's name and an entry id)")
    return origin, entry_id


async def _peer(home: Home, st: Store, name: str) -> KnownPeer:
    directory = PeerDirectory(st, home.settings.federation, home.tls.ca_pem)
    await directory.refresh()
    peer = await directory.lookup(name)
    if peer is None:
        raise InputError(f"no enrolled peer named {name[:63]!r} (see `creditnode peer list`)")
    return peer


async def holds_entry(st: Store, peer: str, entry_id: str) -> bool:
    """Whether this node's mirror of *peer* holds *entry_id* active."""
    async with st.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.entry_id)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(
                    and_(
                        LOGS.c.peer == peer,
                        STATE.c.entry_id == entry_id,
                        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                    )
                )
            )
        ).first()
    return row is not None


@asynccontextmanager
async def _audit(home: Home, st: Store, audit: AuditLog | None) -> AsyncIterator[AuditLog]:
    """*audit*, or the home's audit log opened for the call (a command outside `serve`)."""
    if audit is not None:
        yield audit
        return
    async with opened_audit(home, st) as log:
        yield log


def _reason(text: str) -> str:
    """A refusal's description, if an audit entry can hold it (else only that it was)."""
    try:
        return check_matter(text[:200])
    except EntryError:
        return "refused"


def _same(sent: Objection, got: Objection) -> bool:
    fixed = ("id", "origin", "entry_id", "grounds", "evidence_sha256", "due", "raised_by",
             "officer")  # fmt: skip
    if any(getattr(sent, f) != getattr(got, f) for f in fixed):
        return False
    return got.history[: len(sent.history)] == sent.history


async def raise_objection(
    home: Home, st: Store, peer_name: str, o: Objection, *, timeout: float = TIMEOUT,
    audit: AuditLog | None = None,
) -> Objection:  # fmt: skip
    """Send *o* to its origin and store what it recorded (under objection). The call is
    recorded in the audit log (*audit*, else the home's) as this node's receipt, answered
    or refused, under the exchange id the origin records it by."""
    peer = await _peer(home, st, peer_name)
    if peer.identity.uri != o.origin:
        raise InputError("the objection names another origin than the peer")
    if not await holds_entry(st, peer.identity.node, o.entry_id):
        raise InputError(
            f"this node holds no active entry {o.entry_id} of {peer.identity.node} "
            "(see `creditnode lists`)"
        )
    name = peer.identity.node
    asker = new_asker(o.officer)
    async with _audit(home, st, audit) as log, peer.channel(home.tls) as channel:
        try:
            resp = await objections_rpc.ObjectionServiceStub(channel).Raise(
                pb.RaiseRequest(objection=to_message(o)), timeout=timeout,
                metadata=asker.metadata(),
            )  # fmt: skip
        except grpc.aio.AioRpcError as err:
            problem = describe_rpc_error(peer.identity, peer.record.endpoint, err)
            await log.record(out_entry(asker, peer=name, method=RAISE, kind="objection",
                                       outcome="refused", reason=_reason(problem)))  # fmt: skip
            raise PeerError(problem) from None
        answer = resp.SerializeToString()
        await log.record(out_entry(asker, peer=name, method=RAISE, kind="objection",
                                   outcome="received", response=answer))  # fmt: skip
    got = _checked(resp.objection, o)
    async with st.begin() as conn:
        await store.save(conn, got, store.RAISED)
    return got


def _checked(m: pb.Objection, sent: Objection) -> Objection:
    try:
        got = from_message(m, origin=sent.origin, raised_by=sent.raised_by)
    except ObjectionError as exc:
        raise PeerError(f"the origin answered with a malformed objection: {exc}") from None
    if not _same(sent, got):
        raise PeerError("the origin answered about another objection, or rewrote its history")
    return got


async def refresh(
    home: Home, st: Store, *, timeout: float = TIMEOUT, audit: AuditLog | None = None
) -> tuple[list[Objection], list[str]]:
    """Ask each origin for the state of the open objections this node raised; store what
    changed. Returns the updated objections and one line per origin that could not answer.
    Each call is recorded in the audit log, as :func:`raise_objection`'s is."""
    held = await store.find(st, side=store.RAISED, open_only=True)
    if not held:
        return [], []
    async with _audit(home, st, audit) as log:
        return await _refresh(home, st, held, timeout, log)


async def _refresh(
    home: Home, st: Store, held: list[store.Held], timeout: float, log: AuditLog
) -> tuple[list[Objection], list[str]]:
    by_origin: dict[str, list[Objection]] = {}
    for h in held:
        by_origin.setdefault(h.objection.origin, []).append(h.objection)
    updated: list[Objection] = []
    problems: list[str] = []
    for origin, mine in sorted(by_origin.items()):
        name = origin.rsplit("/", 1)[-1]
        asker = new_asker()
        try:
            peer = await _peer(home, st, name)
        except InputError as exc:
            problems.append(f"{name}: {exc}")
            continue
        try:
            async with peer.channel(home.tls) as channel:
                resp = await objections_rpc.ObjectionServiceStub(channel).Status(
                    pb.StatusRequest(ids=[o.id for o in mine[:100]]), timeout=timeout,
                    metadata=asker.metadata(),
                )  # fmt: skip
        except grpc.aio.AioRpcError as err:
            problem = describe_rpc_error(peer.identity, peer.record.endpoint, err)
            await log.record(out_entry(asker, peer=name, method=STATUS, kind="objection",
                                       outcome="refused", reason=_reason(problem)))  # fmt: skip
            problems.append(f"{name}: {problem}")
            continue
        answer = resp.SerializeToString()
        await log.record(out_entry(asker, peer=name, method=STATUS, kind="objection",
                                   outcome="received", response=answer))  # fmt: skip
        wanted = {o.id: o for o in mine}
        for m in resp.objections:
            sent = wanted.pop(m.id, None)
            if sent is None:
                problems.append(f"{name}: answered about an objection not asked for")
                continue
            try:
                got = _checked(m, sent)
            except PeerError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if got.history != sent.history:
                async with st.begin() as conn:
                    await store.save(conn, got, store.RAISED)
                updated.append(got)
    return updated, problems


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
