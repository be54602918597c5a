"""`status --html`: one self-contained HTML page (inline SVG and CSS, no script, no external
resource) that draws the alliance as a graph of nodes and feeds coloured by state, and plots
each peer's feed lag and disclosures over time from the metrics history.

Pure: :func:`graph` lays out the nodes and an edge per feed direction, :func:`chart` turns
series into SVG polyline points, :func:`render_page` fills the Jinja2 template (autoescape
on: every value from data is text). The CLI gathers the data and writes the file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from node.feeds.health import FEED_STATES, FORKED, LAGGING, OK, STALLED, TAMPERED
from node.text import plain

UNKNOWN = "unknown"
FEED_COLOURS = {
    OK: "#2e7d32", LAGGING: "#e6a700", STALLED: "#ef6c00", FORKED: "#7b1fa2",
    TAMPERED: "#c62828", UNKNOWN: "#9e9e9e",
}  # fmt: skip
REACH_STATES = ("up", "unreachable", "refused", UNKNOWN)
REACH_COLOURS = {"up": "#2e7d32", "unreachable": "#c62828", "refused": "#ef6c00",
                 UNKNOWN: "#9e9e9e"}  # fmt: skip
FORM_COLOURS = {
    "clear": "#c62828", "mask": "#1565c0", "pseudonym": "#6a1b9a", "generalise": "#00897b",
    "withhold": "#757575", "oprf_evaluation": "#8d6e63",
}  # fmt: skip
OTHER_COLOUR = "#212121"
MAX_NAME = 40  # characters of a name drawn in the graph; the tables show the whole line
MAX_CHART_POINTS = 600  # per series: the page stays small whatever the history holds
WIDTH, HEIGHT, NODE_R = 720.0, 480.0, 30.0
CHART_W, CHART_H, PAD = 320.0, 130.0, 24.0

Point = tuple[dt.datetime, float]


def _name(value: object) -> str:
    """A data value as one bounded line of text for the drawing."""
    text = plain("" if value is None else value)
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def feed_state(value: object) -> str:
    """One of FEED_STATES, else ``unknown`` (a value this page does not know is never ok)."""
    return str(value) if value in FEED_STATES else UNKNOWN


def reach_state(value: object) -> str:
    return str(value) if value in REACH_STATES else UNKNOWN


@dataclass(frozen=True)
class GraphNode:
    name: str
    x: float
    y: float
    own: bool
    state: str  # reach for a peer ("up" for this node)
    colour: str
    title: str  # the tooltip: name and state, with the reason


@dataclass(frozen=True)
class GraphEdge:
    peer: str
    direction: str  # "in": the peer's feed to this node; "out": this node's feed to the peer
    x1: float
    y1: float
    x2: float
    y2: float
    state: str
    colour: str
    label_x: float
    label_y: float
    title: str


@dataclass(frozen=True)
class Graph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: float = WIDTH
    height: float = HEIGHT


def positions(n: int, cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    """*n* points evenly on a circle, the first at the top, clockwise."""
    return [
        (
            round(cx + radius * math.cos(-math.pi / 2 + 2 * math.pi * i / n), 1),
            round(cy + radius * math.sin(-math.pi / 2 + 2 * math.pi * i / n), 1),
        )
        for i in range(n)
    ]


def _segment(
    a: tuple[float, float], b: tuple[float, float], side: float
) -> tuple[float, float, float, float]:
    """From *a* to *b*, moved *side* units to its left and shortened by a node's radius at
    both ends (so the arrowhead stops at the circle)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    nx, ny = -uy * side, ux * side
    gap = NODE_R + 4
    return (
        round(a[0] + ux * gap + nx, 1), round(a[1] + uy * gap + ny, 1),
        round(b[0] - ux * (gap + 6) + nx, 1), round(b[1] - uy * (gap + 6) + ny, 1),
    )  # fmt: skip


def _outbound(own_state: str, subscriber_state: object) -> str:
    """The state of this node's feed towards one peer: its own feed's state if that is not
    ok, else how far the peer got (``caught up``: ok; ``lagging``; else unknown)."""
    if own_state != OK:
        return own_state
    return {"caught up": OK, "lagging": LAGGING}.get(str(subscriber_state), UNKNOWN)


