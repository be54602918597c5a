"""The wire API (protocol v1): generated messages and stubs.

``pb`` holds the node messages, ``feeds`` the list-feed messages, ``query`` the query messages,
``pseudonyms`` the oblivious pseudonym messages, ``witness`` the witnessing messages,
``audit`` the audit receipts, ``reports`` the signed credit reports; ``rpc`` / ``feeds_rpc`` /
``query_rpc`` / ``pseudonyms_rpc`` / ``witness_rpc`` / ``audit_rpc`` / ``reports_rpc`` the stubs
and servicers; ``options`` the field-classification extension.

Each name is imported on first use (PEP 562): a command that needs only messages must not pay
for grpc, which the stubs import (command start-up, issue 16).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node._pb.creditnode.v1 import actions_pb2 as actions
    from node._pb.creditnode.v1 import actions_pb2_grpc as actions_rpc
    from node._pb.creditnode.v1 import audit_pb2 as audit
    from node._pb.creditnode.v1 import audit_pb2_grpc as audit_rpc
    from node._pb.creditnode.v1 import feeds_pb2 as feeds
    from node._pb.creditnode.v1 import feeds_pb2_grpc as feeds_rpc
    from node._pb.creditnode.v1 import node_pb2 as pb
    from node._pb.creditnode.v1 import node_pb2_grpc as rpc
    from node._pb.creditnode.v1 import objection_pb2 as objections
    from node._pb.creditnode.v1 import objection_pb2_grpc as objections_rpc
    from node._pb.creditnode.v1 import officer_pb2 as officers
    from node._pb.creditnode.v1 import officer_pb2_grpc as officers_rpc
    from node._pb.creditnode.v1 import options_pb2 as options
    from node._pb.creditnode.v1 import pseudonym_pb2 as pseudonyms
    from node._pb.creditnode.v1 import pseudonym_pb2_grpc as pseudonyms_rpc
    from node._pb.creditnode.v1 import query_pb2 as query
    from node._pb.creditnode.v1 import query_pb2_grpc as query_rpc
    from node._pb.creditnode.v1 import report_pb2 as reports
    from node._pb.creditnode.v1 import report_pb2_grpc as reports_rpc
    from node._pb.creditnode.v1 import witness_pb2 as witness
    from node._pb.creditnode.v1 import witness_pb2_grpc as witness_rpc

_MODULES = {
    "actions": "actions_pb2",
    "actions_rpc": "actions_pb2_grpc",
    "audit": "audit_pb2",
    "audit_rpc": "audit_pb2_grpc",
    "feeds": "feeds_pb2",
    "feeds_rpc": "feeds_pb2_grpc",
    "pb": "node_pb2",
    "rpc": "node_pb2_grpc",
    "objections": "objection_pb2",
    "objections_rpc": "objection_pb2_grpc",
    "officers": "officer_pb2",
    "officers_rpc": "officer_pb2_grpc",
    "options": "options_pb2",
    "pseudonyms": "pseudonym_pb2",
    "pseudonyms_rpc": "pseudonym_pb2_grpc",
    "query": "query_pb2",
    "query_rpc": "query_pb2_grpc",
    "reports": "report_pb2",
    "reports_rpc": "report_pb2_grpc",
    "witness": "witness_pb2",
    "witness_rpc": "witness_pb2_grpc",
}


def __getattr__(name: str) -> object:
    """Import the generated module *name* stands for, once; later lookups find it bound."""
    try:
        module = importlib.import_module(f"node._pb.creditnode.v1.{_MODULES[name]}")
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = module
    return module


__all__ = [
    "actions",
    "actions_rpc",
    "audit",
    "audit_rpc",
    "feeds",
    "feeds_rpc",
    "objections",
    "objections_rpc",
    "officers",
    "officers_rpc",
    "options",
    "pb",
    "pseudonyms",
    "pseudonyms_rpc",
    "query",
    "query_rpc",
    "reports",
    "reports_rpc",
    "rpc",
    "witness",
    "witness_rpc",
]
