"""No data value is markup (issue 16): names, reasons, list names and a peer's details are
shown as text on every display, and nothing in them reaches the terminal as a control
sequence: ESC, C0 and C1 controls, bidi overrides and line breaks inside a value are shown as
visible escapes. A hostile origin publishes such entries; its partner mirrors them; every
display command runs at both."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rich.table import Table

from adapters.samples import write_csv
from node.api import feeds, officers
from node.cli import main
from node.cli.check import candidates_table, partners_table, view_table
from node.cli.console import DataConsole, data_text, line
from node.feeds.dates import shanghai_today
from node.feeds.publisher import Event
from node.home import load_home, set_setting
from node.logs import configure_logging
from node.text import has_unsafe, inert, plain
from tests.conftest import FederationFactory
from tests.feedutil import org_entry, wait_mirrored
from tests.test_identity_registry import make_uscc

T = TypeVar("T")

# Rich markup, emoji codes, ANSI/CSI/OSC sequences (colour, clear screen, a hyperlink, a window
# title), C0 and C1 controls (0x9b is CSI on its own), bidi overrides and isolates, line breaks.
HOSTILE = (
    "[/bold]", "[link=http://x]y[/link]", "[red]", "[bold red]", "[/]", ":red_heart:",
    "\x1b[31m", "\x1b[2J", "\x1b]8;;http://evil\x1b\\", "\x1b]0;title\x07", "\x9b2J", "\x9d",
    "\x00", "\x07", "\x08", "\r", "\n", "\t", "\x7f", "\x85", "\u202e", "\u202a", "\u2066",
    "\u2069", "\u200e", "\u200f", "\u061c", "\u2028", "\\",
)  # fmt: skip
hostile = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.text(alphabet="示例公司AZ09", min_size=1, max_size=3)),
    min_size=1,
    max_size=6,
).map(lambda parts: "示例" + "".join(parts))  # never blank, never only whitespace
# What a database stores: PostgreSQL text holds no NUL (refused at import; see the report).
stored = hostile.map(lambda value: value.replace("\x00", "\x01"))
# What a terminal would act on (line breaks aside: tables and messages have their own).
ACTIVE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def assert_inert(text: str) -> None:
    found = ACTIVE.search(text)
    assert found is None, f"{found.group()!r} reached the terminal in {text!r}"


# -------------------------------------------------------------------------------- the helpers


@given(st.text())
def test_plain_leaves_nothing_a_terminal_acts_on(value: str) -> None:
    shown = plain(value)
    assert "\n" not in shown
    assert_inert(shown)
    assert not has_unsafe(shown)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp"))))
def test_plain_keeps_ordinary_text_as_it_is(value: str) -> None:
    assert plain(value) == value


def test_escapes_are_visible_and_named() -> None:
    assert plain("a\x1b[31mb") == "a\\x1b[31mb"
    assert plain("x\ny\tz\r") == "x\\ny\\tz\\r"
    assert plain("\u202eevil\u2066") == "\\u202eevil\\u2066"
    assert plain("\x9b2J\x7f") == "\\u009b2J\\u007f"  # \u: still valid inside JSON
    assert inert("line one\nline two\t\x1b") == "line one\nline two\t\\x1b"


@given(st.lists(hostile, min_size=1, max_size=4))
@settings(max_examples=30)
def test_the_console_never_emits_data_as_markup_or_escapes(values: list[str]) -> None:
    """Whatever a display hands the console (str cells, Text, titles, messages), a real
    terminal gets only rich's own colour codes."""
    buffer = io.StringIO()
    console = DataConsole(file=buffer, force_terminal=True, color_system="truecolor", width=400)
    table = Table(title=values[0])
    for i in range(len(values)):
        table.add_column(f"c{i}")
    table.add_row(*values)  # raw str cells: still not markup, still no escapes
    table.add_row(*(data_text(v, style="red") for v in values))
    console.print(table)
    console.print(*values)
    console.print(line(("warning:", "bold red"), " ", data_text(values[-1])))
    written = buffer.getvalue()
    own = re.sub(r"\x1b\[[0-9;]*m", "", written)  # rich's SGR colour codes
    assert_inert(own)
    for v in values:
        assert plain(v) in own


