"""The root of trust in the federation (issue 12): bundles pin root v1, subscribers follow a
peer's root over ``NodeService.GetRoot`` and accept a checkpoint only if a feed key valid now
in that root signed it, and ``keys rotate`` / ``keys revoke`` change the feed key of a serving
node without a gap.

Real in-process nodes (the ``federation`` fixture); each home gets its root with
``ceremony.root_init`` (passphrases in memory), then the nodes re-enroll each other so that
the bundles carry root v1.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from sqlalchemy import select
from tuf.api.serialization.json import JSONSerializer

from keys import SigningKey
from node.api import feeds, pb, rpc
from node.cli import main
from node.feeds import note, subscriber
from node.feeds.logstore import LOGS
from node.feeds.subscriber import Subscriber, clear_feed_state
from node.feeds.verify import CheckpointRefused, FeedError
from node.home import init_home, load_home
from node.keys.ceremony import HolderKey, revoke_key, root_init, rotate_key
from node.keys.roles import FEED, tuf_key
from node.keys.signers import FeedSigners
from node.keys.store import RootStore
from node.local_federation import LocalFederation
from node.peers.enrollment import export_bundle
from node.runtime import Node
from node.storage import Store
from node.storage.peers import PeerRepository
from tests.conftest import FederationFactory
from tests.feedutil import adds, mirror_size, wait_mirrored
from tests.helpers import channel_to

PASSPHRASE = "correct horse battery staple"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_root(
    home_root: Path, holders: Sequence[str] = ("alice",), threshold: int = 1
) -> list[HolderKey]:
    """Root v1 for the home; returns its holders' keys, ready to sign."""
    result = root_init(
        home_root,
        holders=list(holders),
        threshold=threshold,
        passphrases={name: PASSPHRASE for name in holders},
        out_dir=home_root / "keys" / "root-holders",
        now=now(),
    )
    return [HolderKey(p.read_bytes(), PASSPHRASE, p.name) for p in result.holder_files]


async def with_roots(
    fed: LocalFederation, holders: dict[str, Sequence[str]]
) -> dict[str, list[HolderKey]]:
    """Give each node a root, then re-enroll every pair with bundles carrying root v1."""
    keys = {
        name: await asyncio.to_thread(
            make_root, fed[name].home.paths.root, names, threshold=len(names)
        )
        for name, names in holders.items()
    }
    for node in fed.nodes.values():
        for other in fed.nodes.values():
            if other is not node:
                bundle = export_bundle(load_home(other.home.paths.root))
                assert bundle.root_v1 is not None
                await node.enroll(bundle, replace=True)  # adding a pin is a key change
    return keys


async def mirror_state(node: Node, origin: Node) -> tuple[str, str]:
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(LOGS.c.state, LOGS.c.state_detail).where(
                    LOGS.c.origin == origin.home.identity.uri
                )
            )
        ).first()
    return ("none", "") if row is None else (row[0], row[1])


async def held_version(node: Node, peer: str) -> int:
    held = await PeerRepository(node.store).held_root(peer)
    return 0 if held is None else held[0]


async def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def signed_by(signed: bytes, *keys: SigningKey) -> bool:
    """True if *signed*'s signature lines are exactly those of *keys*."""
    return note.signer_ids(signed) == {(k.name, k.verifying_key.key_hash) for k in keys}


async def synced(node: Node, origin: Node) -> Subscriber:
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    sub = await Subscriber.open(node.home.tls, node.store, peer)
    await sub.sync(follow=False, timeout=20)
    return sub


# -- (a) a rotation while a peer follows -----------------------------------------------------


