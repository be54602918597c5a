"""Both sides record every exchange under one exchange id, before the answer leaves; reconcile
finds what one side did not record; an export verifies offline and fails after any edit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from keys import PeerBundle
from node.api import query
from node.audit.bundle import BundleError, verify_bundle
from node.audit.entry import AuditEntry, officer_id, subject_commitment
from node.audit.export import export_bundle
from node.audit.filters import to_us as _us
from node.audit.log import load_secret, verify_audit_log
from node.audit.query import Filter, find_entries
from node.audit.receipts import fetch_receipts
from node.audit.receipts import ours as _ours
from node.audit.receipts import theirs as _theirs
from node.audit.reconcile import Receipt, reconcile
from node.cli.app import main
from node.cli.query import ask_peer
from node.errors import PeerError
from node.home import init_home, load_home, set_setting
from node.local_federation import LocalFederation
from node.peers.enrollment import export_bundle as export_peer_bundle
from node.runtime import Node
from node.storage import Store
from tests.conftest import FederationFactory
from tests.test_exit import CANARY_IDS, CANARY_NAMES, USCC, _jinan_with_canaries

OTHER_USCC = "91350100M000100Y43"  # valid, listed nowhere
DEPARTMENT = "91110000600037341L"
MATTER = "(2026)鲁0102民初1234号"


async def entries(node: Node, **flt: object) -> dict[str, list[tuple[int, AuditEntry]]]:
    """The node's audit entries by exchange id."""
    out: dict[str, list[tuple[int, AuditEntry]]] = {}
    for i, e in await find_entries(node.store, node.home.identity.uri, Filter(**flt)):  # type: ignore[arg-type]
        out.setdefault(e.exchange, []).append((i, e))
    return out


def _point_home_at_database(fed: LocalFederation, name: str) -> None:
    """CLI functions open the home's database: the test's PostgreSQL one, if it has one."""
    url = fed.database_url(name)
    if url:
        set_setting(fed[name].home.paths.root, "database_url", url)


async def _ask(lanzhou: Node, purpose: str, uscc: str, **kw: str) -> tuple[str, int, int]:
    request = query.LookupRequest(purpose=purpose, uscc=uscc)  # test_exit's USCC is made up
    asked = await ask_peer(
        lanzhou.home.paths.root, "jinan", request, timeout=10, officer="Wang Fang",
        department=DEPARTMENT, matter=MATTER, **kw,
    )  # fmt: skip
    return asked.exchange, asked.our_index, asked.their_index


