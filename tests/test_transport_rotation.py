"""Rotating and renewing a serving node's TLS certificate (issue 12): no restart, open
streams keep running, new connections see the new certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import ssl

from keys import certificate_fingerprint
from node.api import pb, rpc
from node.cli import main
from node.keys.ceremony import rotate_key
from node.keys.roles import TRANSPORT
from node.peers.roots import notify_enrolled
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import adds, wait_mirrored
from tests.test_key_rotation import mirror_state, now, until, with_roots


def served_fingerprint(server: Node, client: Node) -> str:
    """SHA-256 of the certificate *server* presents to a fresh TLS handshake from *client*."""
    ctx = ssl.create_default_context(cadata=server.home.tls.ca_pem.decode())
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    cert_file = client.home.paths.tls_cert
    ctx.load_cert_chain(cert_file, client.home.paths.tls_key)
    host, port = server.endpoint.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


async def test_rotating_the_tls_certificate_while_a_peer_follows(
    federation: FederationFactory,
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("carol",)})
    size = await jinan.publisher.append(adds(5))
    await wait_mirrored(lanzhou, jinan, size)
    old = certificate_fingerprint(jinan.home.tls.certificate)
    assert await asyncio.to_thread(served_fingerprint, jinan, lanzhou) == old

    proposal = await asyncio.to_thread(
        rotate_key,
        jinan.home.paths.root,
        role=TRANSPORT,
        now=now(),
        overlap=dt.timedelta(hours=1),
        holder_keys=holders["jinan"],
        ca_dir=fed.ca_dir,
    )
    assert proposal.published is not None and proposal.published.version == 2
    new = proposal.new_key
    assert new is not None and new.certificate_sha256 is not None
    assert new.certificate_sha256 != old
    assert jinan.home.paths.tls_key.stat().st_mode & 0o077 == 0

    # The open Subscribe stream keeps delivering entries appended after the rotation.
    size = await jinan.publisher.append(adds(5, start=5))
    await wait_mirrored(lanzhou, jinan, size)
    assert await mirror_state(lanzhou, jinan) == ("ok", "")

    # A new connection sees the new certificate (re-read within a second, no restart).
    fingerprint = new.certificate_sha256
    await until(
        lambda: certificate_fingerprint(jinan.home.tls.certificate) == fingerprint, "reload"
    )
    deadline = now() + dt.timedelta(seconds=5)
    while (got := await asyncio.to_thread(served_fingerprint, jinan, lanzhou)) != fingerprint:
        assert now() < deadline, got
        await asyncio.sleep(0.2)

    # Jinan dials with its new certificate too: a fresh channel to lanzhou works once
    # lanzhou holds the root listing it (`keys rotate` notifies the peers; here the test does).
    await notify_enrolled(jinan.home.tls, jinan.store, 2)
    await until(lambda: getattr(lanzhou.directory.root("jinan"), "version", 0) == 2, "root v2")
    await jinan.directory.refresh()
    peer = await jinan.directory.lookup("lanzhou")
    assert peer is not None
    async with peer.channel(jinan.home.tls) as channel:
        info = await rpc.NodeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=10)
    assert info is not None
    size = await jinan.publisher.append(adds(5, start=10))
    await wait_mirrored(lanzhou, jinan, size)


async def test_renew_issues_a_later_expiry(federation: FederationFactory) -> None:
    fed = await federation(1)
    jinan = fed["jinan"]
    await with_roots(fed, {"jinan": ("alice",)})
    before = jinan.home.tls.certificate.not_valid_after_utc
    await asyncio.sleep(1.1)  # certificate times are whole seconds
    code = await asyncio.to_thread(
        main,
        [
            "keys",
            "renew",
            "--home",
            str(jinan.home.paths.root),
            "--role",
            "transport",
            "--ca",
            str(fed.ca_dir),
        ],
    )
    assert code == 0
    await until(lambda: jinan.home.tls.certificate.not_valid_after_utc > before, "renewed")
