"""Witnessing (issue 13): cosignature lines, the add-checkpoint decision, the WitnessService
between in-process nodes, gossip catching a split view, and fork evidence checked offline."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from keys import SigningKey
from node.api import feeds, feeds_rpc, witness, witness_rpc
from node.feeds import merkle
from node.feeds.logstore import LOGS
from node.feeds.note import Checkpoint, sign_checkpoint, stored_checkpoint
from node.feeds.subscriber import EVIDENCE
from node.runtime import Node
from node.witness import cosignature as cs
from node.witness import evidence
from node.witness.cosignature import Cosignature, CosignatureError, Held, cosign, decide
from node.witness.store import WITNESSED
from node.witness.trust import cosigner_keys
from node.witness.witness import verified_cosignatures
from tests.conftest import FederationFactory
from tests.feedutil import adds

ORIGIN = "creditnode://yellow-river/jinan"
KEY = SigningKey.generate(ORIGIN)
WITNESS_KEY = SigningKey.generate("creditnode://yellow-river/lanzhou")


def tree(n: int) -> tuple[list[bytes], merkle.Frontier]:
    hashes = [merkle.leaf_hash(f"leaf {i}".encode()) for i in range(n)]
    f = merkle.Frontier()
    for h in hashes:
        f.append(h)
    return hashes, f


def proof(n: int, m: int, salt: str = "") -> list[bytes]:
    """An RFC 6962 consistency proof from n to m over leaves "leaf i" (+ salt after n)."""
    hashes: dict[int, bytes] = {}
    f = merkle.Frontier()
    for i in range(m):
        data = f"leaf {i}{salt if i >= n else ''}".encode()
        hashes.update(f.append(merkle.leaf_hash(data)))
    return merkle.consistency_proof(n, m, hashes)


def root(n: int, salt: str = "", fork_at: int | None = None) -> bytes:
    f = merkle.Frontier()
    for i in range(n):
        data = f"leaf {i}{salt if fork_at is not None and i >= fork_at else ''}".encode()
        f.append(merkle.leaf_hash(data))
    return f.root()


# -- cosignature lines -------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9./:-]{0,40}", fullmatch=True)


@given(
    name=names,
    key_id=st.binary(min_size=4, max_size=4),
    timestamp=st.integers(0, 2**63 - 1),
    sig=st.binary(min_size=64, max_size=64),
)
def test_a_cosignature_line_round_trips(
    name: str, key_id: bytes, timestamp: int, sig: bytes
) -> None:
    cos = Cosignature(name, key_id, timestamp, sig)
    assert Cosignature.parse(cos.line()) == cos
    assert Cosignature.parse(cos.line() + "\n") == cos


@given(
    size=st.integers(0, 2**40), root_=st.binary(min_size=32, max_size=32), t=st.integers(0, 2**40)
)
def test_a_cosignature_verifies_only_over_its_body_and_time(
    size: int, root_: bytes, t: int
) -> None:
    body = Checkpoint(ORIGIN, size, root_).body()
    cos = Cosignature.parse(cosign(body, WITNESS_KEY, timestamp=t).line())
    assert verify_cosignature_ok(cos, body)
    other = Checkpoint(ORIGIN, size + 1, root_).body()
    assert not verify_cosignature_ok(cos, other)
    assert not verify_cosignature_ok(Cosignature(cos.name, cos.key_id, t + 1, cos.signature), body)


def verify_cosignature_ok(cos: Cosignature, body: bytes) -> bool:
    try:
        cs.verify_cosignature(cos, body, [WITNESS_KEY.verifying_key])
    except CosignatureError:
        return False
    return True


@given(st.text(max_size=120))
def test_the_line_parser_refuses_what_is_not_a_cosignature(text: str) -> None:
    try:
        cos = Cosignature.parse(text)
    except CosignatureError:
        return
    assert Cosignature.parse(cos.line()) == cos  # whatever parses is canonical


def test_the_spec_example_line_parses_with_its_time() -> None:
    # C2SP tlog-cosignature's example: its time line says 1679315147.
    line = (
        "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEh"
        "ZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    cos = Cosignature.parse(line)
    assert (cos.name, cos.key_id.hex(), cos.timestamp) == (
        "witness.example.com/w1",
        "8d66cf3f",
        1679315147,
    )
    assert cs.signed_message(b"x\n", 1679315147) == b"cosignature/v1\ntime 1679315147\nx\n"


def test_a_key_outside_the_cosigners_keys_is_refused() -> None:
    body = Checkpoint(ORIGIN, 3, root(3)).body()
    stranger = SigningKey.generate(WITNESS_KEY.name)  # same name, another key
    cos = cosign(body, stranger, timestamp=1)
    with pytest.raises(CosignatureError, match="no known key"):
        cs.verify_cosignature(cos, body, [WITNESS_KEY.verifying_key])
    # A rootless peer's cosignatures verify under its enrolled (feed) key only.
    keys = cosigner_keys(WITNESS_KEY.verifying_key, WITNESS_KEY.name, dt.datetime.now(dt.UTC))
    assert cs.verify_cosignature(cosign(body, WITNESS_KEY, timestamp=1), body, keys)


# -- the add-checkpoint decision ------------------------------------------------------------------


def cp(n: int, salt: str = "", fork_at: int | None = None) -> Checkpoint:
    return Checkpoint(ORIGIN, n, root(n, salt, fork_at))


def held(n: int) -> Held:
    return Held(n, root(n), b"")


def test_decide_cosigns_a_consistent_checkpoint() -> None:
    assert decide(None, 0, [], cp(10)) is None
    assert decide(held(10), 10, proof(10, 17), cp(17)) is None
    assert decide(held(10), 10, [], cp(10)) is None  # the same checkpoint again


@pytest.mark.parametrize(
    ("view", "old", "prf", "new", "reason", "fork"),
    [
        (held(10), 8, [], cp(17), cs.CONFLICT, None),  # old size mismatch
        (None, 3, [], cp(17), cs.CONFLICT, None),
        (held(10), 20, [], cp(17), cs.OLD_TOO_LARGE, None),
        (held(10), 10, proof(10, 17)[:-1], cp(17), cs.BAD_PROOF, None),  # a truncated proof
        (None, 0, proof(10, 17), cp(17), cs.BAD_PROOF, None),  # a proof from 0 is empty
        (held(10), 10, [], cp(10, "x", 0), cs.CONFLICT, "equivocation"),
        # A proof of another tree: refused, and it proves nothing about the origin.
        (held(10), 10, proof(10, 17, "x"), cp(17, "x", 6), cs.BAD_PROOF, None),
    ],
)
def test_decide_refuses(
    view: Held | None, old: int, prf: list[bytes], new: Checkpoint, reason: str, fork: str | None
) -> None:
    refusal = decide(view, old, prf, new)
    assert refusal is not None
    assert (refusal.reason, refusal.fork) == (reason, fork)
    assert refusal.held_size == (view.size if view else 0)


def test_an_inconsistent_checkpoint_is_a_proven_fork() -> None:
    # The origin rewrote leaf 7 onward: size 12 with a proof from 10 (its own honest proof).
    hashes: dict[int, bytes] = {}
    f = merkle.Frontier()
    for i in range(12):
        hashes.update(f.append(merkle.leaf_hash(f"leaf {i}{'!' if i >= 7 else ''}".encode())))
    forked = Checkpoint(ORIGIN, 12, f.root())
    prf = merkle.consistency_proof(10, 12, hashes)
    refusal = decide(held(10), 10, prf, forked)
    assert refusal is not None and refusal.fork == "inconsistent"
    assert cs.proven_fork(cp(10), forked, prf) == "inconsistent"
    assert cs.proven_fork(cp(10), cp(12), proof(10, 12)) is None  # consistent: no fork
    assert cs.proven_fork(cp(10), cp(10, "y", 3), []) == "equivocation"


# -- between in-process nodes ---------------------------------------------------------------------


async def until(cond: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stub_from(
    node: Node, to: Node
) -> tuple[grpc.aio.Channel, witness_rpc.WitnessServiceAsyncStub]:
    await node.directory.refresh()
    peer = await node.directory.lookup(to.name)
    assert peer is not None
    channel = peer.channel(node.home.tls)
    return channel, witness_rpc.WitnessServiceStub(channel)


async def view(node: Node, origin: str) -> tuple[int, bytes] | None:
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(WITNESSED.c.size, WITNESSED.c.note).where(WITNESSED.c.origin == origin)
            )
        ).first()
    return None if row is None else (int(row.size), bytes(row.note))


async def mirror(node: Node, origin: str) -> tuple[str, list[str]]:
    """The mirror's state and the kinds of evidence held for it."""
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(select(LOGS.c.id, LOGS.c.state).where(LOGS.c.origin == origin))
        ).first()
        if row is None:
            return "none", []
        kinds = (
            await conn.execute(select(EVIDENCE.c.kind).where(EVIDENCE.c.log_id == row.id))
        ).scalars()
        return str(row.state), list(kinds)


