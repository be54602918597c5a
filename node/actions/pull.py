"""The origin's side of feedback: pull a partner's actions log (``ActionsService.GetActions``),
verify it like any feed, and keep the responses and hits about this node's own entries.

What is accepted: a checkpoint of ``<partner uri>/actions/<own name>`` (the log the partner
keeps for this node alone) signed by a feed key the partner's
root held here lists as valid at its signed time (or its enrolled feed key), not earlier than
the last one verified, consistent with it (RFC 6962 proof); and leaves that extend the tree
kept here and lead to that checkpoint (a consistency proof from their end), each a record in
canonical form. Anything else (a forged or edited record, a leaf from another log, a replayed
or rolled-back checkpoint) is refused: nothing of the answer is kept, and the partner's
actions feed is marked ``tampered`` with the reason (an unreachable partner only fails the
pull). A record about another origin's entries is a protocol violation (the partner must
serve this node only its own log): refused like a forged one. A partner that recorded nothing
about this node yet serves its empty log, signed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError

from keys import NodeIdentity, VerifyingKey
from node.actions.log import actions_origin
from node.actions.record import Hit, RecordError, Response, parse_record
from node.api import actions, actions_rpc
from node.audit.entry import EntryError, check_matter
from node.audit.local import out_entry
from node.audit.log import AuditLog
from node.audit.wire import new_asker
from node.feeds import merkle
from node.feeds.note import NoteError, checkpoint_time, stored_checkpoint
from node.home import TlsMaterial
from node.keys.roles import FEED
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer
from node.peers.roots import RootFetchError, fetch_root_updates, load_held_root
from node.storage import Store
from node.storage.models import ActionFeedRecord, ActionRecordRow, utcnow
from node.storage.peers import PeerRepository
from node.witness.trust import Trust, open_origin_checkpoint

log = structlog.get_logger("creditnode.actions")

FEEDS = ActionFeedRecord.__table__  # type: ignore[attr-defined]
RECORDS = ActionRecordRow.__table__  # type: ignore[attr-defined]
GET_ACTIONS = "/creditnode.v1.ActionsService/GetActions"
TAMPERED = "tampered"
MAX_ROUNDS = 1000  # GetActions calls per pull (each up to the server's batch)


class ActionsError(Exception):
    """A pull failed; nothing of the failing answer was kept."""


class ActionsUnavailable(ActionsError):
    """The partner could not be asked: nothing was received that failed verification."""


class ActionsRefused(ActionsError):
    """What the partner sent does not verify (or its actions feed was marked before)."""


@dataclass
class Held:
    """A partner's actions log as verified here."""

    size: int
    frontier: merkle.Frontier
    note: bytes  # the newest verified checkpoint (b"" before the first)
    state: str

    @property
    def checkpoint_size(self) -> int:
        return stored_checkpoint(self.note).size if self.note else 0


@dataclass
class PullResult:
    peer: str
    size: int
    kept: int  # records about this node's entries added


def _pack(frontier: merkle.Frontier) -> bytes:
    return b"".join(frontier.hashes)


def _unpack(size: int, data: bytes) -> merkle.Frontier:
    indexes = merkle.Frontier.indexes_for_size(size)
    if len(data) != 32 * len(indexes):
        raise ActionsRefused("the stored actions tree does not match its size")
    chunks = [data[i * 32 : (i + 1) * 32] for i in range(len(indexes))]
    return merkle.Frontier.from_hashes(size, dict(zip(indexes, chunks, strict=True)))


async def read_held(store: Store, peer: str) -> Held | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(FEEDS).where(FEEDS.c.peer == peer))).mappings().first()
    if row is None:
        return None
    size = int(row["size"])
    return Held(size, _unpack(size, bytes(row["frontier"])), bytes(row["checkpoint_note"]),
                str(row["state"]))  # fmt: skip


