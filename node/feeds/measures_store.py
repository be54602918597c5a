"""Measures catalogues in the database (migration 0014), content-addressed by SHA-256, and the
fetch that brings a partner's catalogue to its holders (issue 15).

The origin keeps each catalogue it checks an import by (:func:`keep`) and serves its documents
by digest (``FeedService.GetMeasuresCatalogue``). The digest is committed in the signed,
Merkle-proven leaves of every entry checked by it, so a holder that fetches the documents and
finds that they hash to the digest holds the text the origin published: :func:`fetch_missing`
keeps a catalogue only then, and only if it parses; anything else is logged and nothing is
kept. Reading one back checks the hash again (fail closed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.measures import MeasureCatalogue, MeasuresError, from_documents
from node.storage import Store, dialect
from node.storage.models import utcnow

if TYPE_CHECKING:
    import grpc

    from node.audit.log import AuditLog

log = structlog.get_logger("creditnode.measures")

GET_MEASURES_CATALOGUE = "/creditnode.v1.FeedService/GetMeasuresCatalogue"
SHA256 = re.compile(r"[0-9a-f]{64}")
# Catalogues fetched from one peer per sync at most: an origin citing ever new digests must
# not make its holders fetch without end (the rest wait for the next sync).
MAX_FETCH_PER_SYNC = 16

# A table of its own metadata: created by migration 0014, never by create_all.
_META = MetaData()
MEASURES_CATALOGUES = Table(
    "measures_catalogues",
    _META,
    Column("sha256", String(64), primary_key=True),
    Column("label", String(400), nullable=False),
    Column("documents", LargeBinary, nullable=False),
    Column("fetched_from", String(63), nullable=False),
    Column("kept_at", DateTime(timezone=True), nullable=False),
)
# The digests each log's bodies have cited (migration 0025), kept by the projection as it
# writes the bodies: a sync asks for those not held without reading every body it holds.
# Only ever added to: a digest whose citing entries are gone is still asked for once a sync.
MEASURES_CITED = Table(
    "measures_cited",
    _META,
    Column("log_id", Integer, primary_key=True),
    Column("sha256", String(64), primary_key=True),
)


async def keep(
    conn: AsyncConnection, catalogue: MeasureCatalogue, *, fetched_from: str = ""
) -> None:
    """Keep *catalogue*'s documents under their digest (a digest already held is left as is:
    the same digest is the same bytes)."""
    if not catalogue.documents:
        raise ValueError("a catalogue without its documents cannot be kept")
    await conn.execute(
        dialect.insert_ignore(conn.dialect.name, MEASURES_CATALOGUES).values(
            sha256=catalogue.sha256, label=catalogue.label[:400], documents=catalogue.documents,
            fetched_from=fetched_from, kept_at=utcnow(),
        )
    )  # fmt: skip


async def documents(conn: AsyncConnection, sha256: str) -> bytes | None:
    """The documents held under *sha256*, if they still hash to it."""
    if not SHA256.fullmatch(sha256):
        return None
    row = (
        await conn.execute(
            select(MEASURES_CATALOGUES.c.documents).where(MEASURES_CATALOGUES.c.sha256 == sha256)
        )
    ).first()
    if row is None:
        return None
    data = bytes(row[0])
    if hashlib.sha256(data).hexdigest() != sha256:
        log.error("stored measures catalogue does not hash to its key", sha256=sha256[:16])
        return None
    return data


async def held(conn: AsyncConnection, digests: Iterable[str]) -> set[str]:
    """Which of *digests* are held."""
    wanted = sorted({d for d in digests if SHA256.fullmatch(d)})
    found: set[str] = set()
    for i in range(0, len(wanted), 500):
        rows = await conn.execute(
            select(MEASURES_CATALOGUES.c.sha256).where(
                MEASURES_CATALOGUES.c.sha256.in_(wanted[i : i + 500])
            )
        )
        found.update(r[0] for r in rows)
    return found


async def load_held(conn: AsyncConnection, digests: Iterable[str]) -> dict[str, MeasureCatalogue]:
    """The held catalogues of *digests*, parsed (one whose bytes no longer verify is left out)."""
    out: dict[str, MeasureCatalogue] = {}
    for digest in sorted(set(digests)):
        data = await documents(conn, digest)
        if data is None:
            continue
        try:
            out[digest] = from_documents(data, digest, source=f"measures catalogue {digest[:16]}")
        except MeasuresError:
            log.error("stored measures catalogue does not parse", sha256=digest[:16])
    return out


def _cited(entry: feeds.ListEntry) -> str:
    """The catalogue digest *entry* cites ("" if none or malformed)."""
    if not entry.HasField("measures_catalogue"):
        return ""
    digest = entry.measures_catalogue.sha256
    return digest if SHA256.fullmatch(digest) else ""


def cited_by(body: bytes) -> str:
    """The measures catalogue digest an entry body cites ("" if none or unreadable)."""
    try:
        entry = feeds.ListEntry.FromString(body)
    except Exception:  # a held body was verified; a broken one cites nothing
        return ""
    return _cited(entry)


def cited_in(entries: Iterable[feeds.ListEntry]) -> set[str]:
    """The well-formed catalogue digests *entries* cite."""
    return {d for e in entries if (d := _cited(e))}


async def note_cited(conn: AsyncConnection, log_id: int, digests: Iterable[str]) -> None:
    """Record that *log_id*'s bodies cite *digests* (in the transaction writing them)."""
    rows = [{"log_id": log_id, "sha256": d} for d in sorted(digests)]
    if rows:
        await conn.execute(dialect.insert_ignore(conn.dialect.name, MEASURES_CITED), rows)


