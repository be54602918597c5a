"""SQLModel tables. Every table is created by an Alembic migration, never by create_all."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PeerRecord(SQLModel, table=True):
    """An enrolled peer: its public bundle and what this node last observed of it."""

    __tablename__ = "peers"

    name: str = Field(primary_key=True, max_length=63)
    federation: str = Field(max_length=63)
    region: str = Field(max_length=6)
    endpoint: str = Field(max_length=300)
    ca_certificate: str = Field(sa_column=Column(Text, nullable=False))
    tls_certificate: str = Field(sa_column=Column(Text, nullable=False))
    feed_key: str = Field(max_length=300)
    enrolled_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    state: str = Field(default="unknown", max_length=16)
    last_seen: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str = Field(default="", max_length=500)
    software_version: str = Field(default="", max_length=40)
    protocol_version: str = Field(default="", max_length=10)
