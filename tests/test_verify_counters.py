"""Issue 17: a whole verification pass (what `creditnode verify` runs) recounts each list log's
active-entry counters (list_counts) from its list state and names a counter that drifted; a
clean pass after the repair clears the finding."""

from __future__ import annotations

import pytest
from sqlalchemy import and_, select, update

from node.feeds.counts import COUNTS
from node.runtime import Node
from node.verification import check
from node.verification.counters import first_difference
from node.verification.runner import open_findings, verify_store
from tests.conftest import FederationFactory
from tests.test_verify_stored import _clean


async def _shift_a_counter(node: Node, log_id: int, by: int) -> tuple[str, str]:
    """Add *by* to the first non-zero counter bucket of the log; its (list, end)."""
    async with node.store.engine.begin() as conn:
        row = (
            await conn.execute(
                select(COUNTS.c.list_name, COUNTS.c.disclosure_end)
                .where(and_(COUNTS.c.log_id == log_id, COUNTS.c.n > 0))
                .order_by(COUNTS.c.list_name, COUNTS.c.disclosure_end)
                .limit(1)
            )
        ).one()
        await conn.execute(
            update(COUNTS)
            .where(
                and_(
                    COUNTS.c.log_id == log_id,
                    COUNTS.c.list_name == row[0],
                    COUNTS.c.disclosure_end == row[1],
                )
            )
            .values(n=COUNTS.c.n + by)
        )
    return str(row[0]), str(row[1])


@pytest.mark.parametrize("where", ["origin", "partner"])
async def test_a_drifted_counter_is_a_finding_and_a_clean_pass_clears_it(
    federation: FederationFactory, where: str
) -> None:
    node, log_id = await _clean(federation, where)
    list_name, _end = await _shift_a_counter(node, log_id, 3)
    report = await verify_store(node.home, node.store)
    found = [f for f in report.findings if f.kind == check.COUNTERS]
    assert len(found) == 1, [f.describe() for f in report.findings]
    assert found[0].row.startswith(f"list_counts {list_name} ")
    assert "counter holds" in found[0].detail and "recount" in found[0].detail
    assert all(not r.findings for r in report.logs if r.log_id != log_id)
    assert [f.kind for f in (await open_findings(node.store))[log_id]] == [check.COUNTERS]
    await _shift_a_counter(node, log_id, -3)  # repaired
    assert (await verify_store(node.home, node.store)).findings == []
    assert not (await open_findings(node.store)).get(log_id)


def test_first_difference_names_the_first_bucket_that_differs() -> None:
    assert first_difference({("a", ""): 2}, {("a", ""): 2}) is None
    assert first_difference({("a", ""): 0}, {}) is None  # a zero bucket is no bucket
    row, detail = first_difference({("a", ""): 2, ("b", "x"): 1}, {("a", ""): 2}) or ("", "")
    assert row == "list_counts b x" and "holds 1" in detail and "finds 0" in detail
    row, _ = first_difference({}, {("c", ""): 4}) or ("", "")
    assert row == "list_counts c (no end)"