async def test_rotating_the_feed_key_while_a_peer_follows(federation: FederationFactory) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice", "bob"), "lanzhou": ("carol",)})
    old_key = jinan.home.signing_key
    assert await held_version(lanzhou, "jinan") == 1

    # Watch lanzhou's view of jinan's feed the whole time: it must never leave "ok".
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        while True:
            state = await mirror_state(lanzhou, jinan)
            if state[0] != "ok":
                seen.append(state)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        size = await jinan.publisher.append(adds(10))
        await wait_mirrored(lanzhou, jinan, size)
        assert signed_by(jinan.publisher.latest_note, old_key)

        # Rotate: root v2 lists a new feed key from now and closes the old one's window
        # 10 seconds on; both holders sign, so it is published at once. (Decrypting the two
        # holder keys alone takes seconds on a loaded machine: a shorter overlap could close
        # before the overlap checks below ran.)
        overlap = dt.timedelta(seconds=10)
        proposal = await asyncio.to_thread(
            rotate_key,
            jinan.home.paths.root,
            role=FEED,
            now=now(),
            overlap=overlap,
            holder_keys=holders["jinan"],
        )
        assert proposal.published is not None and proposal.published.version == 2
        assert (
            proposal.new_key_path is not None and proposal.new_key_path.stat().st_mode & 0o077 == 0
        )
        new_key = SigningKey.from_pem(old_key.name, proposal.new_key_path.read_bytes())
        retires = proposal.closed[0].window.end
        assert retires is not None

        # During the overlap: the serving node re-reads its root and signs with both keys.
        await until(lambda: signed_by(jinan.publisher.latest_note, old_key, new_key), "2 sigs")
        size = await jinan.publisher.append(adds(10, start=10))
        await wait_mirrored(lanzhou, jinan, size)
        assert signed_by(jinan.publisher.latest_note, old_key, new_key)
        assert await held_version(lanzhou, "jinan") == 2  # fetched before that checkpoint

        # Appends right up to and across the end of the overlap.
        start = 20
        while now() < retires + dt.timedelta(seconds=1):
            size = await jinan.publisher.append(adds(2, start=start))
            start += 2
            await asyncio.sleep(0.2)
        await wait_mirrored(lanzhou, jinan, size)

        # After the overlap: the old key signs no more, the feed goes on under the new one.
        await until(lambda: signed_by(jinan.publisher.latest_note, new_key), "new key only")
        size = await jinan.publisher.append(adds(10, start=start))
        await wait_mirrored(lanzhou, jinan, size)
        assert signed_by(jinan.publisher.latest_note, new_key)
    finally:
        watcher.cancel()
    assert seen == [], seen
    assert await mirror_state(lanzhou, jinan) == ("ok", "")
    assert await mirror_size(lanzhou, jinan) == size == jinan.publisher.log.frontier.size

    # GetRoot hands out exactly the stored versions.
    async with channel_to(jinan, lanzhou.home.tls) as channel:
        stub = rpc.NodeServiceStub(channel)
        store = RootStore(jinan.home.paths.root)
        got = await stub.GetRoot(pb.GetRootRequest(from_version=0))
        assert list(got.roots) == [store.read(1), store.read(2)]
        assert list((await stub.GetRoot(pb.GetRootRequest(from_version=2))).roots) == []


