"""Enrollment changes reach a running node within a second, through the enrollment generation
(not the heartbeat): removals cut open calls and streams, additions are admitted at the TLS
layer, re-enrollments rebuild the feed follower; refused checkpoints show as a tampered feed.

Changes are made through a second connection pool on the node's database, as `peer add` and
`peer remove` in another process do (tests/test_cli.py does it with real processes)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from rich.console import Console
from sqlalchemy import select

from keys import SigningKey
from node.api import feeds, feeds_rpc, pb, rpc
from node.cli.status import node_status
from node.errors import EnrollmentError
from node.feeds.logstore import LOGS
from node.feeds.note import stored_checkpoint
from node.feeds.subscriber import clear_feed_state
from node.home import TlsMaterial, init_home, load_home
from node.keys.signers import FeedSigners
from node.local_federation import LocalFederation
from node.peers.enrollment import enroll, export_bundle, feed_key_fingerprint
from node.peers.transport import channel_credentials
from node.runtime import Node
from node.storage import Store
from node.storage.peers import PeerRepository
from tests.conftest import FederationFactory
from tests.feedutil import adds, wait_mirrored
from tests.helpers import channel_to, get_info

BOUND = 1.0  # seconds: what the issue promises, from the commit to the effect


async def _other_store(node: Node) -> Store:
    """A second connection pool on *node*'s database, as another process has."""
    return await Store.open(node.store.engine.url.render_as_string(hide_password=False))


async def _until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Stream:
    """What a subscriber received on one Subscribe stream, and how it ended."""

    sizes: list[int] = field(default_factory=list)
    leaves: set[int] = field(default_factory=set)
    ended: float | None = None
    code: grpc.StatusCode | None = None
    details: str = ""


async def _subscribe(node: Node, tls: TlsMaterial, stream: Stream) -> None:
    async with channel_to(node, tls) as channel:
        call = feeds_rpc.FeedServiceStub(channel).Subscribe(feeds.SubscribeRequest())
        try:
            async for msg in call:
                if msg.HasField("checkpoint"):
                    stream.sizes.append(stored_checkpoint(bytes(msg.checkpoint.note)).size)
                else:
                    start = msg.batch.start
                    stream.leaves.update(range(start, start + len(msg.batch.leaves)))
        except grpc.aio.AioRpcError as err:
            stream.code, stream.details = err.code(), err.details() or ""
        stream.ended = time.monotonic()


@pytest.mark.parametrize("append_after", [False, True], ids=["idle", "appending"])
async def test_peer_remove_cuts_an_open_subscribe_within_a_second(
    federation: FederationFactory, append_after: bool
) -> None:
    fed = await federation(3)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    size = await jinan.publisher.append(adds(20))
    stream = Stream()
    reader = asyncio.create_task(_subscribe(jinan, lanzhou.home.tls, stream))
    await _until(lambda: len(stream.leaves) >= size, "the stream to catch up")
    assert jinan.gate.in_flight("lanzhou") >= 1

    other = await _other_store(jinan)
    try:
        assert await PeerRepository(other).remove("lanzhou")
        removed_at = time.monotonic()
        if append_after:  # appended after the removal committed: must never reach lanzhou
            await jinan.publisher.append(adds(5, start=20))
        await asyncio.wait_for(reader, 10)
    finally:
        await other.close()
    assert stream.ended is not None
    took = stream.ended - removed_at
    print(f"remove -> stream cut ({'appending' if append_after else 'idle'}): {took:.3f}s")
    assert stream.code == grpc.StatusCode.PERMISSION_DENIED, (stream.code, stream.details)
    assert "lanzhou is no longer enrolled" in stream.details
    assert took < BOUND
    assert max(stream.leaves) < size  # no leaf appended after the removal arrived

    # New calls are refused at once, and nothing of lanzhou's is left open.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get_info(jinan, lanzhou.home.tls)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert jinan.gate.in_flight("lanzhou") == 0
    assert jinan.following("lanzhou") is None
    # Everyone else's stream goes on.
    size = await jinan.publisher.append(adds(3, start=40))
    await wait_mirrored(taiyuan, jinan, size)


