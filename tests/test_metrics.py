"""Metrics and health (issue 16): a real node and its partner, scraped over HTTP at
127.0.0.1:<port>/metrics and parsed with prometheus_client's parser; /healthz and /readyz;
no listener when metrics_listen is ""; the label rule under hypothesis."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select

from adapters.samples import generate_rows, write_csv
from keys import FederationCA, NodeIdentity
from node.api import query, query_rpc
from node.errors import ConfigError
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.importer import import_list
from node.feeds.logstore import CHECKPOINTS, LOGS
from node.home import set_setting
from node.metrics import FORM_KINDS, NodeMetrics, form_label, label
from node.metrics.collect import FeedLag, Snapshot, families, take_snapshot
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import wait_mirrored
from tests.helpers import channel_to, forged_tls, get_info
from tests.test_exit import CANARY_IDS, CANARY_NAMES, USCC, _jinan_with_canaries, _synced

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
GET_INFO = "/creditnode.v1.NodeService/GetInfo"
LOOKUP = "/creditnode.v1.QueryService/Lookup"
SUBSCRIBE = "/creditnode.v1.FeedService/Subscribe"
MATTER = "兰财采〔2026〕0517号"
LABEL = re.compile(r"[A-Za-z0-9_.:/-]{0,100}")


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes started in this test serve metrics, each on its own port."""
    monkeypatch.setenv("CREDITNODE_METRICS_LISTEN", "127.0.0.1:0")


def _get(node: Node, path: str) -> tuple[int, str]:
    url = f"http://{node.metrics_endpoint}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


async def get(node: Node, path: str) -> tuple[int, str]:
    """GET *path* from *node*'s metrics listener (in a thread: the node's loop must run)."""
    return await asyncio.to_thread(_get, node, path)


