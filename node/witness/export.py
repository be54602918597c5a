"""Read the fork evidence a node holds about one peer into an evidence document (I/O)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from keys import NodeIdentity
from node.errors import InputError
from node.feeds.logstore import LOGS
from node.feeds.subscriber import NOT_FORKS
from node.storage import Store
from node.storage.models import EvidenceRecord
from node.storage.peers import PEER_ROOTS, PeerRepository
from node.witness import evidence
from node.witness.cosignature import Cosignature, CosignatureError

EVIDENCE = EvidenceRecord.__table__  # type: ignore[attr-defined]


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes for what was written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


async def export_evidence(store: Store, peer: str, *, now: dt.datetime) -> dict[str, Any]:
    """The evidence document for *peer*'s feed. InputError if the peer is not enrolled or no
    fork evidence is held for it."""
    record = await PeerRepository(store).get(peer)
    if record is None:
        raise InputError(f"{peer!r} is not an enrolled peer")
    origin = NodeIdentity(record.federation, record.name).uri
    async with store.engine.connect() as conn:
        log_id = (await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == origin))).scalar()
        rows = (
            []
            if log_id is None
            else (
                await conn.execute(
                    # Forks only: a refused checkpoint or a tampered leaf proves nothing
                    # about the origin to a third party (`status` shows those).
                    select(EVIDENCE)
                    .where(EVIDENCE.c.log_id == log_id, EVIDENCE.c.kind.not_in(NOT_FORKS))
                    .order_by(EVIDENCE.c.id)
                )
            )
            .mappings()
            .all()
        )
        roots = [
            bytes(data)
            for (data,) in await conn.execute(
                select(PEER_ROOTS.c.data)
                .where(PEER_ROOTS.c.peer == peer)
                .order_by(PEER_ROOTS.c.version)
            )
        ]
    if not rows:
        raise InputError(f"no fork evidence is held for {peer}")
    records = [
        evidence.Record(
            kind=str(r["kind"]),
            detail=str(r["detail"]),
            recorded_at=_utc(r["recorded_at"]),
            earlier_note=bytes(r["earlier_note"]),
            later_note=bytes(r["later_note"]),
            proof=bytes(r["proof"]),
        )
        for r in rows[: evidence.MAX_RECORDS]
    ]
    named = {c for r in records for n in (r.earlier_note, r.later_note) for c in _named(n)}
    cosigners: dict[str, tuple[list[bytes], str]] = {}
    async with store.engine.connect() as conn:
        for other in await PeerRepository(store).list():
            uri = NodeIdentity(other.federation, other.name).uri
            if uri not in named:
                continue
            chain = [
                bytes(data)
                for (data,) in await conn.execute(
                    select(PEER_ROOTS.c.data)
                    .where(PEER_ROOTS.c.peer == other.name)
                    .order_by(PEER_ROOTS.c.version)
                )
            ]
            cosigners[uri] = (chain, other.feed_key)
    return evidence.build(
        origin=origin,
        peer=peer,
        roots=roots,
        feed_key=record.feed_key,
        records=records,
        exported_at=now,
        cosigners=cosigners,
    )


def _named(note: bytes) -> list[str]:
    """The cosigners named on *note*'s cosignature lines."""
    found = []
    for line in note.decode("utf-8", "replace").split("\n\n", 1)[-1].splitlines():
        try:
            found.append(Cosignature.parse(line).name)
        except CosignatureError:
            continue
    return found
