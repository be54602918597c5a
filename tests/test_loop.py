"""Joint reward and punishment end to end on three real in-process nodes (issue 15): Jinan
lists a company with the mandatory procurement ban; Lanzhou applies it and an officer's check
there records a hit; Taiyuan objects, Jinan rejects with a reason that reaches Taiyuan, and
Taiyuan applies the ban; Jinan removes the entry after repair, both cities acknowledge the
measures lifted, and Jinan's follow-up shows per city and measure applied → lifted with the
hits."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.samples import write_csv
from node.actions.followup import Status
from node.actions.respond import respond
from node.api import feeds, officers
from node.cli.check import call_check
from node.cli.demo_actions import (
    BAN,
    BID,
    JINAN_PROCUREMENT,
    LIST_NAME,
    company_row,
    follow_up,
    held_entry,
    lifted_lines,
)
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.importer import Removal, find_held, import_list, remove_entries
from node.local_federation import LocalFederation
from node.objections import store
from node.objections.core import Objection, State
from node.objections.origin import resolve
from node.objections.raiser import raise_objection, refresh
from node.officers.issue import issue_officer
from node.runtime import Node
from node.storage import Store
from tests.conftest import DbUrlFactory
from tests.feedutil import active_entries, wait_mirrored

CITIES = [("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100")]
LANZHOU_DEPT = "11620100MB00001740"
TAIYUAN_DEPT = "11140100MB0000174N"
REASON = "经复核，认定事实清楚、证据确凿（示例）"
DOC = "济财采复〔2026〕3号"
MATTER = "兰财采〔2026〕0517号"


@pytest.fixture
async def fed(tmp_path: Path, new_database: DbUrlFactory) -> AsyncIterator[LocalFederation]:
    """Three subscribed nodes with officer listeners on the test's backend; Jinan shares its
    procurement reports with Lanzhou (public fields only)."""
    urls = {name: await new_database(name) for name, _ in CITIES}
    federation = LocalFederation(
        tmp_path / "fed", CITIES, heartbeat=False, officers=True,
        database_url=lambda name: urls.get(name),
    )  # fmt: skip
    async with federation:
        jinan = federation["jinan"]
        (jinan.home.paths.root / "agreements").mkdir(exist_ok=True)
        (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(JINAN_PROCUREMENT)
        jinan.border.refresh(force=True)
        yield federation


async def _eventually(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30.0
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within 30 s: {what}")


def _by(rows: list[Status]) -> dict[tuple[str, str], Status]:
    return {(s.peer, s.measure): s for s in rows}


async def _respond(node: Node, entry_id: str, measure: str, action: str, **kw: str) -> None:
    dept = LANZHOU_DEPT if node.name == "lanzhou" else TAIYUAN_DEPT
    await respond(
        node.home, node.store, entry=f"jinan:{entry_id}", measure=measure, action=action,
        department=dept, officer=f"{node.name} 采购科 王", date=shanghai_today(), **kw,
    )  # fmt: skip


async def test_the_loop_end_to_end(fed: LocalFederation, tmp_path: Path) -> None:
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    origin, today = jinan.home.identity.uri, shanghai_today()

    # Jinan black-lists a company: the mandatory procurement ban and a recommended limit.
    row = company_row(today)
    write_csv(tmp_path / "list.csv", [row])
    spec = catalogue.load(jinan.home.catalogue_path).resolve(LIST_NAME)
    await import_list(
        jinan.publisher, tmp_path / "list.csv", spec, pseudonym_key=jinan.home.pseudonym_key
    )
    [held] = await find_held(jinan.publisher, spec, uscc=row["统一社会信用代码"])
    entry_id = held.entry_id
    assert [(m.code, m.mandatory) for m in held.entry.measures] == [(BAN, True), (BID, False)]
    for holder in (lanzhou, taiyuan):
        await wait_mirrored(holder, jinan, jinan.publisher.log.frontier.size)

    # Lanzhou applies the ban; the bidding limit does not apply there.
    await _respond(lanzhou, entry_id, BAN, "applied")
    await _respond(lanzhou, entry_id, BID, "not_applicable", reason="未参与本市工程招标")

    # A Lanzhou officer's procurement check matches Jinan's entry: a hit at Lanzhou.
    url = lanzhou.store.engine.url.render_as_string(hide_password=False)
    async with Store.opened(url) as st:  # as `creditnode officer add`, another process
        credential, _ = await issue_officer(
            lanzhou.home, st, name="采购监管处 李", department=LANZHOU_DEPT,
            purposes=("procurement",), ca_dir=fed.ca_dir,
        )  # fmt: skip
    request = officers.CheckRequest(purpose="procurement", matter=MATTER, uscc=held.entry.uscc)
    resp = await call_check(credential, lanzhou.officer_endpoint, request, timeout=20)
    assert resp.outcome == officers.CHECK_OUTCOME_BLACK_LISTED
    [item] = [i for i in resp.items if i.origin == "jinan"]
    assert item.entry_id == entry_id
    assert [(m.code, m.mandatory) for m in item.measures] == [(BAN, True), (BID, False)]

    # Taiyuan objects: the origin marks the entry, every holder shows it, Taiyuan suspends.
    o = Objection.raise_(
        origin=origin, entry_id=entry_id, grounds="content_error",
        evidence_sha256=hashlib.sha256(b"evidence").hexdigest(),
        due=today + dt.timedelta(days=15), raised_by="taiyuan", at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    raised = await raise_objection(taiyuan.home, taiyuan.store, "jinan", o)
    assert raised.state == State.UNDER_OBJECTION

    async def marked(under: bool) -> bool:
        for holder in (lanzhou, taiyuan):
            entry = await held_entry(holder, origin, entry_id)
            if entry is None or entry.under_objection != under:
                return False
        return True

    await _eventually(lambda: marked(True), "the mark reaches both holders")
    # Lanzhou suspends the ban it applied on its own (suspend_on_objection); the pass runs
    # here rather than on its one-second timer, so the history below is the same every run.
    assert lanzhou.actions is not None
    await lanzhou.actions.acknowledge_removals()
    await _respond(taiyuan, entry_id, BAN, "suspended_objection")

    # Jinan rejects it with a reason; the reason and document reach Taiyuan.
    await resolve(
        jinan.publisher, catalogue.load(jinan.home.catalogue_path), o.id, action="reject",
        doc_no=DOC, reason=REASON, now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    await _eventually(lambda: marked(False), "the mark is cleared at both holders")
    await lanzhou.actions.acknowledge_removals()  # and resumes it once the mark is cleared
    updated, problems = await refresh(taiyuan.home, taiyuan.store)
    assert problems == []
    [seen] = updated
    assert seen.state == State.REJECTED and seen.resolution is not None
    assert (seen.resolution.reason, seen.resolution.doc_no) == (REASON, DOC)
    await _respond(taiyuan, entry_id, BAN, "applied")
    await _respond(taiyuan, entry_id, BID, "applied")

    # Before the removal: Jinan sees both cities' responses and Lanzhou's hit.
    assert await jinan.pull_actions() == {"lanzhou": "", "taiyuan": ""}
    before = _by(await follow_up(jinan, entry_id))
    assert {k: (s.action, s.responded, s.hits) for k, s in before.items()} == {
        ("lanzhou", BAN): ("applied", True, 1),
        ("lanzhou", BID): ("not_applicable", True, 1),
        ("taiyuan", BAN): ("applied", True, 0),
        ("taiyuan", BID): ("applied", True, 0),
    }
    assert before[("lanzhou", BID)].reason == "未参与本市工程招标"

    # Jinan removes the entry after repair; each city acknowledges the applied measures lifted.
    [held] = await find_held(jinan.publisher, spec, entry_id=entry_id)
    await remove_entries(
        jinan.publisher, spec, [held], Removal("repair", today, "济财采修〔2026〕5号")
    )
    for holder in (lanzhou, taiyuan):
        await wait_mirrored(holder, jinan, jinan.publisher.log.frontier.size)
        assert (await active_entries(holder, jinan))[entry_id] == feeds.ENTRY_STATUS_REMOVED
    applied = {("lanzhou", BAN), ("taiyuan", BAN), ("taiyuan", BID)}

    async def lifted() -> bool:
        await jinan.pull_actions()
        rows = await follow_up(jinan, entry_id)
        return {(s.peer, s.measure) for s in rows if s.lifted} >= applied

    await _eventually(lifted, "both cities' lifted acknowledgements reach jinan")

    # The origin's follow-up: per city and measure, applied → lifted, with the hit counts.
    rows = await follow_up(jinan, entry_id)
    after = _by(rows)
    assert {k: (s.history, s.lifted, s.hits, s.overdue) for k, s in after.items()} == {
        ("lanzhou", BAN): (["applied", "suspended_objection", "applied", "lifted"], True, 1, False),
        ("lanzhou", BID): (["not_applicable"], False, 1, False),
        ("taiyuan", BAN): (["suspended_objection", "applied", "lifted"], True, 0, False),
        ("taiyuan", BID): (["applied", "lifted"], True, 0, False),
    }
    assert all(after[k].date == today.isoformat() for k in applied)
    assert sorted(lifted_lines(rows)) == sorted(
        f"{p} lifted {m} on {today} ({' → '.join(after[(p, m)].history)})" for p, m in applied
    )
    # Each applied measure lifts once, however many passes run.
    assert lanzhou.actions is not None and taiyuan.actions is not None
    assert await lanzhou.actions.acknowledge_removals() == 0
    assert await taiyuan.actions.acknowledge_removals() == 0
    # Both sides hold the objection with its outcome.
    [at_jinan] = await store.find(jinan.store, side=store.RECEIVED, entry_id=entry_id)
    [at_taiyuan] = await store.find(taiyuan.store, side=store.RAISED, entry_id=entry_id)
    assert at_jinan.objection == at_taiyuan.objection == seen
