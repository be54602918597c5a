"""`status --html` (issue 16, deliverable 8): a self-contained page that draws the alliance as
a graph of nodes and feeds coloured by state, with a legend, and plots each peer's feed lag and
disclosures over time from the metrics history the running node samples. Every value from
data is text. Real in-process nodes on 127.0.0.1:0; the sampler is driven directly."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from keys import SigningKey
from node.feeds.health import FEED_STATES, OK, TAMPERED
from node.feeds.logstore import LOGS
from node.feeds.subscriber import Subscriber
from node.feeds.verify import CheckpointRefused
from node.keys.signers import FeedSigners
from node.metrics.collect import take_snapshot
from node.metrics.history import HISTORY, LAG_LEAVES, LAG_SECONDS, read_history
from node.runtime import Node
from node.status_page import (
    CHART_H,
    CHART_W,
    PAD,
    UNKNOWN,
    graph,
    increases,
    polyline,
    render_page,
    thin,
)
from node.storage.models import PeerRecord
from node.witness.store import WITNESSED
from tests.conftest import FederationFactory
from tests.feedutil import adds, mirror_size
from tests.test_json_output import cli
from tests.test_status import _env

HOSTILE = '<script>alert(1)</script>"><svg onload=alert(2)>'
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Page(HTMLParser):
    """The elements of a page, their attributes, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def elements_with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a.get("class", "").split()]

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def assert_self_contained(text: str) -> None:
    """No script, no event handler, no external resource: nothing a viewer would fetch."""
    # A node's own URI (creditnode://federation/name) is shown as text: the only "//" allowed.
    assert not re.search(r"https?:|(?<!creditnode:)//", text), "an external URL in the page"
    page = Page(text)
    assert not page.find("script") and not page.find("iframe") and not page.find("img")
    for _tag, attrs in page.elements:
        assert not any(k.startswith("on") for k in attrs), attrs
        assert not any(attrs.get(k, "").strip() for k in ("src", "href")), attrs


# -- the pure core ---------------------------------------------------------------------------


def _status(peers: list[dict[str, Any]], feeds: list[dict[str, Any]],
            subs: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "node": {"uri": "creditnode://fed/jinan", "name": "jinan", "region": "370100"},
        "serving": {"state": "yes"},
        "peers": peers,
        "feeds": feeds,
        "subscribers": subs or [],
        "warnings": [],
    }


def _peer(name: str, reach: str = "up", error: str = "") -> dict[str, Any]:
    return {"name": name, "region": "620100", "endpoint": "127.0.0.1:1", "reach": reach,
            "reach_error": error}  # fmt: skip


def _feed(origin: str, state: str, reason: str = "", own: bool = False) -> dict[str, Any]:
    return {"origin": origin, "own": own, "state": state, "reason": reason, "leaves": 3}


def test_graph_has_this_node_each_peer_and_two_feed_edges_per_peer() -> None:
    status = _status(
        [_peer("lanzhou"), _peer("xian", "unreachable", "down"), _peer("wuhan", "weird")],
        [_feed("jinan", OK, own=True), _feed("lanzhou", TAMPERED, "bad note"),
         _feed("xian", "lagging", "applied 1 of 3")],
        [{"peer": "lanzhou", "state": "caught up"}, {"peer": "xian", "state": "lagging"}],
    )  # fmt: skip
    g = graph(status)
    assert [(n.name, n.own, n.state) for n in g.nodes] == [
        ("jinan", True, "up"), ("lanzhou", False, "up"), ("xian", False, "unreachable"),
        ("wuhan", False, UNKNOWN),  # a reach this page does not know is not drawn as up
    ]  # fmt: skip
    edges = {(e.peer, e.direction): e.state for e in g.edges}
    assert edges == {
        ("lanzhou", "in"): TAMPERED, ("lanzhou", "out"): OK,
        ("xian", "in"): "lagging", ("xian", "out"): "lagging",
        ("wuhan", "in"): UNKNOWN, ("wuhan", "out"): UNKNOWN,  # no mirror yet; no receipts
    }  # fmt: skip
    assert "bad note" in next(e.title for e in g.edges if e.state == TAMPERED)
    for n in g.nodes:  # every node inside the drawing
        assert 0 < n.x < g.width and 0 < n.y < g.height
    # The own feed's bad state colours every outbound edge: it is what each peer would get.
    bad = _status([_peer("lanzhou")], [_feed("jinan", TAMPERED, "finding", own=True)],
                  [{"peer": "lanzhou", "state": "caught up"}])  # fmt: skip
    assert {e.direction: e.state for e in graph(bad).edges}["out"] == TAMPERED