async def cited(conn: AsyncConnection, log_id: int) -> set[str]:
    """The catalogue digests one log's bodies have cited."""
    rows = await conn.execute(
        select(MEASURES_CITED.c.sha256).where(MEASURES_CITED.c.log_id == log_id)
    )
    return {r[0] for r in rows}


@dataclass
class Fetched:
    """What one fetch did: digests held already, kept, refused (did not verify) and
    unavailable (the rest were not asked for this time)."""

    held: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


async def fetch_missing(
    channel: grpc.aio.Channel,
    store: Store,
    digests: Iterable[str],
    *,
    peer: str,
    audit: AuditLog | None = None,
    timeout: float | None = 30.0,
) -> Fetched:
    """Ask *peer* for each catalogue of *digests* not held, and keep those whose documents
    hash to their digest and parse. Nothing is kept of one that does not verify."""
    # Here, not at the top: `lists` reads held catalogues without grpc or the audit log.
    import grpc

    from node.api import feeds_rpc
    from node.audit.local import out_entry
    from node.audit.wire import new_asker

    result = Fetched()
    async with store.engine.connect() as conn:
        have = await held(conn, digests)
    wanted = {d for d in digests if SHA256.fullmatch(d)}
    result.held = sorted(wanted & have)
    missing = sorted(wanted - have)[:MAX_FETCH_PER_SYNC]
    stub = feeds_rpc.FeedServiceStub(channel)
    for digest in missing:
        asker = new_asker()
        try:
            resp = await stub.GetMeasuresCatalogue(
                feeds.GetMeasuresCatalogueRequest(sha256=digest),
                timeout=timeout,
                metadata=asker.metadata(),
            )
        except grpc.aio.AioRpcError as err:
            log.warning(
                "measures catalogue not obtained", peer=peer, sha256=digest[:16],
                code=err.code().name,
            )  # fmt: skip
            result.unavailable.append(digest)
            continue
        if audit is not None:
            await audit.record(
                out_entry(asker, peer=peer, method=GET_MEASURES_CATALOGUE, kind="other",
                          outcome="received", response=resp.SerializeToString())
            )  # fmt: skip
        try:
            catalogue = from_documents(
                bytes(resp.documents), digest, source=f"{peer} measures catalogue"
            )
        except MeasuresError as exc:
            # Partner text is not echoed into the log: which check failed is enough.
            log.error(
                "measures catalogue refused: nothing kept", peer=peer, sha256=digest[:16],
                problems=len(exc.problems),
                reason="digest mismatch"
                if hashlib.sha256(bytes(resp.documents)).hexdigest() != digest
                else "does not parse",
            )  # fmt: skip
            result.refused.append(digest)
            continue
        async with store.begin() as conn:
            await keep(conn, catalogue, fetched_from=peer)
        log.info("measures catalogue kept", peer=peer, sha256=digest[:16])
        result.kept.append(digest)
    return result