def _fresh_channel(node: Node, tls: TlsMaterial) -> grpc.aio.Channel:
    """A channel with its own subchannel: no reconnect backoff left by an earlier failure."""
    return grpc.aio.secure_channel(
        node.endpoint,
        channel_credentials(tls, node.home.tls.ca_pem),
        [
            ("grpc.ssl_target_name_override", node.home.identity.dns_name),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )


async def _get_info_fresh(node: Node, tls: TlsMaterial) -> pb.GetInfoResponse:
    async with _fresh_channel(node, tls) as channel:
        return await rpc.NodeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=2)


async def test_peer_add_of_a_peer_with_its_own_ca_is_admitted_within_a_second(
    federation: FederationFactory, tmp_path: Path
) -> None:
    fed = await federation(2)
    jinan = fed["jinan"]
    root = tmp_path / "zhengzhou"
    init_home(root, name="zhengzhou", region="410100", federation="yellow-river")
    newcomer = load_home(root)
    assert newcomer.tls.ca_pem != jinan.home.tls.ca_pem  # a CA of its own
    with pytest.raises(grpc.aio.AioRpcError) as info:  # nobody trusts that CA yet
        await _get_info_fresh(jinan, newcomer.tls)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    other = await _other_store(jinan)
    try:
        bundle = export_bundle(newcomer, endpoint="127.0.0.1:9")  # only its calls matter here
        assert (await enroll(load_home(jinan.home.paths.root), other, bundle)).created
        enrolled_at = time.monotonic()
    finally:
        await other.close()
    while True:
        try:
            resp = await _get_info_fresh(jinan, newcomer.tls)
            break
        except grpc.aio.AioRpcError:
            if time.monotonic() - enrolled_at > 10:
                raise
            await asyncio.sleep(0.05)
    took = time.monotonic() - enrolled_at
    print(f"add (own CA) -> admitted: {took:.3f}s")
    assert resp.node.name == "jinan"
    assert took < BOUND


async def _mirror_state(node: Node, origin: Node) -> tuple[str, str]:
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(LOGS.c.state, LOGS.c.state_detail).where(
                    LOGS.c.origin == origin.home.identity.uri
                )
            )
        ).one()
    return str(row[0]), str(row[1])