def test_counter_increases_survive_a_restart() -> None:
    at = [T0 + dt.timedelta(minutes=i) for i in range(5)]
    points = list(zip(at, [0.0, 2.0, 5.0, 1.0, 4.0], strict=True))
    assert increases(points) == list(zip(at[1:], [2.0, 3.0, 1.0, 3.0], strict=True))
    assert increases(points[:1]) == [] and increases([]) == []


@given(st.lists(st.floats(0, 1e9, allow_nan=False), min_size=1, max_size=3000))
def test_thinning_is_bounded_and_keeps_the_largest_value(values: list[float]) -> None:
    points = [(T0 + dt.timedelta(seconds=i), v) for i, v in enumerate(values)]
    kept = thin(points, 100)
    assert len(kept) <= 100
    assert max(v for _, v in kept) == max(values)
    assert kept[-1][0] == points[-1][0]
    assert [t for t, _ in kept] == sorted(t for t, _ in kept)


@given(
    st.lists(
        st.tuples(st.integers(-3600, 7200), st.floats(-1e12, 1e12, allow_nan=False)),
        max_size=50,
    ),
    st.floats(0, 1e12, allow_nan=False),
)
def test_polyline_points_stay_in_the_chart_box(raw: list[tuple[int, float]], y_max: float) -> None:
    start, end = T0, T0 + dt.timedelta(hours=1)
    points = sorted((T0 + dt.timedelta(seconds=s), v) for s, v in raw)
    text = polyline(points, start, end, y_max)
    pairs = [tuple(float(c) for c in p.split(",")) for p in text.split()]
    assert len(pairs) == len(points)
    for x, y in pairs:
        assert PAD <= x <= CHART_W - PAD and PAD <= y <= CHART_H - PAD
    assert [x for x, _ in pairs] == sorted(x for x, _ in pairs)  # time runs left to right


def test_hostile_values_are_text_in_every_place_they_appear() -> None:
    status = _status(
        [_peer(HOSTILE, "unreachable", HOSTILE)],
        [_feed("jinan", OK, own=True), _feed(HOSTILE, TAMPERED, HOSTILE)],
        [{"peer": HOSTILE, "state": "lagging"}],
    )
    status["node"]["name"] = HOSTILE
    status["warnings"] = [HOSTILE]
    later = T0 + dt.timedelta(minutes=1)
    history = {
        HOSTILE: {
            LAG_LEAVES: [(T0, 1.0), (later, 2.0)],
            f"disclosures:{HOSTILE}": [(T0, 1.0), (later, 3.0)],
        }
    }
    text = render_page(status, history, start=T0, end=T0 + dt.timedelta(hours=1))
    assert "<script" not in text and "<svg onload" not in text
    assert_self_contained(text)
    page = Page(text)
    assert sum(HOSTILE in t for t in page.text) >= 5  # shown, as text
    # The attributes that carry it hold it as a value, not as markup.
    assert page.find("g", **{"data-name": HOSTILE[:39] + "…"})
    assert len(page.find("svg")) == 1 + 3  # the graph and the one peer's three charts


# -- live nodes ------------------------------------------------------------------------------


