"""`creditnode lists`: the mirror, every list this node holds, removals applied.

An entry past its disclosure end is not shown as active on its day, even before its origin's
REMOVE arrives. A peer's removed entry is a bare row (id, list, reason): its holder keeps
nothing of what it said.

Rows of a log that does not stand verified (marked ``tampered`` or ``forked``, or with
standing ``creditnode verify`` findings) are marked ``UNVERIFIED``, a ``warning:`` line says
why, and the command exits 7 unless ``--allow-unverified``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import and_, func, select

from node.api import feeds
from node.errors import VerificationError
from node.feeds.dates import is_expired, shanghai_today
from node.feeds.logstore import LOGS
from node.feeds.measures import CATEGORY_LABELS, MeasureCatalogue
from node.feeds.measures_store import cited_by, load_held
from node.feeds.state import STATE, active
from node.home import load_home
from node.storage import Store
from node.verification.standing import Unverified, unverified_logs

TYPE: dict[int, str] = {
    feeds.LIST_TYPE_BLACK: "black",
    feeds.LIST_TYPE_RED: "red",
    feeds.LIST_TYPE_WATCH: "watch",
    feeds.LIST_TYPE_ABNORMAL: "abnormal",
}
SEVERITY: dict[int, str] = {
    feeds.SEVERITY_MINOR: "minor",
    feeds.SEVERITY_GENERAL: "general",
    feeds.SEVERITY_SERIOUS: "serious",
}
REASON: dict[int, str] = {
    feeds.REMOVAL_REASON_REPAIR: "repair",
    feeds.REMOVAL_REASON_EXPIRY: "expiry",
    feeds.REMOVAL_REASON_CORRECTION: "correction",
    feeds.REMOVAL_REASON_REVOCATION: "revocation",
    feeds.REMOVAL_REASON_FULFILLED: "fulfilled",
}


def measures_cell(entry: feeds.ListEntry, held: Mapping[str, MeasureCatalogue]) -> str:
    """An entry's measures, one a line (code, 强制/推荐, and the name and category where the
    catalogue it cites is held), then that catalogue's label. Partner text, escaped."""
    ref = entry.measures_catalogue if entry.HasField("measures_catalogue") else None
    cat = held.get(ref.sha256) if ref is not None else None
    lines = []
    for m in entry.measures:
        line = f"{m.code} {'强制' if m.mandatory else '推荐'}"
        found = cat.find(m.code) if cat is not None else None
        if found is not None:
            line += f" {found.name} ({CATEGORY_LABELS.get(found.category, found.category)})"
        lines.append(line)
    if ref is not None:
        lines.append(f"catalogue {ref.label}" + ("" if cat is not None else " (not held here)"))
    return escape("\n".join(lines)) if lines else "-"


async def show_lists(
    root: Path,
    out: Console,
    *,
    origin: str | None,
    list_name: str | None,
    uscc: str | None,
    include_removed: bool,
    limit: int,
    err: Console | None = None,
    allow_unverified: bool = False,
    measures: bool = False,
) -> int:
    """Print the lists; return the exit code (7 if rows of an unverified log were matched,
    unless *allow_unverified*). With *measures*, a column gives each active entry's measures
    by name and category, from the catalogue its origin cites (held here once verified)."""
    home = load_home(root)
    async with Store.opened(home.database_url) as store:
        conds = []
        if origin is not None:
            name = home.identity.uri if origin == home.settings.name else None
            conds.append(LOGS.c.origin == name if name else LOGS.c.peer == origin)
        if list_name is not None:
            conds.append(STATE.c.list_name == list_name)
        if uscc is not None:
            conds.append(STATE.c.uscc == uscc.strip().upper())
        today = shanghai_today()
        if not include_removed:
            conds.append(active(today))
        where = and_(LOGS.c.id == STATE.c.log_id, *conds)
        async with store.engine.connect() as conn:
            total = (
                await conn.execute(
                    select(func.count())
                    .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                    .where(where)
                )
            ).scalar_one()
            rows = (
                (
                    await conn.execute(
                        select(LOGS.c.peer, STATE)
                        .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                        .where(where)
                        .order_by(LOGS.c.peer, STATE.c.list_name, STATE.c.last_idx)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
            flagged = await unverified_logs(store, home.settings.name)
            matched: list[tuple[Unverified, int]] = []
            for bad in flagged.values():
                n = (
                    await conn.execute(
                        select(func.count())
                        .select_from(STATE.join(LOGS, LOGS.c.id == STATE.c.log_id))
                        .where(and_(where, LOGS.c.id == bad.log_id))
                    )
                ).scalar_one()
                if n:
                    matched.append((bad, int(n)))
            held: dict[str, MeasureCatalogue] = {}
            if measures:
                digests = {cited_by(bytes(r["entry"])) for r in rows if r["entry"]}
                held = await load_held(conn, digests - {""})
    marked = {bad.name for bad, _ in matched}
    table = Table(
        title=f"lists held by {home.identity.uri}: {len(rows)} of {total}", title_justify="left"
    )
    for col in (
        "origin",
        "list",
        "subject",
        "USCC",
        "type",
        "severity",
        "listed",
        "until",
        "status",
        *(("measures",) if measures else ()),
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        person = r["subject_type"] == feeds.SUBJECT_TYPE_NATURAL_PERSON
        status = (
            f"removed ({REASON.get(r['removal_reason'], '?')})"
            if r["status"] != feeds.ENTRY_STATUS_ACTIVE
            else "expired"
            if is_expired(r["disclosure_end"], today) or not r["entry"]
            else "active"
        )
        if status == "active" and feeds.ListEntry.FromString(r["entry"]).under_objection:
            status = "active, 异议处理中"  # an objection is open at the origin (issue 15)
        origin_name = r["peer"] or home.settings.name
        extra = (
            (measures_cell(feeds.ListEntry.FromString(r["entry"]), held),)
            if measures and status.startswith("active")
            else ("",)
            if measures
            else ()
        )
        table.add_row(
            f"{origin_name} (UNVERIFIED)" if origin_name in marked else origin_name,
            r["list_name"],
            "(natural person)" if person else r["subject_name"],
            r["uscc"],
            TYPE.get(r["list_type"], "?"),
            SEVERITY.get(r["severity"], ""),
            r["listing_date"],
            r["disclosure_end"],
            status,
            *extra,
        )
    out.print(table)
    warn = err if err is not None else out
    for bad, n in matched:
        warn.print(
            f"warning: {bad.name}: {bad.why()}: its {n} matching row(s) are not verified "
            "(see `creditnode status`, `creditnode verify`)",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    if matched and not allow_unverified:
        warn.print(
            "error: rows of an unverified origin were shown; pass --allow-unverified to "
            "accept them (exit 0)",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        return VerificationError.exit_code
    return 0
