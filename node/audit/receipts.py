"""Asking a partner for its receipts of the exchanges with this node, and reconciling them
with this node's own entries (the join itself is the pure :mod:`node.audit.reconcile`).

Called by `creditnode audit reconcile`, `status --receipts`, the demo and the console's
auditor pages. Every Receipts call is an exchange this node records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from node.audit.filters import to_us as _us
from node.errors import InputError, PeerError

if TYPE_CHECKING:
    from node.api import audit as audit_pb
    from node.audit.entry import AuditEntry
    from node.audit.reconcile import Gap, Receipt
    from node.home import Home
    from node.storage import Store

RECEIPTS = "/creditnode.v1.AuditService/Receipts"
SLACK = dt.timedelta(minutes=5)  # clocks and the time between both records differ
IN_FLIGHT = dt.timedelta(seconds=10)  # a one-sided entry younger than this may be mid-exchange


def ours(found: Sequence[tuple[int, AuditEntry]]) -> list[Receipt]:
    """This node's entries as receipts to join."""
    from node.audit.reconcile import Receipt

    return [
        Receipt(i, e.exchange, e.seq, e.direction, e.kind, e.outcome, e.at_us, e.response, e.remote)
        for i, e in found
    ]


def theirs(receipts: Sequence[audit_pb.Receipt]) -> list[Receipt]:
    """The partner's receipts (wire form) as receipts to join."""
    from node.audit.reconcile import Receipt

    return [
        Receipt(
            r.audit_index,
            r.exchange,
            r.seq,
            r.direction,
            r.kind,
            r.outcome,
            r.at_unix_us,
            r.response_sha256,
            r.remote_index if r.HasField("remote_index") else None,
        )
        for r in receipts
    ]


async def fetch_receipts(
    home: Home, store: Store, peer_name: str, start: dt.datetime, end: dt.datetime,
    timeout: float,
) -> list[audit_pb.Receipt]:  # fmt: skip
    """The peer's receipts of exchanges with this node in [start, end), every page; each call
    is an exchange this node records."""
    import grpc

    from node.api import audit as audit_pb
    from node.api import audit_rpc
    from node.audit.local import opened_audit, out_entry
    from node.audit.wire import new_asker
    from node.peers.client import describe_rpc_error
    from node.peers.directory import PeerDirectory

    directory = PeerDirectory(store, home.settings.federation, home.tls.ca_pem)
    await directory.refresh()
    peer = await directory.lookup(peer_name)
    if peer is None:
        raise InputError(f"no enrolled peer named {peer_name!r} (see `creditnode peer list`)")
    got: list[audit_pb.Receipt] = []
    request = audit_pb.ReceiptsRequest(from_unix_us=_us(start), to_unix_us=_us(end))
    async with opened_audit(home, store) as log, peer.channel(home.tls) as channel:
        stub = audit_rpc.AuditServiceStub(channel)
        while True:
            asker = new_asker()
            try:
                resp = await stub.Receipts(request, timeout=timeout, metadata=asker.metadata())
            except grpc.aio.AioRpcError as err:
                await log.record(out_entry(asker, peer=peer_name, method=RECEIPTS,
                                           kind="receipts", outcome="refused"))  # fmt: skip
                raise PeerError(
                    describe_rpc_error(peer.identity, peer.record.endpoint, err)
                ) from None
            await log.record(out_entry(
                asker, peer=peer_name, method=RECEIPTS, kind="receipts", outcome="received",
                response=resp.SerializeToString(), remote=resp.audit_index,
            ))  # fmt: skip
            got.extend(resp.receipts)
            if not resp.more:
                return got
            request.start_index = resp.next_index


async def reconcile_with(
    home: Home,
    store: Store,
    peer: str,
    t0: dt.datetime,
    t1: dt.datetime,
    timeout: float,
    in_flight: dt.timedelta = IN_FLIGHT,
) -> tuple[int, int, list[Gap]]:
    """Both sides' receipts of exchanges with *peer* in [t0, t1) joined: (entries here,
    receipts there, the gaps). An entry one side recorded less than *in_flight* ago is not a
    gap yet: its exchange may still be under way."""
    from node.audit.query import Filter, find_entries
    from node.audit.reconcile import reconcile

    in_flight_from = dt.datetime.now(dt.UTC) - in_flight
    here = await find_entries(
        store, home.identity.uri, Filter(start=t0 - SLACK, end=t1 + SLACK, peer=peer)
    )
    there = await fetch_receipts(home, store, peer, t0 - SLACK, t1 + SLACK, timeout)
    gaps = reconcile(
        ours(here),
        theirs(there),
        start_us=_us(t0),
        end_us=_us(t1),
        in_flight_from_us=_us(in_flight_from),
    )
    inside = range(_us(t0), _us(t1))
    return (
        sum(1 for _, e in here if e.at_us in inside),
        sum(1 for r in there if r.at_unix_us in inside),
        gaps,
    )


def gap_json(g: Gap) -> dict[str, Any]:
    from node.audit.entry import EPOCH

    side = g.here or g.there
    assert side is not None
    return {
        "exchange": g.exchange, "seq": g.seq, "problem": g.problem, "kind": side.kind,
        "at": (EPOCH + dt.timedelta(microseconds=side.at_us)).isoformat(),
        "here": None if g.here is None else {"index": g.here.index, "direction": g.here.direction,
                                              "outcome": g.here.outcome},
        "there": None if g.there is None else {"index": g.there.index,
                                                "direction": g.there.direction,
                                                "outcome": g.there.outcome},
    }  # fmt: skip