async def _sync(mirror: Node, origin: str, *, refused: bool = False) -> None:
    peer = await mirror.directory.lookup(origin)
    assert peer is not None
    sub = await Subscriber.open(mirror.home.tls, mirror.store, peer, audit=mirror.audit)
    if not refused:
        await sub.sync(follow=False, timeout=10)
        return
    with pytest.raises(CheckpointRefused):  # raised after the feed is marked tampered
        await sub.sync(follow=False, timeout=10)


async def _witnessed(node: Node, origin: Node) -> int:
    async with node.store.engine.connect() as conn:
        size = (
            await conn.execute(
                select(WITNESSED.c.size).where(WITNESSED.c.origin == origin.home.identity.uri)
            )
        ).scalar()
    return int(size or 0)


async def test_status_html_draws_a_tampered_feed_and_plots_sampled_lag(
    federation: FederationFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await jinan.publisher.append(adds(4))
    await jinan.publisher.sign_checkpoint()
    await _sync(lanzhou, "jinan")
    assert await mirror_size(lanzhou, jinan) == 4
    # Jinan goes on to 7 leaves and has lanzhou cosign them: lanzhou now knows of 3 leaves it
    # has not applied (the lag the scrape reports, and the history keeps).
    size = await jinan.publisher.append(adds(3, start=4))
    await jinan.publisher.sign_checkpoint()
    for _ in range(200):
        if await _witnessed(lanzhou, jinan) >= size:
            break
        await jinan.cosigning.round()
        await asyncio.sleep(0.05)
    assert await _witnessed(lanzhou, jinan) == size
    # Two disclosures to jinan, counted as the exit counts them.
    lanzhou.metrics.released("jinan", {"name": "mask:name"}, 1)
    lanzhou.metrics.released("jinan", {"id": "pseudonym", "name": "mask:name"}, 2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    samples = [now - dt.timedelta(minutes=m) for m in (50, 30)]
    for at in samples:
        assert await lanzhou.history.sample_once(at) > 0
    lanzhou.metrics.released("jinan", {"name": "mask:name"}, 1)
    # Then jinan signs with a key lanzhou was never told of: its checkpoint is refused.
    jinan.publisher.signers = FeedSigners.fixed(SigningKey.generate(jinan.home.identity.uri))
    await jinan.publisher.append(adds(2, start=7))
    await jinan.publisher.sign_checkpoint()  # served now, not when the publisher gets to it
    await _sync(lanzhou, "jinan", refused=True)
    await lanzhou.history.sample_once(now - dt.timedelta(minutes=10))
    # The history holds what the scrape computes, per sample.
    snap = await take_snapshot(lanzhou.home, lanzhou.store, [])
    lag = next(f for f in snap.feeds if f.feed == "jinan")
    assert lag.lag_leaves == 3
    history = await read_history(lanzhou.store, now - dt.timedelta(hours=1))
    assert [v for _, v in history["jinan"][LAG_LEAVES]] == [3.0, 3.0, 3.0]
    assert len(history["jinan"][LAG_SECONDS]) == 3
    assert [v for _, v in history["jinan"]["disclosures:mask"]] == [2.0, 2.0, 3.0]
    assert [v for _, v in history["jinan"]["disclosures:pseudonym"]] == [1.0, 1.0, 1.0]
    # A hostile reason and reach error, as a peer's error text could carry.
    async with lanzhou.store.begin() as conn:
        await conn.execute(
            update(PeerRecord.__table__)  # type: ignore[attr-defined]
            .where(PeerRecord.__table__.c.name == "jinan")  # type: ignore[attr-defined]
            .values(state="unreachable", last_error=HOSTILE)
        )
        await conn.execute(
            update(LOGS)
            .where(LOGS.c.origin == jinan.home.identity.uri)
            .values(state_detail=f"sync: checkpoint refused: {HOSTILE}")
        )
    (tmp_path / "page").mkdir()
    out_file = tmp_path / "page" / "status.html"
    with _env(fed, lanzhou, monkeypatch):
        home = str(lanzhou.home.paths.root)
        code, out, err = await cli(capsys, "status", "--home", home, "--html", str(out_file))
    assert code == 0, err
    assert "status page written to" in out
    text = out_file.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "<script" not in text and "<svg onload" not in text
    page = Page(text)
    # The graph: this node, the peer coloured by its (outbound) reach, its feed tampered.
    assert page.find("g", **{"data-name": "lanzhou", "data-state": "up"})
    (peer,) = page.find("g", **{"data-name": "jinan"})
    assert "peer" in peer["class"].split() and peer["data-state"] == "unreachable"
    assert "reach-unreachable" in peer["class"].split()
    (inbound,) = page.find("g", **{"data-peer": "jinan", "data-direction": "in"})
    assert inbound["data-state"] == TAMPERED and "state-tampered" in inbound["class"].split()
    assert page.find("g", **{"data-peer": "jinan", "data-direction": "out"})
    assert any(f"checkpoint refused: {HOSTILE}" in t for t in page.text)
    # The legend names every feed state and every reach.
    legend = {a["class"] for a in page.elements_with_class("legend-feed")}
    assert legend == {f"legend-feed state-{s}" for s in (*FEED_STATES, UNKNOWN)}
    assert len(page.elements_with_class("legend-reach")) == 4
    # The lag series from the sampled history: one polyline point per sample.
    (lag_line,) = page.find("polyline", **{"data-series": "leaves"})
    assert len(lag_line["points"].split()) == 3
    forms = {a["data-series"]: a["points"] for a in page.find("polyline")
             if a["data-series"] in ("mask", "pseudonym")}  # fmt: skip
    assert len(forms["mask"].split()) == 2  # increases between the three samples
    # Nothing else was written beside it (the temporary file is renamed into place).
    assert sorted(p.name for p in out_file.parent.iterdir()) == ["status.html"]
    async with lanzhou.store.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(HISTORY))).scalar()
    assert rows == 3 * (2 + 2)  # per sample: two lag series, two disclosure forms


