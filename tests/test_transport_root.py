"""A peer's transport certificate is checked against the root held for it (issue 12): the
gate admits only a certificate the root lists as valid now, fetches the peer's root when it
refuses one (a peer that just rotated), cuts open calls whose certificate a newer root
revokes; ``NotifyRoot`` makes a partner fetch a new root at once, and ``keys`` commands
notify every enrolled peer.

Real in-process nodes; roots made with the ceremony as in tests/test_key_rotation.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import grpc
import pytest

from keys import FederationCA, certificate_fingerprint
from node.api import pb, rpc
from node.cli import main
from node.feeds.subscriber import Subscriber
from node.home import TlsMaterial
from node.keys.ceremony import HolderKey, revoke_key, rotate_key
from node.keys.roles import FEED, TRANSPORT
from node.keys.store import RootStore
from node.peers.directory import HeldRoot
from node.peers.gate import transport_problem
from node.peers.roots import RootRefresher, notify_enrolled
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import adds, wait_mirrored
from tests.helpers import channel_to, forged_tls
from tests.test_enrollment_live import Stream, _subscribe
from tests.test_key_rotation import PASSPHRASE, held_version, mirror_state, now, until, with_roots

BOUND = 1.0  # seconds: the "within one second" for a notified root


async def get_info(node: Node, tls: TlsMaterial) -> pb.GetInfoResponse:
    async with channel_to(node, tls) as channel:
        return await rpc.NodeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=10)


async def refused(node: Node, tls: TlsMaterial) -> str:
    """The details of *node* refusing a GetInfo from *tls* (fails if it admits it)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await get_info(node, tls)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    return info.value.details() or ""


async def until_held(node: Node, peer: str, version: int, timeout: float = 20.0) -> float:
    """Wait until *node* holds *version* of *peer*'s root; the seconds it took."""
    start = time.perf_counter()
    while await held_version(node, peer) < version:
        assert time.perf_counter() - start < timeout, f"{node.name} never held {peer} v{version}"
        await asyncio.sleep(0.01)
    return time.perf_counter() - start


def gate_version(node: Node, peer: str) -> int:
    """The version of *peer*'s root *node*'s gate judges certificates with."""
    held = node.directory.root(peer)
    return 0 if held is None else held.version


async def rotate_transport(node: Node, holders: list[HolderKey], ca_dir: Path) -> str:
    """Rotate *node*'s TLS key, publish the root listing it, wait until the node presents
    it; the new certificate's fingerprint."""
    proposal = await asyncio.to_thread(
        rotate_key,
        node.home.paths.root,
        role=TRANSPORT,
        now=now(),
        overlap=dt.timedelta(hours=1),
        holder_keys=holders,
        ca_dir=ca_dir,
    )
    assert proposal.published is not None
    assert proposal.new_key is not None and proposal.new_key.certificate_sha256 is not None
    fingerprint = proposal.new_key.certificate_sha256
    await until(lambda: certificate_fingerprint(node.home.tls.certificate) == fingerprint, "reload")
    return fingerprint


