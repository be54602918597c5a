"""Which logs this node may not present as verified (read-only): a log marked ``tampered`` or
``forked`` (by the subscriber, gossip, a witness or the verifier) or with standing findings of
``creditnode verify``. Views over stored lists (``lists``, ``entity``) mark what they show of
such a log and say why, rather than serve it as if it verified."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from node.feeds.logstore import LOGS, is_side_log
from node.storage import Store
from node.storage.models import VerificationFinding

FINDINGS = VerificationFinding.__table__  # type: ignore[attr-defined]
MARKED = ("tampered", "forked")


@dataclass(frozen=True)
class Unverified:
    """One log that does not stand verified, and why (one line, no stored value)."""

    log_id: int
    name: str  # the origin's node name (this node's own name for its own logs)
    origin: str
    state: str
    findings: int

    def why(self) -> str:
        parts = []
        if self.state in MARKED:
            parts.append(f"feed {self.state}")
        if self.findings:
            parts.append(f"{self.findings} standing `creditnode verify` finding(s)")
        return " and ".join(parts)


async def unverified_logs(store: Store, own_name: str) -> dict[str, Unverified]:
    """Every log that is marked or has standing findings, by origin node name (the peer's
    name for a mirror, *own_name* for this node's own logs). The audit log is keyed by its
    origin (it holds no list)."""
    async with store.engine.connect() as conn:
        counts: dict[int, int] = dict(
            (
                await conn.execute(
                    select(FINDINGS.c.log_id, func.count()).group_by(FINDINGS.c.log_id)
                )
            ).all()
        )
        rows = (
            await conn.execute(select(LOGS.c.id, LOGS.c.origin, LOGS.c.peer, LOGS.c.state))
        ).all()
    found: dict[str, Unverified] = {}
    for log_id, origin, peer, state in rows:
        n = int(counts.get(log_id, 0))
        if state not in MARKED and not n:
            continue
        name = str(peer) if peer else own_name
        if is_side_log(str(origin)):
            name = str(origin)
        found[name] = Unverified(int(log_id), name, str(origin), str(state), n)
    return found
