"""Exporting the audit log: the entries of a time range with inclusion proofs, the root chain,
the newest cosigned checkpoint a holder of the peer bundle can check, and a statement signed
now (the document :mod:`node.audit.bundle` builds and `creditnode verify-bundle` checks).

Called by `creditnode audit export`, the demo and the console's auditor pages.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from node.audit.filters import to_us as _us
from node.errors import VerificationError

if TYPE_CHECKING:
    from node.audit.bundle import Witnessed
    from node.feeds.logstore import LogStore
    from node.home import Home
    from node.storage import Store


async def export_bundle(home: Home, store: Store, start: dt.datetime, end: dt.datetime) -> bytes:
    """The entries of [start, end) with inclusion proofs, the root chain and a statement
    signed now (see :mod:`node.audit.bundle`)."""
    from node.audit.bundle import build_bundle
    from node.audit.local import AuditSigners, opened_audit
    from node.audit.log import audit_origin
    from node.audit.query import Filter, find_entries
    from node.feeds.logstore import read_cursor
    from node.keys.store import RootStore

    origin = audit_origin(home.identity.uri)
    async with opened_audit(home, store) as log:
        await log.sign_checkpoint()
        async with store.engine.connect() as conn:
            cursor = await read_cursor(conn, origin)
        assert cursor is not None
        size = cursor.size
        found = [
            (i, e)
            for i, e in await find_entries(store, home.identity.uri, Filter(start=start, end=end))
            if i < size
        ]
        # An entry's canonical bytes are its leaf (find_entries parsed them strictly).
        entries = [(i, e.to_bytes(), await log.log.inclusion_proof(size, i)) for i, e in found]
        roots_store = RootStore(home.paths.root)
        roots = [roots_store.read(v) for v in roots_store.versions()]
        witnessed = await _witnessed(home, store, log.log, size, cursor.root, roots)
    now = dt.datetime.now(dt.UTC)
    # The keys a holder of the peer bundle can check: the audit keys of the root once it lists
    # any, else the feed key(s) (the bundle's before root-init).
    keys = AuditSigners(home).signing_keys(now)
    if not keys:
        raise VerificationError("no key valid now to sign the bundle with (see keys list)")
    return build_bundle(
        origin=origin, start_us=_us(start), end_us=_us(end), size=size, root=cursor.root,
        entries=entries, roots=roots, keys=keys, now=now, witnessed=witnessed,
    )  # fmt: skip


async def _witnessed(
    home: Home, store: Store, log: LogStore, size: int, root: bytes, roots: list[bytes]
) -> Witnessed | None:
    """The newest cosigned checkpoint of the audit log up to *size* that a holder of this
    node's peer bundle can check (one signed under keys it no longer lists is passed over),
    its cosignatures, the consistency proof to *size*, and the cosigners' root versions."""
    import structlog
    from sqlalchemy import select

    from keys import NodeIdentity
    from node.audit.bundle import BundleError, NodeTrust, Witnessed, check_witnessed
    from node.feeds.note import stored_checkpoint
    from node.storage.peers import PEER_ROOTS, PeerRepository
    from node.witness.cosignature import Cosignature
    from node.witness.store import cosigned_checkpoints

    async with store.engine.connect() as conn:
        held = await cosigned_checkpoints(conn, log.cursor.origin, log.log_id, size)
        by_uri = {
            NodeIdentity(r.federation, r.name).uri: r.name
            for r in await PeerRepository(store).list()
        }
        chains: dict[str, list[bytes]] = {}
        for uri, name in by_uri.items():
            chains[uri] = [
                bytes(d)
                for (d,) in await conn.execute(
                    select(PEER_ROOTS.c.data)
                    .where(PEER_ROOTS.c.peer == name)
                    .order_by(PEER_ROOTS.c.version)
                )
            ]
    # What a holder of this node's peer bundle holds: root v1 (if any) and the feed key.
    own = NodeTrust(roots[0] if roots else None, home.signing_key.verifying_key)
    for signed, lines in held:
        cosigned = stored_checkpoint(signed).size
        proof = await log.consistency_proof(cosigned, size) if cosigned < size else []
        named = {Cosignature.parse(line).name for line in lines}  # verified when kept
        found = Witnessed(signed, lines, proof, {u: c for u, c in chains.items() if u in named})
        try:
            check_witnessed(found.to_json(), own, roots, home.identity.uri,
                            log.cursor.origin, size, root, ())  # fmt: skip
        except BundleError as exc:
            structlog.get_logger("creditnode.audit").warning(
                "cosigned audit checkpoint not exported", size=cosigned, reason=str(exc)
            )
            continue
        return found
    return None