async def test_a_follower_that_missed_the_new_root_fetches_it_when_a_checkpoint_fails(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No periodic root check at all: lanzhou learns of root v2 only when a checkpoint signed
    by the new key alone does not verify under v1, and verifies it again under v2."""
    monkeypatch.setattr(subscriber, "ROOT_REFRESH_SECONDS", 3600.0)
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("bob",)})
    size = await jinan.publisher.append(adds(5))
    await wait_mirrored(lanzhou, jinan, size)
    proposal = await asyncio.to_thread(
        rotate_key,
        jinan.home.paths.root,
        role=FEED,
        now=now(),
        overlap=dt.timedelta(seconds=1),
        holder_keys=holders["jinan"],
    )
    assert proposal.new_key_path is not None
    new_key = SigningKey.from_pem(jinan.home.identity.uri, proposal.new_key_path.read_bytes())
    await until(lambda: signed_by(jinan.publisher.latest_note, new_key), "new key only", 10)
    assert await held_version(lanzhou, "jinan") == 1
    size = await jinan.publisher.append(adds(5, start=5))
    await wait_mirrored(lanzhou, jinan, size)
    assert await held_version(lanzhou, "jinan") == 2
    assert await mirror_state(lanzhou, jinan) == ("ok", "")


# -- (b) a revoked key's checkpoint ----------------------------------------------------------


async def test_a_checkpoint_signed_only_by_a_revoked_key_is_refused(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("bob",)})
    old_key = jinan.home.signing_key
    await jinan.publisher.append(adds(3))
    await synced(lanzhou, jinan)

    proposal = await asyncio.to_thread(
        rotate_key,
        jinan.home.paths.root,
        role=FEED,
        now=now(),
        overlap=dt.timedelta(hours=1),
        holder_keys=holders["jinan"],
    )
    assert proposal.published is not None

    # Inside the overlap the old key alone is still good.
    jinan.publisher.signers = FeedSigners.fixed(old_key)
    size = await jinan.publisher.append(adds(3, start=3))
    await synced(lanzhou, jinan)
    assert await mirror_size(lanzhou, jinan) == size
    assert await held_version(lanzhou, "jinan") == 2

    # Revoked now (root v3): a checkpoint signed with that key alone is refused.
    old_id = tuf_key(old_key.verifying_key).keyid
    revoked = await asyncio.to_thread(
        revoke_key,
        jinan.home.paths.root,
        role=FEED,
        keyid=old_id[:12],
        reason="key file copied off the node",
        now=now(),
        holder_keys=holders["jinan"],
    )
    assert revoked.published is not None and revoked.published.version == 3
    refused_size = await jinan.publisher.append(adds(3, start=6))
    assert await jinan.publisher.wait_newer(refused_size - 1, timeout=20)
    assert signed_by(jinan.publisher.latest_note, old_key)
    # Its signature verifies (the root still lists the key, with its window closed): what
    # refuses it is the signed time, at or after the revocation.
    refused_note = jinan.publisher.latest_note
    signed_at = note.checkpoint_time(note.stored_checkpoint(refused_note))
    revoked_at = revoked.closed[0].window.revoked_at
    assert signed_at is not None and revoked_at is not None and signed_at >= revoked_at
    assert note.open_checkpoint(refused_note, old_key.verifying_key, origin=old_key.name)
    with pytest.raises(CheckpointRefused, match="no feed key that signed it was valid at its"):
        await synced(lanzhou, jinan)
    state, detail = await mirror_state(lanzhou, jinan)
    assert state == "tampered" and "checkpoint refused" in detail
    assert old_id[:16] in detail and signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") in detail
    assert await held_version(lanzhou, "jinan") == 3
    assert await mirror_size(lanzhou, jinan) == size < refused_size

    # The same checkpoint, fed straight to the verification: refused too.
    peer = lanzhou.directory.get("jinan")
    assert peer is not None
    sub = await Subscriber.open(lanzhou.home.tls, lanzhou.store, peer)
    async with channel_to(jinan, lanzhou.home.tls) as channel:
        await sub.load_root()
        with pytest.raises(FeedError, match="was valid at its signed time"):
            await sub.check_checkpoint(
                channel, feeds.SignedCheckpoint(note=jinan.publisher.latest_note), None
            )

    # Jinan signs with the keys its root says again: the feed verifies and catches up, but
    # stays tampered (the subscriber never clears it) until the operator does.
    jinan.publisher.signers = FeedSigners.of_home(jinan.home)
    await jinan.publisher.sign_checkpoint(resign=True)
    assert not signed_by(jinan.publisher.latest_note, old_key)
    await synced(lanzhou, jinan)
    assert (await mirror_state(lanzhou, jinan))[0] == "tampered"
    assert await mirror_size(lanzhou, jinan) == refused_size
    cleared = await clear_feed_state(lanzhou.store, jinan.home.identity.uri)
    assert cleared.state == "tampered" and cleared.evidence == 1
    await synced(lanzhou, jinan)
    assert await mirror_state(lanzhou, jinan) == ("ok", "")
    record = json.loads((jinan.home.paths.root / "keys" / "revocations.jsonl").read_text())
    assert record["keyid"] == old_id and record["root_version"] == 3


# -- (c) a refused root update ---------------------------------------------------------------


async def test_a_refused_root_update_stalls_the_feed(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("bob",)})
    size = await jinan.publisher.append(adds(3))
    await synced(lanzhou, jinan)
    assert await mirror_size(lanzhou, jinan) == size

    # Root v2 handing the root to new holders, signed only by them (not by v1's alice).
    store = RootStore(jinan.home.paths.root)
    mallory = Ed25519PrivateKey.generate()
    key = tuf_key(mallory.public_key(), holder="mallory")
    v1 = store.load().content
    v2 = replace(v1.next_version(expires=now() + dt.timedelta(days=30)), holders=(key,))
    metadata = v2.to_metadata()
    metadata.sign(CryptoSigner(mallory, key))
    store.write_version(2, JSONSerializer(compact=False).serialize(metadata))

    await jinan.publisher.append(adds(3, start=3))
    with pytest.raises(FeedError, match="root update refused"):
        await synced(lanzhou, jinan)
    state, detail = await mirror_state(lanzhou, jinan)
    assert state == "stalled"
    assert "root update refused (held v1)" in detail
    assert "required from root v1's keys" in detail
    assert await held_version(lanzhou, "jinan") == 1
    assert await mirror_size(lanzhou, jinan) == size


# -- (d) what a bundle's root must say -------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name, region in (("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100")):
        root = tmp_path / name
        init_home(root, name=name, region=region, federation="yellow-river")
        found[name] = root
    for name in ("jinan", "lanzhou"):
        make_root(found[name])
    return found


def bundle_doc(home: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads(export_bundle(load_home(home)).to_json())
    return doc


def test_peer_add_pins_root_v1_and_refuses_a_root_that_does_not_fit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, homes: dict[str, Path]
) -> None:
    jinan, lanzhou, taiyuan = homes["jinan"], homes["lanzhou"], homes["taiyuan"]
    good = bundle_doc(jinan)
    assert isinstance(good["root_v1"], str)
    assert "root_v1" not in bundle_doc(taiyuan)  # no root: the bundle reads as before

    def add(name: str, doc: dict[str, object] | None = None, *extra: str) -> tuple[int, str, str]:
        path = tmp_path / f"{name}.json"
        if doc is not None:
            path.write_text(json.dumps(doc), encoding="utf-8")
        return run(capsys, "peer", "add", "--home", str(taiyuan), str(path), *extra)

    # Another node's root in jinan's bundle.
    code, _, err = add("a", good | {"root_v1": bundle_doc(lanzhou)["root_v1"]})
    assert code == 5
    assert "root_v1 is the root of creditnode://yellow-river/lanzhou" in err
    # A feed key the root does not list (named right, so the bundle itself is consistent).
    other = SigningKey.generate("creditnode://yellow-river/jinan").verifying_key.to_text()
    code, _, err = add("b", good | {"feed_key": other})
    assert code == 5 and "is not listed in the feed role of its root_v1" in err
    # A root whose signed bytes were altered (its expiry pushed on).
    raw = base64.b64decode(str(good["root_v1"]))
    at = raw.index(b'"expires": "') + len(b'"expires": "')
    altered = raw[:at] + b"3" + raw[at + 1 :]
    code, _, err = add("c", good | {"root_v1": base64.b64encode(altered).decode()})
    assert code == 5 and "root_v1 refused: root v1 has 0 of the 1 signatures" in err
    # Not base64 at all.
    code, _, err = add("g", good | {"root_v1": "not base64!"})
    assert code == 5 and "root_v1" in err
    assert _held(taiyuan, "jinan") is None

    # The real bundle: pinned, exactly.
    code, out, err = add("d", good)
    assert code == 0, err
    assert "root v1 pinned" in out
    assert _held(taiyuan, "jinan") == (1, raw)
    # The same bundle again changes nothing; a bundle without the root needs --replace.
    assert add("d")[0] == 0
    code, _, err = add("e", {k: v for k, v in good.items() if k != "root_v1"})
    assert code == 5 and "root v1 SHA-256" in err and "no root v1" in err and "--replace" in err
    code, out, _ = add("e", None, "--replace")
    assert code == 0 and "only one trusted" in out
    assert f"root v1 replaced: SHA-256 {hashlib.sha256(raw).hexdigest()} -> none" in out
    assert _held(taiyuan, "jinan") is None
    # And back, re-pinned with --replace.
    assert add("d")[0] == 5
    assert add("d", None, "--replace")[0] == 0
    assert _held(taiyuan, "jinan") == (1, raw)
    code, out, _ = add("h", good | {"endpoint": "jinan.example:7443"}, "--replace")
    assert code == 0 and "root v1 replaced" not in out  # the same v1: the chain is kept
    # Removing the peer drops its pinned root with it.
    assert run(capsys, "peer", "remove", "--home", str(taiyuan), "jinan")[0] == 0
    assert _held(taiyuan, "jinan") is None
    # A peer without a root enrolls as before.
    path = tmp_path / "f.json"
    path.write_text(json.dumps(bundle_doc(taiyuan)), encoding="utf-8")
    code, out, err = run(capsys, "peer", "add", "--home", str(jinan), str(path))
    assert code == 0, err
    assert "no root in the bundle" in out


def test_rotate_without_holder_keys_leaves_the_root_pending(
    capsys: pytest.CaptureFixture[str], homes: dict[str, Path]
) -> None:
    code, _, err = run(capsys, "keys", "rotate", "--home", str(homes["jinan"]), "--role", "oracle")
    assert code == 2 and err.startswith("error: ") and "unknown role" in err, err
    assert RootStore(homes["jinan"]).read_pending() is None
    # Without holder keys: the new key is written, the root stays pending, and says so.
    code, out, err = run(capsys, "keys", "rotate", "--home", str(homes["jinan"]), "--role", "feed")
    assert code == 0, err
    assert "root v2 is pending, not in force" in out and "keys sign-root" in out
    assert RootStore(homes["jinan"]).versions() == [1]
    signers = FeedSigners.of_home(load_home(homes["jinan"]))
    home_key = load_home(homes["jinan"]).signing_key.verifying_key.raw
    assert [k.verifying_key.raw for k in signers.signing_keys(now())] == [home_key]


def _held(home: Path, peer: str) -> tuple[int, bytes] | None:
    async def read() -> tuple[int, bytes] | None:
        async with Store.opened(load_home(home).database_url) as store:
            return await PeerRepository(store).held_root(peer)

    return asyncio.run(read())