async def test_hit_no_hit_and_refused_are_recorded_on_both_sides(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, _ = await _jinan_with_canaries(fed)
    lanzhou = fed["lanzhou"]
    _point_home_at_database(fed, "lanzhou")
    hit = await _ask(lanzhou, "enforcement", USCC)
    miss = await _ask(lanzhou, "enforcement", OTHER_USCC)
    withheld = await _ask(lanzhou, "subsidy", USCC)  # not in the agreement: nothing personal
    await jinan.remove_peer("lanzhou")
    with pytest.raises(PeerError):
        await _ask(lanzhou, "enforcement", USCC)

    theirs = await entries(jinan)
    ours = await entries(lanzhou)
    officer = officer_id(load_secret(lanzhou.home.paths.root), "Wang Fang")
    for (exchange, our_idx, their_idx), outcome in (
        (hit, "hit"), (miss, "no_hit"), (withheld, "hit"),
    ):  # fmt: skip
        [(i, answered)] = theirs[exchange]
        [(j, asked)] = ours[exchange]
        assert (i, j) == (their_idx, our_idx)
        assert (answered.direction, asked.direction) == ("in", "out")
        assert answered.outcome == asked.outcome == outcome
        assert asked.remote == i  # the requester holds the responder's receipt
        assert answered.response == asked.response and len(answered.response) == 64
        assert answered.officer == asked.officer == officer  # keyed at lanzhou, never the name
        assert answered.department == DEPARTMENT and answered.matter == MATTER
        assert answered.peer == "lanzhou" and asked.peer == "jinan"
    assert theirs[hit[0]][0][1].values > 0
    assert theirs[withheld[0]][0][1].values == 0 and theirs[withheld[0]][0][1].withheld > 0
    # The refused call: the gate recorded it under the requester's exchange id, and so did
    # the requester.
    [refused] = [e for _, e in (await find_entries(
        lanzhou.store, lanzhou.home.identity.uri, Filter(outcome="refused")))]  # fmt: skip
    [(_, gate)] = theirs[refused.exchange]
    assert (gate.kind, gate.outcome, gate.peer) == ("refusal", "refused", "lanzhou")
    assert "not an enrolled peer" in gate.reason
    # Nothing personal anywhere in either log; and both logs verify.
    for node in (jinan, lanzhou):
        leaves = await node.audit.log.read_leaves(0, node.audit.log.frontier.size)
        blob = b"".join(leaves).decode()
        assert "Wang" not in blob and "wang" not in blob
        for idno, name in zip(CANARY_IDS, CANARY_NAMES, strict=True):
            assert idno not in blob and name not in blob
        await node.audit.sign_checkpoint()
        assert await verify_audit_log(node.store, node.home.identity.uri) == []


async def test_reconcile_catches_a_responder_that_answered_without_logging(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, _ = await _jinan_with_canaries(fed)
    lanzhou = fed["lanzhou"]
    _point_home_at_database(fed, "lanzhou")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    await _ask(lanzhou, "enforcement", USCC)
    await _ask(lanzhou, "enforcement", OTHER_USCC)
    home = load_home(lanzhou.home.paths.root)

    async def gaps() -> list[object]:
        end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        ours = await find_entries(lanzhou.store, home.identity.uri, Filter(peer="jinan"))
        theirs = await fetch_receipts(home, lanzhou.store, "jinan", start, end, 10)
        return list(reconcile(_ours(ours), _theirs(theirs), start_us=_us(start), end_us=_us(end)))

    assert await gaps() == []
    jinan.audit.hook = lambda entry: entry.kind != "query"  # answers queries, logs none
    unlogged, _, _ = await _ask(lanzhou, "enforcement", USCC)
    jinan.audit.hook = None
    found = await gaps()
    assert [(g.exchange, g.problem) for g in found] == [(unlogged, "only here")]  # type: ignore[attr-defined]

    # The command says so too, with exit 7 and the exchange named.
    args = ["audit", "reconcile", "--home", str(home.paths.root), "--peer", "jinan",
            "--from", start.isoformat(), "--in-flight-seconds", "0",
            "--format", "json"]  # fmt: skip
    code = await asyncio.to_thread(main, args)
    assert code == 7
    # Within the in-flight window the same one-sided entry is not a gap yet (the answer may
    # still be on its way to the requester).
    args = [*args[: args.index("--in-flight-seconds") + 1], "3600", "--format", "json"]
    code = await asyncio.to_thread(main, args)
    assert code == 0


async def test_an_exported_bundle_verifies_offline_and_fails_after_any_edit(
    federation: FederationFactory, tmp_path: Path
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, _ = await _jinan_with_canaries(fed)
    lanzhou = fed["lanzhou"]
    _point_home_at_database(fed, "lanzhou")
    _point_home_at_database(fed, "jinan")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    for uscc in (USCC, OTHER_USCC, USCC):
        await _ask(lanzhou, "enforcement", uscc)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    home = load_home(jinan.home.paths.root)
    data = await export_bundle(home, jinan.store, start, end)
    trust = PeerBundle.from_json(export_peer_bundle(home).to_json())
    verified = verify_bundle(data, trust)
    assert [e.kind for _, e in verified.entries] == ["query"] * 3
    assert {e.peer for _, e in verified.entries} == {"lanzhou"}
    # Any byte changed anywhere: refused.
    step = max(1, len(data) // 400)
    for pos in range(0, len(data), step):
        edited = bytearray(data)
        edited[pos] ^= 0x01
        with pytest.raises(BundleError):
            verify_bundle(bytes(edited), trust)
    # Another node's bundle is not trusted for it.
    other = PeerBundle.from_json(export_peer_bundle(load_home(lanzhou.home.paths.root)).to_json())
    with pytest.raises(BundleError):
        verify_bundle(data, other)
    # The commands: export, then verify-bundle offline (0), and 7 for an edited file.
    out_file, trust_file = tmp_path / "bundle.json", tmp_path / "jinan.bundle.json"
    trust_file.write_text(trust.to_json())
    args = ["audit", "export", "--home", str(home.paths.root), "--from", start.isoformat(),
            "--to", end.isoformat(), "--out", str(out_file), "--format", "json"]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    assert len(json.loads(out_file.read_bytes())["entries"]) == 3
    check = ["verify-bundle", str(out_file), "--trust", str(trust_file)]
    assert await asyncio.to_thread(main, check) == 0
    out_file.write_bytes(out_file.read_bytes().replace(b'"size":', b'"size": ', 1))
    assert await asyncio.to_thread(main, check) == 7


async def test_show_filters_and_report(
    federation: FederationFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = await federation(2, subscribe=False)
    await _jinan_with_canaries(fed)
    lanzhou = fed["lanzhou"]
    _point_home_at_database(fed, "lanzhou")
    _point_home_at_database(fed, "jinan")
    await _ask(lanzhou, "enforcement", USCC)
    await _ask(lanzhou, "licensing_review", OTHER_USCC)
    root = str(lanzhou.home.paths.root)
    capsys.readouterr()
    args = ["audit", "show", "--home", root, "--officer", "Wang Fang", "--outcome", "no_hit",
            "--format", "json"]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(e["purpose"], e["outcome"], e["direction"]) for e in shown] == [
        ("licensing_review", "no_hit", "out")
    ]
    subject = subject_commitment(load_secret(lanzhou.home.paths.root), "uscc", USCC)
    args = ["audit", "show", "--home", root, "--subject", subject, "--format", "json"]
    assert await asyncio.to_thread(main, args) == 0
    assert [e["purpose"] for e in json.loads(capsys.readouterr().out)] == ["enforcement"]
    set_setting(lanzhou.home.paths.root, "audit_officer_daily_queries", 1)
    args = ["audit", "report", "--home", root, "--period", "1d", "--format", "json"]
    assert await asyncio.to_thread(main, args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] == 2
    [officer] = [o for o in report["per_officer"] if o["officer"] != "-"]
    assert officer["queries"] == 2 and officer["flagged"] is True
    assert {p["purpose"] for p in report["per_purpose"]} == {"enforcement", "licensing_review"}
    assert await asyncio.to_thread(main, ["audit", "show", "--home", root, "--from", "nope"]) == 2


def test_operators_commands_write_local_entries(tmp_path: Path) -> None:
    jinan, lanzhou = tmp_path / "jinan", tmp_path / "lanzhou"
    init_home(jinan, name="jinan", region="370100", federation="yellow-river")
    init_home(lanzhou, name="lanzhou", region="620100", federation="yellow-river")
    set_setting(lanzhou, "advertise", "127.0.0.1:7444")
    bundle = tmp_path / "lanzhou.json"
    bundle.write_text(export_peer_bundle(load_home(lanzhou)).to_json())
    assert main(["peer", "add", "--home", str(jinan), str(bundle)]) == 0
    assert main(["peer", "remove", "--home", str(jinan), "lanzhou"]) == 0
    assert main(["keys", "prune", "--home", str(jinan)]) == 0
    home = load_home(jinan)

    async def local() -> list[tuple[str, str, str, str]]:
        async with Store.opened(home.database_url) as store:
            found = await find_entries(store, home.identity.uri, Filter(direction="local"))
            assert await verify_audit_log(store, home.identity.uri) == []
        return [(e.kind, e.method, e.peer, e.outcome) for _, e in found]

    assert asyncio.run(local()) == [
        ("enrollment", "peer add", "lanzhou", "ok"),
        ("removal", "peer remove", "lanzhou", "ok"),
        ("key_operation", "keys prune", "", "ok"),
    ]


def test_a_one_sided_entry_is_a_gap_only_once_it_is_no_longer_in_flight() -> None:
    """The responder records before it answers and the requester after the answer arrives, so
    between the two an exchange is one-sided without anything being wrong."""
    done = Receipt(1, "e1", 0, "out", "query", "hit", at_us=1_000)
    peer_done = Receipt(7, "e1", 0, "in", "query", "hit", at_us=1_001)
    answering = Receipt(8, "e2", 0, "in", "query", "hit", at_us=5_000)
    lost = Receipt(9, "e3", 0, "in", "query", "hit", at_us=2_000)
    here, there = [done], [peer_done, answering, lost]
    gaps = reconcile(here, there, start_us=0, end_us=10_000, in_flight_from_us=4_000)
    assert [(g.exchange, g.problem) for g in gaps] == [("e3", "only at peer")]
    gaps = reconcile(here, there, start_us=0, end_us=10_000)
    assert [(g.exchange, g.problem) for g in gaps] == [
        ("e3", "only at peer"),
        ("e2", "only at peer"),
    ]
