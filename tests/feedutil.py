"""Building list events and waiting for mirrors, for feed tests and benchmarks."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from node.api import feeds
from node.feeds import ids, projection
from node.feeds.logstore import LOGS
from node.feeds.publisher import Event
from node.feeds.state import STATE
from node.identity.codes import org_code_check_char, uscc_check_char
from node.runtime import Node

PERSON_ID = "11010519491231002X"


def valid_uscc(i: int) -> str:
    """The *i*-th (< 10,000,000) of a run of USCCs whose check characters are right."""
    org8 = f"M{i:07d}"
    first17 = "91370100" + org8 + org_code_check_char(org8)
    return first17 + uscc_check_char(first17)


def org_entry(
    i: int, *, list_name: str = "失信联合惩戒对象名单", valid_code: bool = False
) -> feeds.ListEntry:
    # By default a fixed "X" check character: a code that fails its check (重错码), which
    # many tests rely on; benchmarks of routine paths ask for valid codes.
    return feeds.ListEntry(
        subject_name=f"示例商贸有限公司{i}",
        subject_type=feeds.SUBJECT_TYPE_LEGAL_PERSON,
        uscc=valid_uscc(i) if valid_code else f"91370100MA{i:07d}X",
        legal_rep_name="张三",
        legal_rep_id=PERSON_ID,
        list_type=feeds.LIST_TYPE_BLACK,
        list_name=list_name,
        reason="拒不履行",
        legal_basis="《示例条例》第十条",
        decision_doc_no=f"济示〔2026〕{i}号",
        authority_name="济南市示例局",
        authority_uscc="11370100MB0000000X",
        listing_date="2026-01-15",
        severity=feeds.SEVERITY_SERIOUS,
        disclosure_end="2029-01-15",
        measures=[feeds.Measure(code="M01", mandatory=True)],
        provenance=feeds.PROVENANCE_AUTHORITATIVE,
        status=feeds.ENTRY_STATUS_ACTIVE,
    )


def person_entry(i: int, person_id: str = PERSON_ID, name: str = "李四") -> feeds.ListEntry:
    return feeds.ListEntry(
        subject_type=feeds.SUBJECT_TYPE_NATURAL_PERSON,
        person_name=name,
        person_id=person_id,
        person_id_masked=person_id[:10] + "****" + person_id[14:],
        list_type=feeds.LIST_TYPE_BLACK,
        list_name="失信被执行人",
        reason="有履行能力而拒不履行",
        legal_basis="《最高人民法院关于公布失信被执行人名单信息的若干规定》",
        decision_doc_no=f"(2026)鲁01执{i}号",
        authority_name="济南市中级人民法院",
        authority_uscc="11370000004600000X",
        listing_date="2026-02-01",
        severity=feeds.SEVERITY_GENERAL,
        status=feeds.ENTRY_STATUS_ACTIVE,
    )


def adds(n: int, start: int = 0, *, valid_codes: bool = False) -> list[Event]:
    # Ids as origins issue them (UUIDv7: time-ordered).
    return [
        Event(ids.entry_id(), feeds.EVENT_TYPE_ADD, org_entry(start + i, valid_code=valid_codes))
        for i in range(n)
    ]


async def mirror_size(node: Node, origin: Node) -> int:
    """Leaves of *origin* that *node* holds and has folded into its list state."""
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(LOGS.c.size, LOGS.c.projected_size).where(
                    LOGS.c.origin == origin.home.identity.uri
                )
            )
        ).first()
    return 0 if row is None else min(int(row[0]), int(row[1]))


async def wait_mirrored(node: Node, origin: Node, size: int, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await mirror_size(node, origin) >= size:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"{node.name} mirrored {await mirror_size(node, origin)} of {origin.name}'s {size} leaves"
    )


async def active_entries(node: Node, origin: Node) -> dict[str, int]:
    """entry_id -> status of *origin*'s entries as *node* holds them."""
    async with node.store.engine.connect() as conn:
        log_id = (
            await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == origin.home.identity.uri))
        ).scalar()
        rows = await conn.execute(
            select(STATE.c.entry_id, STATE.c.status).where(STATE.c.log_id == log_id)
        )
        return {e: s for e, s in rows}


async def count_rows(node: Node, table: str) -> int:
    from sqlalchemy import table as sa_table

    async with node.store.engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(sa_table(table)))).scalar_one()
        )


async def no_fold(store: Any, log_id: int, **kw: Any) -> projection.Folded:
    """Stands in for :func:`node.feeds.projection.fold` (monkeypatched): the log grows and the
    projection stays where it is, as in a process that stops after each durable write."""
    async with store.engine.connect() as conn:
        size, projected = await projection.lag(conn, log_id)
    return projection.Folded(0, projected, size, False)