async def test_the_history_is_pruned_as_it_writes_and_off_at_zero(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    lanzhou = fed["lanzhou"]
    lanzhou.metrics.released("jinan", {"name": "clear"}, 1)
    keep = dt.timedelta(days=lanzhou.home.settings.metrics_history_days)
    old = dt.datetime.now(dt.UTC) - keep - dt.timedelta(hours=1)
    await lanzhou.history.sample_once(old)
    await lanzhou.history.sample_once(old + dt.timedelta(minutes=30))
    assert len((await read_history(lanzhou.store, old))["jinan"]["disclosures:clear"]) == 2
    await lanzhou.history.sample_once()
    points = (await read_history(lanzhou.store, old))["jinan"]["disclosures:clear"]
    assert len(points) == 1 and points[0][0] > old + keep
    assert lanzhou.home.settings.metrics_history_seconds == 60  # the default: on
    assert "metrics-history" in {t.get_name() for t in lanzhou._background}


async def test_html_with_json_or_an_unwritable_file_is_one_error_line(
    federation: FederationFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fed = await federation(1)
    jinan = fed["jinan"]
    home = str(jinan.home.paths.root)
    with _env(fed, jinan, monkeypatch):
        for extra in (["--format", "json"], ["--peer", "x"]):
            code, _, err = await cli(capsys, "status", "--home", home, "--html",
                                     str(tmp_path / "a.html"), *extra)  # fmt: skip
            assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
        code, _, err = await cli(capsys, "status", "--home", home, "--html",
                                 str(tmp_path / "missing" / "a.html"))  # fmt: skip
    assert code == 2 and err.startswith("error: cannot write") and len(err.splitlines()) == 1
    assert not (tmp_path / "a.html").exists()
