"""The console (issue 18) without a browser: the real HTTPS listener of in-process nodes, with
an officer's client certificate, over httpx.

A page without a certificate is refused at the TLS handshake; an officer opens the officer
pages only; every POST needs the session's CSRF token; the security headers are on every
response and no template holds an inline script or style; hostile values render as text; a
person's ID never reaches a URL, a page, a redirect or the log; the check is the officer
listener's own (same audit), and a report downloaded from the console verifies offline.
"""

from __future__ import annotations

import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from keys import OfficerCredential
from node.api import feeds
from node.audit.query import Filter, find_entries
from node.console import i18n, roles
from node.console.app import CSP, TEMPLATES, Session, Sessions, safe_next
from node.feeds.publisher import Event
from node.home import load_home
from node.identity.codes import org_code_check_char, uscc_check_char
from node.local_federation import LocalFederation
from node.officers.issue import issue_officer, revoke_officer
from node.peers.enrollment import export_bundle
from node.reports.envelope import verify_report
from node.runtime import Node
from node.storage import Store
from tests.conftest import DbUrlFactory
from tests.feedutil import PERSON_ID, org_entry, person_entry
from tests.helpers import list_entry_agreement

DEPT = "11370100MB0000174G"
MATTER = "济审〔2026〕17号"
CITIES = [("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100")]
HOSTILE = '<script>alert("x")</script>"><svg onload=alert(2)>&'


@pytest.fixture
async def fed(tmp_path: Path, new_database: DbUrlFactory) -> AsyncIterator[LocalFederation]:
    """Three cities, each serving officers and the console; Lanzhou and Taiyuan share their
    reports with Jinan."""
    urls = {name: await new_database(name) for name, _ in CITIES}
    federation = LocalFederation(
        tmp_path / "fed", CITIES, heartbeat=False, subscribe=False, officers=True,
        console=True, database_url=lambda name: urls.get(name),
    )  # fmt: skip
    async with federation:
        for name in ("lanzhou", "taiyuan"):
            node = federation[name]
            agreements = node.home.paths.root / "agreements"
            agreements.mkdir(exist_ok=True)
            (agreements / "jinan.toml").write_text(list_entry_agreement(name, "jinan"))
            node.border.refresh(force=True)
        yield federation


async def _officer(node: Node, ca: Path, role: str = "officer") -> tuple[OfficerCredential, str]:
    url = node.store.engine.url.render_as_string(hide_password=False)
    async with Store.opened(url) as store:
        credential, record = await issue_officer(
            node.home, store, name="王 五", department=DEPT, role=role, ca_dir=ca
        )
    return credential, record.id


def _client(
    node: Node, tmp_path: Path, cred: OfficerCredential | None, *, url: str = ""
) -> httpx.AsyncClient:
    """HTTPS to the node's console, trusting the federation CA, with the officer's pair."""
    context = ssl.create_default_context(cadata=node.home.tls.ca_pem.decode())
    context.check_hostname = False  # the node's certificate names the node, not 127.0.0.1
    if cred is not None:
        cert, key, _ = cred.pem()
        files = tmp_path / f"pair-{uuid.uuid4().hex[:8]}"
        files.mkdir()
        (files / "cert.pem").write_bytes(cert)
        (files / "key.pem").write_bytes(key)
        context.load_cert_chain(files / "cert.pem", files / "key.pem")
    base = (url or node.console_url).rstrip("/")
    return httpx.AsyncClient(base_url=base, verify=context, timeout=30)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def _publish(node: Node, entry: feeds.ListEntry) -> None:
    await node.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
    await node.publisher.sign_checkpoint()


# ------------------------------------------------------------------------------ pure parts


def test_roles_open_their_own_sections_only() -> None:
    assert roles.may_open("officer", "/officer/result/x")
    assert not roles.may_open("officer", "/operator")
    assert not roles.may_open("officer", "/operator/peers")
    assert not roles.may_open("operator", "/officer")
    assert not roles.may_open("auditor", "/officer/check")
    assert not roles.may_open("unknown", "/auditor")
    assert roles.may_open("auditor", "/")  # the home page and static files are everyone's
    assert roles.may_open("officer", "/operatorx")  # not a section prefix (a 404 later)


def test_catalogues_hold_the_same_keys() -> None:
    assert set(i18n.CATALOGUE["zh-CN"]) == set(i18n.CATALOGUE["en"])
    assert i18n.language("fr") == "zh-CN" and i18n.DEFAULT == "zh-CN"