async def test_peers_cosign_each_checkpoint_and_subscribers_see_it(
    federation: FederationFactory,
) -> None:
    fed = await federation(3)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    origin = jinan.home.identity.uri
    size = await jinan.publisher.append(adds(5))
    channel, _ = await stub_from(lanzhou, jinan)
    feed = feeds_rpc.FeedServiceStub(channel)
    got: list[feeds.SignedCheckpoint] = []

    async def cosigned_by_both() -> bool:
        resp = await feed.GetCheckpoint(feeds.GetCheckpointRequest(), timeout=5)
        got[:] = [resp.checkpoint]
        return (
            stored_checkpoint(resp.checkpoint.note).size == size
            and len(resp.checkpoint.cosignatures) == 2
        )

    try:
        await until(cosigned_by_both, "both peers' cosignatures served with the checkpoint")
    finally:
        await channel.close()
    served = got[0]
    body = cs.note_body(served.note)
    by = {}
    for line in served.cosignatures:
        cos = Cosignature.parse(line)
        signer = {n.home.identity.uri: n for n in (lanzhou, taiyuan)}[cos.name]
        key = signer.home.signing_key.verifying_key  # rootless homes cosign with the feed key
        cs.verify_cosignature(cos, body, [key], name=cos.name)
        by[cos.name] = cos
    assert set(by) == {lanzhou.home.identity.uri, taiyuan.home.identity.uri}
    # Each witness persisted the view it cosigned.
    for w in (lanzhou, taiyuan):
        held_view = await view(w, origin)
        assert held_view is not None and held_view[0] == size
    # Gossip: taiyuan tells what it holds for jinan, with cosignatures that verify at lanzhou.
    channel, stub = await stub_from(lanzhou, taiyuan)
    async with channel:
        resp = await stub.GetWitnessed(witness.GetWitnessedRequest(origin=origin), timeout=5)
    assert stored_checkpoint(resp.note).size == size
    kept = await verified_cosignatures(
        lanzhou.directory.repository, cs.note_body(resp.note), resp.cosignatures
    )
    assert taiyuan.home.identity.uri in {c for c, _ in kept}


