"""`creditnode demo`: a Yellow River alliance of three cities on loopback, in one process.

Each city imports a sample list, the others mirror it (verified against signed checkpoints),
then Jinan removes one entry after a correction and the removal is shown reaching the others;
Lanzhou removes one after credit repair and Jinan's earliest disclosure period ends (the clock
fast-forwarded for that scene), each gone from the other cities' views and files on its day.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import shutil
import signal
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy import and_, func, select

from adapters.samples import generate_rows, write_csv
from keys import OfficerCredential, write_private_file, write_public_file
from node.api import feeds, officers, query, query_rpc
from node.audit.bundle import verify_bundle
from node.audit.export import export_bundle as export_audit
from node.audit.local import out_entry
from node.audit.query import Filter, find_entries
from node.audit.receipts import reconcile_with
from node.audit.reconcile import Gap
from node.audit.wire import new_asker
from node.cli.check import (
    EXIT_CODES,
    VERDICTS,
    call_check,
    partners_table,
    save_reports,
    view_table,
)
from node.cli.console import data_text, line
from node.cli.demo_actions import actions_demo
from node.cli.query import EVALUATE, LOOKUP, answer_table
from node.cli.render import peer_rows_from_records, peer_table
from node.cli.report import load_trust
from node.errors import PeerError
from node.feeds import catalogue, ids
from node.feeds.dates import SHANGHAI, shanghai_today
from node.feeds.expiry import expire_now
from node.feeds.importer import Removal, find_held, import_list, remove_entries
from node.feeds.logstore import LOGS, list_feeds
from node.feeds.note import stored_checkpoint
from node.feeds.publisher import Event
from node.feeds.state import DISCLOSURES, STATE
from node.feeds.state import active as active_on
from node.home import load_home
from node.identity.codes import court_mask
from node.identity.oblivious import pseudonyms_at
from node.identity.registry import entity_by_person
from node.local_federation import LocalFederation
from node.logs import configure_logging
from node.officers.issue import issue_officer
from node.peers.enrollment import export_bundle
from node.peers.transport import secure_channel
from node.reports.envelope import VerifiedReport, verify_report
from node.runtime import Node
from node.storage import Store
from node.verification.runner import verify_store
from node.witness.store import cosigned_checkpoints

CITIES = (("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100"))
SAMPLE_LISTS = {
    "jinan": ("政府采购严重违法失信行为记录名单", "black", 40),
    "lanzhou": ("重大税收违法失信主体名单", "black", 40),
    "taiyuan": ("纳税信用A级纳税人名单", "red", 30),
}


async def views(nodes: list[Node]) -> Group:
    tables = []
    for node in nodes:
        rows = await node.directory.repository.list()
        tables.append(
            peer_table(f"{node.name} ({node.endpoint}) sees", peer_rows_from_records(rows))
        )
    return Group(*tables)


async def holdings(node: Node) -> dict[str, tuple[int, int, int]]:
    """origin name -> (leaves verified, checkpoint size, active entries) held by *node*."""
    active = (
        select(STATE.c.log_id, func.count().label("n"))
        .where(active_on(shanghai_today()))
        .group_by(STATE.c.log_id)
        .subquery()
    )
    async with node.store.engine.connect() as conn:
        rows = await conn.execute(
            select(LOGS.c.peer, LOGS.c.size, LOGS.c.checkpoint_size, func.coalesce(active.c.n, 0))
            .select_from(LOGS.outerjoin(active, active.c.log_id == LOGS.c.id))
            .where(list_feeds())
        )
        return {(p or node.name): (s, c, a) for p, s, c, a in rows}


async def entry_status(node: Node, origin: str, entry_id: str) -> int | None:
    async with node.store.engine.connect() as conn:
        return (
            await conn.execute(
                select(STATE.c.status)
                .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                .where(and_(LOGS.c.origin == origin, STATE.c.entry_id == entry_id))
            )
        ).scalar()


def holdings_table(nodes: list[Node], held: dict[str, dict[str, tuple[int, int, int]]]) -> Table:
    table = Table(
        title="who holds what (leaves verified against the origin's signed "
        "checkpoint / active entries)",
        title_justify="left",
    )
    table.add_column("holder")
    for origin in nodes:
        table.add_column(f"{origin.name}'s lists")
    for holder in nodes:
        cells = []
        for origin in nodes:
            size, cp, act = held[holder.name].get(origin.name, (0, 0, 0))
            mark = ("✓", "green") if size == cp and size > 0 else ("…", "yellow")
            cells.append(line(f"{size} leaves ", mark, f" / {act} active"))
        table.add_row(holder.name, *cells)
    return table


async def wait_until(predicate: object, timeout: float = 30.0) -> float:
    """Seconds until the async *predicate* holds (raises TimeoutError)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if await predicate():  # type: ignore[operator]
            return time.perf_counter() - start
        await asyncio.sleep(0.01)
    what = getattr(predicate, "__name__", "the federation").replace("_", " ")
    raise TimeoutError(f"the demo waited {timeout:g} s for {what} in vain (see its demo.log)")


