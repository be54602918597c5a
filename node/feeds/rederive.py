"""Re-derive this origin's own pseudonyms after its pseudonym key changed (a rotation, or the
migration from the old shared alliance key), locally: no ID leaves the node.

Each active entry about a person whose pseudonym is not of the key in force gets an UPDATE
with the new pseudonym (the pseudonym is a committed field, so holders see the new value only
through the log, verified like any other change).
"""

from __future__ import annotations

from collections import defaultdict

import structlog
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.feeds.importer import content_hash
from node.feeds.publisher import Event, Publisher
from node.feeds.state import DISCLOSURES, STATE
from node.identity.pseudonym import own_pseudonym
from node.identity.pseudonym_key import PseudonymKey
from node.storage.models import OwnEntryRecord

log = structlog.get_logger("creditnode.pseudonyms")
OWN = OwnEntryRecord.__table__  # type: ignore[attr-defined]
CHUNK = 1024


async def rederive_pseudonyms(publisher: Publisher, key: PseudonymKey) -> int:
    """Append an UPDATE for each own entry whose pseudonym is not *key*'s; return how many."""
    log_id = publisher.log.log_id
    async with publisher.store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(STATE.c.entry_id, STATE.c.entry, DISCLOSURES.c.field, DISCLOSURES.c.value)
                .select_from(
                    STATE.join(
                        DISCLOSURES,
                        and_(
                            DISCLOSURES.c.log_id == STATE.c.log_id,
                            DISCLOSURES.c.idx == STATE.c.last_idx,
                        ),
                    )
                )
                .where(
                    and_(
                        STATE.c.log_id == log_id,
                        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                        STATE.c.entry != b"",
                    )
                )
            )
        ).all()
    bodies: dict[str, bytes] = {}
    personal: dict[str, dict[str, str]] = defaultdict(dict)
    for entry_id, body, field, value in rows:
        bodies[entry_id] = bytes(body)
        personal[entry_id][field] = value
    prefix = f"o{key.version}."
    events: list[Event] = []
    hashes: dict[str, str] = {}
    for entry_id, fields in personal.items():
        idno = fields.get("person_id", "")
        if not idno or fields.get("person_pseudonym", "").startswith(prefix):
            continue
        entry = feeds.ListEntry.FromString(bodies[entry_id])
        for name, value in fields.items():
            setattr(entry, name, value)
        entry.person_pseudonym = own_pseudonym(key, idno)
        entry.status = feeds.ENTRY_STATUS_ACTIVE
        events.append(Event(entry_id, feeds.EVENT_TYPE_UPDATE, entry))
        hashes[entry_id] = content_hash(entry)
    for i in range(0, len(events), CHUNK):
        part = events[i : i + CHUNK]

        async def rehash(conn: AsyncConnection, part: list[Event] = part) -> None:
            # The next import then finds these entries unchanged rather than updated again.
            for ev in part:
                await conn.execute(
                    update(OWN)
                    .where(OWN.c.entry_id == ev.entry_id)
                    .values(content_hash=hashes[ev.entry_id])
                )

        await publisher.append(part, extra=rehash)
    if events:
        await publisher.sign_checkpoint()
        log.info("own pseudonyms re-derived", entries=len(events), key_version=key.version)
    return len(events)
