"""Officers this node issued credentials to (migration 0012), and the generation row a running
node polls to see an issue or a revocation made by any process."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from node.storage._store import Store

# Tables of their own metadata: created by migration 0012, never by create_all.
_META = MetaData()
OFFICERS = Table(
    "officers",
    _META,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("department", String(18), nullable=False),
    Column("role", String(10), nullable=False),
    Column("purposes", String(400), nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
OFFICER_GENERATION = Table(
    "officer_generation",
    _META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
)

ROLES = ("officer", "auditor", "operator")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)  # SQLite hands back naive datetimes


@dataclass(frozen=True)
class OfficerRecord:
    id: str
    name: str
    department: str
    role: str
    purposes: tuple[str, ...]
    fingerprint: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class OfficerRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, record: OfficerRecord) -> None:
        async with self._store.begin() as conn:
            await conn.execute(
                insert(OFFICERS).values(
                    id=record.id, name=record.name, department=record.department,
                    role=record.role, purposes=",".join(record.purposes),
                    fingerprint=record.fingerprint, issued_at=record.issued_at,
                    expires_at=record.expires_at, revoked_at=None,
                )
            )  # fmt: skip
            await _bump(conn)

    async def revoke(self, officer_id: str, at: dt.datetime) -> bool:
        """Revoke an officer's credential; False if there is no such unrevoked officer."""
        async with self._store.begin() as conn:
            done = await conn.execute(
                update(OFFICERS)
                .where(OFFICERS.c.id == officer_id, OFFICERS.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            if done.rowcount:
                await _bump(conn)
            return bool(done.rowcount)

    async def list(self) -> list[OfficerRecord]:
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(select(OFFICERS).order_by(OFFICERS.c.issued_at))).all()
        return [
            OfficerRecord(
                id=r.id, name=r.name, department=r.department, role=r.role,
                purposes=tuple(p for p in r.purposes.split(",") if p),
                fingerprint=r.fingerprint, issued_at=_utc(r.issued_at) or r.issued_at,
                expires_at=_utc(r.expires_at) or r.expires_at, revoked_at=_utc(r.revoked_at),
            )
            for r in rows
        ]  # fmt: skip

    async def generation(self) -> int:
        async with self._store.engine.connect() as conn:
            value = (
                await conn.execute(
                    select(OFFICER_GENERATION.c.generation).where(OFFICER_GENERATION.c.id == 1)
                )
            ).scalar()
        return int(value or 0)


async def _bump(conn: AsyncConnection) -> None:
    """In the change's own transaction: whoever reads the new generation sees the change."""
    await conn.execute(
        update(OFFICER_GENERATION)
        .where(OFFICER_GENERATION.c.id == 1)
        .values(generation=OFFICER_GENERATION.c.generation + 1)
    )