async def lists_demo(base: Path, nodes: list[Node], console: Console) -> None:
    today = dt.date.today()
    files: dict[str, Path] = {}
    table = Table(title="each city imports its own list", title_justify="left")
    for col in ("city", "list", "rows", "added", "expired", "log size"):
        table.add_column(col)
    for node in nodes:
        list_name, list_type, n = SAMPLE_LISTS[node.name]
        path = base / f"{node.name}-{list_type}.csv"
        write_csv(
            path,
            generate_rows(
                n,
                seed=len(node.name),
                list_name=list_name,
                list_type=list_type,
                region=node.home.settings.region,
                today=today,
            ),
        )
        files[node.name] = path
        spec = catalogue.load(node.home.catalogue_path).resolve(list_name)
        s = await import_list(node.publisher, path, spec, pseudonym_key=node.home.pseudonym_key)
        table.add_row(node.name, list_name, str(s.read), str(s.added), str(s.expired), str(s.size))
    console.print(table)

    async def all_mirrored() -> bool:
        held = {n.name: await holdings(n) for n in nodes}
        want = {n.name: n.publisher.log.frontier.size for n in nodes}
        return all(
            held[h.name].get(o.name, (0, 0, 0))[0] == want[o.name] for h in nodes for o in nodes
        )

    took = await wait_until(all_mirrored)
    console.print(
        f"every city holds every list, verified, {took * 1000:.0f} ms after the last import"
    )
    console.print(holdings_table(nodes, {n.name: await holdings(n) for n in nodes}))

    # A correction at Jinan: the finance bureau withdraws one wrong entry, stating why.
    jinan = nodes[0]
    path = files["jinan"]
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    victim = next(r for r in rows if r["主体类型"] != "自然人")
    spec = catalogue.load(jinan.home.catalogue_path).resolve(SAMPLE_LISTS["jinan"][0])
    [held] = await find_held(jinan.publisher, spec, uscc=victim["统一社会信用代码"])
    entry_id = held.entry_id
    start = time.perf_counter()
    await remove_entries(
        jinan.publisher, spec, [held],
        Removal("correction", shanghai_today(), "济南财采更〔2026〕1号（示例）"),
    )  # fmt: skip
    origin = jinan.home.identity.uri
    for other in nodes[1:]:

        async def removed(other: Node = other) -> bool:
            return await entry_status(other, origin, entry_id) == feeds.ENTRY_STATUS_REMOVED

        await wait_until(removed)
        console.print(
            f"jinan removed {victim['主体名称']} ({victim['统一社会信用代码']}) after a "
            f"correction (更正): the removal reached {other.name} in "
            f"{(time.perf_counter() - start) * 1000:.0f} ms"
        )
    console.print(holdings_table(nodes, {n.name: await holdings(n) for n in nodes}))


# Jinan's agreement with Lanzhou opens Jinan's pseudonym of each person in the feed and for
# enforcement queries; Taiyuan has no agreement with Jinan and gets digests only.
JINAN_LANZHOU = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["enforcement"]
basis = "黄河流域省会城市信用合作 (示例)"