def _verify_checkpoint(
    resp: actions.GetActionsResponse, trust: Trust, peer_uri: str, held: Held, own_name: str
) -> tuple[merkle.Frontier, bytes, int, bytes]:
    """Verify the answer's checkpoint against *held*: the frontier to extend (a copy), the
    checkpoint's root, size and note."""
    signed = resp.checkpoint
    note = bytes(signed.note)
    try:
        cp = open_origin_checkpoint(
            note, trust, origin=actions_origin(peer_uri, own_name), key_name=peer_uri, role=FEED,
            now=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        at = checkpoint_time(cp)
    except NoteError as exc:
        raise ActionsRefused(f"actions checkpoint refused: {exc}") from None
    if held.note:
        before = stored_checkpoint(held.note)
        prev_at = checkpoint_time(before)
        if cp.size < before.size:
            raise ActionsRefused(
                f"actions log rolled back: size {cp.size} after verified size {before.size}"
            )
        if cp.size == before.size and cp.root != before.root:
            raise ActionsRefused(f"two actions roots signed for size {cp.size}")
        if cp.size > before.size:
            if signed.proof_from_size != before.size:
                raise ActionsRefused("consistency proof does not start at the verified size")
            try:
                merkle.verify_consistency(
                    list(signed.consistency_proof), before.size, before.root, cp.size, cp.root
                )
            except merkle.ProofError as exc:
                raise ActionsRefused(
                    f"actions log does not extend the verified one: {exc}"
                ) from None
        if at is not None and prev_at is not None and at < prev_at:
            raise ActionsRefused(
                "actions checkpoint signed earlier than the one verified (replayed)"
            )
    if cp.size < held.size:
        raise ActionsRefused("actions checkpoint is behind the records already kept")
    return (
        merkle.Frontier.from_hashes(
            held.size,
            dict(
                zip(merkle.Frontier.indexes_for_size(held.size), held.frontier.hashes, strict=True)
            ),
        ),
        cp.root,
        cp.size,
        note,
    )


def _records(
    resp: actions.GetActionsResponse, frontier: merkle.Frontier, root: bytes, size: int,
    own_uri: str,
) -> list[tuple[int, Response | Hit]]:  # fmt: skip
    """Extend *frontier* (in place) with the batch, prove it leads to the checkpoint (root,
    size) and parse each leaf strictly; each must be about *own_uri*'s entries."""
    if not resp.HasField("batch") or not resp.batch.leaves:
        if frontier.size < size:
            raise ActionsRefused("the partner sent no leaves for its checkpoint")
        if frontier.size == size and frontier.root() != root:
            raise ActionsRefused("the records kept do not give the signed actions root")
        return []
    batch = resp.batch
    if batch.start != frontier.size:
        raise ActionsRefused(f"actions batch starts at {batch.start}, expected {frontier.size}")
    end = batch.start + len(batch.leaves)
    if end > size:
        raise ActionsRefused("actions batch runs past its checkpoint")
    out: list[tuple[int, Response | Hit]] = []
    for i, leaf in enumerate(batch.leaves):
        data = bytes(leaf.entry)
        frontier.append(merkle.leaf_hash(data))
        try:
            record = parse_record(data)
        except RecordError as exc:
            raise ActionsRefused(f"actions leaf {batch.start + i}: {exc}") from None
        if record.origin != own_uri:
            raise ActionsRefused(
                f"actions leaf {batch.start + i} is about another node's entries: "
                "the partner serves a log that is not ours"
            )
        out.append((batch.start + i, record))
    try:
        merkle.verify_consistency(list(batch.proof_to_checkpoint), end, frontier.root(), size, root)
    except merkle.ProofError as exc:
        raise ActionsRefused(
            f"actions leaves [{batch.start}, {end}) do not lead to the checkpoint: {exc}"
        ) from None
    return out


def _reason(text: str) -> str:
    """A refusal's description, if an audit entry can hold it (else only that it failed)."""
    try:
        return check_matter(text[:200])
    except EntryError:
        return "refused"


def _row(peer: str, idx: int, r: Response | Hit) -> dict[str, Any]:
    row: dict[str, Any] = {
        "peer": peer, "idx": idx, "entry": r.entry, "department": r.department,
        "at_us": r.at_us, "measure": "", "action": "", "reason": "", "date": "", "officer": "",
        "purpose": "", "matter": "",
    }  # fmt: skip
    if isinstance(r, Response):
        row.update(kind="response", measure=r.measure, action=r.action, reason=r.reason,
                   date=r.date, officer=r.officer)  # fmt: skip
    else:
        row.update(kind="hit", purpose=r.purpose, matter=r.matter)
    return row


async def _keep(
    store: Store, peer: str, origin: str, before: Held | None, frontier: merkle.Frontier,
    note: bytes, rows: list[dict[str, Any]],
) -> None:  # fmt: skip
    values = {
        "origin": origin, "size": frontier.size, "root": frontier.root(),
        "frontier": _pack(frontier), "checkpoint_note": note, "updated_at": utcnow(),
    }  # fmt: skip
    try:
        await _store(store, peer, before, values, rows)
    except IntegrityError:  # another pull (another process) stored the same leaves first
        raise ActionsError(f"{peer}: actions feed moved under this pull; pull again") from None


async def _store(
    store: Store, peer: str, before: Held | None, values: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:  # fmt: skip
    async with store.begin() as conn:
        if before is None:
            await conn.execute(
                FEEDS.insert().values(peer=peer, state="ok", state_detail="", **values)
            )
        else:
            done = await conn.execute(
                update(FEEDS)
                .where(
                    and_(
                        FEEDS.c.peer == peer, FEEDS.c.size == before.size, FEEDS.c.state != TAMPERED
                    )
                )
                .values(**values)
            )
            if done.rowcount != 1:
                raise ActionsError(f"{peer}: actions feed moved under this pull; pull again")
        if rows:
            await conn.execute(RECORDS.insert(), rows)


async def mark_tampered(store: Store, peer: str, origin: str, detail: str) -> None:
    async with store.begin() as conn:
        done = await conn.execute(
            update(FEEDS).where(FEEDS.c.peer == peer)
            .values(state=TAMPERED, state_detail=detail[:500], updated_at=utcnow())
        )  # fmt: skip
        if done.rowcount == 0:
            await conn.execute(
                FEEDS.insert().values(
                    peer=peer,
                    origin=origin,
                    size=0,
                    root=merkle.empty_root(),
                    frontier=b"",
                    checkpoint_note=b"",
                    state=TAMPERED,
                    state_detail=detail[:500],
                    updated_at=utcnow(),
                )
            )


async def pull_actions(
    tls: TlsMaterial,
    store: Store,
    peer: KnownPeer,
    own_uri: str,
    *,
    audit: AuditLog | None = None,
    timeout: float = 30.0,
) -> PullResult:
    """Bring the partner's actions log up to its newest checkpoint (see the module docstring)."""
    name, peer_uri = peer.identity.node, peer.identity.uri
    own_name = NodeIdentity.parse(own_uri).node
    origin = actions_origin(peer_uri, own_name)
    repo = PeerRepository(store)
    try:
        trusted = await load_held_root(repo, peer.identity)
    except RootFetchError as exc:
        raise ActionsError(str(exc)) from None
    trust: Trust = trusted if trusted is not None else VerifyingKey.from_text(peer.record.feed_key)
    kept = 0
    channel = peer.channel(tls)
    try:
        stub = actions_rpc.ActionsServiceStub(channel)
        for _ in range(MAX_ROUNDS):
            held = await read_held(store, name)
            if held is not None and held.state == TAMPERED:
                raise ActionsRefused(f"{name}: actions feed marked tampered; not pulled")
            base = held or Held(0, merkle.Frontier(), b"", "ok")
            asker = new_asker()
            try:
                resp = await stub.GetActions(
                    actions.GetActionsRequest(
                        from_size=base.size, checkpoint_size=base.checkpoint_size
                    ),
                    timeout=timeout,
                    metadata=asker.metadata(),
                )
            except grpc.aio.AioRpcError as err:
                problem = describe_rpc_error(peer.identity, peer.record.endpoint, err)
                if audit is not None:  # a refusal the partner recorded has its receipt here
                    await audit.record(out_entry(
                        asker, peer=name, method=GET_ACTIONS, kind="feed_range",
                        outcome="refused", reason=_reason(problem),
                    ))  # fmt: skip
                raise ActionsUnavailable(problem) from None
            if audit is not None:
                n = len(resp.batch.leaves)
                await audit.record(out_entry(
                    asker, peer=name, method=GET_ACTIONS, kind="feed_range", outcome="received",
                    response=resp.SerializeToString(),
                    leaves=(base.size, base.size + n - 1) if n else None,
                ))  # fmt: skip
            try:
                try:
                    frontier, root, size, note = _verify_checkpoint(
                        resp, trust, peer_uri, base, own_name
                    )
                except ActionsRefused:
                    if trusted is None:
                        raise
                    # A rotation published meanwhile: bring the root held up to date, retry.
                    update_ = await fetch_root_updates(channel, repo, peer, trusted)
                    if not update_.accepted or update_.trusted is None:
                        raise
                    trusted = trust = update_.trusted
                    frontier, root, size, note = _verify_checkpoint(
                        resp, trust, peer_uri, base, own_name
                    )
                records = _records(resp, frontier, root, size, own_uri)
            except ActionsRefused as exc:
                await mark_tampered(store, name, origin, str(exc))
                log.error("partner actions refused", peer=name, reason=str(exc))
                raise
            rows = [_row(name, i, r) for i, r in records]
            await _keep(store, name, origin, held, frontier, note, rows)
            kept += len(rows)
            if frontier.size >= size:
                return PullResult(name, frontier.size, kept)
        return PullResult(name, (await read_held(store, name) or base).size, kept)
    except RootFetchError as exc:
        raise ActionsError(str(exc)) from None
    finally:
        await channel.close()


async def actions_mark(store: Store, peer: str) -> str | None:
    """Why *peer*'s actions feed is marked ``tampered`` (its detail), or None if it is not."""
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(FEEDS.c.state, FEEDS.c.state_detail).where(FEEDS.c.peer == peer)
            )
        ).first()
    if row is None or row.state != TAMPERED:
        return None
    return str(row.state_detail)


async def clear_tampered(store: Store, peer: str) -> str | None:
    """The operator's decision that *peer*'s ``tampered`` actions feed may be judged afresh:
    back to ``ok``, so the next pull verifies again from the checkpoint held (a bad answer
    still served is marked again). The detail it had, or None if it was not marked."""
    async with store.begin() as conn:
        row = (
            await conn.execute(
                select(FEEDS.c.state_detail).where(
                    and_(FEEDS.c.peer == peer, FEEDS.c.state == TAMPERED)
                )
            )
        ).first()
        if row is None:
            return None
        await conn.execute(
            update(FEEDS)
            .where(and_(FEEDS.c.peer == peer, FEEDS.c.state == TAMPERED))
            .values(state="ok", state_detail="", updated_at=utcnow())
        )
    return str(row.state_detail)