def test_no_open_redirect() -> None:
    assert safe_next("/officer") == "/officer"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil", "", None, 3):
        assert safe_next(bad) == "/"


def test_no_template_holds_inline_script_or_style() -> None:
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert templates
    for path in templates:
        text = path.read_text(encoding="utf-8")
        # A script element only with a src (served from /static), never with a body.
        for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", text, flags=re.S | re.I):
            assert tag.strip() == "", f"{path.name}: inline script"
        assert not re.search(r"<script(?![^>]*\bsrc=)", text, re.I), f"{path.name}: script"
        assert not re.search(r"<style\b", text, re.I), f"{path.name}: inline style"
        assert not re.search(r"\sstyle\s*=", text, re.I), f"{path.name}: style attribute"
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), f"{path.name}: event handler"
        assert "javascript:" not in text.lower(), f"{path.name}: javascript: URL"
        assert "|safe" not in text.replace(" ", ""), f"{path.name}: |safe bypasses escaping"
        assert "autoescape false" not in text, f"{path.name}: autoescape off"


# ------------------------------------------------------------------------------ the listener


async def test_without_a_certificate_the_handshake_fails(
    fed: LocalFederation, tmp_path: Path
) -> None:
    async with _client(fed["jinan"], tmp_path, None) as client:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get("/")