# Everything lanzhou receives is judged together against jinan's reidentification_threshold
# (10,000 candidates). A masked ID would leave it 32 (court) or 2,900 (tax) candidates, and,
# allowed to query, it could have each one's pseudonym evaluated and look it up; a masked name
# would leave 3,500. So the ID leaves as jinan's pseudonym, and the name does not leave.
[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { person_id = "pseudonym" }

[feed.list_entry]
person_pseudonym = "clear"
"""
PERSONAL = ("person_name", "person_id", "person_id_masked", "person_pseudonym")


async def forms_demo(nodes: list[Node], console: Console) -> str | None:
    """One Jinan entry about a person, as Lanzhou and Taiyuan hold it; returns its id."""
    jinan = nodes[0]
    async with jinan.store.engine.connect() as conn:
        entry_id = (
            await conn.execute(
                select(STATE.c.entry_id)
                .where(
                    and_(
                        STATE.c.log_id == jinan.publisher.log.log_id,
                        STATE.c.subject_type == feeds.SUBJECT_TYPE_NATURAL_PERSON,
                        STATE.c.status == feeds.ENTRY_STATUS_ACTIVE,
                    )
                )
                .limit(1)
            )
        ).scalar()
    if entry_id is None:
        return None
    table = Table(title=f"one Jinan entry about a person ({entry_id[:8]}…): the same leaf, "
                  "verified against the same root, as each partner holds it",
                  title_justify="left")  # fmt: skip
    table.add_column("holder")
    for name in PERSONAL:
        table.add_column(name, overflow="fold")
    for holder in nodes[1:]:
        async with holder.store.engine.connect() as conn:
            opened: dict[str, str] = dict(
                (
                    await conn.execute(
                        select(DISCLOSURES.c.field, DISCLOSURES.c.value)
                        .select_from(DISCLOSURES.join(LOGS, LOGS.c.id == DISCLOSURES.c.log_id))
                        .where(
                            and_(
                                LOGS.c.origin == jinan.home.identity.uri,
                                DISCLOSURES.c.entry_id == entry_id,
                            )
                        )
                    )
                ).all()
            )
        table.add_row(
            holder.name,
            *(data_text(opened[n]) if n in opened else Text("digest only", style="dim")
              for n in PERSONAL),
        )  # fmt: skip
    console.print(table)
    return str(entry_id)


async def query_demo(nodes: list[Node], entry_id: str, console: Console) -> None:
    """Lanzhou's officer checks one of Lanzhou's own persons (in the demo, one Jinan lists)
    across the alliance: Jinan evaluates its pseudonym of the ID obliviously (it never sees the
    ID; no city shares a key), Lanzhou finds the entry in its mirror of Jinan's feed, then asks
    Jinan for it under two purposes; Taiyuan, with no agreement, gets nothing. Jinan's border
    renders each answer for the asker's agreement and purpose and records what it let out."""
    jinan, lanzhou, taiyuan = nodes[0], nodes[1], nodes[2]
    async with jinan.store.engine.connect() as conn:
        idno = (
            await conn.execute(
                select(DISCLOSURES.c.value).where(
                    and_(DISCLOSURES.c.entry_id == entry_id, DISCLOSURES.c.field == "person_id")
                )
            )
        ).scalar()  # the officer in Lanzhou has this ID; the demo borrows it from Jinan
    if idno is None:
        return
    found: dict[str, str] = {}
    for asker in (lanzhou, taiyuan):
        peer = await asker.directory.lookup("jinan")
        assert peer is not None
        oprf, receipts = new_asker(), list[int]()
        try:
            [pseud] = await pseudonyms_at(
                peer, asker.home.tls, [idno], purpose="enforcement",
                metadata=oprf.metadata(), receipts=receipts,
            )  # fmt: skip
        except PeerError as exc:
            await asker.audit.record(out_entry(
                oprf, peer="jinan", method=EVALUATE, kind="oprf_evaluation", outcome="refused",
                purpose="enforcement", remote=receipts[0] if receipts else None,
            ))  # fmt: skip
            console.print(f"{asker.name} asks jinan for its pseudonym of the person: {exc}")
            continue
        await asker.audit.record(out_entry(
            oprf, peer="jinan", method=EVALUATE, kind="oprf_evaluation", outcome="received",
            purpose="enforcement", remote=receipts[0],
        ))  # fmt: skip
        found[asker.name] = pseud
        view = await entity_by_person(asker.store, asker.name, {jinan.home.identity.uri: pseud})
        held = ", ".join(f"{m.origin}: {m.list_name}" for m in view.memberships) or "nothing"
        console.print(
            f"{asker.name}'s officer checks person {court_mask(idno)} across the alliance: "
            f"jinan evaluated its pseudonym obliviously (it never saw the ID) → {pseud[:14]}…; "
            f"in {asker.name}'s mirror of jinan's feed: {held}"
        )
    if "lanzhou" not in found:
        return
    for asker, purpose in (
        (lanzhou, "enforcement"),
        (lanzhou, "subsidy"),
        (taiyuan, "enforcement"),
    ):
        request = query.LookupRequest(purpose=purpose, person_pseudonym=found["lanzhou"])
        exchange = new_asker()  # the asker's receipt joins jinan's entry by this id
        async with secure_channel(
            asker.home.tls, jinan.endpoint, jinan.home.identity, jinan.home.tls.ca_pem
        ) as channel:
            resp = await query_rpc.QueryServiceStub(channel).Lookup(
                request, timeout=10, metadata=exchange.metadata()
            )
        await asker.audit.record(out_entry(
            exchange, peer="jinan", method=LOOKUP, kind="query",
            outcome="hit" if resp.answers else "no_hit", purpose=purpose,
            response=resp.SerializeToString(), remote=resp.audit_index,
        ))  # fmt: skip
        table = answer_table("jinan", request, resp)
        table.title = f"{asker.name} asks jinan about that person, for {purpose}"
        console.print(table)
    found_entries = await find_entries(
        jinan.store, jinan.home.identity.uri, Filter(released_only=True)
    )
    record = Table(title="jinan's audit log: answers that let personal data out (recorded "
                   "before each left; no values)", title_justify="left")  # fmt: skip
    for col in ("#", "peer", "method", "purpose", "forms", "values", "leaves", "agreement"):
        record.add_column(col, overflow="fold")
    for idx, e in found_entries:
        leaves = "" if e.leaves is None else f"{e.leaves[0]}–{e.leaves[1]}"
        forms = ",".join(f"{k}={v}" for k, v in e.forms)
        record.add_row(str(idx), e.peer, e.method.rsplit("/", 1)[-1], e.purpose or "(feed)",
                       forms, str(e.values), leaves, ", ".join(e.agreements))  # fmt: skip
    console.print(record)


def _in_files(node: Node, base: Path, *values: str) -> bool:
    """True if any of *values* is in the node's database files or the demo's log."""
    db = node.home.paths.root / "node.db"
    paths = [db, Path(f"{db}-wal"), base / "demo.log"]
    data = b"".join(p.read_bytes() for p in paths if p.exists())
    return any(v.encode() in data for v in values if v)


async def _gone_from_files(node: Node, base: Path, *values: str) -> str:
    """Whether *values* are still in the node's files 5 s after a removal ("found") or gone
    ("found nowhere"). The wipe's WAL checkpoint runs just after the removal commits."""

    async def gone() -> bool:
        return not _in_files(node, base, *values)

    try:
        await wait_until(gone, timeout=5.0)
    except TimeoutError:
        return "found"
    return "found nowhere"


async def lifecycle_demo(base: Path, nodes: list[Node], console: Console) -> None:
    """A repair at Lanzhou and an expiry at Jinan, each gone from every other city on its day,
    and nothing of either left in their files."""
    jinan, lanzhou = nodes[0], nodes[1]
    spec = catalogue.load(lanzhou.home.catalogue_path).resolve(SAMPLE_LISTS["lanzhou"][0])
    async with lanzhou.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.entry_id, STATE.c.subject_name, STATE.c.uscc)
                .where(and_(STATE.c.log_id == lanzhou.publisher.log.log_id,
                            active_on(shanghai_today()), STATE.c.uscc != ""))
                .order_by(STATE.c.last_idx)
                .limit(1)
            )
        ).first()  # fmt: skip
    if row is not None:
        entry_id, name, uscc = row
        [held] = await find_held(lanzhou.publisher, spec, entry_id=entry_id)
        start = time.perf_counter()
        await remove_entries(
            lanzhou.publisher, spec, [held],
            Removal("repair", shanghai_today(), "兰税信修〔2026〕1号（示例）"),
        )  # fmt: skip
        origin = lanzhou.home.identity.uri
        for other in (n for n in nodes if n is not lanzhou):

            async def removed(other: Node = other) -> bool:
                return await entry_status(other, origin, entry_id) == feeds.ENTRY_STATUS_REMOVED

            await wait_until(removed)
            found = await _gone_from_files(other, base, name, uscc)
            console.print(
                f"lanzhou removed {name} ({uscc}) after credit repair (信用修复): the removal "
                f"reached {other.name} in {(time.perf_counter() - start) * 1000:.0f} ms; its "
                f"name and USCC are now {found} in {other.name}'s database, WAL and log"
            )
    async with jinan.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.entry_id, STATE.c.subject_name, STATE.c.uscc,
                       STATE.c.disclosure_end)
                .where(and_(STATE.c.log_id == jinan.publisher.log.log_id,
                            active_on(shanghai_today()), STATE.c.disclosure_end != ""))
                .order_by(STATE.c.disclosure_end)
                .limit(1)
            )
        ).first()  # fmt: skip
    if row is None:
        return
    entry_id, name, uscc, end = row
    day = dt.date.fromisoformat(end) + dt.timedelta(days=1)
    console.print(
        f"\nfast-forward to {day} (this scene only): the disclosure period of jinan's entry "
        f"{entry_id[:8]}… ended on {end}"
    )
    holders = [n for n in nodes if n is not jinan]
    for holder in holders:
        # Before Jinan says anything: the holder's own view, then its own 00:00 run (which
        # also ends its own entries due by then, as every city's would on that day).
        async with holder.store.engine.connect() as conn:
            shown = (
                await conn.execute(
                    select(func.count()).where(and_(STATE.c.entry_id == entry_id, active_on(day)))
                )
            ).scalar_one()
        own, purged = await expire_now(holder.publisher, day)
        await holder.publisher.sign_checkpoint()
        found = await _gone_from_files(holder, base, name, uscc)
        console.print(
            f"  {holder.name}, before any word from jinan: shows it as active: "
            f"{'yes' if shown else 'no'}; its 00:00 run ended {own} own and {purged} peers' "
            f"entries, and jinan's entry is now {found} in its files"
        )
    own, _ = await expire_now(jinan.publisher, day)
    await jinan.publisher.sign_checkpoint()
    origin = jinan.home.identity.uri
    for holder in holders:

        async def expired(holder: Node = holder) -> bool:
            return await entry_status(holder, origin, entry_id) == feeds.ENTRY_STATUS_REMOVED

        await wait_until(expired)
    console.print(
        f"  jinan, back at work, appended {own} REMOVE(expiry) leaf(s); both holders applied them"
    )
    seen = {n.name: await holdings(n) for n in nodes}

    async def settled() -> bool:
        seen.update({n.name: await holdings(n) for n in nodes})
        return all(seen[h.name] == seen[nodes[0].name] for h in nodes)

    with contextlib.suppress(TimeoutError):
        await wait_until(settled, timeout=5.0)
    console.print(holdings_table(nodes, seen))


