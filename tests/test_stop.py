"""A node stops in about a second with followers attached (issue 16, deliverable 3): the server
ends its open Subscribe streams, unary calls in flight drain, and the followers resume from
their cursors once the node is back on the same port. Real in-process nodes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.api import feeds, feeds_rpc, pb
from node.home import set_setting
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import adds, mirror_size, wait_mirrored
from tests.helpers import channel_to

SLOW_SECONDS = 0.5
GRACE = 10.0  # the default shutdown grace: a stop that waited on the streams would take it


def _slow_handler(started: asyncio.Event) -> grpc.GenericRpcHandler:
    """A unary method that takes SLOW_SECONDS, to be in flight when the stop begins."""

    async def wait(
        request: pb.NodeInfo, context: grpc.aio.ServicerContext[pb.NodeInfo, pb.NodeInfo]
    ) -> pb.NodeInfo:
        started.set()
        await asyncio.sleep(SLOW_SECONDS)
        return pb.NodeInfo(name="done:" + request.name)

    handler = grpc.unary_unary_rpc_method_handler(
        wait,
        request_deserializer=pb.NodeInfo.FromString,
        response_serializer=pb.NodeInfo.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("test.Slow", {"Wait": handler})


async def _publish(node: Node, n: int, start: int) -> int:
    await node.publisher.append(adds(n, start))
    await node.publisher.sign_checkpoint()
    return node.publisher.latest_size


async def test_stop_with_two_followers_takes_under_two_seconds_and_they_resume(
    federation: FederationFactory,
) -> None:
    fed = await federation(3)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    # Jinan again on a fixed port (the one it has), with a slow method to be in flight.
    port, root = jinan.port, jinan.home.paths.root
    await jinan.stop(0)
    set_setting(root, "listen", f"127.0.0.1:{port}")
    jinan = await Node.open(root, database_url=fed.database_url("jinan"))
    started = asyncio.Event()
    await jinan.start(heartbeat=False, extra_handlers=[_slow_handler(started)])
    fed.nodes["jinan"] = jinan
    assert jinan.port == port

    size = await _publish(jinan, 5, 0)
    # Both followers are live: they take up what jinan publishes without being asked.
    await wait_mirrored(lanzhou, jinan, size)
    await wait_mirrored(taiyuan, jinan, size)

    async with channel_to(jinan, lanzhou.home.tls) as ch:
        wait: grpc.aio.UnaryUnaryMultiCallable[pb.NodeInfo, pb.NodeInfo] = ch.unary_unary(
            "/test.Slow/Wait",
            request_serializer=pb.NodeInfo.SerializeToString,
            response_deserializer=pb.NodeInfo.FromString,
        )
        call = wait(pb.NodeInfo(name="x"), timeout=10)
        await asyncio.wait_for(started.wait(), 5)
        began = time.monotonic()
        await jinan.stop(GRACE)
        took = time.monotonic() - began
        assert (await call).name == "done:x"  # in flight at the stop: it drained
    assert took < 2.0, f"the stop took {took:.2f} s with two followers attached"

    # Back on the same port: both followers reconnect by themselves and catch up from where
    # they were (their mirrors never went back).
    held = {n.name: await mirror_size(n, jinan) for n in (lanzhou, taiyuan)}
    assert held == {"lanzhou": size, "taiyuan": size}
    jinan = await Node.open(root, database_url=fed.database_url("jinan"))
    await jinan.start(heartbeat=False)
    fed.nodes["jinan"] = jinan
    assert jinan.port == port
    more = await _publish(jinan, 7, 100)
    assert more == size + 7
    await wait_mirrored(lanzhou, jinan, more, timeout=60)
    await wait_mirrored(taiyuan, jinan, more, timeout=60)


async def test_a_stopping_node_refuses_new_streams(federation: FederationFactory) -> None:
    """A follower that reconnects while the node drains is told to come back, not held."""
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _publish(jinan, 1, 0)
    jinan.stopping.set()  # what stop() sets first, held here to dial in between
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        call = feeds_rpc.FeedServiceStub(ch).Subscribe(
            feeds.SubscribeRequest(from_size=0, checkpoint_size=0), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                raise AssertionError("a stopping node sent a feed message")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "stopping" in (info.value.details() or "")


async def test_a_health_watcher_hears_not_serving_and_does_not_hold_the_stop(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        began = time.monotonic()
        await jinan.stop(GRACE)
        took = time.monotonic() - began
        statuses = []
        while (msg := await watch.read()) is not grpc.aio.EOF:
            statuses.append(msg.status)
        assert await watch.code() == grpc.StatusCode.OK
    assert statuses and set(statuses) == {health_pb2.HealthCheckResponse.NOT_SERVING}
    assert took < 2.0, f"the stop took {took:.2f} s with a health watcher attached"
