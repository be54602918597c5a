"""The wire API (protocol v1): generated messages and stubs.

``pb`` holds the node messages, ``feeds`` the list-feed messages, ``query`` the query messages,
``pseudonyms`` the oblivious pseudonym messages, ``witness`` the witnessing messages,
``audit`` the audit receipts, ``reports`` the signed credit reports; ``rpc`` / ``feeds_rpc`` /
``query_rpc`` / ``pseudonyms_rpc`` / ``witness_rpc`` / ``audit_rpc`` / ``reports_rpc`` the stubs
and servicers; ``options`` the field-classification extension.
"""

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