async def scrape(node: Node) -> Samples:
    status, text = await get(node, "/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _own(feed: str, own: str) -> frozenset[tuple[str, str]]:
    return frozenset({("feed", feed), ("own", own)})


def labelled(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {lbl: v for (n, lbl), v in samples.items() if n == name}


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within 20 s: {what}")


async def test_a_node_and_its_partner_scraped(
    metrics_on: None, federation: FederationFactory, tmp_path: Path
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    assert jinan.metrics_port and lanzhou.metrics_port
    assert jinan.metrics_port != lanzhou.metrics_port
    before = await scrape(jinan)

    # RPCs: one GetInfo from the partner, one from a node not enrolled here (refused at the
    # gate: no peer), one lookup under a purpose no agreement names (a policy denial),
    # one under the agreement (personal values leave, masked and pseudonymised).
    await _jinan_with_canaries(fed)
    await get_info(jinan, lanzhou.home.tls)
    stranger = forged_tls(FederationCA.load(fed.ca_dir), NodeIdentity("yellow-river", "xian"))
    with pytest.raises(grpc.aio.AioRpcError):
        await get_info(jinan, stranger)
    meta = (("x-creditnode-matter-bin", MATTER.encode()),)
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        stub = query_rpc.QueryServiceStub(ch)
        refused = await stub.Lookup(query.LookupRequest(purpose="made-up", uscc=USCC))
        assert "unknown purpose" in refused.decision
        answer = await stub.Lookup(
            query.LookupRequest(purpose="enforcement", uscc=USCC), metadata=meta
        )
        assert answer.answers and answer.answers[0].entry.person_name

    # An import at Jinan, one row quarantined, mirrored by Lanzhou.
    spec = catalogue.load(jinan.home.catalogue_path).resolve("tax-major")
    rows = list(generate_rows(5, seed=3, list_name=spec.name, list_type=spec.kind,
                              region="370100", today=shanghai_today()))  # fmt: skip
    bad = next(r for r in rows if r["统一社会信用代码"])
    bad["统一社会信用代码"] = bad["统一社会信用代码"][:17]  # 17 characters: quarantined
    write_csv(tmp_path / "tax.csv", rows)
    summary = await import_list(
        jinan.publisher, tmp_path / "tax.csv", spec, pseudonym_key=jinan.home.pseudonym_key
    )
    assert len(summary.quarantined) == 1 and summary.added == 4
    await wait_mirrored(lanzhou, jinan, jinan.publisher.log.frontier.size)

    after = await scrape(jinan)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("creditnode_rpc_total", method=GET_INFO, peer="lanzhou", code="OK") == 1
    refused_codes = {
        dict(lbl)["code"]
        for lbl, v in labelled(after, "creditnode_rpc_total").items()
        if dict(lbl)["peer"] == "" and dict(lbl)["method"] == GET_INFO and v >= 1
    }
    assert refused_codes and "OK" not in refused_codes  # the stranger, counted without a peer
    assert moved("creditnode_rpc_total", method=LOOKUP, peer="lanzhou", code="OK") == 2
    assert moved("creditnode_rpc_duration_seconds_count", method=LOOKUP, peer="lanzhou") == 2
    assert moved("creditnode_policy_denials_total", peer="lanzhou") == 1
    # The enforcement agreement: person_name masked, person_id pseudonymised.
    assert moved("creditnode_disclosures_total", peer="lanzhou", form="mask") == 1
    assert moved("creditnode_disclosures_total", peer="lanzhou", form="pseudonym") == 1
    assert moved("creditnode_disclosed_values_total", peer="lanzhou") >= 3  # and the feed's
    # Lanzhou follows Jinan's feed: one Subscribe stream open at Jinan.
    assert value(after, "creditnode_rpc_open_streams", method=SUBSCRIBE) >= 1

    assert value(after, "creditnode_imports_total", list="tax-major") == 1
    assert value(after, "creditnode_import_rows_total", list="tax-major", outcome="added") == 4
    assert (
        value(after, "creditnode_import_rows_total", list="tax-major", outcome="quarantined") == 1
    )
    assert value(after, "creditnode_quarantined_rows_total", list="tax-major") == 1
    assert value(after, "creditnode_scrape_store_ok") == 1
    assert labelled(after, "creditnode_checkpoint_age_seconds")[_own("jinan", "yes")] >= 0
    assert value(after, "creditnode_feed_state", feed="jinan", state="ok") == 1
    assert value(after, "creditnode_key_expiry_days", key="tls_certificate", owner="jinan") > 30
    assert value(after, "creditnode_key_expiry_days", key="ca", owner="lanzhou") > 30
    assert labelled(after, "creditnode_verification_findings") == {}

    # The partner: caught up with Jinan's feed, its checkpoint verified.
    theirs = await scrape(lanzhou)
    assert value(theirs, "creditnode_feed_lag_leaves", feed="jinan") == 0
    assert value(theirs, "creditnode_feed_lag_seconds", feed="jinan") == 0
    assert labelled(theirs, "creditnode_checkpoint_age_seconds")[_own("jinan", "no")] >= 0

    # No entity name, ID, USCC, matter or purpose is ever a label value: only our own words.
    hostile = [*CANARY_IDS, *CANARY_NAMES, USCC, MATTER, "made-up", "enforcement"]
    hostile += [v for r in rows for v in (r["统一社会信用代码"], r["主体名称"], r["证件号码"]) if v]
    for samples in (after, theirs):
        for _, lbls in samples:
            for k, v in lbls:
                assert k == "le" or LABEL.fullmatch(v), v  # le: a histogram's bucket bound
                assert not any(h in v for h in hostile), v


async def test_feed_lag_from_a_checkpoint_not_yet_applied(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _jinan_with_canaries(fed)
    await _synced(lanzhou, "jinan")
    size = jinan.publisher.log.frontier.size
    snap = await take_snapshot(lanzhou.home, lanzhou.store, [])
    [mirror] = [f for f in snap.feeds if f.feed == "jinan"]
    assert (mirror.own, mirror.lag_leaves, mirror.lag_seconds) == (False, 0, 0.0)
    # A checkpoint of 5 more leaves, verified a minute ago and not applied yet.
    now = dt.datetime.now(dt.UTC)
    async with lanzhou.store.begin() as conn:
        log_id = (
            await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == jinan.home.identity.uri))
        ).scalar_one()
        await conn.execute(
            insert(CHECKPOINTS).values(
                log_id=log_id, size=size + 5, note=b"", recorded_at=now - dt.timedelta(minutes=1)
            )
        )
    snap = await take_snapshot(lanzhou.home, lanzhou.store, [], now)
    [mirror] = [f for f in snap.feeds if f.feed == "jinan"]
    assert mirror.lag_leaves == 5
    assert mirror.lag_seconds == pytest.approx(60.0, abs=1.0)
    # The age is the newest checkpoint's: the one verified at the sync, not the minute-old one.
    assert mirror.checkpoint_age is not None and mirror.checkpoint_age < 30


async def test_health_and_readiness(
    metrics_on: None, federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(2)
    jinan = fed["jinan"]
    assert await get(jinan, "/healthz") == (200, "ok\n")
    assert await get(jinan, "/readyz") == (200, "ready\n")
    assert (await get(jinan, "/nothing"))[0] == 404

    # A store that does not answer: not ready (the process is still up).
    async def broken(_store: object) -> None:
        raise OSError("database gone")

    with monkeypatch.context() as patch:
        patch.setattr("node.runtime.store_answers", broken)
        assert await get(jinan, "/readyz") == (503, "not ready: the store does not answer\n")
        assert (await get(jinan, "/healthz"))[0] == 200
    assert (await get(jinan, "/readyz"))[0] == 200

    # Stop begins and is held (at the heartbeat's stop) while /readyz is asked.
    held = asyncio.Event()
    monkeypatch.setattr(jinan.heartbeat, "stop", held.wait)
    endpoint = jinan.metrics_endpoint
    stopping = asyncio.create_task(jinan.stop(grace=1.0))
    await _eventually(lambda: _true(jinan.stopping.is_set()), "stop began")
    status, body = await get(jinan, "/readyz")
    assert (status, body) == (503, "not ready: stopping\n")
    assert (await get(jinan, "/healthz"))[0] == 200  # the process is up all the same
    held.set()
    await stopping
    # Stopped: the listener is closed with the node.
    assert jinan.metrics_port == 0
    host, port = endpoint.rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass


async def _true(value: bool) -> bool:
    return value


async def test_no_listener_when_metrics_listen_is_empty(federation: FederationFactory) -> None:
    # The session's default in tests: CREDITNODE_METRICS_LISTEN="" (tests/conftest.py).
    fed = await federation(1)
    node = fed["jinan"]
    assert node.metrics_port == 0 and node.metrics_endpoint == ""
    # The counters still count (a later listener would show them); nothing serves them.
    await get_info(node, node.home.tls)
    assert (
        node.metrics.registry.get_sample_value(
            "creditnode_rpc_total", {"method": GET_INFO, "peer": "self", "code": "OK"}
        )
        == 1
    )


async def test_a_taken_metrics_port_is_one_config_error(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await federation(1)
    root = fed["jinan"].home.paths.root
    await fed.stop(grace=0.5)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("CREDITNODE_METRICS_LISTEN", f"127.0.0.1:{port}")
        node = await Node.open(root)
        try:
            with pytest.raises(
                ConfigError, match=rf"cannot listen for metrics on 127.0.0.1:{port}"
            ):
                await node.start(heartbeat=False, subscribe=False)
            # The peer server it had bound is closed again: the node can start elsewhere.
            assert node._server is None
        finally:
            await node.store.close()


def test_a_malformed_metrics_listen_is_refused(federation_home: Path) -> None:
    set_setting(federation_home, "metrics_listen", "nonsense")
    from node.config import load_settings

    with pytest.raises(ConfigError, match="metrics_listen"):
        load_settings(federation_home)


@pytest.fixture
def federation_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node home, not started (the environment does not override metrics_listen)."""
    from node.home import init_home

    monkeypatch.delenv("CREDITNODE_METRICS_LISTEN", raising=False)
    FederationCA.create("yellow-river").save(tmp_path / "ca")
    root = tmp_path / "jinan"
    init_home(root, name="jinan", region="370100", ca_dir=tmp_path / "ca", listen="127.0.0.1:0")
    return root


def test_the_default_is_localhost(federation_home: Path) -> None:
    from node.config import load_settings

    assert load_settings(federation_home).metrics_listen == "127.0.0.1:9464"


# ------------------------------------------------------------------------------ pure core


@given(st.text(max_size=300))
def test_a_label_is_our_word_or_other(text: str) -> None:
    out = label(text)
    assert out in ("", "other") or out == text
    assert LABEL.fullmatch(out)
    assert "[" not in out and "\x1b" not in out and " " not in out


@given(st.text(max_size=80))
def test_a_form_label_is_a_form_kind(text: str) -> None:
    assert form_label(text) in {*FORM_KINDS, "oprf_evaluation", "other"}


def test_released_counts_each_form_once_per_message() -> None:
    m = NodeMetrics()
    m.released("lanzhou", {"person_name": "mask:name_surname", "person_id": "pseudonym",
                           "a": "mask:x", "b": "<b>[bold]"}, values=3)  # fmt: skip
    m.released("", {"person_name": "clear"}, values=1)  # our own call: not a disclosure
    m.released("lanzhou", {"x": "clear"}, values=0)  # nothing personal left
    get = m.registry.get_sample_value
    assert get("creditnode_disclosures_total", {"peer": "lanzhou", "form": "mask"}) == 1
    assert get("creditnode_disclosures_total", {"peer": "lanzhou", "form": "pseudonym"}) == 1
    assert get("creditnode_disclosures_total", {"peer": "lanzhou", "form": "other"}) == 1
    assert get("creditnode_disclosures_total", {"peer": "lanzhou", "form": "clear"}) is None
    assert get("creditnode_disclosed_values_total", {"peer": "lanzhou"}) == 3


def test_families_of_a_snapshot() -> None:
    snap = Snapshot(
        feeds=[
            FeedLag("jinan", own=True, state="ok", lag_leaves=0, lag_seconds=0, checkpoint_age=2.5),
            FeedLag(
                "lanzhou",
                own=False,
                state="ok",
                lag_leaves=7,
                lag_seconds=12.0,
                checkpoint_age=None,
            ),
        ],
        imports={"tax-major": 2},
        rows={("tax-major", "added"): 9, ("tax-major", "quarantined"): 1},
        findings={("lanzhou", "tampered-leaf"): 1},
        expiry_days=[("ca", "jinan", 364.5)],
    )
    out = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families(snap)
        for s in f.samples
    }
    assert out[("creditnode_feed_lag_leaves", (("feed", "lanzhou"),))] == 7
    assert ("creditnode_feed_lag_leaves", (("feed", "jinan"),)) not in out  # own: no lag
    assert out[("creditnode_checkpoint_age_seconds", (("feed", "jinan"), ("own", "yes")))] == 2.5
    assert out[("creditnode_imports_total", (("list", "tax-major"),))] == 2
    assert out[("creditnode_quarantined_rows_total", (("list", "tax-major"),))] == 1
    assert out[("creditnode_verification_findings", (("feed", "lanzhou"),
                                                     ("kind", "tampered-leaf")))] == 1  # fmt: skip
    assert out[("creditnode_key_expiry_days", (("key", "ca"), ("owner", "jinan")))] == 364.5
