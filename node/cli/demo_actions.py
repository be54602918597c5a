"""The demo's joint-punishment scene (issue 15): initiate → respond → feed back.

Jinan black-lists a company on its procurement list with the mandatory procurement ban
(GP.BAN). Lanzhou applies the ban and records it; a Lanzhou officer's check matches the entry
and records a hit. Taiyuan objects; Jinan rejects the objection with a reason Taiyuan sees;
Taiyuan applies the ban too. Jinan then removes the entry after credit repair, both cities
acknowledge "measures lifted" on their own, and Jinan, having pulled and verified their
actions logs, shows for that one company what each partner did about each measure, when it
lifted them, and every objection with its outcome.

Every step goes through the code path of the command an operator would type (printed beside
it): import, respond, check, objection raise/resolve/list, remove, actions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text
from sqlalchemy import and_, select

from adapters.samples import generate_rows, write_csv
from node.actions.followup import Status
from node.actions.respond import respond
from node.actions.view import origin_view
from node.api import feeds, officers
from node.audit.entry import officer_id
from node.audit.log import load_secret
from node.cli.actions import _table as actions_table
from node.cli.check import VERDICTS, call_check
from node.cli.objection import objections_table
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.importer import Removal, find_held, import_list, remove_entries
from node.feeds.logstore import LOGS
from node.feeds.state import STATE
from node.local_federation import LocalFederation
from node.objections import store as objection_store
from node.objections.core import LABELS, Objection
from node.objections.origin import resolve
from node.objections.raiser import evidence_digest, raise_objection, refresh
from node.officers.issue import issue_officer
from node.runtime import Node
from node.storage import Store

LIST_NAME = "政府采购严重违法失信行为记录名单"  # procurement-serious: GP.BAN is mandatory on it
LIST_CODE = "procurement-serious"
BAN, BID = "GP.BAN", "BID.LIMIT"
MEASURES = f"{BAN}:强制;{BID}:建议"
LANZHOU_FINANCE = "11620100MB00001740"  # 兰州市财政局 (示例)
TAIYUAN_FINANCE = "11140100MB0000174N"  # 太原市财政局 (示例)
REPAIR_DOC = "济财采修〔2026〕5号（示例）"
REJECT_DOC = "济财采复〔2026〕3号（示例）"
REJECT_REASON = "经复核，供应商提供虚假材料的事实清楚、证据确凿，认定无误（示例）"
CHECK_MATTER = "兰财采〔2026〕0517号（示例）"
# Jinan shares its procurement reports with Lanzhou: public fields only, nothing personal.
JINAN_PROCUREMENT = """id = "jinan-lanzhou-procurement"
version = 1
peers = ["lanzhou"]
purposes = ["procurement"]
basis = "黄河流域省会城市政府采购信用联合惩戒 (示例)"

[[rule]]
data_class = "list_entry"
purposes = ["procurement"]
fields = {}
"""


def company_row(today: dt.date, region: str = "370100") -> dict[str, str]:
    """One company for Jinan's procurement list, decided 400 days ago (so a repair is due:
    the list allows one 12 months after the decision), naming the mandatory procurement ban
    and a recommended bidding limit."""
    rows = generate_rows(
        12, seed=2026, list_name=LIST_NAME, list_type="black", region=region, today=today
    )
    row = next(r for r in rows if r["主体类型"] == "法人和其他组织")
    decided = today - dt.timedelta(days=400)
    row.update(
        {
            "认定文书号": "济财采罚〔2025〕901号（示例）",
            "认定日期": decided.isoformat(),
            "列入日期": (decided + dt.timedelta(days=3)).isoformat(),
            "公示截止日期": (decided + dt.timedelta(days=730)).isoformat(),
            "惩戒措施": MEASURES,
        }
    )
    return row


async def held_entry(node: Node, origin: str, entry_id: str) -> feeds.ListEntry | None:
    """*origin*'s entry as *node* holds it (its own or its mirror), or None."""
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.entry)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(and_(LOGS.c.origin == origin, STATE.c.entry_id == entry_id))
            )
        ).first()
    if row is None or not row[0]:
        return None
    return feeds.ListEntry.FromString(bytes(row[0]))


