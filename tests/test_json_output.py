"""`--format json` on every command that shows data (issue 16): each command's output is read
back against its schema in docs/json.md, so the documentation and the output cannot drift.
Real in-process nodes, on SQLite and PostgreSQL; the CLI runs against their homes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.api import feeds
from node.cli.app import main
from node.cli.lists import decode_cursor, encode_cursor
from node.cli.render import json_text
from node.errors import InputError
from node.feeds.publisher import Event
from node.home import load_home
from node.local_federation import LocalFederation
from node.peers.enrollment import export_bundle
from node.reports.build import Asked, Subject, build_report
from node.witness.requester import CosignRequester
from tests.conftest import FederationFactory
from tests.feedutil import adds, org_entry
from tests.test_audit_exchange import _point_home_at_database
from tests.test_feeds import _rewrite_history, _subscriber
from tests.test_key_rotation import with_roots
from tests.test_officers import MATTER, _listed, _officer
from tests.test_officers import fed as fed  # the fixture, used by name
from tests.test_reports import USCC, _bundle, _publish
from tests.test_witness import _idle, until, view

HOSTILE_NAME = "[/bold][link=https://x]\x1b[31m\x9b2J\u202e公司"
VALID_USCC = "91370100MA0000015D"
DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "list": list,
    "object": dict,
    "null": type(None),
}


def schemas() -> dict[str, tuple[bool, list[tuple[str, bool, str]]]]:
    """Each documented command: (prints JSON lines?, [(path, optional, types)])."""
    found: dict[str, tuple[bool, list[tuple[str, bool, str]]]] = {}
    text = DOC.read_text(encoding="utf-8")
    for command, body in re.findall(r"```schema ([^\n]+)\n(.*?)```", text, re.S):
        fields = []
        lines_mode = False
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("#"):
                lines_mode = lines_mode or "(lines)" in line
                continue
            if not line:
                continue
            path, kind = (part.strip() for part in line.split(":", 1))
            for t in kind.split("|"):
                assert t in TYPES, f"{command}: unknown type {t!r} in docs/json.md"
            fields.append((path.rstrip("?"), path.endswith("?"), kind))
        found[command.strip()] = (lines_mode, fields)
    return found


def _values(doc: Any, path: str) -> list[Any] | None:
    """Every value at *path* in *doc* (None if a step is missing)."""
    current = [{"": doc}] if path.startswith("[]") else [doc]  # a top-level array
    for step in path.split("."):
        each = step.endswith("[]")
        key = step.removesuffix("[]")
        nxt = []
        for obj in current:
            if obj is None:  # a nullable object: its fields are absent
                return None
            assert isinstance(obj, dict), f"{path}: {obj!r} is not an object"
            if key not in obj:
                return None
            if each:
                assert isinstance(obj[key], list), f"{path}: not a list"
                nxt.extend(obj[key])
            else:
                nxt.append(obj[key])
        current = nxt
    return current


def check_schema(command: str, output: str) -> list[Any]:
    """Parse *output* as *command* prints it and check every documented field; the
    documents (one, or one a line)."""

    lines_mode, fields = schemas()[command]
    docs = (
        [json.loads(line) for line in output.splitlines() if line.strip()]
        if lines_mode
        else [json.loads(output)]
    )
    COVERED.add(command)
    for doc in docs:
        assert isinstance(doc, dict | list), f"{command}: {doc!r} is not an object"
        for path, optional, kind in fields:
            values = _values(doc, path)
            if values is None:
                assert optional, f"{command}: documented field {path} missing"
                continue
            allowed = tuple(t for k in kind.split("|") for t in _as_tuple(TYPES[k]))
            for v in values:
                ok = isinstance(v, allowed) and not (isinstance(v, bool) and bool not in allowed)
                assert ok, f"{command}: {path} = {v!r} is not {kind}"
    return docs


COVERED: set[str] = set()


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    got = capsys.readouterr()
    return code, got.out, got.err


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_cli, capsys, *argv)


def test_every_schema_parses() -> None:
    found = schemas()
    assert "lists" in found and found["lists"][0]
    for command, (_, fields) in found.items():
        assert fields, f"{command}: empty schema"


@given(
    st.text(max_size=40),
    st.text(max_size=40),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
)
def test_cursor_round_trips(peer: str, list_name: str, log_id: int, idx: int) -> None:
    assert decode_cursor(encode_cursor(peer, list_name, log_id, idx)) == (
        peer,
        list_name,
        log_id,
        idx,
    )


@given(st.text(max_size=2000))
def test_a_bad_cursor_is_an_input_error(text: str) -> None:
    try:
        decode_cursor(text)
    except InputError as exc:
        message = str(exc)
    else:
        return  # a string that happens to decode is a cursor
    # one fixed message: the value is not repeated
    assert message == "--after: not a cursor printed by `lists --format json`"


@given(st.text())
def test_json_text_round_trips_and_shows_nothing_a_terminal_acts_on(value: str) -> None:
    text = json_text({"v": value, "k": [value]})
    assert json.loads(text) == {"v": value, "k": [value]}
    for ch in text:
        code = ord(ch)
        assert code >= 0x20 and not 0x7F <= code <= 0x9F, repr(ch)
        assert ch not in "\u061c\u200e\u200f\u2028\u2029" and not 0x202A <= code <= 0x202E
        assert not 0x2066 <= code <= 0x2069


async def test_lists_json_streams_every_entry_and_pages(
    federation: FederationFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    for name in fed.nodes:  # the CLI opens the home's database: the test's PostgreSQL one too
        _point_home_at_database(fed, name)
    events = adds(63)  # more than the default --limit of 50
    events[0].entry.subject_name = HOSTILE_NAME
    await jinan.publisher.append(events)
    await jinan.publisher.sign_checkpoint()
    root = str(lanzhou.home.paths.root)
    assert (await cli(capsys, "sync", "--home", root))[0] == 0

    code, out, err = await cli(capsys, "lists", "--home", root, "--limit", "0", "--format", "json")
    assert code == 0, err
    rows = check_schema("lists", out)
    assert len(rows) == 63 == len(out.splitlines())
    assert {r["origin"] for r in rows} == {"jinan"}
    assert all(r["verified"] and r["status"] == "active" for r in rows)
    assert len({r["entry_id"] for r in rows}) == 63
    # A partner's markup, escapes and bidi overrides are data: the same string, as text.
    assert HOSTILE_NAME in {r["subject"] for r in rows}
    assert not any(ch in out for ch in "\x1b\x9b\u202e")

    # The default limit still holds; --offset and --after page through the same order.
    code, out, _ = await cli(capsys, "lists", "--home", root, "--format", "json")
    assert code == 0 and len(out.splitlines()) == 50
    paged: list[dict[str, Any]] = []
    after: list[str] = []
    while True:
        code, out, err = await cli(
            capsys, "lists", "--home", root, "--format", "json", "--limit", "20", *after
        )
        assert code == 0, err
        page = check_schema("lists", out)
        if not page:
            break
        paged.extend(page)
        after = ["--after", page[-1]["cursor"]]
    assert [r["entry_id"] for r in paged] == [r["entry_id"] for r in rows]
    code, out, _ = await cli(
        capsys, "lists", "--home", root, "--format", "json", "--limit", "5", "--offset", "60"
    )
    assert [json.loads(line)["entry_id"] for line in out.splitlines()] == [
        r["entry_id"] for r in rows[60:]
    ]
    code, out, _ = await cli(
        capsys, "lists", "--home", root, "--measures", "--format", "json", "--limit", "3"
    )
    assert code == 0 and all("measures" in r for r in check_schema("lists", out))
    # The table pages the same way.
    code, out, _ = await cli(capsys, "lists", "--home", root, "--limit", "0")
    assert code == 0 and "63 of 63" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "yaml"],
        ["--limit", "-1"],
        ["--limit", "99999999999999999999"],
        ["--offset", "-3"],
        ["--after", "not-a-cursor!"],
    ],
)
def test_lists_bad_paging_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = _cli(capsys, "lists", "--home", str(tmp_path / "none"), *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and out == ""


async def test_every_data_command_prints_its_documented_json(
    federation: FederationFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """peer list, keys list, policy explain, entity, query, audit show/report/export,
    verify-bundle and report verify, run on real homes; each output read against its schema."""
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    for name in fed.nodes:  # the CLI opens the home's database: the test's PostgreSQL one too
        _point_home_at_database(fed, name)
    await with_roots(fed, {"jinan": ["alice"], "lanzhou": ["bob", "carol"]})
    await _publish(jinan)  # entries of USCC, and jinan's agreement with lanzhou
    valid = org_entry(7)  # org_entry's codes do not check; `entity` resolves valid ones only
    valid.uscc = VALID_USCC
    await jinan.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, valid)])
    await jinan.publisher.sign_checkpoint()
    home, origin = str(lanzhou.home.paths.root), str(jinan.home.paths.root)
    assert (await cli(capsys, "sync", "--home", home))[0] == 0

    code, out, err = await cli(capsys, "peer", "list", "--home", home, "--format", "json")
    assert code == 0, err
    [doc] = check_schema("peer list", out)
    assert [p["name"] for p in doc["peers"]] == ["jinan"]

    code, out, err = await cli(capsys, "keys", "list", "--home", home, "--format", "json")
    assert code == 0, err
    [doc] = check_schema("keys list", out)
    assert {"root", "pseudonym"} <= {k["role"] for k in doc["keys"]}

    # As the running jinan (_publish) accepts the surname mask: 3,500 candidates of a name.
    with (jinan.home.paths.root / "creditnode.toml").open("a", encoding="utf-8") as f:
        f.write("reidentification_threshold = 3500\n")
    for purpose, refused in (("enforcement", False), ("subsidy", True)):
        code, out, err = await cli(
            capsys, "policy", "explain", "--home", origin, "--peer", "lanzhou",
            "--purpose", purpose, "--format", "json",
        )  # fmt: skip
        assert code == 0, err
        [doc] = check_schema("policy explain", out)
        assert doc["refused"] is refused, doc["reason"]
        forms = {f["field"]: f["form"] for f in doc["fields"]}
        assert forms["legal_rep_id"] == "withhold"
        if not refused:
            assert doc["agreement"] == {"id": "jinan-lanzhou", "version": 1}
            assert forms["legal_rep_name"] == "mask:name_surname"

    code, out, err = await cli(
        capsys, "entity", "--home", home, "--uscc", VALID_USCC, "--format", "json"
    )
    assert code == 0, err
    [doc] = check_schema("entity", out)
    assert doc["lookup"] == "code" and doc["resolved"]["kind"] == "uscc"
    [view] = doc["entities"]
    assert view["key"] == VALID_USCC and view["names"] == {"jinan": [valid.subject_name]}
    assert [(m["origin"], m["verified"]) for m in view["memberships"]] == [("jinan", True)]
    code, out, err = await cli(
        capsys, "entity", "--home", home, "--name", valid.subject_name, "--format", "json"
    )
    assert code == 0, err
    [doc] = check_schema("entity", out)
    assert doc["lookup"] == "name" and doc["candidates"][0]["uscc"] == VALID_USCC

    code, out, err = await cli(
        capsys, "query", "--home", home, "jinan", "--uscc", VALID_USCC, "--purpose", "enforcement",
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("query", out)
    assert doc["answers"] and doc["subject"] == VALID_USCC and doc["peer"] == "jinan"
    personal = {k: v for a in doc["answers"] for k, v in a["personal"].items()}
    assert personal["legal_rep_name"]["form"] == "mask:name_surname"
    assert "legal_rep_id" not in personal

    start = "2000-01-01"
    code, out, err = await cli(capsys, "audit", "show", "--home", origin, "--from", start,
                               "--format", "json")  # fmt: skip
    assert code == 0, err
    [entries] = check_schema("audit show", out)
    assert any(e["kind"] == "query" and e["peer"] == "lanzhou" for e in entries)
    code, out, err = await cli(capsys, "audit", "report", "--home", origin, "--period", "24h",
                               "--format", "json")  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("audit report", out)
    assert doc["queries"] >= 1
    bundle_file = tmp_path / "audit.json"
    code, out, err = await cli(capsys, "audit", "export", "--home", origin, "--from", start,
                               "--out", str(bundle_file), "--format", "json")  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("audit export", out)
    trust = tmp_path / "trust" / "jinan.json"
    trust.parent.mkdir()
    trust.write_text(_bundle(jinan).to_json())
    code, out, err = await cli(capsys, "verify-bundle", str(bundle_file), "--trust", str(trust),
                               "--format", "json")  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("verify-bundle", out)
    assert doc["verified"] and doc["entries"] == len(doc["list"]) > 0

    report = await build_report(jinan.report_deps, Subject(uscc=USCC), Asked(purpose="enforcement"))
    saved = tmp_path / "report.json"
    saved.write_bytes(report.file())
    code, out, err = await cli(capsys, "report", "verify", str(saved), "--trust",
                               str(trust.parent), "--format", "json")  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("report verify", out)
    assert doc["verified"] and doc["report_number"] == report.report_number

    # A bad --format is one error line on every command that takes it.
    for argv in (
        ["peer", "list", "--home", home],
        ["keys", "list", "--home", home],
        ["audit", "show", "--home", origin],
        ["entity", "--home", home, "--uscc", USCC],
    ):
        code, out, err = await cli(capsys, *argv, "--format", "xml")
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and lines == ["error: --format must be table or json"], err


async def test_the_officer_and_operator_commands_print_their_documented_json(
    fed: LocalFederation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check (an officer's), officer list, actions, verify, stats and stats verify, measures,
    identity check, objection list and audit reconcile, run on real homes of three nodes."""
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    for name in fed.nodes:  # the CLI opens the home's database: the test's PostgreSQL one too
        _point_home_at_database(fed, name)
    jn, lz = str(jinan.home.paths.root), str(lanzhou.home.paths.root)
    uscc = await _listed(fed)  # lanzhou black-lists it (a measure), taiyuan red-lists it
    cred, _ = await _officer(jinan, tmp_path)
    p12, phrase = tmp_path / "o.p12", tmp_path / "o.pass"
    p12.write_bytes(cred.to_pkcs12(b"correct horse battery"))
    phrase.write_text("correct horse battery\n")
    code, out, err = await cli(
        capsys, "check", "--officer", str(p12), "--passphrase-file", str(phrase),
        "--node", jinan.officer_endpoint, "--purpose", "licensing_review", "--matter", MATTER,
        "--uscc", uscc, "--save", str(tmp_path / "saved"), "--format", "json",
    )  # fmt: skip
    assert code == 11, err  # black-listed
    [doc] = check_schema("check", out)
    assert doc["verdict"] == "black-listed" and len(doc["saved"]) == 3

    code, out, err = await cli(capsys, "officer", "list", "--home", jn, "--format", "json")
    assert code == 0, err
    [rows] = check_schema("officer list", out)
    assert [r["name"] for r in rows] == ["王 五"] and rows[0]["state"] == "active"

    code, out, err = await cli(capsys, "audit", "reconcile", "--home", jn, "--peer", "lanzhou",
                               "--from", "2000-01-01", "--in-flight-seconds", "0",
                               "--format", "json")  # fmt: skip
    assert code in (0, 7), err
    [doc] = check_schema("audit reconcile", out)
    assert doc["peer"] == "lanzhou" and doc["agree"] is (code == 0)

    code, out, err = await cli(capsys, "actions", "--home", lz, "--format", "json")
    assert code == 0, err
    [rows] = check_schema("actions", out)
    assert "M07" in {r["measure"] for r in rows} and not any(r["responded"] for r in rows)

    code, out, err = await cli(capsys, "verify", "--home", lz, "--format", "json")
    assert code == 0, err
    [doc] = check_schema("verify", out)
    assert doc["ok"] and doc["logs"]

    signed = tmp_path / "stats.json"
    code, out, err = await cli(capsys, "stats", "--home", lz, "--format", "json", "--out",
                               str(signed))  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("stats", out)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "lanzhou.json").write_text(export_bundle(load_home(lanzhou.home.paths.root)).to_json())
    code, out, err = await cli(capsys, "stats", "verify", str(signed), "--trust", str(trust),
                               "--format", "json")  # fmt: skip
    assert code == 0, err
    [doc] = check_schema("stats verify", out)
    assert doc["verified"] and doc["issuer"] == lanzhou.home.identity.uri

    for command in ("list", "check"):
        code, out, err = await cli(capsys, "measures", command, "--home", lz, "--format", "json")
        assert code == 0, err
        [doc] = check_schema(f"measures {command}", out)
        assert doc["sha256"]

    ids = tmp_path / "ids.csv"
    ids.write_text(f"统一社会信用代码\n{uscc}\n{VALID_USCC}\nnot-a-code\n", encoding="utf-8")
    code, out, err = await cli(capsys, "identity", "check", str(ids), "--format", "json")
    assert code == 2, err  # a row is invalid
    [doc] = check_schema("identity check", out)
    assert (doc["valid"], doc["invalid"], len(doc["rows"])) == (1, 1, 3)

    # An objection jinan raises to lanzhou's entry, seen from both sides.
    assert (await cli(capsys, "sync", "--home", jn))[0] == 0
    code, out, err = await cli(capsys, "lists", "--home", jn, "--origin", "lanzhou", "--format",
                               "json")  # fmt: skip
    [entry] = [r for r in check_schema("lists", out) if r["uscc"] == uscc]
    evidence = tmp_path / "ruling.pdf"
    evidence.write_bytes(b"%PDF- a court ruling")
    due = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    code, out, err = await cli(
        capsys, "objection", "raise", "--home", jn, "--entry", f"lanzhou:{entry['entry_id']}",
        "--grounds", "decision_revoked", "--evidence", str(evidence), "--due", due,
        "--officer", "王五",
    )  # fmt: skip
    assert code == 0, err
    for home, side in ((jn, "raised"), (lz, "received")):
        code, out, err = await cli(capsys, "objection", "list", "--home", home, "--no-refresh",
                                   "--format", "json")  # fmt: skip
        assert code == 0, err
        [doc] = check_schema("objection list", out)
        assert [o["side"] for o in doc["objections"]] == [side]
        assert doc["on_time"][side]["open"] == 1


