"""The console in Debian's chromium (issue 18), on a three-node federation in this process:
each role's main story, as a person at the browser walks it, with the officer certificate in
the browser context. Screenshots of the main pages go to docs/screenshots/.

- an officer in Jinan checks a company Lanzhou black-listed and downloads its report, which
  verifies as `creditnode report verify` verifies it;
- an operator sees a stalled feed, imports a list through its dry run, reads keys and policy;
- an auditor verifies the log (and sees the first bad index of a tampered one), exports a
  bundle and fork evidence that verify offline, and reconciles with a partner;
- no certificate, no page; an officer opens no operator page; no raw ID in any page, URL or
  console message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select, update

from adapters.samples import write_csv
from keys import PeerBundle
from node.audit.bundle import verify_bundle
from node.audit.log import audit_origin
from node.cli.demo_actions import LIST_NAME
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.logstore import LEAVES, LOGS
from node.feeds.subscriber import Subscriber
from node.home import load_home
from node.local_federation import LocalFederation
from node.peers.enrollment import export_bundle
from node.reports.envelope import verify_report
from node.runtime import Node
from node.witness import evidence
from tests.browser.conftest import ConsoleFactory, list_entry, screenshot_path
from tests.feedutil import PERSON_ID, adds, org_entry
from tests.test_feeds import _rewrite_history

MATTER = "济审〔2026〕17号"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.timeout(300)


def bundles(fed: LocalFederation) -> list[PeerBundle]:
    """Every node's peer bundle, as the alliance distributes them."""
    return [export_bundle(load_home(n.home.paths.root)) for n in fed.nodes.values()]


async def subscriber(node: Node, origin: Node) -> Subscriber:
    """*node*'s subscriber to *origin*'s feed, recording its exchanges in *node*'s audit log."""
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    return await Subscriber.open(node.home.tls, node.store, peer, audit=node.audit)


async def synced(node: Node, origin: Node) -> None:
    """*node* mirrors *origin*'s feed as far as its signed checkpoint."""
    await origin.publisher.sign_checkpoint()
    await (await subscriber(node, origin)).sync(follow=False)


def no_raw_id(text: str, ids: list[str], where: str) -> None:
    for raw in ids:
        assert raw not in text, f"a raw ID appears in {where}"


async def shot(page: object, name: str) -> None:
    from playwright.async_api import Page

    assert isinstance(page, Page)
    await page.screenshot(path=str(screenshot_path(name)), full_page=True)


# -- refusals -----------------------------------------------------------------------------------


async def test_no_certificate_no_page_and_an_officer_opens_no_operator_page(
    console: ConsoleFactory,
) -> None:
    from playwright.async_api import Error

    c = await console("jinan")
    bare = await c.page(None)
    # The listener requires a client certificate: the handshake fails, no page is served.
    with pytest.raises(Error, match=r"net::ERR_"):
        await bare.goto(c.url + "/operator")
    assert "jinan" not in await c.watched.everything()  # nothing of the node was served

    officer = await c.page("officer")
    for path in ("/operator", "/operator/import", "/auditor", "/auditor/verify"):
        resp = await officer.goto(c.url + path)
        assert resp is not None and resp.status == 403, path
        assert await officer.locator("#peers, #entries, #logs").count() == 0
    # A forged POST (no session token) is refused too.
    forged = await officer.request.post(c.url + "/operator/import/confirm", form={"token": "x"})
    assert forged.status == 403
    # The operator, by contrast, opens its pages and no officer page.
    operator = await c.page("operator")
    resp = await operator.goto(c.url + "/operator")
    assert resp is not None and resp.status == 200
    resp = await operator.goto(c.url + "/officer")
    assert resp is not None and resp.status == 403


async def test_a_form_posted_by_the_browser_passes_the_csrf_check(console: ConsoleFactory) -> None:
    """The language switch (a POST with the session's token), as Chromium sends it: under
    Referrer-Policy no-referrer its Origin header is "null", which must not refuse the form
    (the token decides)."""
    c = await console("jinan")
    page = await c.page("operator")
    await page.goto(c.url + "/operator")
    assert (await page.locator("h1").inner_text()).startswith("节点运维")
    await page.click("header form button[type=submit]")
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() != "无法完成请求", (
        "the browser's form POST was refused as a CSRF (Origin: null?)"
    )
    assert (await page.locator("h1").inner_text()).startswith("Operations")
    assert page.url.endswith("/operator")


# -- the officer --------------------------------------------------------------------------------


