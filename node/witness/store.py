"""What a node keeps of witnessing (I/O): its witness view per peer origin (``witnessed``) and
the verified cosignatures it holds (``cosignatures``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.feeds.logstore import CHECKPOINTS
from node.feeds.note import NoteError
from node.storage import Store, dialect
from node.storage.models import CosignatureRecord, WitnessedRecord, utcnow
from node.witness.cosignature import MAX_COSIGNATURES, Held, note_body

WITNESSED = WitnessedRecord.__table__  # type: ignore[attr-defined]
COSIGNATURES = CosignatureRecord.__table__  # type: ignore[attr-defined]


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def held_view(conn: AsyncConnection, origin: str) -> tuple[Held, str] | None:
    """The checkpoint this node holds as witness of *origin*, and its cosignature line."""
    row = (
        await conn.execute(
            select(
                WITNESSED.c.size, WITNESSED.c.root, WITNESSED.c.note, WITNESSED.c.cosignature
            ).where(WITNESSED.c.origin == origin)
        )
    ).first()
    if row is None:
        return None
    return Held(int(row.size), bytes(row.root), bytes(row.note)), str(row.cosignature)


async def advance_view(
    conn: AsyncConnection,
    *,
    origin: str,
    peer: str,
    before: Held | None,
    size: int,
    root: bytes,
    note: bytes,
    cosignature: str,
) -> bool:
    """Replace the view *before* (None: no view yet) by the new checkpoint, only if the view
    is still *before* (compare-and-swap): False if another request moved it meanwhile."""
    values = {
        "size": size,
        "root": root,
        "note": note,
        "cosignature": cosignature,
        "updated_at": utcnow(),
    }
    if before is None:
        stmt = dialect.insert_ignore(conn.dialect.name, WITNESSED).values(
            origin=origin, peer=peer, **values
        )
        return (await conn.execute(stmt)).rowcount == 1
    result = await conn.execute(
        update(WITNESSED)
        .where(
            and_(
                WITNESSED.c.origin == origin,
                WITNESSED.c.size == before.size,
                WITNESSED.c.root == before.root,
            )
        )
        .values(**values)
    )
    return result.rowcount == 1


async def keep_cosignatures(
    store: Store, origin: str, body: bytes, size: int, lines: Iterable[tuple[str, str]]
) -> int:
    """Keep verified cosignature *lines* ((cosigner, line) pairs) of *body*; the first kept
    per cosigner stays. Returns how many were new."""
    rows = [
        {
            "origin": origin,
            "body_sha256": body_sha256(body),
            "cosigner": cosigner,
            "size": size,
            "line": line,
            "received_at": utcnow(),
        }
        for cosigner, line in lines
    ]
    if not rows:
        return 0
    added = 0
    async with store.begin() as conn:
        stmt = dialect.insert_ignore(conn.dialect.name, COSIGNATURES)
        for row in rows:
            added += (await conn.execute(stmt.values(**row))).rowcount
    return added


async def cosignatures_of(conn: AsyncConnection, origin: str, body: bytes) -> list[str]:
    """The cosignature lines held for *body* of *origin* (at most MAX_COSIGNATURES)."""
    rows = await conn.execute(
        select(COSIGNATURES.c.line)
        .where(
            and_(COSIGNATURES.c.origin == origin, COSIGNATURES.c.body_sha256 == body_sha256(body))
        )
        .order_by(COSIGNATURES.c.cosigner)
        .limit(MAX_COSIGNATURES)
    )
    return [str(line) for (line,) in rows]


async def cosigned_checkpoints(
    conn: AsyncConnection, origin: str, log_id: int, max_size: int, *, limit: int = 16
) -> list[tuple[bytes, list[str]]]:
    """The newest checkpoints (at most *limit*) of this node's log *log_id* (origin *origin*)
    of at most *max_size* for which cosignatures are held, newest first: each signed note
    (from ``checkpoints``) and its cosignature lines."""
    sizes = (
        await conn.execute(
            select(COSIGNATURES.c.size, COSIGNATURES.c.body_sha256)
            .where(and_(COSIGNATURES.c.origin == origin, COSIGNATURES.c.size <= max_size))
            .distinct()
            .order_by(COSIGNATURES.c.size.desc())
            .limit(limit)
        )
    ).all()
    found: list[tuple[bytes, list[str]]] = []
    for size, digest in sizes:
        signed = (
            await conn.execute(
                select(CHECKPOINTS.c.note).where(
                    and_(CHECKPOINTS.c.log_id == log_id, CHECKPOINTS.c.size == size)
                )
            )
        ).scalar()
        if signed is None:
            continue
        try:
            body = note_body(bytes(signed))
        except NoteError:
            continue
        if body_sha256(body) == digest:
            found.append((bytes(signed), await cosignatures_of(conn, origin, body)))
    return found
