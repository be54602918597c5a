"""Issue 13's loose ends: `creditnode sync` keeps the requester's receipts like the running
subscriber; views over stored lists say when what they show does not stand verified; a
refused checkpoint's mark stays until the operator clears it. Real in-process nodes; the
CLI runs against their homes (SQLite: the CLI opens the home's own database)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from keys import SigningKey
from node.audit.bundle import BundleError, Witnessed, build_bundle, verify_bundle
from node.audit.entry import AuditEntry
from node.audit.export import export_bundle
from node.audit.local import AuditSigners
from node.audit.query import Filter, find_entries
from node.cli.app import main
from node.feeds.dates import SHANGHAI
from node.feeds.logstore import LOGS, read_cursor
from node.feeds.note import stored_checkpoint
from node.feeds.subscriber import EVIDENCE, STALLED, Subscriber
from node.home import load_home
from node.peers.enrollment import export_bundle as peer_bundle
from node.runtime import Node
from node.storage.models import PeerRecord, utcnow
from node.verification.standing import FINDINGS, unverified_logs
from node.witness.cosignature import Cosignature, cosign, note_body
from node.witness.store import cosigned_checkpoints
from tests.conftest import FederationFactory
from tests.feedutil import adds, wait_mirrored
from tests.test_key_rotation import with_roots
from tests.test_witness import until

PEERS = PeerRecord.__table__  # type: ignore[attr-defined]


async def _exec(node: Node, stmt: object) -> None:
    async with node.store.begin() as conn:
        await conn.execute(stmt)  # type: ignore[call-overload]


async def _log_id(node: Node, origin: Node) -> int:
    async with node.store.engine.connect() as conn:
        found = (
            await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == origin.home.identity.uri))
        ).scalar_one()
    return int(found)


async def find_entries_of(node: Node, **criteria: str) -> list[tuple[int, AuditEntry]]:
    return await find_entries(node.store, node.home.identity.uri, Filter(**criteria))  # type: ignore[arg-type]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    got = capsys.readouterr()
    return code, got.out, got.err


async def test_sync_records_each_feed_range_on_both_sides(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI reads the home's own database")
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    size = await jinan.publisher.append(adds(7))
    await jinan.publisher.sign_checkpoint()
    root = str(lanzhou.home.paths.root)
    code, out, _ = await asyncio.to_thread(_cli, capsys, "sync", "--home", root)
    assert code == 0, out
    ours = await find_entries_of(lanzhou, kind="feed_range")
    assert ours, "sync kept no receipt of the leaves it received"
    assert {(e.direction, e.outcome, e.peer) for _, e in ours} == {("out", "received", "jinan")}
    covered = sorted(i for _, e in ours for i in range(e.leaves[0], e.leaves[1] + 1))  # type: ignore[index]
    assert covered == list(range(size))
    # The origin recorded the same exchange (one id, same message numbers), logged before
    # it sent: the two sides' receipts join.
    theirs = await find_entries_of(jinan, kind="feed_range", peer="lanzhou")
    sent = {(e.exchange, e.seq): e for _, e in theirs}
    for _, e in ours:
        other = sent[(e.exchange, e.seq)]
        assert other.direction == "in"
        assert other.response == e.response


async def test_lists_marks_an_unverified_origin_and_exits_7(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI reads the home's own database")
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(3))
    await jinan.publisher.sign_checkpoint()
    root = str(lanzhou.home.paths.root)
    assert (await asyncio.to_thread(_cli, capsys, "sync", "--home", root))[0] == 0
    code, out, err = await asyncio.to_thread(_cli, capsys, "lists", "--home", root)
    assert code == 0 and "UNVERIFIED" not in out and "warning" not in err

    # A standing finding of `verify` against the mirror: marked, warned, exit 7.
    log_id = await _log_id(lanzhou, jinan)
    await _exec(lanzhou, insert(FINDINGS).values(
        log_id=log_id, kind="leaf", idx=1, row="log_leaves idx 1", detail="edited",
        found_at=utcnow()))  # fmt: skip
    code, out, err = await asyncio.to_thread(_cli, capsys, "lists", "--home", root)
    assert code == 7
    assert out.count("(UNVER") == 3  # each row's origin cell (folded in an 80-column table)
    assert "warning: jinan: 1 standing `creditnode verify` finding(s)" in err
    assert "--allow-unverified" in err
    code, out, err = await asyncio.to_thread(
        _cli, capsys, "lists", "--home", root, "--allow-unverified"
    )
    assert code == 0 and "(UNVER" in out and "warning: jinan" in err
    # Another origin's rows only (lanzhou's own, none here): nothing of jinan, exit 0.
    code, _, err = await asyncio.to_thread(
        _cli, capsys, "lists", "--home", root, "--origin", "lanzhou"
    )
    assert code == 0 and "warning" not in err

    # A feed marked tampered (no finding): the same.
    await _exec(lanzhou, FINDINGS.delete())
    await _exec(lanzhou, update(LOGS).where(LOGS.c.id == log_id).values(state="tampered"))
    code, out, err = await asyncio.to_thread(_cli, capsys, "lists", "--home", root)
    assert code == 7 and "warning: jinan: feed tampered" in err
    flagged = await unverified_logs(lanzhou.store, "lanzhou")
    assert set(flagged) == {"jinan"} and flagged["jinan"].state == "tampered"


async def test_a_refused_checkpoint_is_tampered_until_the_operator_clears_it(
    federation: FederationFactory, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong key is a verification failure kept as evidence; the mark survives a verifying
    sync and a stalled spell, is not handed out as fork evidence, and `evidence clear` lifts
    it (recorded in the audit log)."""
    if backend != "sqlite":
        pytest.skip("the CLI reads the home's own database")
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(3))
    await jinan.publisher.sign_checkpoint()
    root = str(lanzhou.home.paths.root)
    real = jinan.home.signing_key.verifying_key.to_text()
    other = SigningKey.generate(jinan.home.identity.uri).verifying_key.to_text()
    await _exec(lanzhou, update(PEERS).where(PEERS.c.name == "jinan").values(feed_key=other))
    code, out, _ = await asyncio.to_thread(_cli, capsys, "sync", "--home", root)
    assert code == 7 and "tampered" in out
    async with lanzhou.store.engine.connect() as conn:
        [(kind, later)] = (await conn.execute(select(EVIDENCE.c.kind, EVIDENCE.c.later_note))).all()
    assert kind == "refused-checkpoint" and bytes(later) == jinan.publisher.latest_note
    # Not fork evidence: nothing to hand a third party.
    code, _, err = await asyncio.to_thread(
        _cli, capsys, "evidence", "export", "--home", root, "--peer", "jinan"
    )
    assert code == 2 and "no fork evidence" in err

    # The right key again: it syncs, and the mark stands; a stall does not replace it.
    await _exec(lanzhou, update(PEERS).where(PEERS.c.name == "jinan").values(feed_key=real))
    code, out, _ = await asyncio.to_thread(_cli, capsys, "sync", "--home", root)
    assert code == 0 and "tampered" in out and "evidence clear" in out
    await lanzhou.directory.refresh()
    peer = await lanzhou.directory.lookup("jinan")
    assert peer is not None
    sub = await Subscriber.open(lanzhou.home.tls, lanzhou.store, peer)
    await sub._set_state(STALLED, "a clock ahead")  # what a stall writes
    assert sub.log.cursor.state == "tampered"
    await sub._set_state("ok", "")
    assert sub.log.cursor.state == "tampered"

    code, out, _ = await asyncio.to_thread(
        _cli, capsys, "evidence", "clear", "--home", root, "--peer", "jinan", "--confirm",
        "--format", "json",
    )  # fmt: skip
    assert code == 0 and '"was": "tampered"' in out and '"evidence_kept": 1' in out
    cleared = await find_entries_of(lanzhou, kind="other")
    assert [(e.method, e.peer, e.reason) for _, e in cleared] == [
        ("evidence clear", "jinan", "cleared tampered")
    ]
    code, _, err = await asyncio.to_thread(
        _cli, capsys, "evidence", "clear", "--home", root, "--peer", "jinan", "--confirm"
    )
    assert code == 2 and "nothing to clear" in err