def test_log_lines_escape_what_a_terminal_acts_on(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    value = "名单\x1b[31m\x9b2J\u202e\x85\n"
    configure_logging("info", log)
    try:
        structlog.get_logger("t").warning("hostile", name=value)
        logging.getLogger("grpc").warning("peer said %s", value)
    finally:
        configure_logging("info")  # the tests' own logging again (conftest)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    for text in lines:
        assert_inert(text)
    assert json.loads(lines[0])["name"] == value
    assert json.loads(lines[1])["event"] == f"peer said {value}"


def test_the_officer_check_view_shows_report_values_as_text() -> None:
    bad = "[/bold]\x1b]8;;http://x\x1b\\link\u202e"
    resp = officers.CheckResponse(
        uscc="91370100MA3C8QAB2X", subject_name=bad,
        items=[officers.CheckItem(origin=bad, origin_city=bad, section=bad, list_name=bad,
                                  reason=bad, legal_basis=bad, decision_doc_no=bad,
                                  authority_name=bad)],
        reports=[officers.PartnerReport(partner=bad, detail=bad)],
        candidates=[officers.CheckCandidate(uscc=bad, subject_name=bad, origins=[bad])],
    )  # fmt: skip
    buffer = io.StringIO()
    console = DataConsole(file=buffer, width=1000)
    for table in (view_table(resp), partners_table(resp), candidates_table(resp)):
        console.print(table)
    shown = buffer.getvalue()
    assert_inert(shown)
    assert shown.count(plain(bad)) >= 10


# -------------------------------------------------------------------------------- end to end


def cli(*argv: str) -> tuple[int, str, str]:
    """One command as the shell runs it; its standard output and error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def shown_ok(*argv: str, codes: tuple[int, ...] = (0,)) -> str:
    code, out, err = cli(*argv)
    assert code in codes, (argv, code, out, err)
    assert "Traceback" not in out + err, err
    assert_inert(out)
    assert_inert(err)
    return out


def hostile_entry(n: int, value: str) -> tuple[str, feeds.ListEntry]:
    """An organisation's entry from an origin that puts *value* in every text field."""
    entry = org_entry(n)
    entry.uscc = make_uscc(f"MA{n:06d}")
    for field in ("subject_name", "list_name", "reason", "legal_basis", "decision_doc_no",
                  "authority_name", "legal_rep_name"):  # fmt: skip
        setattr(entry, field, value)
    return entry.uscc, entry


async def test_hostile_values_from_a_partner_are_shown_as_text_everywhere(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # whole cells: the escaped value is found as is
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    homes = {n.name: str(n.home.paths.root) for n in (jinan, lanzhou)}
    for name, home in homes.items():
        url = fed.database_url(name)
        if url:  # PostgreSQL: the CLI reads the database the running node uses
            set_setting(Path(home), "database_url", url)
    loop = asyncio.get_running_loop()

    def on_loop(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(coro(), loop).result(timeout=60)

    counter = iter(range(1, 1_000_000))

    async def publish(entry: feeds.ListEntry) -> int:
        await jinan.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
        await jinan.publisher.sign_checkpoint()
        return jinan.publisher.log.frontier.size

    @given(stored)
    # No shrinking: each example costs a sync and eight commands; a failure shows its value.
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )
    def each_value(value: str) -> None:
        uscc, entry = hostile_entry(next(counter), value)
        on_loop(lambda: publish(entry))
        shown_ok("sync", "--home", homes["lanzhou"], "--peer", "jinan")
        for name in ("jinan", "lanzhou"):  # the origin, and the partner mirroring it
            out = shown_ok("lists", "--home", homes[name], "--uscc", uscc)
            assert plain(value) in out, out
            out = shown_ok("entity", "--home", homes[name], "--uscc", uscc)
            assert plain(value) in out, out
        out = shown_ok("query", "--home", homes["lanzhou"], "jinan", "--purpose", "enforcement",
                       "--uscc", uscc)  # fmt: skip
        assert plain(value) in out, out

    await asyncio.to_thread(each_value)

    # Through the importer as well: a list file (its name markup too) whose values hold
    # markup, C1 controls, bidi overrides and line breaks (C0 controls it quarantines).
    bad = "示例[/bold][link=http://x]y[/link]\x9b2J\u202e\n公司"
    code = make_uscc("MB000001")
    csv_file = Path(homes["jinan"]).parent / "l[bold red]x[link=y].csv"
    write_csv(csv_file, [{
        "主体名称": bad, "主体类型": "法人和其他组织", "统一社会信用代码": code,
        "证件号码": "", "法定代表人": bad, "法定代表人证件号码": "", "名单类型": "黑名单",
        "名单名称": "失信被执行人名单", "列入原因": bad, "认定依据": bad,
        "认定文书号": "示〔2026〕1号", "认定部门": bad, "认定部门代码": code,
        "列入日期": "2026-10-01", "严重程度": "一般", "公示截止日期": "2028-10-01",
        "惩戒措施": "", "认定日期": "2026-10-01",
    }])  # fmt: skip

    def imported() -> None:
        shown_ok("import", "--home", homes["jinan"], "--list", "失信被执行人名单", str(csv_file))
        shown_ok("sync", "--home", homes["lanzhou"], "--peer", "jinan")
        for name in ("jinan", "lanzhou"):
            assert plain(bad) in shown_ok("entity", "--home", homes[name], "--uscc", code)

    await asyncio.to_thread(imported)

    # Every other display, over all the hostile entries both nodes now hold.
    def sweep() -> None:
        for name in ("jinan", "lanzhou"):
            home = homes[name]
            shown_ok("lists", "--home", home, "--limit", "200")
            shown_ok("lists", "--home", home, "--measures", "--removed")
            shown_ok("status", "--home", home, "--timeout", "2", codes=(0, 4))
            shown_ok("peer", "list", "--home", home)
            shown_ok("audit", "show", "--home", home)
            shown_ok("verify", "--home", home)
            shown_ok("actions", "--home", home)
            shown_ok("objection", "list", "--home", home, "--no-refresh")
            shown_ok("identity", "conflicts", "--home", home)
            shown_ok("stats", "--home", home, codes=(0, 2))

    await asyncio.to_thread(sweep)
    await wait_mirrored(lanzhou, jinan, jinan.publisher.log.frontier.size, timeout=1)


# ------------------------------------------------- reasons, matters, reports, stats, evidence

MARKUP = "[/bold][link=http://x]y[/link][red]:red_heart:"
ESCAPES = "\x1b[31m\x1b]8;;http://evil\x1b\\\x9b2J\x85\u202e\u2066"
DEPT = "11370100MB0000174G"  # a Jinan department (valid check characters)


def refused_quietly(argv: list[str], value: str) -> None:
    """A value the validators refuse: exit 2, one `error:` line that does not repeat it."""
    code, out, err = cli(*argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert_inert(out + err)
    assert value not in err and plain(value) not in err and "[link=" not in err


def shown_or_refused(argv: list[str], value: str) -> bool:
    """Either the command takes *value* (and shows nothing a terminal acts on), or refuses it
    quietly. True if it was taken."""
    code, out, err = cli(*argv)
    if code == 0:
        assert_inert(out + err)
        return True
    refused_quietly(argv, value)
    return False


async def test_hostile_reasons_matters_reports_stats_and_evidence_are_text(
    federation: FederationFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An origin's entry with markup, ANSI/OSC/C1 escapes and bidi overrides in every text
    field; a partner asks about it with such a matter, responds to it with such a reason,
    objects to it, and the origin resolves with such a reason: every display shows text, and
    a value a validator refuses is one error line that does not echo it."""
    from node.peers.enrollment import export_bundle
    from node.reports.build import Asked, Subject, build_report

    monkeypatch.setenv("COLUMNS", "1000")  # whole cells: the escaped value is found as is
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    jn, lz = str(jinan.home.paths.root), str(lanzhou.home.paths.root)
    for name, home in (("jinan", jn), ("lanzhou", lz)):
        url = fed.database_url(name)
        if url:  # PostgreSQL: the CLI reads the database the running node uses
            set_setting(Path(home), "database_url", url)
    value = "示例" + MARKUP + ESCAPES + "公司<b>x</b>"
    uscc, entry = hostile_entry(1, value)
    eid = uuid.uuid4().hex
    await jinan.publisher.append([Event(eid, feeds.EVENT_TYPE_ADD, entry)])
    await jinan.publisher.sign_checkpoint()
    report = await build_report(jinan.report_deps, Subject(uscc=uscc), Asked(purpose="enforcement"))
    saved = tmp_path / "report.json"
    saved.write_bytes(report.file())
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "jinan.json").write_text(export_bundle(load_home(Path(jn))).to_json())
    matter = "案[red]号[/red][link=http://x]y[/link]"
    reason = "不适用[bold]理由[/bold][link=http://x]y[/link]"

    def run() -> None:
        shown_ok("sync", "--home", lz, "--peer", "jinan")
        ask = ["query", "--home", lz, "jinan", "--purpose", "enforcement", "--uscc", uscc]
        shown_or_refused([*ask, "--matter", value], value)
        # A purpose is one of the catalogue's: a hostile one is refused without being echoed.
        refused_quietly(["query", "--home", lz, "jinan", "--purpose", value, "--uscc", uscc], value)
        assert plain(value) in shown_ok(*ask, "--matter", matter)
        for home in (jn, lz):  # the matter is recorded on both sides, shown as text
            assert plain(matter) in shown_ok("audit", "show", "--home", home)
            entries = json.loads(shown_ok("audit", "show", "--home", home, "--format", "json"))
            assert matter in {e["matter"] for e in entries}

        respond = ["respond", "--home", lz, "--entry", f"jinan:{eid}", "--measure", "M01",
                   "--action", "not_applicable", "--department", DEPT,
                   "--officer", "王五"]  # fmt: skip
        shown_or_refused([*respond, "--reason", value], value)
        shown_ok(*respond, "--reason", reason)
        assert plain(reason) in shown_ok("actions", "--home", jn, "--pull")
        rows = json.loads(shown_ok("actions", "--home", jn, "--format", "json"))
        assert reason in {r["reason"] for r in rows}

        evidence = tmp_path / "ruling.pdf"
        evidence.write_bytes(b"%PDF- a ruling")
        due = (shanghai_today() + dt.timedelta(days=10)).isoformat()
        shown_ok("objection", "raise", "--home", lz, "--entry", f"jinan:{eid}",
                 "--grounds", "content_error", "--evidence", str(evidence), "--due", due,
                 "--officer", "王五")  # fmt: skip
        [o] = json.loads(shown_ok("objection", "list", "--home", jn, "--format", "json"))[
            "objections"
        ]
        resolve = ["objection", "resolve", "--home", jn, "--id", o["id"], "--doc-no", "D-1",
                   "--reject"]  # fmt: skip
        refused_quietly([*resolve, "--reason", value], value)
        shown_ok(*resolve, "--reason", reason)
        for home in (jn, lz):
            assert plain(reason) in shown_ok("objection", "list", "--home", home)
            listed = json.loads(
                shown_ok("objection", "list", "--home", home, "--no-refresh", "--format", "json")
            )
            assert reason in {t["reason"] for o in listed["objections"] for t in o["history"]}

        shown_ok("report", "verify", str(saved), "--trust", str(trust))
        shown_ok("report", "verify", str(saved), "--trust", str(trust), "--format", "json")
        html = tmp_path / "report.html"
        shown_ok("report", "render", str(saved), "--out", str(html))
        page = html.read_text(encoding="utf-8")
        assert "<b>x</b>" not in page and "公司&lt;b&gt;x&lt;/b&gt;" in page
        assert "\\x1b[31m" in page  # the escape, visible
        assert_inert(page)

        signed = tmp_path / "stats.json"
        for home in (jn, lz):
            shown_ok("stats", "--home", home)
            shown_ok("stats", "--home", home, "--format", "json", "--out", str(signed))
        shown_ok("stats", "verify", str(signed), "--trust", str(trust), codes=(0, 7))

        # A hostile evidence document and peer name: one line each, nothing echoed raw.
        bad = tmp_path / "evidence.json"
        bad.write_text(json.dumps({
            "format": value, "origin": value, "peer": value, "exported_at": value,
            "trust": {"roots": [value], "feed_key": value}, "cosigners": {value: value},
            "evidence": [{"kind": value, "detail": value, "recorded_at": value,
                          "earlier_note": value, "later_note": value, "proof": [value]}],
        }))  # fmt: skip
        for fmt in ("table", "json"):
            code, out, err = cli("evidence", "check", str(bad), "--format", fmt)
            assert code == 2 and len(err.strip().splitlines()) == 1, err
            assert_inert(out + err)
        code, out, err = cli("evidence", "export", "--home", lz, "--peer", value)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert_inert(out + err)

    await asyncio.to_thread(run)
