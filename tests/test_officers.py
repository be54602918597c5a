"""Officers' credentials and the federated check (issue 14), over real in-process nodes with
mutual TLS: an officer talks to its own node's officer listener only; the node asks every
partner's ReportService in parallel and merges the signed answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import (
    FederationCA,
    NodeIdentity,
    OfficerCredential,
    OfficerIdentity,
    identity_from_certificate,
    new_officer_credential,
    officer_from_certificate,
)
from node.api import feeds, feeds_rpc, officers, officers_rpc
from node.audit.query import Filter, find_entries
from node.cli.check import call_check, save_reports
from node.errors import InputError, PeerError
from node.feeds.publisher import Event
from node.home import load_home
from node.local_federation import LocalFederation
from node.officers.consolidate import merge, verdict
from node.officers.issue import check_officer_name, issue_officer, revoke_officer
from node.peers.enrollment import export_bundle
from node.peers.transport import secure_channel
from node.reports.envelope import verify_report
from node.runtime import Node
from node.storage import Store
from tests.conftest import DbUrlFactory
from tests.feedutil import org_entry
from tests.helpers import list_entry_agreement

DEPT = "11370100MB0000174G"  # a Jinan department (valid check characters)
MATTER = "济审〔2026〕17号"
CITIES = [("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100")]


@pytest.fixture
async def fed(tmp_path: Path, new_database: DbUrlFactory) -> AsyncIterator[LocalFederation]:
    """Jinan, Lanzhou and Taiyuan with officer listeners, on each backend; Lanzhou and Taiyuan
    share their reports with Jinan for licensing and procurement."""
    urls = {name: await new_database(name) for name, _ in CITIES}
    federation = LocalFederation(
        tmp_path / "fed", CITIES, heartbeat=False, subscribe=False, officers=True,
        database_url=lambda name: urls.get(name),
    )  # fmt: skip
    async with federation:
        for name in ("lanzhou", "taiyuan"):
            node = federation[name]
            agreements = node.home.paths.root / "agreements"
            agreements.mkdir(exist_ok=True)
            (agreements / "jinan.toml").write_text(list_entry_agreement(name, "jinan"))
            node.border.refresh(force=True)
        yield federation


def _url(node: Node) -> str:
    """The database *node* runs on (the test's backend), for another "process" to open."""
    return node.store.engine.url.render_as_string(hide_password=False)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


async def _list(node: Node, entry: feeds.ListEntry) -> None:
    await node.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
    await node.publisher.sign_checkpoint()


async def _listed(fed: LocalFederation) -> str:
    """Lanzhou black-lists the entity, Taiyuan red-lists it; its USCC."""
    black = org_entry(7)
    black.measures.append(feeds.Measure(code="M07", mandatory=False))
    await _list(fed["lanzhou"], black)
    red = org_entry(7, list_name="守信激励对象名单")
    red.list_type = feeds.LIST_TYPE_RED
    del red.measures[:]
    red.measures.append(feeds.Measure(code="R01", mandatory=False))
    await _list(fed["taiyuan"], red)
    return black.uscc


async def _officer(
    node: Node, tmp_path: Path, purposes: tuple[str, ...] = ()
) -> tuple[OfficerCredential, str]:
    # As `creditnode officer add` does: another process, its own store on the node's database.
    async with Store.opened(_url(node)) as store:
        credential, record = await issue_officer(
            node.home, store, name="王 五", department=DEPT, purposes=purposes,
            ca_dir=tmp_path / "fed" / "ca",
        )  # fmt: skip
    return credential, record.id


async def _check(node: Node, cred: OfficerCredential, **fields: str) -> officers.CheckResponse:
    request = officers.CheckRequest(purpose="licensing_review", matter=MATTER, **fields)
    return await call_check(cred, node.officer_endpoint, request, timeout=20)


async def test_three_node_check_end_to_end(fed: LocalFederation, tmp_path: Path) -> None:
    jinan = fed["jinan"]
    uscc = await _listed(fed)
    cred, officer = await _officer(jinan, tmp_path)
    resp = await _check(jinan, cred, uscc=uscc)

    assert resp.outcome == officers.CHECK_OUTCOME_BLACK_LISTED
    assert [(r.partner, r.state) for r in resp.reports] == [
        ("jinan", officers.PARTNER_STATE_ANSWERED),
        ("lanzhou", officers.PARTNER_STATE_ANSWERED),
        ("taiyuan", officers.PARTNER_STATE_ANSWERED),
    ]
    # One consolidated view: the black list first, with the measures that bind, then the red.
    assert [(i.origin, i.section) for i in resp.items] == [
        ("lanzhou", "serious_dishonesty"),
        ("taiyuan", "red_lists"),
    ]
    black = resp.items[0]
    assert [(m.code, m.mandatory) for m in black.measures] == [("M01", True), ("M07", False)]
    assert black.reason == "拒不履行" and black.legal_basis == "《示例条例》第十条"
    assert black.decision_doc_no and black.authority_name == "济南市示例局"
    assert resp.subject_name == "示例商贸有限公司7" and resp.uscc == uscc

    # Every signed report saves and verifies offline with the alliance's bundles.
    saved = save_reports(resp, tmp_path / "saved")
    assert len(saved) == 3
    bundles = [export_bundle(load_home(n.home.paths.root)) for n in fed.nodes.values()]
    issuers = {verify_report(_read(p), bundles).issuer for p in saved}
    assert issuers == {n.home.identity.uri for n in fed.nodes.values()}

    # Audited on both sides under one exchange: the officer by id, never by name.
    exchanges = {resp.exchange_id: ""} | {r.exchange_id: r.partner for r in resp.reports[1:]}
    assert len(exchanges) == 3  # the check's, and one per partner call
    ours = await find_entries(jinan.store, jinan.home.identity.uri, Filter())
    mine = [(i, e) for i, e in ours if e.exchange in exchanges]
    assert sorted((e.direction, e.peer, exchanges[e.exchange]) for _, e in mine) == [
        ("in", "", ""), ("out", "lanzhou", "lanzhou"), ("out", "taiyuan", "taiyuan"),
    ]  # fmt: skip
    assert all(
        e.officer == officer and e.department == DEPT and e.matter == MATTER for _, e in mine
    )
    for partner in ("lanzhou", "taiyuan"):
        node = fed[partner]
        theirs = await find_entries(node.store, node.home.identity.uri, Filter())
        got = [(i, e) for i, e in theirs if exchanges.get(e.exchange) == partner]
        [(index, entry)] = got
        assert entry.direction == "in" and entry.peer == "jinan" and entry.seq == 0
        assert entry.officer == officer and entry.purpose == "licensing_review"
        [receipt] = [e for _, e in mine if e.peer == partner]
        assert receipt.remote == index and receipt.response == entry.response  # they pair
    for node in fed.nodes.values():
        text = repr(await find_entries(node.store, node.home.identity.uri, Filter()))
        assert "王" not in text

    # A name lists candidates at every node, and makes no report.
    named = await _check(jinan, cred, name="示例商贸")
    assert named.outcome == officers.CHECK_OUTCOME_UNKNOWN
    assert [(c.uscc, sorted(c.origins)) for c in named.candidates] == [
        (uscc, ["lanzhou", "taiyuan"])
    ]
    assert all(not r.report.envelope for r in named.reports)


async def test_an_unauthorised_purpose_is_refused_and_audited(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan = fed["jinan"]
    cred, officer = await _officer(jinan, tmp_path, ("procurement",))
    for purpose in ("licensing_review", "marketing"):
        request = officers.CheckRequest(purpose=purpose, matter=MATTER, uscc=org_entry(7).uscc)
        with pytest.raises(PeerError, match="not authorised"):
            await call_check(cred, jinan.officer_endpoint, request, timeout=10)
    found = await find_entries(jinan.store, jinan.home.identity.uri, Filter(outcome="refused"))
    refused = [e for _, e in found if e.officer == officer]
    assert [e.purpose for e in refused] == ["licensing_review", ""]
    assert all("not authorised" in e.reason for e in refused)
    # Nothing was asked of a partner.
    assert not [e for _, e in found if e.direction == "out"]
    # A bad matter is bad input, and recorded too.
    request = officers.CheckRequest(purpose="procurement", matter="", uscc=org_entry(7).uscc)
    with pytest.raises(InputError):
        await call_check(cred, jinan.officer_endpoint, request, timeout=10)


async def test_a_partner_that_times_out_is_reported_as_such(
    fed: LocalFederation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jinan = fed["jinan"]
    uscc = await _listed(fed)
    assert jinan.checker is not None
    jinan.checker.deadline = 0.5
    import node.services.report as report_service

    real = report_service.build_report

    async def slow(deps, subject, asked, **kw):  # type: ignore[no-untyped-def]
        if deps.home.settings.name == "taiyuan":
            await asyncio.sleep(3)
        return await real(deps, subject, asked, **kw)

    monkeypatch.setattr(report_service, "build_report", slow)
    cred, _ = await _officer(jinan, tmp_path)
    resp = await _check(jinan, cred, uscc=uscc)
    by = {r.partner: r for r in resp.reports}
    assert by["taiyuan"].state == officers.PARTNER_STATE_TIMED_OUT
    assert "0.5 s" in by["taiyuan"].detail or "in time" in by["taiyuan"].detail
    assert by["lanzhou"].state == officers.PARTNER_STATE_ANSWERED
    # Lanzhou's black list is decisive whoever is silent; the red list is missing, not guessed.
    assert resp.outcome == officers.CHECK_OUTCOME_BLACK_LISTED
    assert [i.origin for i in resp.items] == ["lanzhou"]
    # Without the black list the silence makes it partial.
    other = org_entry(15, list_name="守信激励对象名单")
    other.list_type = feeds.LIST_TYPE_RED
    await _list(fed["lanzhou"], other)
    resp = await _check(jinan, cred, uscc=other.uscc)
    assert resp.outcome == officers.CHECK_OUTCOME_PARTIAL
    found = await find_entries(jinan.store, jinan.home.identity.uri, Filter(peer="taiyuan"))
    [late] = [r for r in resp.reports if r.partner == "taiyuan"]
    assert late.state == officers.PARTNER_STATE_TIMED_OUT
    assert [(e.outcome, e.reason) for _, e in found if e.exchange == late.exchange_id] == [
        ("error", "no answer within 0.5 s")
    ]


async def test_an_officer_is_never_a_peer_and_a_peer_never_an_officer(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    cred, _ = await _officer(jinan, tmp_path)
    cert, key, ca = cred.pem()
    # The officer's credential on a peer port (its own node's, and a partner's): refused.
    for node in (jinan, lanzhou):
        creds = grpc.ssl_channel_credentials(ca, key, cert)
        options = [("grpc.ssl_target_name_override", node.home.identity.dns_name)]
        async with grpc.aio.secure_channel(node.endpoint, creds, options) as channel:
            stream = feeds_rpc.FeedServiceStub(channel).Subscribe(
                feeds.SubscribeRequest(from_size=0), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stream:
                    pass
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "officer credential" in (caught.value.details() or "")
    # A peer's certificate (same CA) on the officer listener: refused.
    channel = secure_channel(
        lanzhou.home.tls, jinan.officer_endpoint, jinan.home.identity, jinan.home.tls.ca_pem
    )
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught2:
            await officers_rpc.OfficerServiceStub(channel).Check(
                officers.CheckRequest(purpose="procurement", matter="M", uscc=org_entry(7).uscc),
                timeout=10,
            )
    assert caught2.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Another node's officer (same CA) is not this node's officer, even dialing it directly.
    other, _ = await _officer(lanzhou, tmp_path)
    cert, key, ca = other.pem()
    options = [("grpc.ssl_target_name_override", jinan.home.identity.dns_name)]
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    async with grpc.aio.secure_channel(jinan.officer_endpoint, creds, options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught3:
            await officers_rpc.OfficerServiceStub(channel).Check(
                officers.CheckRequest(purpose="procurement", matter="M", uscc=org_entry(7).uscc),
                timeout=10,
            )
    assert caught3.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not an officer credential of this node" in (caught3.value.details() or "")


async def test_a_revoked_officer_is_refused_within_a_second(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan = fed["jinan"]
    cred, officer = await _officer(jinan, tmp_path)
    request = officers.CheckRequest(purpose="procurement", matter="M-2", uscc=org_entry(7).uscc)
    assert (await call_check(cred, jinan.officer_endpoint, request, 10)).exchange_id
    # Revoked by another process (its own store on the same database).
    async with Store.opened(_url(jinan)) as store:
        await revoke_officer(jinan.home, store, officer[:10])
    revoked_at = time.monotonic()
    with pytest.raises(PeerError, match="was revoked"):
        await call_check(cred, jinan.officer_endpoint, request, 10)
    assert time.monotonic() - revoked_at < 1.0
    # The refusal is in the audit log, under the officer's id.
    found = await find_entries(jinan.store, jinan.home.identity.uri, Filter(kind="refusal"))
    assert [(e.officer, e.reason) for _, e in found] == [(officer, "was revoked")]


def test_officer_certificates_carry_only_the_random_id() -> None:
    ca = FederationCA.create("yellow-river")
    ident = OfficerIdentity(NodeIdentity("yellow-river", "jinan"), "0" * 32)
    cred = new_officer_credential(ca, ident)
    assert officer_from_certificate(cred.certificate) == ident
    with pytest.raises(ValueError):
        identity_from_certificate(cred.certificate)  # no node identity in it
    opened = OfficerCredential.from_pkcs12(cred.to_pkcs12(b"correct horse"), b"correct horse")
    assert opened.identity == ident
    with pytest.raises(ValueError, match="wrong passphrase"):
        OfficerCredential.from_pkcs12(cred.to_pkcs12(b"correct horse"), b"wrong horse")


@given(st.text(max_size=300))
def test_officer_names_are_bounded_printable_text(name: str) -> None:
    try:
        clean = check_officer_name(name)
    except InputError as exc:
        message = str(exc)
    else:
        assert 1 <= len(clean) <= 100 and clean.isprintable()
        return
    assert len(name.strip()) < 4 or name.strip() not in message  # never repeated


def test_verdict_black_wins_then_silence_then_red() -> None:
    def item(origin: str, section: str, entry: str) -> officers.CheckItem:
        return officers.CheckItem(origin=origin, section=section, entry_id=entry)

    black, red = item("lanzhou", "serious_dishonesty", "a"), item("taiyuan", "red_lists", "b")
    answered, silent = officers.PARTNER_STATE_ANSWERED, officers.PARTNER_STATE_TIMED_OUT
    assert verdict([red, black], [answered, silent]) == officers.CHECK_OUTCOME_BLACK_LISTED
    assert verdict([red], [answered, silent]) == officers.CHECK_OUTCOME_PARTIAL
    assert verdict([red], [answered]) == officers.CHECK_OUTCOME_RED_LISTED
    assert verdict([], [answered]) == officers.CHECK_OUTCOME_CLEAR
    # The same origin entry carried by two reports is one row; black first.
    merged = merge([("jinan", [red]), ("taiyuan", [red, black])])
    assert [i.entry_id for i in merged] == ["a", "b"]


def test_officer_cli_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import stat

    from node.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    home = str(tmp_path / "jinan")
    assert run("init", "--home", home, "--name", "jinan", "--region", "370100")[0] == 0
    phrase = tmp_path / "pass"
    phrase.write_text("correct horse battery\n")
    p12 = tmp_path / "officer.p12"
    hostile = "[red]王五[/red] <b>"
    rc, out, err = run(
        "officer", "add", "--home", home, "--name", hostile, "--dept-uscc", DEPT,
        "--purpose", "licensing_review", "--out", str(p12), "--passphrase-file", str(phrase),
    )  # fmt: skip
    assert rc == 0, err
    assert "王五" not in out and "shown once" not in out  # the name is stored, not echoed
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600
    cred = OfficerCredential.from_pkcs12(p12.read_bytes(), b"correct horse battery")
    rc, out, _ = run("officer", "list", "--home", home, "--format", "json")
    [row] = json.loads(out)
    assert row["id"] == cred.identity.officer and row["name"] == hostile
    assert row["purposes"] == ["licensing_review"] and row["state"] == "active"
    rc, out, _ = run("officer", "list", "--home", home)
    assert "officers of creditnode://" in out and "active" in out
    assert run("officer", "revoke", "--home", home, row["id"][:10])[0] == 0
    rc, out, _ = run("officer", "list", "--home", home, "--format", "json")
    assert json.loads(out)[0]["state"] == "revoked"
    rc, _, err = run("officer", "revoke", "--home", home, row["id"][:10])
    assert rc == 2 and "already revoked" in err
    # Bad input: one line, exit 2, nothing issued.
    for args, message in (
        (["--name", "", "--dept-uscc", DEPT], "--name"),
        (["--name", "x", "--dept-uscc", "123"], "--dept-uscc"),
        (["--name", "x", "--dept-uscc", DEPT, "--role", "king"], "--role"),
        (["--name", "x", "--dept-uscc", DEPT, "--purpose", "gossip"], "--purpose"),
    ):
        rc, _, err = run("officer", "add", "--home", home, *args, "--out", str(tmp_path / "x.p12"))
        assert rc == 2 and message in err and "Traceback" not in err
    # A wrong passphrase is bad input, not a traceback.
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    rc, _, err = run(
        "check", "--officer", str(p12), "--passphrase-file", str(wrong), "--node",
        "127.0.0.1:1", "--uscc", org_entry(7).uscc, "--purpose", "licensing_review",
        "--matter", "M-1",
    )  # fmt: skip
    assert rc == 2 and "wrong passphrase" in err
    # An ID given as a code is refused before anything is read or sent, and not repeated.
    rc, _, err = run(
        "check", "--officer", str(p12), "--passphrase-file", str(phrase), "--node",
        "127.0.0.1:1", "--uscc", "11010519491231002X", "--purpose", "licensing_review",
        "--matter", "M-1",
    )  # fmt: skip
    assert rc == 2 and "reads as a person's ID" in err and "11010519491231002X" not in err
    rc, out, _ = run("check", "--help")
    assert "10 red-listed" in " ".join(out.split()) and "13 partial" in " ".join(out.split())


async def test_a_person_is_checked_by_each_origins_pseudonym_never_the_id(
    fed: LocalFederation, tmp_path: Path
) -> None:
    from node.identity.pseudonym import own_pseudonym
    from tests.feedutil import PERSON_ID, person_entry

    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    entry = person_entry(1)
    entry.person_pseudonym = own_pseudonym(lanzhou.home.pseudonym_key, PERSON_ID)
    await _list(lanzhou, entry)
    cred, _ = await _officer(jinan, tmp_path)
    resp = await _check(jinan, cred, person_id=PERSON_ID)
    assert resp.outcome == officers.CHECK_OUTCOME_BLACK_LISTED
    assert [(i.origin, i.list_name) for i in resp.items] == [("lanzhou", entry.list_name)]
    assert {r.partner: r.state for r in resp.reports} == {
        "jinan": officers.PARTNER_STATE_ANSWERED,
        "lanzhou": officers.PARTNER_STATE_ANSWERED,
        "taiyuan": officers.PARTNER_STATE_ANSWERED,
    }
    # The ID reached no partner and no audit entry: each evaluated blinded elements only.
    for node in fed.nodes.values():
        entries = await find_entries(node.store, node.home.identity.uri, Filter())
        assert PERSON_ID not in repr(entries)
    for r in resp.reports:
        assert PERSON_ID.encode() not in r.report.envelope


async def test_check_command_picks_a_candidate_saves_and_exits_with_the_verdict(
    fed: LocalFederation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from node.cli import main

    jinan = fed["jinan"]
    uscc = await _listed(fed)
    cred, _ = await _officer(jinan, tmp_path)
    p12, phrase = tmp_path / "o.p12", tmp_path / "o.pass"
    p12.write_bytes(cred.to_pkcs12(b"correct horse battery"))
    phrase.write_text("correct horse battery\n")
    argv = [
        "check", "--officer", str(p12), "--passphrase-file", str(phrase),
        "--node", jinan.officer_endpoint, "--purpose", "licensing_review", "--matter", MATTER,
    ]  # fmt: skip
    # The CLI runs its own event loop: in a thread, against the nodes of this one.
    code = await asyncio.to_thread(main, [*argv, "--name", "示例商贸", "--format", "json"])
    listed = json.loads(capsys.readouterr().out)
    assert code == 12 and listed["verdict"] == "unknown"
    assert [c["uscc"] for c in listed["candidates"]] == [uscc]
    saved = tmp_path / "saved"
    code = await asyncio.to_thread(
        main, [*argv, "--name", "示例商贸", "--pick", "1", "--format", "json", "--save", str(saved)]
    )
    picked = json.loads(capsys.readouterr().out)
    assert code == 11 and picked["verdict"] == "black-listed"
    assert picked["subject"]["uscc"] == uscc and len(picked["saved"]) == 3
    assert [i["origin"] for i in picked["items"]] == ["lanzhou", "taiyuan"]
    assert sorted(p.name.split("-")[1] for p in saved.iterdir()) == ["JINAN", "LANZHOU", "TAIYUAN"]
