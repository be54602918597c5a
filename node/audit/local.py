"""Recording from outside the serving node: an operator's command (a ``local`` entry) and this
node's own requests to peers (``out`` entries, the requester's receipts).

A command opens the audit log, records, and signs a checkpoint before it returns; a running
node in another process notices the appended leaves at its next write (the log's cursor moved)
and takes them over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from keys import SigningKey
from node.audit.entry import AuditEntry, now_us, response_digest, uuid7
from node.audit.log import AuditLog, load_secret
from node.audit.wire import Asker
from node.home import Home
from node.keys.roles import AUDIT, FEED
from node.keys.signers import FeedSigners, RoleSigners
from node.storage import Store


class AuditSigners:
    """Who signs the audit log now: the audit keys valid now in the node's own root, once it
    lists any; until then (no root, or a root from before audit keys) the feed key(s), which
    partners already hold (the peer bundle, the root's feed role), so they can check audit
    checkpoints and exports from the start."""

    def __init__(self, home: Home) -> None:
        self.audit = RoleSigners.of_home(home, AUDIT)
        self.feed = FeedSigners.of_home(home)

    def role(self) -> str:
        root = self.audit.root
        return AUDIT if root is not None and root.content.online_keys(AUDIT) else FEED

    def signing_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]:
        signers = self.audit if self.role() == AUDIT else self.feed
        return signers.signing_keys(now)


@asynccontextmanager
async def opened_audit(home: Home, store: Store) -> AsyncIterator[AuditLog]:
    """The home's audit log; its checkpoint is signed on the way out."""
    log = await AuditLog.open(store, home.identity.uri, AuditSigners(home))
    try:
        yield log
    finally:
        await log.close()


async def record_local(
    home: Home,
    store: Store,
    *,
    kind: str,
    method: str,
    peer: str = "",
    outcome: str = "ok",
    reason: str = "",
) -> int:
    """Record an operator's command on this node (enrollment, removal, a key operation)."""
    entry = AuditEntry(
        exchange=uuid7(), at_us=now_us(), direction="local", kind=kind, outcome=outcome,
        peer=peer, method=method, reason=reason,
    )  # fmt: skip
    async with opened_audit(home, store) as log:
        return await log.record(entry)


def out_entry(
    asker: Asker,
    *,
    peer: str,
    method: str,
    kind: str,
    outcome: str,
    purpose: str = "",
    subject: str = "",
    response: bytes | None = None,
    remote: int | None = None,
    reason: str = "",
    seq: int = 0,
    leaves: tuple[int, int] | None = None,
) -> AuditEntry:
    """The requester's receipt of one exchange (or one message of a stream)."""
    return AuditEntry(
        exchange=asker.exchange, at_us=now_us(), direction="out", kind=kind, outcome=outcome,
        seq=seq, peer=peer, method=method, officer=asker.officer, department=asker.department,
        purpose=purpose, matter=asker.matter, subject=subject,
        response="" if response is None else response_digest(response), reason=reason[:300],
        leaves=leaves, remote=remote,
    )  # fmt: skip


def audit_secret(home: Home) -> bytes:
    return load_secret(home.paths.root)
