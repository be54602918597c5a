"""Reading and writing enrolled peers."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

from sqlalchemy import and_, delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from keys import PeerBundle
from node.storage._store import Store
from node.storage.models import EnrollmentGeneration, PeerRecord, PeerRootRecord, utcnow

GENERATION = EnrollmentGeneration.__table__  # type: ignore[attr-defined]
PEER_ROOTS = PeerRootRecord.__table__  # type: ignore[attr-defined]
_GENERATION_SQL = f"SELECT generation FROM {GENERATION.name} WHERE id = 1"  # noqa: S608


def root_sha256(data: bytes | None) -> str:
    """What ``peers.root_v1_sha256`` holds for a pinned root v1 (``""``: none)."""
    return "" if data is None else hashlib.sha256(data).hexdigest()


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything this node writes is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class PeerRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self) -> list[PeerRecord]:
        async with self._store.session() as s:
            rows = (await s.exec(select(PeerRecord).order_by(col(PeerRecord.name)))).all()
        for r in rows:
            r.last_seen = as_utc(r.last_seen)
            r.enrolled_at = as_utc(r.enrolled_at) or r.enrolled_at
        return list(rows)

    async def get(self, name: str) -> PeerRecord | None:
        async with self._store.session() as s:
            row = await s.get(PeerRecord, name)
        if row is not None:
            row.last_seen = as_utc(row.last_seen)
        return row

    async def generation(self) -> int:
        """The enrollment generation: it grows with every committed enrollment change, made
        by this process or any other on the same database (one primary-key read)."""
        reader = self._store.reader  # polled five times a second: the plain driver's read
        if reader is not None:
            rows = await reader.fetch(_GENERATION_SQL)
            return int(rows[0][0]) if rows else 0
        async with self._store.engine.connect() as conn:
            value = (
                await conn.execute(select(GENERATION.c.generation).where(GENERATION.c.id == 1))
            ).scalar()
        return int(value or 0)

    async def upsert(
        self,
        bundle: PeerBundle,
        *,
        check: Callable[[PeerRecord], None] | None = None,
        root_v1: bytes | None = None,
        create: bool = True,
    ) -> bool:
        """Enroll or re-enroll from a bundle; True if the peer is new. *check* sees the
        enrolled record first, in the same transaction, and may refuse by raising. Without
        *create*, a peer not enrolled raises LookupError (nothing written).

        *root_v1* (already verified by the caller) is pinned as the peer's root: a new pin, or
        another v1 than the one pinned, replaces the peer's whole held chain; the same v1 again
        keeps the versions verified since."""
        pin = root_sha256(root_v1)
        async with self._store.write_session() as s:
            row = await s.get(PeerRecord, bundle.name)
            created = row is None
            if created and not create:
                raise LookupError(bundle.name)
            if row is not None and check is not None:
                check(row)
            if row is None:
                row = PeerRecord(
                    name=bundle.name,
                    federation=bundle.federation,
                    region=bundle.region,
                    endpoint=bundle.endpoint,
                    ca_certificate=bundle.ca_certificate,
                    tls_certificate=bundle.tls_certificate,
                    feed_key=bundle.feed_key,
                )
            else:
                row.federation = bundle.federation
                row.region = bundle.region
                row.endpoint = bundle.endpoint
                row.ca_certificate = bundle.ca_certificate
                row.tls_certificate = bundle.tls_certificate
                row.feed_key = bundle.feed_key
                row.state = "unknown"
                row.last_error = ""
            row.software_version = bundle.software_version
            row.protocol_version = bundle.protocol_version
            repin = created or row.root_v1_sha256 != pin
            row.root_v1_sha256 = pin
            s.add(row)
            if repin:
                await s.exec(delete(PEER_ROOTS).where(PEER_ROOTS.c.peer == bundle.name))
                if root_v1 is not None:
                    await s.exec(
                        insert(PEER_ROOTS).values(peer=bundle.name, version=1, data=root_v1)
                    )
            await _bump_generation(s)
            await s.commit()
        return created

    async def remove(self, name: str) -> bool:
        async with self._store.write_session() as s:
            row = await s.get(PeerRecord, name)
            if row is None:
                return False
            await s.delete(row)
            await s.exec(delete(PEER_ROOTS).where(PEER_ROOTS.c.peer == name))
            await _bump_generation(s)
            await s.commit()
        return True

    async def held_root(self, name: str) -> tuple[int, bytes] | None:
        """The newest version of *name*'s root this node verified, exactly as signed, or None
        if no root is pinned for it."""
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(
                    PEER_ROOTS.select()
                    .where(PEER_ROOTS.c.peer == name)
                    .order_by(PEER_ROOTS.c.version.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else (int(row.version), bytes(row.data))

    async def held_roots(self) -> dict[str, tuple[int, bytes]]:
        """The newest verified root version of every peer that has one: {name: (version,
        bytes)} (one query; what a running node's gate checks transport certificates with)."""
        newest = (
            PEER_ROOTS.select()
            .with_only_columns(PEER_ROOTS.c.peer, func.max(PEER_ROOTS.c.version).label("v"))
            .group_by(PEER_ROOTS.c.peer)
            .subquery()
        )
        query = PEER_ROOTS.select().join(
            newest, and_(PEER_ROOTS.c.peer == newest.c.peer, PEER_ROOTS.c.version == newest.c.v)
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {str(r.peer): (int(r.version), bytes(r.data)) for r in rows}

    async def add_roots(
        self, name: str, *, after: tuple[int, bytes], roots: Sequence[tuple[int, bytes]]
    ) -> bool:
        """Keep newly verified versions of *name*'s root, all in one transaction, if the newest
        held version is still *after* (version, bytes), the one they were verified from.
        False (nothing kept) if the pin moved meanwhile (a re-pin, or another process kept
        the same versions first). Bumps the enrollment generation in the same transaction,
        so that running nodes re-read the roots their gates check certificates against."""
        if not roots:
            return True
        try:
            return await self._add_roots(name, after, roots)
        except IntegrityError:  # another process kept the same versions first
            return False

    async def _add_roots(
        self, name: str, after: tuple[int, bytes], roots: Sequence[tuple[int, bytes]]
    ) -> bool:
        async with self._store.begin() as conn:
            newest = (
                await conn.execute(
                    PEER_ROOTS.select().where(
                        and_(
                            PEER_ROOTS.c.peer == name,
                            PEER_ROOTS.c.version
                            == PEER_ROOTS.select()
                            .with_only_columns(func.max(PEER_ROOTS.c.version))
                            .where(PEER_ROOTS.c.peer == name)
                            .scalar_subquery(),
                        )
                    )
                )
            ).first()
            if newest is None or (int(newest.version), bytes(newest.data)) != after:
                return False
            await conn.execute(
                insert(PEER_ROOTS),
                [{"peer": name, "version": v, "data": data} for v, data in roots],
            )
            await conn.execute(
                update(GENERATION)
                .where(GENERATION.c.id == 1)
                .values(generation=GENERATION.c.generation + 1)
            )
        return True

    async def record_contact(
        self,
        name: str,
        *,
        state: str,
        error: str = "",
        software_version: str | None = None,
        protocol_version: str | None = None,
        seen: bool = False,
        when: dt.datetime | None = None,
    ) -> None:
        """Store the outcome of a heartbeat or an inbound call from the peer."""
        async with self._store.write_session() as s:
            row = await s.get(PeerRecord, name)
            if row is None:
                return
            row.state = state
            row.last_error = error[:500]
            if seen:
                row.last_seen = when or utcnow()
            if software_version is not None:
                row.software_version = software_version[:40]
            if protocol_version is not None:
                row.protocol_version = protocol_version[:10]
            s.add(row)
            await s.commit()


async def _bump_generation(s: AsyncSession) -> None:
    """Part of the enrollment change's own transaction: a node that reads the new generation
    reads the change with it."""
    await s.flush()
    await s.exec(
        update(GENERATION)
        .where(GENERATION.c.id == 1)
        .values(generation=GENERATION.c.generation + 1)
    )
