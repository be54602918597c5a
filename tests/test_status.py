"""`creditnode status` tells the truth (issue 16): reachability is measured outbound only,
`serving` checks the local listener, each feed has exactly one of five states with its reason,
the origin shows how far each peer got with its own feed, and `--format json` reads back
against docs/json.md. Real in-process nodes on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from keys import SigningKey
from node.cli.status import collect_status, node_status
from node.feeds.health import (
    FEED_STATES,
    FORKED,
    LAGGING,
    MAX_REASON,
    OK,
    STALLED,
    TAMPERED,
    FeedFacts,
    judge_feed,
)
from node.feeds.subscriber import Subscriber
from node.home import load_home
from node.keys.signers import FeedSigners
from node.local_federation import LocalFederation
from node.peers.contact import RunInfo, read_inbound, read_run_info, write_run_info
from node.peers.enrollment import enroll, export_bundle
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import adds, wait_mirrored
from tests.helpers import get_info
from tests.test_json_output import check_schema, cli

# -- the one feed-state function (pure) ------------------------------------------------------


def _f(**kw: Any) -> FeedFacts:
    base: dict[str, Any] = {"own": False, "stored": OK, "size": 5, "checkpoint_size": 5}
    return FeedFacts(**(base | kw))


@pytest.mark.parametrize(
    ("facts", "state", "reason"),
    [
        (_f(), OK, ""),
        (_f(own=True), OK, ""),
        (_f(stored=FORKED, detail="rollback: size 3 after 5"), FORKED, "rollback: size 3 after 5"),
        (_f(stored=TAMPERED, detail="sync: checkpoint refused: bad"), TAMPERED,
         "sync: checkpoint refused: bad"),
        (_f(findings=2), TAMPERED, "2 standing `creditnode verify` finding(s) on stored data"),
        (_f(own=True, findings=1), TAMPERED,
         "1 standing `creditnode verify` finding(s) on stored data"),
        (_f(stored=STALLED, detail="root update refused"), STALLED, "root update refused"),
        (_f(stored="weird"), STALLED, "unrecognised stored state 'weird'"),
        (_f(reach="refused", reach_error="not enrolled"), STALLED,
         "the origin refuses this node: not enrolled"),
        (_f(size=3), LAGGING, "applied 3 of 5 verified leaves"),
        (_f(reach="unreachable", reach_error="x at y is unreachable"), LAGGING,
         "origin unreachable (outbound), so newer leaves cannot arrive: x at y is unreachable"),
        # worst first: a fork outranks a finding, a mark outranks lag
        (_f(stored=FORKED, detail="d", findings=3, size=1), FORKED, "d"),
        (_f(stored=STALLED, detail="s", size=1), STALLED, "s"),
        (_f(own=True, size=1, checkpoint_size=9, reach="unreachable"), OK, ""),
    ],
)  # fmt: skip
def test_feed_state_table(facts: FeedFacts, state: str, reason: str) -> None:
    assert judge_feed(facts) == (judge_feed(facts).__class__(state, reason))


@given(
    st.booleans(),
    st.text(max_size=20),
    st.text(max_size=2000),
    st.integers(0, 5),
    st.integers(0, 10),
    st.integers(0, 10),
    st.sampled_from(["up", "unreachable", "refused", "unknown", "?"]),
    st.text(max_size=2000),
)
def test_feed_state_is_one_of_five_and_never_ok_when_marked(
    own: bool, stored: str, detail: str, findings: int, size: int, cp: int, reach: str,
    error: str,
) -> None:  # fmt: skip
    v = judge_feed(FeedFacts(own, stored, detail, findings, size, cp, reach, error))
    assert v.state in FEED_STATES
    assert "\n" not in v.reason and len(v.reason) <= MAX_REASON
    assert (v.reason == "") == (v.state == OK)
    if stored != OK or findings:
        assert v.state != OK


# -- the run file ------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_run_file_garbage_is_not_trusted(tmp_path_factory: pytest.TempPathFactory,
                                         data: bytes) -> None:  # fmt: skip
    root = tmp_path_factory.mktemp("home")
    (root / "run").mkdir()
    (root / "run" / "node.json").write_bytes(data)
    (root / "run" / "inbound.json").write_bytes(data)
    info = read_run_info(root)
    assert info is None or 0 < info.port < 65536
    assert all(len(p) <= 63 for p in read_inbound(root))


def test_run_file_round_trip_and_wildcard_dials_loopback(tmp_path: Any) -> None:
    write_run_info(tmp_path, RunInfo(123, 7443, "0.0.0.0:0", "2026-01-01T00:00:00+00:00"))
    info = read_run_info(tmp_path)
    assert info == RunInfo(123, 7443, "0.0.0.0:0", "2026-01-01T00:00:00+00:00")
    assert info.local_endpoint() == "127.0.0.1:7443"
    assert RunInfo(1, 9, "[::]:0", "").local_endpoint() == "[::1]:9"
    assert RunInfo(1, 9, "10.0.0.5:0", "").local_endpoint() == "10.0.0.5:9"


# -- live nodes ------------------------------------------------------------------------------


@contextmanager
def _env(fed: LocalFederation, node: Node, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI opens the home's database: the node's own under PostgreSQL."""
    with monkeypatch.context() as m:
        url = fed.database_url(node.name)
        if url:
            m.setenv("CREDITNODE_DATABASE_URL", url)
        yield