async def test_an_officer_checks_a_black_listed_company_and_its_report_verifies(
    fed: LocalFederation, console: ConsoleFactory, tmp_path: Path
) -> None:
    black = org_entry(7)
    await list_entry(fed["lanzhou"], black)
    c = await console("jinan")
    page = await c.page("officer")
    await page.goto(c.url + "/officer")
    await shot(page, "officer-search")
    await page.select_option("#purpose", "licensing_review")
    await page.fill("#matter", MATTER)
    await page.select_option("#kind", "uscc")
    await page.fill("#query", black.uscc)
    await page.click("#check-form button[type=submit]")
    await page.wait_for_url(re.compile(r"/officer/result/"), timeout=TIMEOUT_MS)
    verdict = page.locator("#verdict")
    assert "verdict-black-listed" in (await verdict.get_attribute("class") or "")
    assert black.decision_doc_no in await page.locator("#items").inner_text()
    await shot(page, "officer-result")

    row = page.locator("#partners tr", has_text="lanzhou")
    await row.get_by_role("link").click()
    await page.wait_for_url(re.compile(r"/report/\d+$"), timeout=TIMEOUT_MS)
    assert "ok" in (await page.locator("#verification").get_attribute("class") or "")
    await shot(page, "officer-report")
    async with page.expect_download() as info:
        await page.click("#download")
    saved = tmp_path / "report.json"
    await (await info.value).save_as(saved)
    # What `creditnode report verify FILE --trust ...` runs, with the alliance's bundles.
    verified = verify_report(saved.read_bytes(), bundles(fed))
    assert verified is not None

    # A person's check: the ID is typed into a POST form and never comes back.
    await page.goto(c.url + "/officer")
    await page.select_option("#person-form select[name=purpose]", "licensing_review")
    await page.fill("#person-form input[name=matter]", MATTER)
    await page.fill("#person-form input[name=person_id]", PERSON_ID)
    await page.click("#person-form button[type=submit]")
    await page.wait_for_load_state()
    no_raw_id(await page.content(), [PERSON_ID], "the person check's page")
    seen = await c.watched.everything()
    assert black.decision_doc_no in seen  # the watch holds the pages themselves
    no_raw_id(seen, [PERSON_ID], "a page, URL or console message")


# -- the operator -------------------------------------------------------------------------------


async def test_an_operator_sees_a_stalled_feed_and_imports_a_list(
    fed: LocalFederation, console: ConsoleFactory, tmp_path: Path
) -> None:
    jinan, taiyuan = fed["jinan"], fed["taiyuan"]
    for origin in (fed["lanzhou"], taiyuan):
        await origin.publisher.append(adds(3))
        await synced(jinan, origin)
    # Taiyuan drops Jinan: Jinan's next probe is refused, and the feed it mirrors stalls.
    assert await taiyuan.remove_peer("jinan")
    await jinan.heartbeat.beat_once()

    c = await console("jinan")
    page = await c.page("operator")
    await page.goto(c.url + "/operator")
    feed = page.locator('#feeds tr[data-origin="taiyuan"]')
    assert await feed.get_attribute("data-state") == "stalled"
    assert "refuses" in await feed.inner_text()
    assert (
        await page.locator('#feeds tr[data-origin="lanzhou"]').get_attribute("data-state") == "ok"
    )
    assert await page.locator('#peers tr[data-peer="taiyuan"]').get_attribute("data-reach") == (
        "refused"
    )
    edge = page.locator('g.feed-edge[data-peer="taiyuan"][data-direction="in"]')
    assert await edge.get_attribute("data-state") == "stalled"
    alert = page.locator('table.alerts tr[data-origin="taiyuan"]')
    assert await alert.get_attribute("data-state") == "stalled"
    await shot(page, "operator-overview")

    await page.click("nav.subnav >> text=密钥与有效期")
    await page.wait_for_url(re.compile(r"/operator/keys$"))
    assert await page.locator("#certificates tr.expiry").count() >= 1
    await shot(page, "operator-keys")

    await page.goto(c.url + "/operator/policy?peer=lanzhou&purpose=licensing_review")
    assert await page.locator("#explain tr").count() > 1
    await shot(page, "operator-policy")

    # An import: the file, its dry-run diff, the confirmation, the progress to done.
    rows = list(_rows())
    raw_ids = [r[k] for r in rows for k in ("证件号码", "法定代表人证件号码") if r.get(k)]
    assert raw_ids, "the sample holds people (their IDs must show nowhere)"
    path = tmp_path / "名单.csv"
    write_csv(path, rows)
    code = catalogue.load(jinan.home.catalogue_path).resolve(LIST_NAME).code
    await page.goto(c.url + "/operator/import")
    await page.select_option("#list", code)
    await page.set_input_files("#file", str(path))
    await page.click("form[enctype] button[type=submit]")
    await page.wait_for_load_state()
    await page.wait_for_selector("#changes", timeout=TIMEOUT_MS)
    added = await page.locator('td[data-count="added"]').first.inner_text()
    assert int(added) == len(rows)
    size_before = jinan.publisher.log.frontier.size
    await shot(page, "operator-import-plan")
    no_raw_id(await page.content(), raw_ids, "the dry run")
    await page.click("#confirm")
    await page.locator('#import-state[data-state="done"]').wait_for(timeout=TIMEOUT_MS)
    assert jinan.publisher.log.frontier.size > size_before
    await shot(page, "operator-import-done")
    no_raw_id(await page.content(), raw_ids, "the import's progress")
    seen = await c.watched.everything()
    assert LIST_NAME in seen  # the watch holds the pages themselves
    no_raw_id(seen, raw_ids, "a page, URL or console message")