async def test_a_peer_or_another_nodes_officer_is_refused(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan = fed["jinan"]
    # Lanzhou's officer: a certificate of the same CA, but not an officer of Jinan.
    cred, _ = await _officer(fed["lanzhou"], fed.ca_dir)
    async with _client(jinan, tmp_path, cred) as client:
        page = await client.get("/officer")
    assert page.status_code == 403
    assert "not an officer credential of this node" in page.text


async def test_officer_pages_headers_session_and_roles(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan = fed["jinan"]
    cred, officer = await _officer(jinan, fed.ca_dir)
    async with _client(jinan, tmp_path, cred) as client:
        home = await client.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/officer"
        page = await client.get("/officer")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        cookie = home.headers["set-cookie"]  # the first response starts the session
        assert "set-cookie" not in page.headers  # the next ones keep it
        for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Max-Age=1800", "Path=/"):
            assert flag in cookie
        assert 'lang="zh-CN"' in page.text and "信用核查" in page.text
        assert officer[:8] in page.text
        assert 'autocomplete="off"' in page.text
        # The static files the pages use are served by the node itself.
        css = await client.get("/static/console.css")
        assert css.status_code == 200 and css.headers["content-security-policy"] == CSP
        # An officer does not open the operator's or the auditor's pages.
        for path in ("/operator", "/operator/peers", "/auditor", "/auditor/log"):
            refused = await client.get(path)
            assert refused.status_code == 403, path
        # A POST without the session's token is refused before any page runs; a token of
        # another session too.
        token = _csrf(page.text)
        form = {"purpose": "licensing_review", "matter": MATTER, "kind": "uscc",
                "query": org_entry(1).uscc}  # fmt: skip
        assert (await client.post("/officer/check", data=form)).status_code == 403
        forged = {**form, "csrf": token[:-2] + ("AA" if not token.endswith("AA") else "BB")}
        assert (await client.post("/officer/check", data=forged)).status_code == 403
        other = {**form, "csrf": token}
        refused = await client.post(
            "/officer/check", data=other, headers={"origin": "https://evil.example"}
        )
        assert refused.status_code == 403
        # The language switch (a POST like any other) then English pages.
        switched = await client.post(
            "/lang", data={"csrf": token, "lang": "en", "next": "/officer"}
        )
        assert switched.status_code == 303 and switched.headers["location"] == "/officer"
        english = await client.get("/officer")
        assert 'lang="en"' in english.text and "Credit check" in english.text
    # Nothing was checked: no query entry in the audit log.
    entries = await find_entries(jinan.store, jinan.home.identity.uri, Filter(kind="query"))
    assert entries == []


async def test_operator_cannot_open_officer_pages(fed: LocalFederation, tmp_path: Path) -> None:
    jinan = fed["jinan"]
    cred, _ = await _officer(jinan, fed.ca_dir, role="operator")
    async with _client(jinan, tmp_path, cred) as client:
        assert (await client.get("/officer")).status_code == 403
        assert (await client.get("/officer/result/x")).status_code == 403


async def test_revoked_officer_is_refused_on_the_next_request(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan = fed["jinan"]
    cred, officer = await _officer(jinan, fed.ca_dir)
    async with _client(jinan, tmp_path, cred) as client:
        assert (await client.get("/officer")).status_code == 200
        await revoke_officer(jinan.home, jinan.store, officer)
        again = await client.get("/officer")
    assert again.status_code == 403 and "revoked" in again.text


async def test_check_report_download_verifies_and_views_are_audited(
    fed: LocalFederation, tmp_path: Path
) -> None:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    black = org_entry(7)
    black.subject_name = "示例" + HOSTILE
    black.reason = HOSTILE
    await _publish(lanzhou, black)
    cred, officer = await _officer(jinan, fed.ca_dir)
    async with _client(jinan, tmp_path, cred) as client:
        token = _csrf((await client.get("/officer")).text)
        # No purpose (or no matter): nothing is asked.
        missing = await client.post("/officer/check", data={
            "csrf": token, "purpose": "", "matter": MATTER, "kind": "uscc", "query": black.uscc,
        })  # fmt: skip
        assert missing.status_code == 400
        done = await client.post("/officer/check", data={
            "csrf": token, "purpose": "licensing_review", "matter": MATTER, "kind": "uscc",
            "query": black.uscc,
        })  # fmt: skip
        assert done.status_code == 303
        where = done.headers["location"]
        assert re.fullmatch(r"/officer/result/[0-9a-f-]{36}", where)
        page = await client.get(where)
        assert page.status_code == 200
        text = page.text
        # Per city its state; the binding measure; the item's reason, basis, decision, authority.
        assert text.count("state-answered") == 3
        assert "verdict-black-listed" in text
        assert "M01" in text and black.decision_doc_no in text and black.authority_name in text
        assert black.legal_basis in text
        # Hostile values are text: escaped, never markup.
        assert "<script>alert" not in text and "<svg onload" not in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
        # The report of Lanzhou: provenance, the badge, a download that verifies, a print view.
        n = text.split("/report/")[1].split('"')[0]
        links = re.findall(r'/officer/result/[0-9a-f-]{36}/report/(\d+)"', text)
        assert links, "no report link"
        reports = [await client.get(f"{where}/report/{i}") for i in links]
        assert all(r.status_code == 200 for r in reports) and n
        assert all('id="verification"' in r.text for r in reports)
        assert all(r.text.count("badge ok") >= 1 for r in reports), "a report did not verify"
        lanzhou_page = next(r for r in reports if black.decision_doc_no in r.text)
        assert "<script>alert" not in lanzhou_page.text
        index = links[[r.text for r in reports].index(lanzhou_page.text)]
        download = await client.get(f"{where}/report/{index}/download")
        assert download.status_code == 200
        assert "attachment" in download.headers["content-disposition"]
        printed = await client.get(f"{where}/report/{index}/print")
        assert (
            printed.status_code == 200 and "<svg" in printed.text and "data-print" in printed.text
        )
    bundles = [export_bundle(load_home(node.home.paths.root)) for node in fed.nodes.values()]
    verified = verify_report(download.content, bundles)
    assert verified.items == 1
    # The check is the officer listener's own (one query entry), and every page view showing
    # the result is audited with the officer, purpose and matter.
    uri = jinan.home.identity.uri
    queries = await find_entries(
        jinan.store, uri, Filter(kind="query", officer=officer, direction="in")
    )
    assert len(queries) == 1
    views = [
        e for _, e in await find_entries(jinan.store, uri, Filter(kind="other", officer=officer))
    ]
    methods = sorted(e.method for e in views)
    assert "console result view" in methods and "console report download" in methods
    assert all(e.purpose == "licensing_review" and e.matter == MATTER for e in views)
    assert all(e.subject == queries[0][1].subject and e.subject for e in views)


async def test_a_person_id_never_reaches_a_url_a_page_or_the_log(
    fed: LocalFederation, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _publish(lanzhou, person_entry(3))
    cred, _ = await _officer(jinan, fed.ca_dir)
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with _client(jinan, tmp_path, cred) as client:
        client.event_hooks["request"] = [record]
        token = _csrf((await client.get("/officer")).text)
        # Typed into the organisation's field: refused, and not shown back.
        wrong = await client.post("/officer/check", data={
            "csrf": token, "purpose": "licensing_review", "matter": MATTER, "kind": "name",
            "query": PERSON_ID,
        })  # fmt: skip
        assert wrong.status_code == 400 and PERSON_ID not in wrong.text
        done = await client.post("/officer/person", data={
            "csrf": token, "purpose": "licensing_review", "matter": MATTER,
            "person_id": PERSON_ID,
        })  # fmt: skip
        assert done.status_code == 303 and PERSON_ID not in done.headers["location"]
        page = await client.get(done.headers["location"])
        assert page.status_code == 200
        # GET /officer/person does not exist: the ID can only be POSTed.
        assert (await client.get("/officer/person")).status_code in (404, 405)
        pages = [wrong.text, page.text, (await client.get("/officer")).text]
    assert all(PERSON_ID not in url for url in seen)
    assert all(PERSON_ID not in text and PERSON_ID[-6:] not in text for text in pages)
    out, err = capfd.readouterr()
    assert PERSON_ID not in out and PERSON_ID not in err


def test_sessions_end_after_their_lifetime_and_bind_the_certificate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def nothing(scope: object, receive: object, send: object) -> None:
        return None

    sessions = Sessions(nothing, b"k" * 32, lifetime=1800)
    now = time.time()
    fresh = Session("fp-1", "token", "en")
    assert sessions.load(_value(sessions.cookie(fresh)), "fp-1") == Session("fp-1", "token", "en")
    # Another certificate (fingerprint) does not get this session.
    assert sessions.load(_value(sessions.cookie(fresh)), "fp-2") is None
    # Issued 31 minutes ago: over.
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: now - 31 * 60)
    old = _value(sessions.cookie(fresh))
    monkeypatch.undo()
    assert sessions.load(old, "fp-1") is None
    # Altered: refused.
    assert sessions.load(old[:-2] + "xx", "fp-1") is None


def _value(set_cookie: bytes) -> str:
    return set_cookie.decode().split(";")[0].split("=", 1)[1]


async def test_the_console_stops_with_the_node(fed: LocalFederation, tmp_path: Path) -> None:
    jinan = fed["jinan"]
    cred, _ = await _officer(jinan, fed.ca_dir)
    async with _client(jinan, tmp_path, cred) as client:
        assert (await client.get("/officer")).status_code == 200  # a kept-alive connection
        url = jinan.console_url
        await jinan.stop()  # bounded by the test's timeout; the open connection does not hold it
        assert jinan.console_port == 0 and jinan.console_url == ""
        with pytest.raises(httpx.TransportError):
            async with _client(jinan, tmp_path, cred, url=url) as again:
                await again.get("/officer")


def test_name_candidates_are_ranked_best_match_first() -> None:
    from node.api import officers
    from node.console.officer_pages import ranked

    def cand(name: str, uscc: str, *origins: str) -> officers.CheckCandidate:
        return officers.CheckCandidate(uscc=uscc, subject_name=name, origins=list(origins))

    found = [
        cand("济南示例商贸有限公司", "A", "jinan"),
        cand("示例商贸有限公司分公司", "B", "jinan"),
        cand("示例商贸有限公司", "C", "lanzhou"),
        cand("示例商贸", "D", "jinan"),
        cand("示例商贸有限", "E", "jinan", "taiyuan"),
        cand("示例商贸有限", "F", "jinan"),
    ]
    assert [c.uscc for c in ranked("示例商贸", found)] == ["D", "E", "F", "C", "B", "A"]


async def test_name_and_legacy_code_searches(fed: LocalFederation, tmp_path: Path) -> None:
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    own = org_entry(11)
    org = "MA000011" + org_code_check_char("MA000011")  # a valid organisation code
    own.uscc = "91370100" + org + uscc_check_char("91370100" + org)
    await _publish(jinan, own)  # held here: its organisation code resolves to it
    await _publish(lanzhou, org_entry(12))
    cred, _ = await _officer(jinan, fed.ca_dir)
    async with _client(jinan, tmp_path, cred) as client:
        token = _csrf((await client.get("/officer")).text)
        form = {"csrf": token, "purpose": "licensing_review", "matter": MATTER}
        named = await client.post("/officer/check", data={**form, "kind": "name",
                                                          "query": "示例商贸有限公司"})  # fmt: skip
        assert named.status_code == 303
        page = (await client.get(named.headers["location"])).text
        assert 'id="candidates"' in page
        assert own.uscc in page and org_entry(12).uscc in page
        # Each candidate is one click from its check (a POST with the same purpose and matter).
        assert page.count('action="/officer/check"') >= 2
        legacy = await client.post("/officer/check", data={**form, "kind": "legacy",
                                                           "query": org})  # fmt: skip
        assert legacy.status_code == 303
        checked = (await client.get(legacy.headers["location"])).text
        assert own.uscc in checked and 'id="items"' in checked
        nobody = "MA000099" + org_code_check_char("MA000099")
        unknown = await client.post(
            "/officer/check", data={**form, "kind": "legacy", "query": nobody}
        )
        assert unknown.status_code in (400, 404)
