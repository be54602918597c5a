"""`creditnode lists`: the mirror, every list this node holds, removals applied.

An entry past its disclosure end is not shown as active on its day, even before its origin's
REMOVE arrives. A peer's removed entry is a bare row (id, list, reason): its holder keeps
nothing of what it said.

Rows of a log that does not stand verified (marked ``tampered`` or ``forked``, or with
standing ``creditnode verify`` findings) are marked ``UNVERIFIED``, a ``warning:`` line says
why, and the command exits 7 unless ``--allow-unverified``."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Select, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from node.api import feeds
from node.cli.console import data_text
from node.cli.render import emit_json_line
from node.errors import InputError, VerificationError
from node.feeds.dates import is_expired, shanghai_today
from node.feeds.logstore import LOGS
from node.feeds.measures import CATEGORY_LABELS, MeasureCatalogue
from node.feeds.measures_store import cited_by, load_held
from node.feeds.state import STATE, active
from node.home import load_home
from node.storage import Store
from node.text import plain
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


def measures_cell(entry: feeds.ListEntry, held: Mapping[str, MeasureCatalogue]) -> Text:
    """An entry's measures, one a line (code, 强制/推荐, and the name and category where the
    catalogue it cites is held), then that catalogue's label. Partner text, each line inert."""
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
    return Text("\n".join(plain(text) for text in lines) if lines else "-")


# The one order of `lists`, table and JSON alike; a cursor is a row's place in it. Own logs
# have no peer: "" sorts them first on every backend (NULL would not).
_CURSOR_MAX = 4096  # a list name is at most 200 characters


def encode_cursor(peer: str, list_name: str, log_id: int, last_idx: int) -> str:
    """A row's opaque place in the order of `lists`, for ``--after``."""
    raw = json.dumps([peer, list_name, log_id, last_idx], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str, int, int]:
    """The place a ``--after`` cursor names; anything else is one clear InputError."""
    bad = InputError("--after: not a cursor printed by `lists --format json`")
    if not text or len(text) > _CURSOR_MAX or not text.isascii():
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise bad from None
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, str) for v in value[:2])
        or not all(type(v) is int and 0 <= v < 2**63 for v in value[2:])
    ):
        raise bad
    return value[0], value[1], value[2], value[3]


PAGE_MAX = 10**9


def check_page(limit: int, offset: int) -> None:
    """``--limit`` (0 = all) and ``--offset`` are counts of rows: bounded, not negative."""
    for name, value in (("--limit", limit), ("--offset", offset)):
        if not 0 <= value <= PAGE_MAX:
            raise InputError(f"{name} must be between 0 and {PAGE_MAX}")


def measures_json(
    entry: feeds.ListEntry, held: Mapping[str, MeasureCatalogue]
) -> tuple[list[dict[str, Any]], str | None]:
    """An entry's measures (code, mandatory, and name and category where its catalogue is
    held) and the label of the catalogue it cites."""
    ref = entry.measures_catalogue if entry.HasField("measures_catalogue") else None
    cat = held.get(ref.sha256) if ref is not None else None
    items = []
    for m in entry.measures:
        found = cat.find(m.code) if cat is not None else None
        items.append(
            {
                "code": m.code,
                "mandatory": m.mandatory,
                "name": found.name if found is not None else None,
                "category": found.category if found is not None else None,
            }
        )
    return items, (ref.label if ref is not None else None)


def entry_json(
    r: Mapping[str, Any],
    origin_name: str,
    today: dt.date,
    *,
    verified: bool,
    held: Mapping[str, MeasureCatalogue] | None = None,
) -> dict[str, Any]:
    """One state row as `lists --format json` prints it (docs/json.md); *held* adds measures."""
    person = r["subject_type"] == feeds.SUBJECT_TYPE_NATURAL_PERSON
    removed = r["status"] != feeds.ENTRY_STATUS_ACTIVE
    status = (
        "removed"
        if removed
        else "expired"
        if is_expired(r["disclosure_end"], today) or not r["entry"]
        else "active"
    )
    entry = feeds.ListEntry.FromString(r["entry"]) if r["entry"] else None
    doc: dict[str, Any] = {
        "origin": origin_name,
        "list": r["list_name"],
        "list_code": r["list_code"] or "",
        "entry_id": r["entry_id"],
        "subject_type": "natural_person" if person else "organisation",
        "subject": None if person else r["subject_name"],
        "uscc": r["uscc"],
        "type": TYPE.get(r["list_type"], "?"),
        "severity": SEVERITY.get(r["severity"], ""),
        "listed": r["listing_date"],
        "until": r["disclosure_end"],
        "status": status,
        "removal_reason": REASON.get(r["removal_reason"], "?") if removed else None,
        "under_objection": bool(status == "active" and entry and entry.under_objection),
        "verified": verified,
        "cursor": encode_cursor(r["peer"] or "", r["list_name"], r["log_id"], r["last_idx"]),
    }
    if held is not None:
        items, label = (
            measures_json(entry, held) if entry is not None and status == "active" else ([], None)
        )
        doc["measures"] = items
        doc["measures_catalogue"] = label
    return doc