def graph(status: Mapping[str, Any]) -> Graph:
    """This node in the middle, each peer around it, and two edges per peer: the peer's feed
    to this node (its mirror's state) and this node's feed to the peer."""
    peers = list(status["peers"])
    feeds = {str(f["origin"]): f for f in status["feeds"] if not f["own"]}
    own_feed = next((f for f in status["feeds"] if f["own"]), None)
    own_state = feed_state(own_feed["state"]) if own_feed else UNKNOWN
    subs = {str(s["peer"]): s for s in status["subscribers"]}
    cx, cy = WIDTH / 2, HEIGHT / 2
    me = str(status["node"]["name"])
    nodes = [GraphNode(_name(me), cx, cy, True, "up", "#1565c0", f"{plain(me)} (this node)")]
    edges: list[GraphEdge] = []
    radius = min(WIDTH, HEIGHT) / 2 - NODE_R - 36
    for p, (x, y) in zip(peers, positions(len(peers), cx, cy, radius), strict=True):
        name = str(p["name"])
        reach = reach_state(p["reach"])
        why = f": {plain(p['reach_error'])}" if p.get("reach_error") else ""
        nodes.append(
            GraphNode(_name(name), x, y, False, reach, REACH_COLOURS[reach],
                      f"{plain(name)}: {reach}{why}")
        )  # fmt: skip
        feed = feeds.get(name)
        inbound = feed_state(feed["state"]) if feed else UNKNOWN
        reason = plain(feed["reason"]) if feed and feed["reason"] else ""
        sub = subs.get(name)
        outbound = _outbound(own_state, sub["state"] if sub else None)
        for direction, state, a, b, title in (
            ("in", inbound, (x, y), (cx, cy),
             f"{plain(name)}'s feed to {plain(me)}: {inbound}" + (f": {reason}" if reason else "")),
            ("out", outbound, (cx, cy), (x, y), f"{plain(me)}'s feed to {plain(name)}: {outbound}"),
        ):  # fmt: skip
            x1, y1, x2, y2 = _segment(a, b, 7.0)
            # The state word sits beside its own line, on the line's left.
            off = 14.0 if direction == "in" else -14.0
            lx, ly = _label_at(x1, y1, x2, y2, off if direction == "in" else -off)
            edges.append(
                GraphEdge(_name(name), direction, x1, y1, x2, y2, state, FEED_COLOURS[state],
                          lx, ly, title)
            )  # fmt: skip
    return Graph(nodes, edges)


def _label_at(x1: float, y1: float, x2: float, y2: float, side: float) -> tuple[float, float]:
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy) or 1.0
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    return round(mx - dy / length * side, 1), round(my + dx / length * side, 1)


# -- series over time --------------------------------------------------------------------------


def increases(points: Sequence[Point]) -> list[Point]:
    """A cumulative counter's increase over each interval between samples (pure); a counter
    that went down restarted with the node, so its value is the increase."""
    out: list[Point] = []
    for (_, before), (at, value) in itertools.pairwise(points):
        out.append((at, value - before if value >= before else value))
    return out


def thin(points: Sequence[Point], most: int = MAX_CHART_POINTS) -> list[Point]:
    """At most *most* points: consecutive points merged, each bucket keeping its largest value
    (a spike of lag is never thinned away) at the bucket's last time."""
    if len(points) <= most:
        return list(points)
    size = math.ceil(len(points) / most)
    return [
        (points[min(i + size, len(points)) - 1][0], max(v for _, v in points[i : i + size]))
        for i in range(0, len(points), size)
    ]


@dataclass(frozen=True)
class Line:
    key: str
    colour: str
    points: str  # "x,y x,y ..." for an SVG polyline
    last: float


@dataclass(frozen=True)
class Chart:
    title: str
    lines: list[Line]
    y_max: float
    start: str
    end: str
    width: float = CHART_W
    height: float = CHART_H
    pad: float = PAD
    empty: bool = field(default=False)


def polyline(
    points: Sequence[Point], start: dt.datetime, end: dt.datetime, y_max: float,
    width: float = CHART_W, height: float = CHART_H, pad: float = PAD,
) -> str:  # fmt: skip
    """SVG polyline points of *points* in a chart box: time left to right over [start, end],
    value bottom to top over [0, y_max]; points outside are clamped to the box."""
    span = max((end - start).total_seconds(), 1e-9)
    top = max(y_max, 1e-9)
    out = []
    for at, value in points:
        fx = min(1.0, max(0.0, (at - start).total_seconds() / span))
        fy = min(1.0, max(0.0, value / top)) if math.isfinite(value) else 0.0
        x = pad + fx * (width - 2 * pad)
        y = height - pad - fy * (height - 2 * pad)
        out.append(f"{x:.1f},{y:.1f}")
    return " ".join(out)