async def until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0, every: float = 0.05
) -> float:
    """Seconds until *predicate* holds, polled every *every* seconds (raises TimeoutError)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if await predicate():
            return time.perf_counter() - start
        await asyncio.sleep(every)
    raise TimeoutError


async def follow_up(jinan: Node, entry_id: str) -> list[Status]:
    """Jinan's follow-up of one entry from what it holds now (`creditnode actions --entry`)."""
    settings = jinan.home.settings
    return await origin_view(
        jinan.store, jinan.home.identity.uri, [p.identity.node for p in jinan.directory.peers()],
        today=shanghai_today(), days=settings.response_days,
        default_days=settings.response_days_default, entry=entry_id,
    )  # fmt: skip


def lifted_lines(rows: list[Status]) -> list[str]:
    """One line per measure a partner lifted: when, and what it did before."""
    return [
        f"{s.peer} lifted {s.measure} on {s.date} ({' → '.join(s.history)})"
        for s in rows
        if s.lifted
    ]


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _command(console: Console, text: str) -> None:
    console.print(f"  $ {text}", markup=False, highlight=False, soft_wrap=True, style="dim")


async def actions_demo(
    base: Path, fed: LocalFederation, nodes: list[Node], console: Console
) -> None:
    """The scene in the module docstring, on the running federation."""
    jinan, lanzhou, taiyuan = nodes[0], nodes[1], nodes[2]
    homes = {n.name: n.home.paths.root for n in nodes}
    origin = jinan.home.identity.uri
    today = shanghai_today()
    console.print(
        "\n[bold]joint punishment across cities[/]: initiate → respond → feed back, "
        "an objection, and the repair coming back as “measures lifted”",
        markup=True,
    )

    # 1. Jinan black-lists a company, naming the mandatory procurement ban.
    row = company_row(today)
    csv_path = base / "jinan-procurement-company.csv"
    write_csv(csv_path, [row])
    spec = catalogue.load(jinan.home.catalogue_path).resolve(LIST_NAME)
    await import_list(jinan.publisher, csv_path, spec, pseudonym_key=jinan.home.pseudonym_key)
    [held] = await find_held(jinan.publisher, spec, uscc=row["统一社会信用代码"])
    entry_id, ref = held.entry_id, f"jinan:{held.entry_id}"
    for holder in (lanzhou, taiyuan):

        async def mirrored(holder: Node = holder) -> bool:
            return await held_entry(holder, origin, entry_id) is not None

        await until(mirrored)
    _say(
        console,
        f"jinan black-lists {row['主体名称']} ({row['统一社会信用代码']}) on {LIST_NAME}, "
        f"measures {BAN} (mandatory) and {BID} (recommended): entry {entry_id}, mirrored by "
        "lanzhou and taiyuan",
    )
    _command(console, f"creditnode import --home {homes['jinan']} --list {LIST_CODE} {csv_path}")

    # 2. Lanzhou applies the ban; the bidding limit does not apply there.
    lz_officer = "兰州市财政局采购监管处 李（示例）"
    await respond(
        lanzhou.home, lanzhou.store, entry=ref, measure=BAN, action="applied",
        department=LANZHOU_FINANCE, officer=lz_officer, date=today,
    )  # fmt: skip
    await respond(
        lanzhou.home, lanzhou.store, entry=ref, measure=BID, action="not_applicable",
        department=LANZHOU_FINANCE, officer=lz_officer, date=today,
        reason="该供应商未参与本市工程招标投标（示例）",
    )  # fmt: skip
    _say(
        console,
        f"lanzhou applies {BAN} (its finance bureau {LANZHOU_FINANCE}) and records "
        f"{BID} as not applicable, in its signed actions log",
    )
    _command(
        console,
        f"creditnode respond --home {homes['lanzhou']} --entry {ref} --measure "
        f"{BAN} --action applied --department {LANZHOU_FINANCE} --officer '{lz_officer}'",
    )

    # 3. A Lanzhou procurement officer checks the company: the match is a hit at Lanzhou.
    agreement = homes["jinan"] / "agreements" / "lanzhou-procurement.toml"
    if not agreement.exists():
        agreement.write_text(JINAN_PROCUREMENT, encoding="utf-8")
    jinan.border.refresh(force=True)
    async with Store.opened(lanzhou.home.database_url) as st:  # as `creditnode officer add`
        credential, _ = await issue_officer(
            lanzhou.home, st, name="采购监管处 李 (示例)", department=LANZHOU_FINANCE,
            purposes=("procurement",), ca_dir=fed.ca_dir,
        )  # fmt: skip
    request = officers.CheckRequest(
        purpose="procurement", matter=CHECK_MATTER, uscc=row["统一社会信用代码"]
    )
    resp = await call_check(credential, lanzhou.officer_endpoint, request, timeout=15)
    matched = [i for i in resp.items if i.origin == "jinan" and i.entry_id == entry_id]
    bans = ", ".join(
        f"{m.code} ({'mandatory' if m.mandatory else 'recommended'})"
        for i in matched
        for m in i.measures
    )
    found = (
        f"jinan's entry matched ({bans}): a hit recorded in lanzhou's actions log"
        if matched
        else "jinan's entry not matched: no hit"
    )
    verdict = VERDICTS.get(resp.outcome, "unknown")
    _say(console, f"a lanzhou officer's procurement check ({CHECK_MATTER}): {verdict}; {found}")
    _command(
        console,
        f"creditnode check --officer lanzhou-officer.p12 --purpose procurement "
        f"--matter '{CHECK_MATTER}' --uscc {row['统一社会信用代码']}",
    )

    # 4. Taiyuan objects; the entry is marked 异议处理中 and Taiyuan suspends the ban meanwhile.
    evidence = base / "objections" / "taiyuan-evidence.txt"
    evidence.parent.mkdir(exist_ok=True)
    evidence.write_text("太原市财政局：供应商提交的更正材料（示例）\n", encoding="utf-8")
    ty_officer = "太原市财政局采购科 王（示例）"
    due = today + dt.timedelta(days=15)
    raised = await raise_objection(
        taiyuan.home, taiyuan.store, "jinan",
        Objection.raise_(
            origin=origin, entry_id=entry_id, grounds="content_error",
            evidence_sha256=evidence_digest(evidence), due=due, raised_by="taiyuan",
            officer=officer_id(load_secret(homes["taiyuan"]), ty_officer),
            at=dt.datetime.now(dt.UTC),
        ),
    )  # fmt: skip

    async def marked(under: bool) -> bool:
        for holder in (lanzhou, taiyuan):
            entry = await held_entry(holder, origin, entry_id)
            if entry is None or entry.under_objection != under:
                return False
        return True

    await until(lambda: marked(True))
    # Lanzhou suspends the ban it applied on its own (suspend_on_objection); the pass runs now
    # rather than on its one-second timer, so the history shown is the same every run.
    if lanzhou.actions is not None:
        await lanzhou.actions.acknowledge_removals()
    await respond(
        taiyuan.home, taiyuan.store, entry=ref, measure=BAN, action="suspended_objection",
        department=TAIYUAN_FINANCE, officer=ty_officer, date=today,
    )  # fmt: skip
    _say(
        console,
        f"taiyuan objects (content error, evidence SHA-256 {raised.evidence_sha256[:12]}…, "
        f"due {due}): objection {raised.id} is {LABELS[raised.state]} at jinan, both holders "
        f"show the entry 异议处理中; lanzhou suspends {BAN} on its own, and taiyuan records "
        f"{BAN} suspended meanwhile",
    )
    _command(
        console,
        f"creditnode objection raise --home {homes['taiyuan']} --entry {ref} "
        f"--grounds content_error --evidence {evidence} --due {due} "
        f"--officer '{ty_officer}'",
    )

    # 5. Jinan rejects it with a reason; the reason reaches Taiyuan.
    await resolve(
        jinan.publisher, catalogue.load(jinan.home.catalogue_path), raised.id, action="reject",
        doc_no=REJECT_DOC, reason=REJECT_REASON, now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    await until(lambda: marked(False))
    if lanzhou.actions is not None:
        await lanzhou.actions.acknowledge_removals()  # and resumes it once the mark is cleared
    updated, problems = await refresh(taiyuan.home, taiyuan.store)
    seen = next((o for o in updated if o.id == raised.id), None)
    if seen is None or seen.resolution is None:
        _say(console, f"taiyuan could not fetch the outcome: {'; '.join(problems) or 'none'}")
    else:
        _say(
            console,
            f"jinan rejects the objection ({seen.resolution.doc_no}); taiyuan sees "
            f"{LABELS[seen.state]} ({seen.state.value}): {seen.resolution.reason}",
        )
    _command(
        console,
        f"creditnode objection resolve --home {homes['jinan']} --id {raised.id} "
        f"--reject --doc-no '{REJECT_DOC}' --reason '{REJECT_REASON}'",
    )
    _command(console, f"creditnode objection list --home {homes['taiyuan']}")

    # 6. Taiyuan applies the ban, and the bidding limit.
    for measure in (BAN, BID):
        await respond(
            taiyuan.home, taiyuan.store, entry=ref, measure=measure, action="applied",
            department=TAIYUAN_FINANCE, officer=ty_officer, date=today,
        )  # fmt: skip
    _say(console, f"taiyuan applies {BAN} and {BID}")

    # 7. Jinan removes the entry after repair; both cities acknowledge the measures lifted.
    [held] = await find_held(jinan.publisher, spec, entry_id=entry_id)
    start = time.perf_counter()
    await remove_entries(jinan.publisher, spec, [held], Removal("repair", today, REPAIR_DOC))
    _command(
        console,
        f"creditnode remove --home {homes['jinan']} --list {LIST_CODE} --entry "
        f"{entry_id} --reason repair --date {today} --doc '{REPAIR_DOC}' --yes",
    )
    # Applied measures: Lanzhou's ban, Taiyuan's ban and bidding limit.
    want = {("lanzhou", BAN), ("taiyuan", BAN), ("taiyuan", BID)}

    async def lifted() -> bool:
        await jinan.pull_actions()  # a failed pull is retried on the next poll
        rows = await follow_up(jinan, entry_id)
        return {(s.peer, s.measure) for s in rows if s.lifted} >= want

    await until(lifted, timeout=30.0, every=0.2)
    _say(
        console,
        f'jinan removed the entry after repair ({REPAIR_DOC}) and sees "measures '
        f'lifted" from lanzhou and taiyuan, {(time.perf_counter() - start) * 1000:.0f} ms '
        "later: each city acknowledged on its own, jinan pulled and verified their actions "
        "logs",
    )

    # 8. At Jinan, for that one company: every partner's response and every objection.
    rows = await follow_up(jinan, entry_id)
    table = actions_table(rows)
    table.title = Text(f"jinan's follow-up of {row['主体名称']} ({entry_id})")
    console.print(table)
    for line in lifted_lines(rows):
        _say(console, f"  {line}")
    objections = await objection_store.find(
        jinan.store, side=objection_store.RECEIVED, entry_id=entry_id
    )
    console.print(
        objections_table(objections, today, f"objections to that entry at jinan: {len(objections)}")
    )
    _command(console, f"creditnode actions --home {homes['jinan']} --entry {entry_id} --pull")
    _command(console, f"creditnode objection list --home {homes['jinan']} --no-refresh")