async def add(
    stub: witness_rpc.WitnessServiceAsyncStub, origin: str, old: int, note: bytes, prf: list[bytes]
) -> grpc.aio.AioRpcError | witness.AddCheckpointResponse:
    try:
        return await stub.AddCheckpoint(
            witness.AddCheckpointRequest(
                origin=origin, old_size=old, consistency_proof=prf, note=note
            ),
            timeout=10,
        )
    except grpc.aio.AioRpcError as err:
        return err


async def test_a_witness_refuses_an_inconsistent_checkpoint(federation: FederationFactory) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    origin = jinan.home.identity.uri
    size = await jinan.publisher.append(adds(10))

    async def witnessed(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            v = await view(lanzhou, origin)
            return v is not None and v[0] == n

        return check

    await until(await witnessed(size), "lanzhou cosigning size 10")
    channel, stub = await stub_from(jinan, lanzhou)
    key = jinan.home.signing_key
    real = jinan.publisher.latest_note
    async with channel:
        # An old size that is not the one held: refused, naming the size held.
        err = await add(stub, origin, 3, real, [])
        assert isinstance(err, grpc.aio.AioRpcError)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert dict(err.trailing_metadata() or ())["creditnode-witness-size"] == str(size)
        # A checkpoint that does not extend the one held: refused, the view unchanged.
        other = sign_checkpoint(Checkpoint(origin, size + 2, os.urandom(32)), key)
        err = await add(stub, origin, size, other, [os.urandom(32), os.urandom(32)])
        assert isinstance(err, grpc.aio.AioRpcError)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (await view(lanzhou, origin)) == (size, real)
        # Not signed by the origin's key.
        forged = sign_checkpoint(
            Checkpoint(origin, size + 2, os.urandom(32)), SigningKey.generate(origin)
        )
        err = await add(stub, origin, size, forged, [])
        assert isinstance(err, grpc.aio.AioRpcError)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        # Not one of the caller's origins (another node's, or a log jinan does not publish).
        for wrong in (lanzhou.home.identity.uri, origin + "/other"):
            err = await add(
                stub, wrong, 0, sign_checkpoint(Checkpoint(wrong, 0, merkle.empty_root()), key), []
            )
            assert isinstance(err, grpc.aio.AioRpcError)
            assert err.code() == grpc.StatusCode.NOT_FOUND
        # A consistent checkpoint is cosigned (the origin asks by itself; and asked again).
        size = await jinan.publisher.append(adds(5, start=100))
        await until(await witnessed(size), "lanzhou cosigning size 15")
        again = await add(stub, origin, size, jinan.publisher.latest_note, [])
        assert isinstance(again, witness.AddCheckpointResponse) and len(again.cosignatures) == 1
        cs.verify_cosignature(
            Cosignature.parse(again.cosignatures[0]),
            cs.note_body(jinan.publisher.latest_note),
            [lanzhou.home.signing_key.verifying_key],
        )
        # Two roots signed for one size: refused, and kept as evidence of the fork.
        twin = sign_checkpoint(Checkpoint(origin, size, os.urandom(32)), key)
        err = await add(stub, origin, size, twin, [])
        assert isinstance(err, grpc.aio.AioRpcError)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await mirror(lanzhou, origin) == ("forked", ["equivocation"])
    assert (await view(lanzhou, origin))[0] == size  # type: ignore[index]


async def _idle(self: object) -> None:
    await asyncio.Event().wait()


async def test_the_split_view_scenario_is_detected_through_gossip(
    federation: FederationFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from node.cli import main
    from node.home import load_home
    from node.peers.enrollment import export_bundle
    from node.witness.export import export_evidence
    from node.witness.requester import CosignRequester
    from tests.test_feeds import _rewrite_history, _subscriber

    fed = await federation(3, subscribe=False)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    origin = jinan.home.identity.uri
    await jinan.publisher.append(adds(10))
    await jinan.publisher.sign_checkpoint()

    async def both_cosigned() -> bool:
        sizes = [(await view(w, origin) or (0, b""))[0] for w in (lanzhou, taiyuan)]
        return sizes == [10, 10]

    await until(both_cosigned, "history A cosigned by both peers")
    # taiyuan follows history A; it gets A with its peers' cosignatures.
    await (await _subscriber(taiyuan, jinan)).sync(follow=False)
    # jinan now signs another history B of 12 leaves with the same key, and keeps it from its
    # witnesses; lanzhou, which never saw A, mirrors B.
    monkeypatch.setattr(CosignRequester, "run", _idle)
    jinan = await _rewrite_history(fed, {"jinan": fed.database_url("jinan")}, 12)
    await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    assert await mirror(lanzhou, origin) == ("ok", [])

    found = await lanzhou.gossip.round()
    assert [(f.peer, f.source, f.kind) for f in found] == [("jinan", "taiyuan", "inconsistent")]
    assert await mirror(lanzhou, origin) == ("forked", ["inconsistent"])
    # And the other side sees it too, from lanzhou's checkpoint.
    found = await taiyuan.gossip.round()
    assert [(f.peer, f.kind) for f in found] == [("jinan", "inconsistent")]
    assert await mirror(taiyuan, origin) == ("forked", ["inconsistent"])

    # The evidence, exported, checks offline with only jinan's bundle.
    doc = await export_evidence(lanzhou.store, "jinan", now=dt.datetime.now(dt.UTC))
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(doc))
    bundle = tmp_path / "jinan.bundle.json"
    bundle.write_text(export_bundle(load_home(jinan.home.paths.root)).to_json())
    if fed.database_url("lanzhou") is None:  # the CLI reads the home's own database
        out_file = tmp_path / "cli-evidence.json"
        home = str(lanzhou.home.paths.root)
        argv = ["evidence", "export", "--home", home, "--peer", "jinan", "--out", str(out_file)]
        assert await asyncio.to_thread(main, argv) == 0
        assert json.loads(out_file.read_text())["evidence"] == doc["evidence"]
        argv = ["evidence", "export", "--home", home, "--peer", "taiyuan"]  # no fork held
        assert await asyncio.to_thread(main, argv) == 2
        capsys.readouterr()
    verdict = evidence.check(doc, feed_key=jinan.home.signing_key.verifying_key)
    assert verdict.ok and [r.proven for r in verdict.records] == ["inconsistent"]
    assert verdict.records[0].sizes == (10, 12)
    assert taiyuan.home.identity.uri in verdict.records[0].cosigners  # A was cosigned
    code = main(["evidence", "check", str(path), "--bundle", str(bundle), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] and out["records"][0]["proven"] == "inconsistent"
    # The cosignatures on the notes are checked: under the trust the export embeds for each
    # cosigner it holds (taiyuan's; lanzhou's own is listed unchecked), or under the
    # witnesses' bundles given.
    statuses = dict(verdict.records[0].cosignatures)
    assert statuses[taiyuan.home.identity.uri] == evidence.EMBEDDED
    assert set(statuses.values()) <= {evidence.EMBEDDED, evidence.UNCHECKED}
    witnesses = []
    for w in (lanzhou, taiyuan):
        witnesses += ["--cosigner", str(tmp_path / f"{w.name}.bundle.json")]
        (tmp_path / f"{w.name}.bundle.json").write_text(
            export_bundle(load_home(w.home.paths.root)).to_json()
        )
    argv = ["evidence", "check", str(path), "--bundle", str(bundle), *witnesses]
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {c["status"] for r in out["records"] for c in r["cosignatures"]} == {"verified"}
    # A cosignature that does not verify (taiyuan's name, another key) fails the document.
    record = doc["evidence"][0]
    body = cs.note_body(record["earlier_note"].encode())
    uri = taiyuan.home.identity.uri
    forged = cosign(body, SigningKey.generate(uri), timestamp=int(time.time()), name=uri).line()
    bad = dict(doc, evidence=[dict(record, earlier_note=record["earlier_note"] + forged + "\n")])
    judged = evidence.check(bad, feed_key=jinan.home.signing_key.verifying_key)
    assert not judged.ok and "cosignature" in judged.records[0].problem
    path.write_text(json.dumps(bad))
    assert main([*argv, "--format", "json"]) == 7
    assert "INVALID" in capsys.readouterr().out
    path.write_text(json.dumps(doc))
    # Any edit of a note, or of the proof, and it no longer checks.
    record = doc["evidence"][0]
    edits = {
        "note": dict(record, later_note=record["later_note"].replace("\n12\n", "\n13\n")),
        "proof": dict(
            record, proof=[base64.b64encode(os.urandom(32)).decode(), *record["proof"][1:]]
        ),
    }
    for what, edited in edits.items():
        bad = dict(doc, evidence=[edited])
        assert not evidence.check(bad, feed_key=jinan.home.signing_key.verifying_key).ok, what
        path.write_text(json.dumps(bad))
        assert main(["evidence", "check", str(path), "--bundle", str(bundle)]) == 7, what
        capsys.readouterr()


async def test_a_cosignature_by_a_key_outside_the_cosigners_root_is_refused(
    federation: FederationFactory,
) -> None:
    from keys import read_private_file
    from node.keys.roles import WITNESS
    from node.keys.signers import role_key_file
    from node.witness.store import COSIGNATURES
    from tests.test_key_rotation import with_roots

    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await with_roots(fed, {"jinan": ["alice"], "lanzhou": ["bob"]})
    origin = jinan.home.identity.uri
    size = await jinan.publisher.append(adds(3))
    uri = lanzhou.home.identity.uri

    async def kept() -> list[str]:
        async with jinan.store.engine.connect() as conn:
            rows = await conn.execute(
                select(COSIGNATURES.c.line).where(
                    COSIGNATURES.c.origin == origin, COSIGNATURES.c.size == size
                )
            )
            return [str(r) for (r,) in rows]

    async def cosigned() -> bool:
        return len(await kept()) == 1

    await until(cosigned, "lanzhou's cosignature kept by jinan")
    body = cs.note_body(jinan.publisher.latest_note)
    witness_key = SigningKey.from_pem(
        uri, read_private_file(role_key_file(lanzhou.home.paths.root, WITNESS))
    )
    line = (await kept())[0]
    cs.verify_cosignature(Cosignature.parse(line), body, [witness_key.verifying_key], name=uri)
    # Lanzhou's feed key is in its root, but not as a witness key; a fresh key is in no root.
    now = int(time.time())
    outside = [
        cosign(body, lanzhou.home.signing_key, timestamp=now, name=uri).line(),
        cosign(body, SigningKey.generate(uri), timestamp=now, name=uri).line(),
    ]
    repo = jinan.directory.repository
    # The audit log (its own origin, signed by the audit key) is cosigned too.
    audit_origin = jinan.audit.origin

    async def audit_cosigned() -> bool:
        async with jinan.store.engine.connect() as conn:
            rows = await conn.execute(
                select(COSIGNATURES.c.cosigner).where(COSIGNATURES.c.origin == audit_origin)
            )
            return uri in {str(r) for (r,) in rows}

    await until(audit_cosigned, "lanzhou cosigning jinan's audit checkpoint")
    for forged in outside:
        assert await verified_cosignatures(repo, body, [forged]) == []
    assert await verified_cosignatures(repo, body, [line]) == [(uri, line)]
