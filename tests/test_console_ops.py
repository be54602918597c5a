"""The operator's and auditor's console pages without a browser (issue 18): their strings,
what they make of `status`, and their templates rendering hostile values as inert text.
The stories themselves run in Chromium: tests/browser/test_console_browser.py."""

from __future__ import annotations

import datetime as dt
import re
from functools import partial
from typing import Any

import jinja2
import pytest

from node.console import i18n
from node.console.app import TEMPLATES
from node.console.operator_pages import alerts_of, file_part
from node.console.ops_text import TEXT, shown, tr
from node.officers.gate import Officer
from node.status_page import graph, peer_charts

HOSTILE = '<script>alert("x")</script>"><svg onload=alert(2)>&\u202e\x1b[31m'


def test_both_languages_hold_the_same_keys_and_fall_back() -> None:
    assert set(TEXT["zh-CN"]) == set(TEXT["en"])
    assert tr("zh-CN", "op.title") == "节点运维"
    assert tr("en", "op.title") == "Operations"
    assert tr("fr", "op.title") == "Operations"
    assert tr("en", "no.such.key") == "no.such.key"


def test_shown_makes_every_string_inert_at_any_depth() -> None:
    doc = {"a": ["x\u202ey", ("z\n",)], "b": {"c": "\x1b[31m"}, "n": 3, "none": None}
    out = shown(doc)
    assert out == {"a": ["x\\u202ey", ["z\\n"]], "b": {"c": "\\x1b[31m"}, "n": 3, "none": None}


def _feed(origin: str, state: str, own: bool = False) -> dict[str, Any]:
    return {"origin": origin, "own": own, "state": state, "reason": "", "evidence": 0,
            "leaves": 1, "checkpoint_size": 1, "active_entries": 1}  # fmt: skip


def test_alerts_are_the_marked_mirrors_worst_first() -> None:
    status = {
        "feeds": [
            _feed("jinan", "tampered", own=True),  # the own log: `verify`, not an alert here
            _feed("a", "stalled"), _feed("b", "ok"), _feed("c", "forked"),
            _feed("d", "tampered"), _feed("e", "lagging"),
        ]
    }  # fmt: skip
    assert [(f["origin"], f["state"]) for f in alerts_of(status)] == [
        ("c", "forked"), ("d", "tampered"), ("a", "stalled"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "part"),
    [("jinan", "jinan"), ('a"; filename=x.exe', "afilenamexexe"), ("../..", "peer"),
     ("济南", "peer"), ("x" * 100, "x" * 60)],
)  # fmt: skip
def test_a_download_name_is_ascii_letters_digits_dashes_only(name: str, part: str) -> None:
    assert file_part(name) == part


def _render(template: str, **context: Any) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    officer = Officer("0" * 32, "11370100MB0000174G", "operator", (), "f" * 64)
    base = {
        "t": partial(i18n.translate, "en"), "tr": partial(tr, "en"), "lang": "en",
        "officer": officer, "nav": [("/operator", "nav.operator")], "csrf": "token",
        "csrf_field": "csrf", "path": "/operator",
    }  # fmt: skip
    return env.get_template(template).render({**base, **context})


def _hostile_status() -> dict[str, Any]:
    peer = {"name": HOSTILE, "region": HOSTILE, "endpoint": HOSTILE, "reach": "refused",
            "reach_error": HOSTILE, "last_reached": None, "last_called_us": None}  # fmt: skip
    feed = _feed(HOSTILE + "/..", "forked") | {"reason": HOSTILE}
    return shown(
        {
            "node": {"name": HOSTILE, "uri": HOSTILE, "region": HOSTILE, "database": "sqlite"},
            "warnings": [HOSTILE],
            "peers": [peer],
            "feeds": [_feed("jinan", "ok", own=True), feed],
            "subscribers": [],
        }
    )


def _assert_inert(page: str) -> None:
    assert "<script>" not in page and "<svg onload" not in page
    assert "\u202e" not in page and "\x1b" not in page
    assert "&lt;script&gt;" in page


def test_the_overview_renders_hostile_values_as_text() -> None:
    status = _hostile_status()
    end = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    page = _render(
        "operator/overview.html",
        status=status,
        alerts=alerts_of(status),
        graph=graph(status),
        charts=peer_charts([HOSTILE], {}, end - dt.timedelta(hours=24), end),
        feed_legend=[("ok", "#2e7d32")],
        reach_legend=[("up", "#2e7d32")],
        form_legend=[("mask", "#1565c0")],
    )
    _assert_inert(page)
    # The alert links to the evidence by the name URL-encoded, never as markup or a path.
    [href] = re.findall(r'href="/operator/evidence/([^"]*)"', page)
    assert href.startswith("%3Cscript%3E") and href.endswith("%2F..") and "/" not in href


def test_the_audit_log_page_renders_hostile_values_as_text() -> None:
    row = shown(
        {"index": 0, "at": "2026-11-30 08:00:00", "direction": "in", "kind": "query",
         "outcome": "hit", "peer": HOSTILE, "purpose": HOSTILE, "officer": "0" * 8,
         "matter": HOSTILE, "subject": "ab" * 4, "released": 1, "agreements": HOSTILE,
         "exchange": "x", "receipt": ""}
    )  # fmt: skip
    fields = ("from", "to", "peer", "officer", "purpose", "subject", "kind")
    values = shown(dict.fromkeys(fields, HOSTILE) | {"outcome": ""})
    page = _render(
        "auditor/log.html", rows=[row], matched=1, shown=500,
        values=values, outcomes=("hit",),
        peers=shown([HOSTILE]), error=shown(HOSTILE),
    )  # fmt: skip
    _assert_inert(page)