def chart(
    title: str, series: Mapping[str, Sequence[Point]], colours: Mapping[str, str],
    start: dt.datetime, end: dt.datetime,
) -> Chart:  # fmt: skip
    """One chart of several series on one scale from 0 to their largest value."""
    kept = {k: thin(v) for k, v in sorted(series.items()) if v}
    values = [v for pts in kept.values() for _, v in pts if math.isfinite(v)]
    y_max = max([*values, 0.0]) or 1.0
    lines = [
        Line(plain(k), colours.get(k, OTHER_COLOUR), polyline(pts, start, end, y_max), pts[-1][1])
        for k, pts in kept.items()
    ]
    stamp = "%Y-%m-%d %H:%M"
    return Chart(title, lines, y_max, start.strftime(stamp), end.strftime(stamp),
                 empty=not lines)  # fmt: skip


@dataclass(frozen=True)
class PeerCharts:
    peer: str
    charts: list[Chart]


def peer_charts(
    peers: Sequence[str],
    history: Mapping[str, Mapping[str, Sequence[Point]]],
    start: dt.datetime,
    end: dt.datetime,
) -> list[PeerCharts]:
    """Per peer: its feed's lag in leaves, in seconds, and disclosures to it per interval by
    form. Peers in the history but no longer enrolled are shown after the enrolled ones."""
    names = [*peers, *sorted(p for p in history if p not in peers)]
    out = []
    for name in names:
        h = history.get(name, {})
        forms = {
            s.removeprefix("disclosures:"): increases(pts)
            for s, pts in h.items()
            if s.startswith("disclosures:")
        }
        out.append(
            PeerCharts(
                _name(name),
                [
                    chart(
                        "feed lag (leaves)",
                        {"leaves": h.get("lag_leaves", [])},
                        {"leaves": FEED_COLOURS[LAGGING]},
                        start,
                        end,
                    ),
                    chart(
                        "feed lag (seconds)",
                        {"seconds": h.get("lag_seconds", [])},
                        {"seconds": FEED_COLOURS[STALLED]},
                        start,
                        end,
                    ),
                    chart("disclosures per interval, by form", forms, FORM_COLOURS, start, end),
                ],
            )
        )
    return out


# -- the page ----------------------------------------------------------------------------------

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=True,  # every value from data is text, in elements and attributes alike
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    status: Mapping[str, Any],
    history: Mapping[str, Mapping[str, Sequence[Point]]],
    *,
    start: dt.datetime,
    end: dt.datetime,
) -> str:
    """The whole page for *status* (the `status` JSON document) and *history* (per peer, per
    series, points) between *start* and *end*."""
    node = status["node"]
    return _ENV.get_template("page.html.j2").render(
        node={k: plain("" if v is None else v) for k, v in node.items()},
        serving=plain(status["serving"]["state"]),
        generated=end.strftime("%Y-%m-%d %H:%M:%S UTC"),
        graph=graph(status),
        feed_legend=[(s, FEED_COLOURS[s]) for s in (*FEED_STATES, UNKNOWN)],
        reach_legend=[(s, REACH_COLOURS[s]) for s in REACH_STATES],
        form_legend=[*FORM_COLOURS.items(), ("other", OTHER_COLOUR)],
        peer_charts=peer_charts([str(p["name"]) for p in status["peers"]], history, start, end),
        feeds=[
            {
                "origin": plain(f["origin"]) + (" (own)" if f["own"] else ""),
                "state": feed_state(f["state"]),
                "reason": plain(f["reason"] or ""),
                "leaves": int(f["leaves"]),
            }
            for f in status["feeds"]
        ],
        peers=[
            {
                "name": plain(p["name"]),
                "region": plain(p["region"] or ""),
                "endpoint": plain(p["endpoint"] or ""),
                "reach": reach_state(p["reach"]),
                "detail": plain(p["reach_error"] or ""),
            }
            for p in status["peers"]
        ],
        warnings=[plain(w) for w in status["warnings"]],
    )
