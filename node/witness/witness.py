"""The witness (I/O): cosign an enrolled peer's checkpoint after verifying it under the peer's
root held here and checking it extends the view held (:func:`decide`), with the new view
durable before the cosignature leaves; and the peers' trust that cosignatures and gossiped
checkpoints are judged by.

The cosigner's name is this node's identity URI. It cosigns with its witness keys valid now
when its own root lists witness keys, else with its feed key(s) (what peers enrolled with it
can verify: :func:`node.witness.trust.cosigner_keys`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from keys import NodeIdentity, SigningKey, VerifyingKey
from node.feeds.logstore import LOGS
from node.feeds.note import NoteError, stored_checkpoint
from node.home import Home
from node.keys.roles import WITNESS
from node.keys.signers import FeedSigners, RoleSigners
from node.keys.trusted import RootError, TrustedRoot
from node.storage import Store
from node.storage.models import EvidenceRecord, utcnow
from node.storage.peers import PeerRepository
from node.witness import cosignature as cs
from node.witness.cosignature import (
    MAX_COSIGNATURES,
    MAX_PROOF_HASHES,
    Cosignature,
    CosignatureError,
    cosign,
    decide,
    note_body,
    verify_cosignature,
)
from node.witness.store import advance_view, cosignatures_of, held_view
from node.witness.trust import Trust, cosigner_keys, open_origin_checkpoint, origin_role

log = structlog.get_logger("creditnode.witness")
EVIDENCE = EvidenceRecord.__table__  # type: ignore[attr-defined]

MAX_NOTE_BYTES = 16 * 1024  # a checkpoint with a few signatures is well under 1 KiB

# Refusal codes, mapped to gRPC status codes by the servicer (tlog-witness HTTP codes).
NOT_FOUND, FORBIDDEN, OUT_OF_RANGE, CONFLICT, BAD_PROOF, UNAVAILABLE = (
    "not_found",
    "forbidden",
    "out_of_range",
    "conflict",
    "bad_proof",
    "unavailable",
)
_CODES = {cs.OLD_TOO_LARGE: OUT_OF_RANGE, cs.CONFLICT: CONFLICT, cs.BAD_PROOF: BAD_PROOF}


class WitnessRefused(Exception):
    """add-checkpoint refused: *code* says which refusal; *held_size* on a conflict."""

    def __init__(self, code: str, message: str, held_size: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.held_size = held_size


async def peer_trust(peers: PeerRepository, name: str) -> Trust | None:
    """What judges *name*'s signatures: its newest root held here, or its enrolled feed key;
    None for a peer not enrolled (or whose held root is unusable: fail closed)."""
    held = await peers.held_root(name)
    if held is not None:
        try:
            return TrustedRoot(held[1])
        except RootError as exc:
            log.error("held root of peer unusable", peer=name, reason=str(exc))
            return None
    record = await peers.get(name)
    if record is None:
        return None
    try:
        return VerifyingKey.from_text(record.feed_key)
    except ValueError:
        return None


async def verified_cosignatures(
    peers: PeerRepository, body: bytes, lines: Iterable[str], *, skip: str = ""
) -> list[tuple[str, str]]:
    """The (cosigner URI, line) of each line in *lines* that is a valid cosignature of *body*
    by an enrolled peer (other than *skip*), judged under that peer's trust at the
    cosignature's time. Others are dropped (unknown cosigners are ignored, as signed-note
    requires; bad ones are logged)."""
    records = {NodeIdentity(r.federation, r.name).uri: r.name for r in await peers.list()}
    kept: list[tuple[str, str]] = []
    for line in list(lines)[:MAX_COSIGNATURES]:
        try:
            cos = Cosignature.parse(line)
        except CosignatureError:
            continue
        name = records.get(cos.name)
        if name is None or cos.name == skip or any(c == cos.name for c, _ in kept):
            continue
        trust = await peer_trust(peers, name)
        if trust is None:
            continue
        at = dt.datetime.fromtimestamp(min(cos.timestamp, 253402300799), dt.UTC)
        try:
            verify_cosignature(cos, body, cosigner_keys(trust, cos.name, at), name=cos.name)
        except CosignatureError as exc:
            log.warning("cosignature refused", cosigner=name, reason=str(exc))
            continue
        kept.append((cos.name, cos.line()))
    return kept


@dataclass(frozen=True)
class ProvenFork:
    """A fork a witness saw in an add-checkpoint request (recorded as evidence)."""

    origin: str
    kind: str
    detail: str
    held: bytes
    offered: bytes
    proof: bytes


class Witness:
    """Cosigns enrolled peers' checkpoints; answers what it holds for an origin."""

    def __init__(
        self,
        home: Home,
        store: Store,
        *,
        on_fork: Callable[[ProvenFork], None] | None = None,
    ) -> None:
        self.identity = home.identity
        self.store = store
        self.peers = PeerRepository(store)
        self._witness_signers = RoleSigners.of_home(home, WITNESS)
        self._feed_signers = FeedSigners.of_home(home)
        self._on_fork = on_fork

    def cosigning_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]:
        """The witness keys valid now if this node's root lists witness keys, else its feed
        keys (peers without a witness key of this node verify with those)."""
        root = self._witness_signers.root
        if root is None or not root.content.online_keys(WITNESS):
            return self._feed_signers.signing_keys(now)
        return self._witness_signers.signing_keys(now)

    async def add_checkpoint(
        self,
        caller: NodeIdentity,
        origin: str,
        old_size: int,
        proof: Sequence[bytes],
        note: bytes,
        *,
        now: dt.datetime | None = None,
    ) -> list[str]:
        """tlog-witness add-checkpoint for *caller*'s *origin*: the cosignature lines, or
        WitnessRefused. The new view is committed before this returns."""
        now = now or dt.datetime.now(dt.UTC)
        role = origin_role(caller.uri, origin)
        if role is None or caller.uri == self.identity.uri:
            raise WitnessRefused(NOT_FOUND, "this node witnesses only a peer's own logs")
        trust = await peer_trust(self.peers, caller.node)
        if trust is None:
            raise WitnessRefused(NOT_FOUND, f"{caller.node} is not an enrolled peer")
        if len(note) > MAX_NOTE_BYTES or len(proof) > MAX_PROOF_HASHES:
            raise WitnessRefused(BAD_PROOF, "checkpoint or proof too large")
        try:
            cp = open_origin_checkpoint(
                note, trust, origin=origin, key_name=caller.uri, role=role, now=now
            )
            body = note_body(note)
        except NoteError as exc:
            raise WitnessRefused(FORBIDDEN, f"checkpoint refused: {exc}") from None
        keys = self.cosigning_keys(now)
        if not keys:
            raise WitnessRefused(UNAVAILABLE, "this node holds no witness key valid now")
        timestamp = int(now.timestamp())
        lines = [cosign(body, k, timestamp=timestamp, name=self.identity.uri).line() for k in keys]
        async with self.store.begin() as conn:
            found = await held_view(conn, origin)
            held = found[0] if found else None
            refusal = decide(held, old_size, proof, cp)
            if refusal is None and not await advance_view(
                conn,
                origin=origin,
                peer=caller.node,
                before=held,
                size=cp.size,
                root=cp.root,
                note=note,
                cosignature="\n".join(lines),
            ):
                # Another request moved the view between our read and write: nothing written.
                raise WitnessRefused(CONFLICT, "the witness view changed; ask again", None)
        if refusal is not None:
            if refusal.fork is not None and held is not None:
                await self._fork(
                    ProvenFork(
                        origin, refusal.fork, refusal.detail, held.note, note, b"".join(proof)
                    )
                )
            code = _CODES[refusal.reason]
            raise WitnessRefused(code, f"{refusal.reason}: {refusal.detail}", refusal.held_size)
        log.info("checkpoint cosigned", peer=caller.node, origin=origin, size=cp.size)
        return lines

    async def _fork(self, fork: ProvenFork) -> None:
        """Keep a fork proven by a request as evidence on the origin's mirror, if this node
        mirrors that origin (its feed), and stop the mirror."""
        log.error("witness saw a fork", origin=fork.origin, kind=fork.kind, detail=fork.detail)
        async with self.store.begin() as conn:
            log_id = (
                await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == fork.origin))
            ).scalar()
            if log_id is None:
                return
            await conn.execute(
                EVIDENCE.insert().values(
                    log_id=log_id,
                    kind=fork.kind,
                    detail=f"witnessed: {fork.detail}"[:500],
                    earlier_note=fork.held,
                    later_note=fork.offered,
                    proof=fork.proof,
                    recorded_at=utcnow(),
                )
            )
            await conn.execute(
                LOGS.update()
                .where(LOGS.c.id == log_id)
                .values(
                    state="forked",
                    state_detail=f"{fork.kind}: witnessed {fork.detail}"[:500],
                    updated_at=utcnow(),
                )
            )
        if self._on_fork is not None:
            self._on_fork(fork)

    async def witnessed(self, origin: str) -> tuple[bytes, list[str]]:
        """The newest checkpoint this node holds for *origin* (its mirror's or own log's, or
        its witness view's), and the cosignatures it holds for that note's body."""
        async with self.store.engine.connect() as conn:
            notes: list[bytes] = []
            mirrored = (
                await conn.execute(select(LOGS.c.checkpoint_note).where(LOGS.c.origin == origin))
            ).scalar()
            if mirrored:
                notes.append(bytes(mirrored))
            view = await held_view(conn, origin)
            if view is not None:
                notes.append(view[0].note)
            best = max(notes, key=_size, default=b"")
            if not best or _size(best) < 0:
                return b"", []
            body = note_body(best)
            lines = await cosignatures_of(conn, origin, body)
        if view is not None and view[1] and note_body(view[0].note) == body:
            lines = [*view[1].split("\n"), *lines]
        return best, lines[:MAX_COSIGNATURES]


def _size(note: bytes) -> int:
    try:
        return stored_checkpoint(note).size
    except NoteError:
        return -1