async def _status(
    fed: LocalFederation, node: Node, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> dict[str, Any]:
    with _env(fed, node, monkeypatch):
        return await collect_status(node.home.paths.root, timeout=3, **kw)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_peer_that_calls_us_but_we_cannot_reach_is_unreachable(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    # Jinan holds a wrong endpoint for lanzhou: its probes fail, while lanzhou calls in.
    moved = export_bundle(load_home(lanzhou.home.paths.root)).model_copy(
        update={"endpoint": f"127.0.0.1:{_closed_port()}"}
    )
    await enroll(load_home(jinan.home.paths.root), jinan.store, moved)
    await jinan.directory.refresh()
    await jinan.heartbeat.beat_once()
    await get_info(jinan, lanzhou.home.tls)  # lanzhou calls jinan (admitted)
    peers = {p["name"]: p for p in (await _status(fed, jinan, monkeypatch))["peers"]}
    row = peers["lanzhou"]
    assert row["reach"] == "unreachable"
    assert "unreachable" in row["reach_error"]
    assert row["last_called_us"] is not None  # shown apart, not as reachability
    # The other way round both hold: lanzhou reaches jinan.
    await lanzhou.heartbeat.beat_once()
    back = {p["name"]: p for p in (await _status(fed, lanzhou, monkeypatch))["peers"]}
    assert back["jinan"]["reach"] == "up" and back["jinan"]["last_reached"] is not None


async def test_a_serving_node_says_serving_yes_and_a_stopped_one_no(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(1)
    jinan = fed["jinan"]
    root = jinan.home.paths.root
    # An advertised name that resolves nowhere does not matter: the bound port is dialled.
    config = jinan.home.paths.config
    text = re.sub(r"(?m)^advertise = .*$\n?", "", config.read_text(encoding="utf-8"))
    config.write_text(text + 'advertise = "nowhere.invalid:1"\n', encoding="utf-8")
    assert load_home(root).settings.advertise == "nowhere.invalid:1"
    serving = (await _status(fed, jinan, monkeypatch))["serving"]
    assert serving["state"] == "yes", serving
    assert serving["endpoint"] == f"127.0.0.1:{jinan.port}"
    with _env(fed, jinan, monkeypatch):
        console = Console(record=True, width=200, file=io.StringIO())
        assert await node_status(root, console, timeout=3)
    assert re.search(rf"serving\W+yes at 127\.0\.0\.1:{jinan.port},", console.export_text())
    await jinan.stop(0)
    with _env(fed, jinan, monkeypatch):
        gone = await collect_status(root, timeout=3)
    assert gone["serving"]["state"] == "no"
    assert "not running" in gone["serving"]["detail"]


async def test_a_feed_with_a_refused_checkpoint_shows_tampered_with_why(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await wait_mirrored(lanzhou, jinan, await jinan.publisher.append(adds(3)))
    feeds = {f["origin"]: f for f in (await _status(fed, lanzhou, monkeypatch))["feeds"]}
    assert (feeds["jinan"]["state"], feeds["jinan"]["reason"]) == (OK, "")
    assert feeds["lanzhou"]["own"] and feeds["lanzhou"]["state"] == OK
    # Jinan signs with a key lanzhou was never told of: its checkpoints are refused.
    jinan.publisher.signers = FeedSigners.fixed(SigningKey.generate(jinan.home.identity.uri))
    await jinan.publisher.append(adds(2, start=3))
    deadline = time.monotonic() + 20
    while True:
        feeds = {f["origin"]: f for f in (await _status(fed, lanzhou, monkeypatch))["feeds"]}
        if feeds["jinan"]["state"] != OK:
            break
        assert time.monotonic() < deadline, "the refused checkpoint never showed"
        await asyncio.sleep(0.1)
    assert feeds["jinan"]["state"] == TAMPERED
    assert feeds["jinan"]["reason"].startswith("sync: checkpoint refused")
    assert feeds["jinan"]["evidence"] >= 1


async def test_the_origin_shows_a_lagging_subscriber_and_whether_it_has_a_leaf(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    first = await jinan.publisher.append(adds(4))

    async def sync() -> None:
        peer = await lanzhou.directory.lookup("jinan")
        assert peer is not None
        # The origin's checkpoint of what it appended, signed now: append returns before its
        # background signer runs, and a sync only takes what a checkpoint covers.
        await jinan.publisher.sign_checkpoint()
        sub = await Subscriber.open(lanzhou.home.tls, lanzhou.store, peer, audit=lanzhou.audit)
        await sub.sync(follow=False, timeout=10)
        await lanzhou.audit.sign_checkpoint()

    await sync()
    size = await jinan.publisher.append(adds(3, start=4))  # e.g. a removal at leaf size - 1
    got = await _status(fed, jinan, monkeypatch, receipts=True, leaf=size - 1)
    row = {s["peer"]: s for s in got["subscribers"]}["lanzhou"]
    assert (row["own_size"], row["acknowledged"], row["receipts_error"]) == (size, first, None)
    assert row["state"] == "lagging" and row["covers_leaf"] is False
    assert row["last_served"] is not None
    older = await _status(fed, jinan, monkeypatch, receipts=True, leaf=first - 1)
    assert {s["peer"]: s for s in older["subscribers"]}["lanzhou"]["covers_leaf"] is True

    await sync()
    got = await _status(fed, jinan, monkeypatch, receipts=True, leaf=size - 1)
    row = {s["peer"]: s for s in got["subscribers"]}["lanzhou"]
    assert row["acknowledged"] == size
    assert row["state"] == "caught up" and row["covers_leaf"] is True
    # Without --receipts no call is made: nothing to judge by.
    plain = {s["peer"]: s for s in (await _status(fed, jinan, monkeypatch))["subscribers"]}
    assert (plain["lanzhou"]["acknowledged"], plain["lanzhou"]["state"]) == (None, "unknown")
    # A subscriber that cannot be asked says why, in one line.
    await lanzhou.stop(0)
    down = await _status(fed, jinan, monkeypatch, receipts=True)
    row = {s["peer"]: s for s in down["subscribers"]}["lanzhou"]
    assert row["acknowledged"] is None and "unreachable" in row["receipts_error"]


async def test_status_json_reads_back_against_its_schema(
    federation: FederationFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await wait_mirrored(lanzhou, jinan, await jinan.publisher.append(adds(2)))
    with _env(fed, lanzhou, monkeypatch):
        home = str(lanzhou.home.paths.root)
        code, out, err = await cli(capsys, "status", "--home", home, "--format", "json")
    assert code == 0, err
    (doc,) = check_schema("status", out)
    assert doc == json.loads(out) and doc["schema"] == "creditnode.status/1"
    assert doc["node"]["name"] == "lanzhou" and doc["serving"]["state"] == "yes"
    assert {f["origin"]: f["state"] for f in doc["feeds"]} == {"lanzhou": OK, "jinan": OK}
    assert [p["name"] for p in doc["peers"]] == ["jinan"]
    assert [s["peer"] for s in doc["subscribers"]] == ["jinan"]
    assert all(f["state"] in FEED_STATES for f in doc["feeds"])
    with _env(fed, lanzhou, monkeypatch):
        code, out, err = await cli(capsys, "status", "--home", home, "--peer", "jinan",
                                   "--format", "json")  # fmt: skip
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_counts_read_as_integers_whatever_the_driver_returns() -> None:
    """PostgreSQL's SUM over a bigint is numeric: asyncpg gives a Decimal, which may print in
    exponent form; status must still show the count."""
    from decimal import Decimal

    from node.status.collect import _int

    assert _int(Decimal("1.00E+6")) == 1_000_000
    assert _int(Decimal("42")) == 42
    assert _int(7) == 7
    assert _int("12") == 12
    assert _int(None) == 0
