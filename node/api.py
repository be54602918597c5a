"""The wire API (protocol v1): generated messages as ``pb``, stubs and servicers as ``rpc``."""

from node._pb.creditnode.v1 import node_pb2 as pb
from node._pb.creditnode.v1 import node_pb2_grpc as rpc

__all__ = ["pb", "rpc"]