AUDIT_KINDS = ("query", "oprf_evaluation")


async def audit_demo(base: Path, nodes: list[Node], since: dt.datetime, console: Console) -> None:
    """What an auditor at Jinan can do once the scenes above ran: verify every node's stored
    data, show the Jinan–Lanzhou exchanges as both sides recorded them, export them to a
    bundle and verify it offline, and reconcile Jinan's receipts against Lanzhou's."""
    jinan, lanzhou = nodes[0], nodes[1]
    console.print(
        "\n[bold]audit[/]: every exchange is in both sides' tamper-evident logs", markup=True
    )
    table = Table(title="creditnode verify on every node: each log re-checked leaf by leaf "
                  "against its signed checkpoints, list state against the leaves",
                  title_justify="left")  # fmt: skip
    for col in ("node", "logs", "leaves", "checkpoints", "state rows", "findings"):
        table.add_column(col)
    for node in nodes:
        report = await verify_store(node.home, node.store)
        found = report.findings
        table.add_row(
            node.name, str(len(report.logs)), str(sum(r.leaves for r in report.logs)),
            str(sum(r.checkpoints for r in report.logs)),
            str(sum(r.state_rows for r in report.logs)),
            Text("none", style="green") if not found
            else data_text(f"{len(found)}: {found[0].describe()}", style="red"),
        )  # fmt: skip
    console.print(table)

    here = await find_entries(
        jinan.store, jinan.home.identity.uri, Filter(start=since, peer="lanzhou")
    )
    there = {
        (e.exchange, e.seq): (i, e)
        for i, e in await find_entries(
            lanzhou.store, lanzhou.home.identity.uri, Filter(start=since, peer="jinan")
        )
    }
    both = Table(title="the demo's Jinan–Lanzhou queries, as each side recorded them "
                 "(one exchange id; the answer's SHA-256 on both sides)",
                 title_justify="left")  # fmt: skip
    for col in ("exchange", "kind", "purpose", "jinan", "lanzhou", "outcome", "same answer"):
        both.add_column(col, overflow="fold")
    for idx, e in here:
        if e.kind not in AUDIT_KINDS:
            continue
        other = there.get((e.exchange, e.seq))
        side = f"#{idx} {e.direction}"
        if other is None:
            both.add_row(
                e.exchange, e.kind, data_text(e.purpose), side, Text("none", style="red"),
                e.outcome, "",
            )  # fmt: skip
            continue
        if not (e.response and other[1].response):
            same: str | Text = "(no answer hashed)"  # an evaluation's receipt keeps no hash
        else:
            same = "✓" if other[1].response == e.response else Text("differs", style="red")
        both.add_row(e.exchange, e.kind, data_text(e.purpose), side,
                     f"#{other[0]} {other[1].direction}", e.outcome, same)  # fmt: skip
    console.print(both)

    trust = base / "audit"
    trust.mkdir(exist_ok=True)
    bundles = {n.name: export_bundle(n.home, endpoint=n.endpoint) for n in nodes}
    for name, bundle in bundles.items():
        write_public_file(trust / f"{name}.peer.json", bundle.to_json().encode())
    # Witnesses cosign each audit checkpoint moments after it is signed: let them see the
    # newest (best effort; the export carries the newest cosigned one either way).
    signed = stored_checkpoint(await jinan.audit.sign_checkpoint()).size

    async def witnessed() -> bool:
        async with jinan.store.engine.connect() as conn:
            held = await cosigned_checkpoints(
                conn, jinan.audit.origin, jinan.audit.log.log_id, signed, limit=1
            )
        return bool(held) and stored_checkpoint(held[0][0]).size >= signed

    with contextlib.suppress(TimeoutError):
        await wait_until(witnessed, timeout=5.0)
    now = dt.datetime.now(dt.UTC)
    exported = trust / "jinan-export.json"
    exported.write_bytes(await export_audit(jinan.home, jinan.store, since, now))
    witnesses = [b for name, b in bundles.items() if name != "jinan"]
    v = verify_bundle(exported.read_bytes(), bundles["jinan"], witnesses)
    cosigned = (
        "no cosigned checkpoint yet"
        if v.witnessed_size is None
        else f"{v.cosigned_by} witness cosignature(s) verified on its checkpoint of size "
        f"{v.witnessed_size}"
    )
    console.print(
        f"audit export → {exported.name}: {len(v.entries)} entries, each proved into jinan's "
        f"signed audit tree of size {v.size}; verify-bundle, offline with only the peer "
        f"bundles: verified, {cosigned}",
        markup=False, highlight=False,
    )  # fmt: skip

    gaps: list[Gap] = []
    for _ in range(5):  # a receipt still in flight lands within moments
        mine, theirs, gaps = await reconcile_with(
            jinan.home, jinan.store, "lanzhou", since, now, 10
        )
        if not gaps:
            break
        await asyncio.sleep(0.5)
    console.print(
        f"audit reconcile jinan ↔ lanzhou: {mine} entries at jinan, {theirs} receipts at "
        f"lanzhou, {len(gaps)} exchange(s) recorded on one side only or differing",
        markup=False, highlight=False,
    )  # fmt: skip