def _rows() -> list[dict[str, str]]:
    from adapters.samples import generate_rows

    return list(
        generate_rows(
            6, seed=18, list_name=LIST_NAME, list_type="black", region="370100",
            today=shanghai_today(),
        )
    )  # fmt: skip


# -- the auditor (and the operator's fork alert) -------------------------------------------------


async def test_an_auditor_verifies_the_log_and_exports_evidence(
    fed: LocalFederation, console: ConsoleFactory, tmp_path: Path
) -> None:
    lanzhou, taiyuan = fed["lanzhou"], fed["taiyuan"]
    await fed["jinan"].publisher.append(adds(10))
    await synced(lanzhou, fed["jinan"])
    await synced(lanzhou, taiyuan)
    # Jinan forks: it restarts with another history of its feed; lanzhou keeps the evidence.
    jinan = await _rewrite_history(fed, {"jinan": None}, 12)
    with pytest.raises(Exception, match=r"(?i)fork|inconsistent"):
        await (await subscriber(lanzhou, jinan)).sync(follow=False)

    c = await console("lanzhou")
    operator = await c.page("operator")
    await operator.goto(c.url + "/operator/alerts")
    alert = operator.locator('table.alerts tr[data-origin="jinan"]')
    assert await alert.get_attribute("data-state") == "forked"
    await shot(operator, "operator-alerts")
    async with operator.expect_download() as info:
        await alert.locator("a.evidence").click()
    fork = tmp_path / "fork.json"
    await (await info.value).save_as(fork)
    _check_evidence(fork, fed)

    auditor = await c.page("auditor")
    await auditor.goto(c.url + "/auditor")
    everyone = await auditor.locator("#entries tr.entry td:nth-child(6)").all_inner_texts()
    partner = next(p for p in everyone if p)  # exchanges with partners are recorded
    await auditor.select_option("#peer", partner)
    await auditor.click("#filters button[type=submit]")
    await auditor.wait_for_url(re.compile(rf"peer={partner}"))
    peers = await auditor.locator("#entries tr.entry td:nth-child(6)").all_inner_texts()
    assert peers and set(peers) == {partner}
    assert len(peers) < len(everyone)
    await shot(auditor, "auditor-log")

    await auditor.goto(c.url + "/auditor/verify")
    await auditor.click("#run-verify")
    audit_row = auditor.locator("#logs tr.log", has_text="(audit log)")
    await audit_row.wait_for(timeout=TIMEOUT_MS)
    assert await audit_row.get_attribute("data-findings") == "0"
    assert (await audit_row.locator("td.first-bad").inner_text()).strip() == "-"
    await shot(auditor, "auditor-verify")

    await auditor.goto(c.url + "/auditor/export")
    await shot(auditor, "auditor-export")
    async with auditor.expect_download() as info:
        await auditor.click("#export-bundle")
    exported = tmp_path / "audit-bundle.json"
    await (await info.value).save_as(exported)
    # What `creditnode verify-bundle FILE --trust lanzhou.bundle.json` runs.
    lanzhou_bundle = export_bundle(load_home(lanzhou.home.paths.root))
    checked = verify_bundle(exported.read_bytes(), lanzhou_bundle, [])
    assert len(json.loads(exported.read_bytes())["entries"]) > 0
    assert checked is not None
    async with auditor.expect_download() as info:
        await auditor.click('#evidence a[data-peer="jinan"]')
    again = tmp_path / "fork-again.json"
    await (await info.value).save_as(again)
    _check_evidence(again, fed)

    await auditor.goto(c.url + "/auditor/reconcile")
    await auditor.select_option("#peer", "taiyuan")
    await auditor.click("#run-reconcile")
    await auditor.wait_for_selector("#gaps", timeout=TIMEOUT_MS)
    await shot(auditor, "auditor-reconcile")

    # A leaf of the audit log altered in the database: verify names its index.
    async with lanzhou.store.begin() as conn:
        log_id = (
            await conn.execute(
                select(LOGS.c.id).where(LOGS.c.origin == audit_origin(lanzhou.home.identity.uri))
            )
        ).scalar_one()
        await conn.execute(
            update(LEAVES)
            .where(LEAVES.c.log_id == log_id, LEAVES.c.idx == 1)
            .values(data=b"altered")
        )
    await auditor.goto(c.url + "/auditor/verify")
    await auditor.click("#run-verify")
    audit_row = auditor.locator("#logs tr.log", has_text="(audit log)")
    await audit_row.wait_for(timeout=TIMEOUT_MS)
    assert await auditor.locator("#verdict").get_attribute("data-ok") == "no"
    assert (await audit_row.locator("td.first-bad").inner_text()).strip() == "1"


def _check_evidence(path: Path, fed: LocalFederation) -> None:
    """What `creditnode evidence check FILE --bundle jinan.bundle.json` runs."""
    doc = evidence.parse(path.read_bytes())
    origin = export_bundle(load_home(fed["jinan"].home.paths.root))
    verdict = evidence.check(
        doc, root_v1=origin.root_v1_bytes, feed_key=origin.verifying_key, cosigner_bundles=[]
    )
    assert verdict.ok, verdict.to_json()
