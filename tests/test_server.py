"""Multi-node behaviour over real mutual TLS on 127.0.0.1:0, on both storage engines."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from keys import FederationCA, NodeIdentity
from node.api import pb, rpc
from node.errors import ConfigError
from node.home import init_home, load_home
from node.peers.client import probe
from node.peers.enrollment import export_bundle
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.helpers import channel_to, forged_tls, get_info


async def test_enrolled_peer_is_served(federation: FederationFactory) -> None:
    fed = await federation(3)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    resp = await get_info(jinan, lanzhou.home.tls)
    assert (resp.node.name, resp.node.region_code, resp.node.federation) == (
        "jinan",
        "370100",
        "yellow-river",
    )
    assert resp.node.protocol_version == "v1"
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        peers = await rpc.NodeServiceStub(ch).ListPeers(pb.ListPeersRequest(), timeout=5)
        health = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="creditnode.v1.NodeService"), timeout=5
        )
    assert [p.name for p in peers.peers] == ["lanzhou", "taiyuan"]
    assert all(p.state == pb.PEER_STATE_UP for p in peers.peers)  # first heartbeat ran
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_foreign_ca_client_is_refused_at_handshake(federation: FederationFactory) -> None:
    fed = await federation(2)
    stranger = forged_tls(
        FederationCA.create("yellow-river"), NodeIdentity("yellow-river", "lanzhou")
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get_info(fed["jinan"], stranger, timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_unenrolled_federation_member_is_denied_and_logged(
    federation: FederationFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fed = await federation(2)
    ca = FederationCA.load(fed.ca_dir)
    outsider = forged_tls(ca, NodeIdentity("yellow-river", "zhengzhou"))
    caplog.set_level(logging.WARNING, logger="creditnode.auth")
    for call in ("GetInfo", "ListPeers", "Health"):
        async with channel_to(fed["jinan"], outsider) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if call == "Health":
                    await health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                elif call == "ListPeers":
                    await rpc.NodeServiceStub(ch).ListPeers(pb.ListPeersRequest(), timeout=5)
                else:
                    await rpc.NodeServiceStub(ch).GetInfo(pb.GetInfoRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, call
        assert "creditnode://yellow-river/zhengzhou is not an enrolled peer" in str(
            info.value.details()
        )
    refusals = [r for r in caplog.records if "refused caller" in r.getMessage()]
    # (A partner's follower may have been refused too while the federation enrolled itself.)
    assert any("yellow-river/zhengzhou" in r.getMessage() for r in refusals)


async def test_one_peers_ca_cannot_mint_another_peers_identity(tmp_path: Path, db_url: str) -> None:
    """Each city has its own CA; lanzhou's CA forging a 'taiyuan' cert is denied at jinan."""
    homes = {}
    for name, region in (("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100")):
        init_home(
            tmp_path / name,
            name=name,
            region=region,
            federation="yellow-river",
            listen="127.0.0.1:0",
            advertise="127.0.0.1:9",
        )
        homes[name] = load_home(tmp_path / name)
    jinan = await Node.open(tmp_path / "jinan", database_url=db_url)
    await jinan.start(heartbeat=False)
    try:
        # Enrolled while running, each with a CA jinan has never seen: trust roots must follow.
        await jinan.enroll(export_bundle(homes["lanzhou"]))
        await jinan.enroll(export_bundle(homes["taiyuan"]))
        assert (await get_info(jinan, homes["lanzhou"].tls)).node.name == "jinan"
        assert (await get_info(jinan, homes["taiyuan"].tls)).node.name == "jinan"
        lanzhou_ca = FederationCA.load(tmp_path / "lanzhou" / "ca")
        forged = forged_tls(lanzhou_ca, NodeIdentity("yellow-river", "taiyuan"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await get_info(jinan, forged)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "not from its enrolled CA" in str(info.value.details())
    finally:
        await jinan.stop(0)


async def test_removed_peer_is_refused(federation: FederationFactory) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    assert (await get_info(jinan, lanzhou.home.tls)).node.name == "jinan"
    assert await jinan.directory.repository.remove("lanzhou")
    await jinan.directory.refresh()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get_info(jinan, lanzhou.home.tls)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_reflection_lists_services(federation: FederationFactory) -> None:
    fed = await federation(2)
    async with channel_to(fed["jinan"], fed["lanzhou"].home.tls) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = [s.name async for r in responses for s in r.list_services_response.service]
    assert "creditnode.v1.NodeService" in names
    assert "grpc.health.v1.Health" in names


async def test_heartbeat_tracks_peer_going_down(federation: FederationFactory) -> None:
    fed = await federation(2, heartbeat=True, heartbeat_seconds=0.2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    row = await jinan.directory.repository.get("lanzhou")
    assert row is not None and row.state == "up" and row.last_seen is not None
    await lanzhou.stop(0)
    for _ in range(50):
        row = await jinan.directory.repository.get("lanzhou")
        assert row is not None
        if row.state == "unreachable":
            break
        await asyncio.sleep(0.1)
    assert row.state == "unreachable"
    assert "unreachable" in row.last_error


async def test_port_in_use_is_a_clear_error(federation: FederationFactory, tmp_path: Path) -> None:
    fed = await federation(1)
    taken = fed["jinan"].endpoint
    init_home(tmp_path / "second", name="lanzhou", region="620100", ca_dir=fed.ca_dir, listen=taken)
    node = await Node.open(tmp_path / "second")
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on {taken}"):
            await node.start(heartbeat=False)
    finally:
        await node.store.close()


def _slow_handler(started: asyncio.Event) -> grpc.GenericRpcHandler:
    # Responses are messages of the schema: the border sends nothing it cannot classify.
    async def wait(
        request: pb.NodeInfo, context: grpc.aio.ServicerContext[pb.NodeInfo, pb.NodeInfo]
    ) -> pb.NodeInfo:
        started.set()
        await asyncio.sleep(1.0)
        return pb.NodeInfo(name="done:" + request.name)

    handler = grpc.unary_unary_rpc_method_handler(
        wait,
        request_deserializer=pb.NodeInfo.FromString,
        response_serializer=pb.NodeInfo.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("test.Slow", {"Wait": handler})


async def test_sigterm_drains_in_flight_call(federation: FederationFactory) -> None:
    fed = await federation(2)
    lanzhou = fed["lanzhou"]
    # A third node started here so the slow test-only method is registered on it.
    node = await fed.start_node("taiyuan", "140100")
    await node.stop(0)
    node = await Node.open(node.home.paths.root)
    started = asyncio.Event()
    await node.start(heartbeat=False, extra_handlers=[_slow_handler(started)])
    await node.enroll(export_bundle(load_home(lanzhou.home.paths.root)))

    serving = asyncio.create_task(node.serve_until_signal())
    async with channel_to(node, lanzhou.home.tls) as ch:
        wait: grpc.aio.UnaryUnaryMultiCallable[pb.NodeInfo, pb.NodeInfo] = ch.unary_unary(
            "/test.Slow/Wait",
            request_serializer=pb.NodeInfo.SerializeToString,
            response_deserializer=pb.NodeInfo.FromString,
        )
        call = wait(pb.NodeInfo(name="x"), timeout=10)
        await asyncio.wait_for(started.wait(), 5)
        os.kill(os.getpid(), signal.SIGTERM)
        assert (await call).name == "done:x"  # in flight when SIGTERM arrived: completed
    await asyncio.wait_for(serving, 10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get_info(node, lanzhou.home.tls, timeout=2)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # and the server is gone


async def test_health_goes_not_serving_during_drain(federation: FederationFactory) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(jinan.stop(grace=1.0))
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


async def test_wrong_server_certificate_is_named_as_such(federation: FederationFactory) -> None:
    """A peer whose certificate does not verify is reported as a certificate problem, a peer
    that is down as unreachable: the operator's next step differs."""
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    wrong_ca = FederationCA.create("yellow-river").certificate_pem
    bad = await probe(lanzhou.home.tls, jinan.home.identity, jinan.endpoint, wrong_ca, timeout=3)
    assert bad.state == "unreachable" and "does not verify" in bad.error
    endpoint = jinan.endpoint
    await jinan.stop(0)
    down = await probe(lanzhou.home.tls, jinan.home.identity, endpoint, jinan.home.tls.ca_pem,
                       timeout=3)  # fmt: skip
    assert "is unreachable" in down.error and "does not verify" not in down.error