async def _status(
    fed: LocalFederation, node: Node, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`creditnode status` of *node*: origin -> its row in the feeds table."""
    url = fed.database_url(node.name)
    with monkeypatch.context() as m:
        if url:
            m.setenv("CREDITNODE_DATABASE_URL", url)
        console = Console(record=True, width=300, file=io.StringIO())
        await node_status(node.home.paths.root, console, timeout=2)
    text = console.export_text()
    feeds_table = text[text.index("feeds (own log first") :]
    return {
        line.split("│")[1].strip(): line
        for line in feeds_table.splitlines()
        if line.startswith("│")
    }


async def test_reenrollment_rebuilds_the_follower_and_refused_checkpoints_show_tampered(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    size = await jinan.publisher.append(adds(10))
    await wait_mirrored(lanzhou, jinan, size)
    first = lanzhou.following("jinan")
    assert first is not None
    lanzhou_home = load_home(lanzhou.home.paths.root)
    bundle = export_bundle(load_home(jinan.home.paths.root))
    other = await _other_store(lanzhou)
    try:
        # A new endpoint (same keys): no --replace needed; the follower dials the new one.
        moved = bundle.model_copy(update={"endpoint": f"localhost:{jinan.port}"})
        assert not (await enroll(lanzhou_home, other, moved)).created
        changed_at = time.monotonic()
        await _until(
            lambda: (
                getattr(lanzhou.following("jinan"), "record", first.record).endpoint
                == moved.endpoint
            ),
            "the follower to be rebuilt",
        )
        print(f"re-enroll (endpoint) -> follower rebuilt: {time.monotonic() - changed_at:.3f}s")
        assert time.monotonic() - changed_at < BOUND
        size = await jinan.publisher.append(adds(5, start=10))
        await wait_mirrored(lanzhou, jinan, size)

        # Jinan's feed key changes and lanzhou has not been told: its checkpoints are refused
        # as not jinan's (a verification failure), and status says the feed is tampered
        # (not ok), with why.
        new_key = SigningKey.generate(jinan.home.identity.uri)
        jinan.publisher.signers = FeedSigners.fixed(new_key)
        size = await jinan.publisher.append(adds(5, start=15))
        deadline = time.monotonic() + 20
        while (await _mirror_state(lanzhou, jinan))[0] != "tampered":
            assert time.monotonic() < deadline, "the feed never showed tampered"
            await asyncio.sleep(0.05)
        row = (await _status(fed, lanzhou, monkeypatch))["jinan"]
        assert "tampered: sync: checkpoint refused: " in row and " ok " not in row

        # Re-enrolling with the new key needs --replace, and names both fingerprints.
        rekeyed = moved.model_copy(update={"feed_key": new_key.verifying_key.to_text()})
        with pytest.raises(EnrollmentError) as info:
            await enroll(lanzhou_home, other, rekeyed)
        message = str(info.value)
        assert feed_key_fingerprint(bundle.feed_key) in message
        assert feed_key_fingerprint(rekeyed.feed_key) in message
        assert "--replace" in message and "\n" not in message
        assert lanzhou.following("jinan").record.feed_key == bundle.feed_key  # type: ignore[union-attr]
        replaced = await enroll(lanzhou_home, other, rekeyed, replace=True)
        assert [c.what for c in replaced.replaced] == ["feed key"]
        changed_at = time.monotonic()
        await _until(
            lambda: (
                getattr(lanzhou.following("jinan"), "record", first.record).feed_key
                == rekeyed.feed_key
            ),
            "the follower to take the new key",
        )
        print(f"re-enroll (feed key) -> follower rebuilt: {time.monotonic() - changed_at:.3f}s")
        assert time.monotonic() - changed_at < BOUND
    finally:
        await other.close()
    await wait_mirrored(lanzhou, jinan, size)
    # Caught up under the new key, but still marked: only the operator clears the mark.
    assert (await _mirror_state(lanzhou, jinan))[0] == "tampered"
    await clear_feed_state(lanzhou.store, jinan.home.identity.uri)
    assert await _mirror_state(lanzhou, jinan) == ("ok", "")
    assert "ok" in (await _status(fed, lanzhou, monkeypatch))["jinan"]


async def test_in_process_enroll_and_remove_act_at_once(federation: FederationFactory) -> None:
    """`Node.enroll` and `Node.remove_peer` act before they return: a re-key cuts the peer's
    open stream (the new key needs replace=True), a removal refuses it."""
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(3))
    stream = Stream()
    reader = asyncio.create_task(_subscribe(jinan, lanzhou.home.tls, stream))
    await _until(lambda: len(stream.leaves) >= 3, "the stream to catch up")

    bundle = export_bundle(load_home(lanzhou.home.paths.root))
    new_key = SigningKey.generate(lanzhou.home.identity.uri).verifying_key.to_text()
    rekeyed = bundle.model_copy(update={"feed_key": new_key})
    with pytest.raises(EnrollmentError, match="--replace"):
        await jinan.enroll(rekeyed)
    assert not reader.done()  # a refused re-enrollment changes nothing
    assert not await jinan.enroll(rekeyed, replace=True)
    await asyncio.wait_for(reader, 5)
    assert stream.code == grpc.StatusCode.PERMISSION_DENIED
    assert "re-enrolled with another CA or feed key" in stream.details
    # Its TLS identity did not change: it is admitted again, under the new record.
    assert (await get_info(jinan, lanzhou.home.tls)).node.name == "jinan"

    assert await jinan.remove_peer("lanzhou")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get_info(jinan, lanzhou.home.tls)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