# -- cosignatures in an export, checked offline --------------------------------------------


async def _newest_cosigned(node: Node) -> tuple[bytes, list[str]] | None:
    async with node.store.engine.connect() as conn:
        found = await cosigned_checkpoints(
            conn, node.audit.origin, node.audit.log.log_id, 2**62, limit=1
        )
    return found[0] if found else None


async def test_an_export_carries_and_checks_the_witnesses_cosignatures(
    federation: FederationFactory, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = await federation(3)
    jinan = fed["jinan"]
    others = [n for n in fed.nodes.values() if n is not jinan]
    await with_roots(fed, {n.name: [f"holder-{n.name}"] for n in fed.nodes.values()})
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    size = await jinan.publisher.append(adds(3))  # each subscriber's batches: audit entries
    for n in others:
        await wait_mirrored(n, jinan, size)
    async with jinan.store.engine.connect() as conn:
        cursor = await read_cursor(conn, jinan.audit.origin)
    assert cursor is not None
    floor = cursor.size  # the audit log after the subscribers' batches
    uris = {n.home.identity.uri for n in others}

    async def both() -> bool:  # a checkpoint signed since the roots, cosigned by both
        held = await _newest_cosigned(jinan)
        return (
            held is not None
            and stored_checkpoint(held[0]).size >= floor
            and {Cosignature.parse(x).name for x in held[1]} == uris
        )

    await until(both, "both witnesses cosigning one audit checkpoint of jinan", timeout=60)
    home = load_home(jinan.home.paths.root)
    data = await export_bundle(home, jinan.store, start, dt.datetime.now(dt.UTC))
    trust = peer_bundle(home)
    witnesses = [peer_bundle(load_home(n.home.paths.root)) for n in others]
    got = verify_bundle(data, trust, witnesses)
    assert got.entries and got.witnessed_size is not None and got.witnessed_size <= got.size
    assert got.cosigned_by == 2 and {c for c, _ in got.cosigners} == uris
    # Without a witness's bundle its cosignature is listed, not checked.
    partial = verify_bundle(data, trust, witnesses[:1])
    assert partial.cosigned_by == 1 and sorted(ok for _, ok in partial.cosigners) == [False, True]
    assert verify_bundle(data, trust).cosigned_by == 0

    # A cosignature that does not verify (the witness's feed key, not a witness key) fails
    # the bundle, even signed by the node itself.
    doc = json.loads(data)
    carried = doc["witnessed"]
    body = note_body(carried["note"].encode())
    lanzhou = others[0]
    forged = cosign(body, lanzhou.home.signing_key, timestamp=int(time.time()),
                    name=lanzhou.home.identity.uri).line()  # fmt: skip
    rebuilt = build_bundle(
        origin=doc["origin"], start_us=doc["from_us"], end_us=doc["to_us"], size=doc["size"],
        root=base64.b64decode(doc["root"]),
        entries=[(e["index"], base64.b64decode(e["leaf"]),
                  [base64.b64decode(p) for p in e["proof"]]) for e in doc["entries"]],
        roots=[base64.b64decode(r) for r in doc["roots"]],
        keys=AuditSigners(home).signing_keys(dt.datetime.now(dt.UTC)),
        now=dt.datetime.now(dt.UTC),
        witnessed=Witnessed(
            carried["note"].encode(), [forged],
            [base64.b64decode(p) for p in carried["proof"]],
            {u: [base64.b64decode(r) for r in rs] for u, rs in carried["cosigner_roots"].items()},
        ),
    )  # fmt: skip
    assert verify_bundle(rebuilt, trust).cosigned_by == 0  # not checked: passes
    with pytest.raises(BundleError, match="cosignature"):
        verify_bundle(rebuilt, trust, witnesses)

    if backend != "sqlite":
        return
    # The same through the CLI: export, then verify-bundle with the witnesses' bundles.
    paths = {}
    for b in (trust, *witnesses):
        paths[b.name] = tmp_path / f"{b.name}.json"
        paths[b.name].write_text(b.to_json(), encoding="utf-8")
    out_file = tmp_path / "export.json"
    code, _, _ = await asyncio.to_thread(
        _cli, capsys, "audit", "export", "--home", str(home.paths.root),
        "--from", start.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S"),
        "--out", str(out_file),
    )  # fmt: skip
    assert code == 0
    cosigner_args = [a for w in witnesses for a in ("--cosigner", str(paths[w.name]))]
    code, out, _ = await asyncio.to_thread(
        _cli, capsys, "verify-bundle", str(out_file), "--trust", str(paths["jinan"]),
        *cosigner_args,
    )  # fmt: skip
    assert code == 0 and "2 of 2 cosignature(s) verified" in out
    code, out, _ = await asyncio.to_thread(
        _cli, capsys, "verify-bundle", str(out_file), "--trust", str(paths["jinan"]),
        "--format", "json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["cosignatures_verified"] == 0
    rebuilt_file = tmp_path / "forged.json"
    rebuilt_file.write_bytes(rebuilt)
    code, _, err = await asyncio.to_thread(
        _cli, capsys, "verify-bundle", str(rebuilt_file), "--trust", str(paths["jinan"]),
        *cosigner_args,
    )  # fmt: skip
    assert code == 7 and "cosignature" in err