async def test_fork_evidence_commands_print_their_documented_json(
    federation: FederationFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """evidence export, check and clear on a fork lanzhou caught by gossip (as in
    tests/test_witness.py): jinan signs a second history and keeps it from its witnesses."""
    fed = await federation(3, subscribe=False)
    for name in fed.nodes:  # the CLI opens the home's database: the test's PostgreSQL one too
        _point_home_at_database(fed, name)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    origin = jinan.home.identity.uri
    await jinan.publisher.append(adds(10))
    await jinan.publisher.sign_checkpoint()

    async def both_cosigned() -> bool:
        sizes = [(await view(w, origin) or (0, b""))[0] for w in (lanzhou, taiyuan)]
        return sizes == [10, 10]

    await until(both_cosigned, "history A cosigned by both peers")
    await (await _subscriber(taiyuan, jinan)).sync(follow=False)
    monkeypatch.setattr(CosignRequester, "run", _idle)
    jinan = await _rewrite_history(fed, {"jinan": fed.database_url("jinan")}, 12)
    await (await _subscriber(lanzhou, jinan)).sync(follow=False)
    assert [f.kind for f in await lanzhou.gossip.round()] == ["inconsistent"]

    home = str(lanzhou.home.paths.root)
    code, out, err = await cli(capsys, "evidence", "export", "--home", home, "--peer", "jinan")
    assert code == 0, err
    exported = tmp_path / "evidence.json"
    exported.write_text(out, encoding="utf-8")  # the document itself, as written to a file
    [doc] = check_schema("evidence export", out)
    assert doc["origin"] == origin and len(doc["evidence"]) == 1
    saved = tmp_path / "saved.json"
    code, out, err = await cli(capsys, "evidence", "export", "--home", home, "--peer", "jinan",
                               "--out", str(saved), "--format", "json")  # fmt: skip
    assert code == 0, err
    [summary] = check_schema("evidence export --out", out)
    assert summary == {"out": str(saved), "records": 1}
    assert json.loads(saved.read_text(encoding="utf-8"))["evidence"] == doc["evidence"]

    bundle = tmp_path / "jinan.bundle.json"
    bundle.write_text(export_bundle(load_home(jinan.home.paths.root)).to_json())
    code, out, err = await cli(capsys, "evidence", "check", str(exported), "--bundle",
                               str(bundle), "--format", "json")  # fmt: skip
    assert code == 0, err
    [verdict] = check_schema("evidence check", out)
    assert verdict["ok"] and [r["proven"] for r in verdict["records"]] == ["inconsistent"]

    code, out, err = await cli(capsys, "evidence", "clear", "--home", home, "--peer", "jinan",
                               "--confirm", "--format", "json")  # fmt: skip
    assert code == 0, err
    [cleared] = check_schema("evidence clear", out)
    assert cleared["was"] == "forked" and cleared["evidence_kept"] == 1


def test_every_documented_schema_is_checked() -> None:
    """Runs after the tests above (file order): each schema in docs/json.md was read back
    against real output, except status (its own tests)."""
    if not {"lists", "query"} <= COVERED:
        pytest.skip("run with the tests above")
    assert set(schemas()) - COVERED - {"status"} == set()