def auditor_commands(base: Path, since: dt.datetime) -> str:
    """The commands an auditor can run against the demo's homes while it runs."""
    home = base / "jinan"
    start = since.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")
    export = base / "audit" / "jinan-export.json"
    trust = base / "audit"
    lines = [
        f"creditnode verify --home {home}",
        f"creditnode audit show --home {home} --peer lanzhou --from {start}",
        f"creditnode audit export --home {home} --from {start} --out {export}",
        f"creditnode verify-bundle {export} --trust {trust / 'jinan.peer.json'} "
        f"--cosigner {trust / 'lanzhou.peer.json'} --cosigner {trust / 'taiyuan.peer.json'}",
        f"creditnode audit reconcile --home {home} --peer lanzhou --from {start}",
        f"creditnode evidence export --home {home} --peer lanzhou   # a fork's evidence, "
        "if one is recorded (exit 2: none)",
    ]
    return "an auditor can run, while the demo runs:\n" + "\n".join(f"  {c}" for c in lines)


# Lanzhou and Taiyuan share their signed reports with Jinan for licensing review: the public
# fields of each item (list, measures, reason, basis, decision, authority), nothing personal.
REPORTS_FOR_JINAN = """id = "{owner}-jinan-reports"
version = 1
peers = ["jinan"]
purposes = ["licensing_review"]
basis = "黄河流域省会城市信用报告互认 (示例)"

[[rule]]
data_class = "list_entry"
purposes = ["licensing_review"]
fields = {{}}
"""
JINAN_DEPARTMENT = "11370100MB0000174G"  # 济南市行政审批服务局 (示例)