def _status_cell(doc: Mapping[str, Any]) -> str:
    if doc["status"] == "removed":
        return f"removed ({doc['removal_reason']})"
    if doc["under_objection"]:
        return "active, 异议处理中"  # an objection is open at the origin (issue 15)
    return str(doc["status"])


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
    offset: int = 0,
    after: str | None = None,
    fmt: str = "table",
) -> int:
    """Print the lists; return the exit code (7 if rows of an unverified log were matched,
    unless *allow_unverified*). With *measures*, each active entry's measures by name and
    category, from the catalogue its origin cites (held here once verified).

    *limit* 0 means every row; *offset* and *after* (a row's cursor) page. With *fmt* json the
    rows are streamed as JSON lines, one object a row, never all held in memory."""
    check_page(limit, offset)
    place = decode_cursor(after) if after is not None else None
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
        joined = STATE.join(LOGS, LOGS.c.id == STATE.c.log_id)
        order = (
            func.coalesce(LOGS.c.peer, ""),
            STATE.c.list_name,
            STATE.c.log_id,
            STATE.c.last_idx,
        )
        page = select(LOGS.c.peer, STATE).select_from(joined).where(where)
        if place is not None:
            page = page.where(tuple_(*order) > tuple_(*place))
        page = page.order_by(*order).offset(offset or None).limit(limit or None)
        async with store.engine.connect() as conn:
            flagged = await unverified_logs(store, home.settings.name)
            matched: list[tuple[Unverified, int]] = []
            for bad in flagged.values():
                n = (
                    await conn.execute(
                        select(func.count())
                        .select_from(joined)
                        .where(and_(where, LOGS.c.id == bad.log_id))
                    )
                ).scalar_one()
                if n:
                    matched.append((bad, int(n)))
            marked = {bad.name for bad, _ in matched}
            if fmt == "json":
                await _stream_json(store, conn, page, home.settings.name, today, marked, measures)
            else:
                total = (
                    await conn.execute(select(func.count()).select_from(joined).where(where))
                ).scalar_one()
                rows = (await conn.execute(page)).mappings().all()
                held: dict[str, MeasureCatalogue] = {}
                if measures:
                    digests = {cited_by(bytes(r["entry"])) for r in rows if r["entry"]}
                    held = await load_held(conn, digests - {""})
                _print_table(out, home.identity.uri, home.settings.name, rows, total, today,
                             marked, held if measures else None)  # fmt: skip
    warn = err if err is not None else out
    for bad, n in matched:
        warn.print(
            f"warning: {plain(bad.name)}: {plain(bad.why())}: its {n} matching row(s) are not "
            "verified "
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


async def _stream_json(
    store: Store,
    conn: AsyncConnection,
    page: Select[Any],
    own: str,
    today: dt.date,
    marked: set[str],
    measures: bool,
) -> None:
    """Write each row of *page* as a JSON line as it is read (a server-side cursor)."""
    held: dict[str, MeasureCatalogue] = {}
    tried: set[str] = set()
    # Catalogues are read on a second connection: the first is busy with the cursor.
    async with store.engine.connect() as side:
        result = await conn.stream(page)
        async for r in result.mappings():
            origin_name = r["peer"] or own
            if measures and r["entry"]:
                digest = cited_by(bytes(r["entry"]))
                if digest and digest not in tried:
                    tried.add(digest)
                    held.update(await load_held(side, {digest}))
            emit_json_line(
                entry_json(r, origin_name, today, verified=origin_name not in marked,
                           held=held if measures else None)
            )  # fmt: skip
    sys.stdout.flush()


def _print_table(
    out: Console,
    uri: str,
    own: str,
    rows: Sequence[Any],
    total: int,
    today: dt.date,
    marked: set[str],
    held: Mapping[str, MeasureCatalogue] | None,
) -> None:
    measures = held is not None
    table = Table(title=f"lists held by {uri}: {len(rows)} of {total}", title_justify="left")
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
        origin_name = str(r["peer"] or own)
        doc = entry_json(r, origin_name, today, verified=origin_name not in marked)
        status = _status_cell(doc)
        extra = (
            (measures_cell(feeds.ListEntry.FromString(r["entry"]), held),)
            if held is not None and status.startswith("active")
            else ("",)
            if measures
            else ()
        )
        table.add_row(
            data_text(f"{origin_name} (UNVERIFIED)" if not doc["verified"] else origin_name),
            data_text(doc["list"]),
            data_text("(natural person)" if doc["subject"] is None else doc["subject"]),
            data_text(doc["uscc"]),
            data_text(doc["type"]),
            data_text(doc["severity"]),
            data_text(doc["listed"]),
            data_text(doc["until"]),
            data_text(status),
            *extra,
        )
    out.print(table)