async def test_a_certificate_the_held_root_does_not_list_is_refused_until_the_root_is_fetched(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",)})
    assert (await get_info(lanzhou, jinan.home.tls)).node.name == "lanzhou"

    # A certificate for jinan from the CA enrolled for it, but not one jinan's root lists.
    forged = forged_tls(FederationCA.load(fed.ca_dir), jinan.home.identity)
    details = await refused(lanzhou, forged)
    assert "is not a transport key of its root v1" in details
    # Root metadata is still served to it: two peers that rotated at once can catch up.
    async with channel_to(lanzhou, forged) as channel:
        stub = rpc.NodeServiceStub(channel)
        assert len((await stub.GetRoot(pb.GetRootRequest(from_version=0), timeout=10)).roots)
        assert (await stub.NotifyRoot(pb.NotifyRootRequest(version=1), timeout=10)).held_version
    # Nothing was published: lanzhou still holds v1 and still admits jinan's own certificate.
    assert await held_version(lanzhou, "jinan") == 1
    await get_info(lanzhou, jinan.home.tls)

    # Jinan rotates its certificate; lanzhou (which follows no feed here) still holds v1.
    fingerprint = await rotate_transport(jinan, holders["jinan"], fed.ca_dir)
    details = await refused(lanzhou, jinan.home.tls)
    assert f"certificate {fingerprint[:16]}… is not a transport key of its root v1" in details
    # The refusal made lanzhou fetch jinan's root; the next attempt is admitted.
    await until_held(lanzhou, "jinan", 2)
    await until(lambda: gate_version(lanzhou, "jinan") == 2, "the gate's view")
    assert (await get_info(lanzhou, jinan.home.tls)).node.name == "lanzhou"
    assert "not a transport key of its root v2" in await refused(lanzhou, forged)


async def test_a_transport_rotation_under_open_streams_ends_with_the_subscriber_syncing(
    federation: FederationFactory,
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",)})
    size = await lanzhou.publisher.append(adds(5))
    await wait_mirrored(jinan, lanzhou, size)

    await rotate_transport(jinan, holders["jinan"], fed.ca_dir)
    # The open stream goes on; then lanzhou cuts it, and jinan's follower dials again with
    # its new certificate: refused until lanzhou fetched jinan's new root, then admitted.
    size = await lanzhou.publisher.append(adds(5, start=5))
    await wait_mirrored(jinan, lanzhou, size)
    lanzhou.gate.cut("jinan", "(test: the connection dropped)")
    size = await lanzhou.publisher.append(adds(5, start=10))
    await wait_mirrored(jinan, lanzhou, size)
    assert await held_version(lanzhou, "jinan") == 2
    assert await mirror_state(jinan, lanzhou) == ("ok", "")
    # And the other way round, unchanged.
    size = await jinan.publisher.append(adds(3))
    await wait_mirrored(lanzhou, jinan, size)
    assert await mirror_state(lanzhou, jinan) == ("ok", "")


async def test_notify_root_makes_the_partner_hold_the_new_version_within_a_second(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",)})
    proposal = await asyncio.to_thread(
        rotate_key,
        jinan.home.paths.root,
        role=FEED,
        now=now(),
        overlap=dt.timedelta(hours=1),
        holder_keys=holders["jinan"],
    )
    assert proposal.published is not None and proposal.published.version == 2
    assert await held_version(lanzhou, "jinan") == 1

    start = time.perf_counter()
    notified = await notify_enrolled(jinan.home.tls, jinan.store, 2)
    answered = time.perf_counter() - start
    await until_held(lanzhou, "jinan", 2)
    took = time.perf_counter() - start
    print(f"NotifyRoot answered in {answered:.3f}s; partner held v2 after {took:.3f}s")
    assert [(n.peer, n.ok, n.detail) for n in notified] == [("lanzhou", True, "it held v1")]
    assert took < BOUND
    # The gate judges with the new version too, and a repeated notice costs nothing.
    await until(lambda: gate_version(lanzhou, "jinan") == 2, "the gate's view")
    again = await notify_enrolled(jinan.home.tls, jinan.store, 2)
    assert [n.detail for n in again] == ["it held v2"]


async def test_a_revoked_transport_key_is_refused_and_its_open_stream_cut(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",)})
    size = await lanzhou.publisher.append(adds(5))
    stream = Stream()
    reader = asyncio.create_task(_subscribe(lanzhou, jinan.home.tls, stream))
    await until(lambda: len(stream.leaves) >= size, "the stream to catch up")

    root = RootStore(jinan.home.paths.root).load()
    (entry,) = root.content.online_keys(TRANSPORT)
    proposal = await asyncio.to_thread(
        revoke_key,
        jinan.home.paths.root,
        role=TRANSPORT,
        keyid=entry.keyid,
        reason="key copied to an unmanaged laptop",
        now=now(),
        holder_keys=holders["jinan"],
    )
    assert proposal.published is not None and proposal.published.version == 2
    await notify_enrolled(jinan.home.tls, jinan.store, 2)
    await until_held(lanzhou, "jinan", 2)
    await asyncio.wait_for(reader, 10)
    assert stream.code == grpc.StatusCode.PERMISSION_DENIED, (stream.code, stream.details)
    assert "no longer lists as valid" in stream.details
    details = await refused(lanzhou, jinan.home.tls)
    assert (
        f"certificate {certificate_fingerprint(jinan.home.tls.certificate)[:16]}… is revoked"
        in (details)
    )
    # Lanzhou's own calls to jinan are not affected (jinan holds lanzhou's root unchanged).
    assert (await get_info(jinan, lanzhou.home.tls)).node.name == "jinan"


async def test_keys_rotate_notifies_every_enrolled_peer_and_reports_the_unreachable(
    federation: FederationFactory,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if backend != "sqlite":
        # The command reads the database the home's config names; the federation gives
        # PostgreSQL URLs to its in-process nodes only.
        pytest.skip("the CLI finds the nodes' database through the home (SQLite here)")
    fed = await federation(3, subscribe=False)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",), "taiyuan": ("dave",)})
    await taiyuan.stop(grace=0.1)
    home = jinan.home.paths.root
    (holder_file,) = (home / "keys" / "root-holders").iterdir()
    passphrase = tmp_path / "alice.pass"
    passphrase.write_text(PASSPHRASE + "\n")
    code = await asyncio.to_thread(
        main,
        [
            "keys",
            "rotate",
            "--home",
            str(home),
            "--role",
            "feed",
            "--holder-key",
            str(holder_file),
            "--passphrase-file",
            str(passphrase),
        ],
    )
    output = capsys.readouterr().out
    assert code == 0, output
    lines = output.splitlines()
    assert any(line.startswith("notified lanzhou") for line in lines), output
    assert any(line.startswith("taiyuan") and "not notified" in line for line in lines), output
    await until_held(lanzhou, "jinan", 2)


async def test_a_subscriber_still_takes_root_updates_through_the_shared_fetch(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",)})
    await asyncio.to_thread(
        rotate_key,
        jinan.home.paths.root,
        role=FEED,
        now=now(),
        overlap=dt.timedelta(hours=1),
        holder_keys=holders["jinan"],
    )
    await lanzhou.directory.refresh()
    peer = await lanzhou.directory.lookup("jinan")
    assert peer is not None
    sub = await Subscriber.open(lanzhou.home.tls, lanzhou.store, peer)
    await sub.load_root()
    async with peer.channel(lanzhou.home.tls) as channel:
        assert await sub.update_root(channel) == 1
        assert await sub.update_root(channel) == 0
    assert sub.trusted is not None and sub.trusted.version == 2
    assert await held_version(lanzhou, "jinan") == 2


def test_a_peer_without_a_usable_root_is_judged_as_before_or_refused() -> None:
    cert = FederationCA.create("yellow-river").certificate
    assert transport_problem(None, cert, "ab" * 32, now()) == ""  # enrolled without a root
    unusable = HeldRoot(3, "00" * 32, None, "held root v3 is unusable: not JSON")
    assert transport_problem(unusable, cert, "ab" * 32, now()).startswith("cannot be checked")


class CountingRefresher(RootRefresher):
    def __init__(self, interval: float) -> None:
        super().__init__(None, None, interval=interval)  # type: ignore[arg-type]
        self.calls = 0

    async def refresh(self, name: str) -> int:
        self.calls += 1
        return 0


async def test_background_root_fetches_are_rate_limited_and_coalesced() -> None:
    refresher = CountingRefresher(interval=0.3)
    for _ in range(20):  # a refused peer retrying in a loop
        refresher.schedule("jinan")
        await asyncio.sleep(0)
    await until(lambda: refresher.calls == 1, "the first fetch")
    refresher.schedule("jinan")  # inside the interval: one more fetch, after it
    refresher.schedule("jinan")
    await until(lambda: refresher.calls == 2, "the coalesced fetch")
    await asyncio.sleep(0.4)
    assert refresher.calls == 2
    await refresher.close()
    refresher.schedule("jinan")  # closed: nothing starts
    assert refresher.calls == 2