def _verified(paths: list[str], trust: Path) -> list[tuple[str, VerifiedReport]]:
    """Each saved report checked as `creditnode report verify` does: offline, bundles only."""
    bundles = load_trust(trust)
    return [(p, verify_report(Path(p).read_bytes(), bundles)) for p in paths]


async def check_demo(base: Path, fed: LocalFederation, nodes: list[Node], console: Console) -> None:
    """A Jinan officer, with a credential issued here, checks an entity Lanzhou black-listed
    and Taiyuan red-listed, through Jinan's officer listener: Jinan asks both partners in
    parallel, shows one view with the measures that bind Jinan, saves every signed report and
    verifies each offline with only the alliance's bundles."""
    jinan, lanzhou, taiyuan = nodes[0], nodes[1], nodes[2]
    async with lanzhou.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(STATE.c.entry)
                .where(and_(STATE.c.log_id == lanzhou.publisher.log.log_id,
                            active_on(shanghai_today()), STATE.c.uscc != ""))
                .order_by(STATE.c.last_idx.desc())
                .limit(1)
            )
        ).first()  # fmt: skip
    if row is None:
        return
    black = feeds.ListEntry.FromString(row.entry)
    red_spec = catalogue.load(taiyuan.home.catalogue_path).resolve(SAMPLE_LISTS["taiyuan"][0])
    red = feeds.ListEntry(
        subject_name=black.subject_name, subject_type=black.subject_type, uscc=black.uscc,
        list_type=feeds.LIST_TYPE_RED, list_name=red_spec.name, list_code=red_spec.code,
        reason="纳税信用评价为A级（示例）", legal_basis="《纳税信用管理办法》第二十九条",
        decision_doc_no="并税信〔2026〕8号（示例）", authority_name="太原市税务局（示例）",
        listing_date=shanghai_today().isoformat(), decision_date=shanghai_today().isoformat(),
        measures=[feeds.Measure(code="绿色通道", mandatory=False)],
        provenance=feeds.PROVENANCE_AUTHORITATIVE, status=feeds.ENTRY_STATUS_ACTIVE,
    )  # fmt: skip
    await taiyuan.publisher.append([Event(ids.entry_id(), feeds.EVENT_TYPE_ADD, red)])
    await taiyuan.publisher.sign_checkpoint()
    console.print(
        line(
            "\n",
            ("a Jinan officer's credit check", "bold"),
            ": ",
            data_text(black.subject_name),
            f" ({black.uscc}) is black-listed in Lanzhou and red-listed in Taiyuan",
        )
    )
    # The credential: a client certificate from the federation CA with an officer URI, in a
    # PKCS#12 file under a passphrase; it opens Jinan's officer listener and nothing else.
    officer_dir = base / "officers"
    officer_dir.mkdir(exist_ok=True)
    passphrase = officer_dir / "jinan-officer.pass"
    write_private_file(passphrase, b"demo passphrase, not a secret\n")
    async with Store.opened(jinan.home.database_url) as store:
        credential, record = await issue_officer(
            jinan.home, store, name="审批科 张 (示例)", department=JINAN_DEPARTMENT,
            purposes=("licensing_review",), ca_dir=fed.ca_dir,
        )  # fmt: skip
    p12 = officer_dir / f"jinan-officer-{record.id[:8]}.p12"
    write_private_file(p12, credential.to_pkcs12(b"demo passphrase, not a secret"))
    console.print(
        f"`creditnode officer add` issued {p12.name}: {credential.identity.uri} "
        f"(role officer, department {JINAN_DEPARTMENT}, purpose licensing_review)",
        markup=False, highlight=False,
    )  # fmt: skip
    # The same credential for the console in a browser: the PKCS#12 file to import, and the
    # PEM pair a Playwright browser context is given (the key unencrypted, 0600).
    cert_pem, key_pem, _ = credential.pem()
    write_public_file(officer_dir / "jinan-officer.cert.pem", cert_pem)
    write_private_file(officer_dir / "jinan-officer.key.pem", key_pem)
    if jinan.console_url:
        console.print(
            f"console: {jinan.console_url} (import {p12} into the browser, passphrase in "
            f"{passphrase}; PEM for Playwright: {officer_dir / 'jinan-officer.cert.pem'} "
            f"{officer_dir / 'jinan-officer.key.pem'})",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    held = OfficerCredential.from_pkcs12(p12.read_bytes(), b"demo passphrase, not a secret")
    request = officers.CheckRequest(
        purpose="licensing_review", matter="济审批〔2026〕0421号（示例）", uscc=black.uscc
    )
    start = time.perf_counter()
    resp = await call_check(held, jinan.officer_endpoint, request, timeout=15)
    took = time.perf_counter() - start
    console.print(view_table(resp), markup=False, highlight=False)
    console.print(partners_table(resp), markup=False, highlight=False)
    verdict = VERDICTS.get(resp.outcome, "unknown")
    console.print(
        f"verdict: {verdict} (exit code {EXIT_CODES.get(resp.outcome)}), one request to jinan, "
        f"{took * 1000:.0f} ms; measures marked mandatory bind Jinan's approval",
        markup=False, highlight=False,
    )  # fmt: skip
    trust = base / "trust"
    for node in nodes:
        bundle = export_bundle(load_home(node.home.paths.root))
        write_public_file(trust / f"{node.name}.json", bundle.to_json().encode())
    for path, v in _verified(save_reports(resp, base / "reports"), trust):
        console.print(
            f"creditnode report verify {path} --trust {trust}: verified offline, issued by "
            f"{v.issuer}, {v.items} item(s) proved to its signed checkpoint",
            markup=False, highlight=False,
        )  # fmt: skip


async def run_demo(directory: Path | None, seconds: float | None, console: Console) -> None:
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the audit scene's window
    base = directory or Path(tempfile.mkdtemp(prefix="creditnode-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    configure_logging("info", base / "demo.log")
    console.print(
        line(
            ("Yellow River credit alliance", "bold"),
            ": three nodes on loopback, homes in ",
            data_text(base),
        )
    )
    console.print(f"JSON logs: {base / 'demo.log'}", style="dim")
    if all((base / name / "creditnode.toml").exists() for name, _ in CITIES):
        console.print(
            "restarting the federation kept there: its homes, keys and logs, on the ports it "
            "had where they are free (partners re-enrolled at any new one); the scenes run "
            "again on its data",
            markup=False, highlight=False,
        )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = None if seconds is None else time.monotonic() + seconds
    hint = Text(
        "Ctrl-C stops the federation" if seconds is None else f"stopping after {seconds:g}s",
        style="dim",
    )
    agreements = base / "jinan" / "agreements"
    agreements.mkdir(parents=True, exist_ok=True)
    if not (agreements / "lanzhou.toml").exists():
        (agreements / "lanzhou.toml").write_text(JINAN_LANZHOU, encoding="utf-8")
    for owner in ("lanzhou", "taiyuan"):
        shared = base / owner / "agreements" / "jinan.toml"
        if not shared.exists():
            shared.parent.mkdir(parents=True, exist_ok=True)
            shared.write_text(REPORTS_FOR_JINAN.format(owner=owner), encoding="utf-8")
    try:
        async with LocalFederation(
            base, CITIES, heartbeat_seconds=1.0, officers=True, console=True
        ) as fed:
            nodes = list(fed.nodes.values())
            await lists_demo(base, nodes, console)
            entry_id = await forms_demo(nodes, console)
            if entry_id is not None:
                await query_demo(nodes, entry_id, console)
            await lifecycle_demo(base, nodes, console)
            await audit_demo(base, nodes, started, console)
            await check_demo(base, fed, nodes, console)
            await actions_demo(base, fed, nodes, console)
            console.print(
                "\n" + auditor_commands(base, started), markup=False, highlight=False,
                soft_wrap=True,
            )  # fmt: skip
            with Live(
                Group(await views(nodes), hint),
                console=console,
                auto_refresh=False,
                transient=False,
            ) as live:
                while not stop.is_set():
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
                    live.update(Group(await views(nodes), hint), refresh=True)
            console.print("\nstopping: health NOT_SERVING, draining calls…")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print("federation stopped cleanly")
    if directory is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        console.print(f"homes kept in {base}; `creditnode demo --dir {base}` starts them again")
