"""Issue 17: SQLite's name index is part of the projection. A whole verification pass (what
`creditnode verify` runs) names a list-state row the index does not hold as stored, a search
then misses it, and `creditnode verify --rebuild-name-index` rebuilds the index from the rows;
PostgreSQL keeps its trigram index itself."""

from __future__ import annotations

import io
import sqlite3

import pytest
from rich.console import Console
from sqlalchemy import text

from node.cli.verify import verify_home
from node.identity.name_search import search_names
from node.runtime import Node
from node.verification import check
from node.verification.names import _DIFF, _varint, name_index_diff
from node.verification.runner import open_findings, verify_store
from tests.conftest import FederationFactory
from tests.test_verify_stored import _build, _clean, _log_id


async def _an_indexed_row(node: Node, log_id: int) -> tuple[int, str, str, str]:
    """(rowid, entry id, name, normalised name) of the log's first named row."""
    async with node.store.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT rowid, entry_id, subject_name, name_norm FROM list_state "
                    "WHERE log_id = :l AND length(name_norm) >= 3 ORDER BY last_idx LIMIT 1"
                ),
                {"l": log_id},
            )
        ).one()
    return int(row[0]), str(row[1]), str(row[2]), str(row[3])


async def _unindex(node: Node, rowid: int, norm: str, instead: str | None = None) -> None:
    """Take a row out of the name index (FTS5's delete, as a writer that never indexed it
    would leave it), and index *instead* for it if given."""
    async with node.store.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO list_state_names(list_state_names, rowid, name_norm) "
                "VALUES('delete', :r, :n)"
            ),
            {"r": rowid, "n": norm},
        )
        if instead is not None:
            await conn.execute(
                text("INSERT INTO list_state_names(rowid, name_norm) VALUES(:r, :n)"),
                {"r": rowid, "n": instead},
            )


@pytest.mark.parametrize("where", ["origin", "partner"])
async def test_a_row_missing_from_the_name_index_is_a_finding_until_rebuilt(
    federation: FederationFactory, where: str
) -> None:
    node, log_id = await _clean(federation, where)
    if node.store.backend != "sqlite":  # the server keeps its expression index itself
        assert await name_index_diff(node.store, log_id) is None
        return
    rowid, entry_id, name, norm = await _an_indexed_row(node, log_id)
    assert name in [m.name for m in await search_names(node.store, name)]
    await _unindex(node, rowid, norm)
    assert name not in [m.name for m in await search_names(node.store, name)]

    report = await verify_store(node.home, node.store)
    found = [f for f in report.findings if f.kind == check.NAMES]
    assert len(found) == 1, [f.describe() for f in report.findings]
    assert found[0].row == f"list_state entry {entry_id}"
    assert "not in it" in found[0].detail and "1 row(s)" in found[0].detail
    assert name not in found[0].detail and norm not in found[0].detail  # never a data value
    assert all(not r.findings for r in report.logs if r.log_id != log_id)
    assert [f.kind for f in (await open_findings(node.store))[log_id]] == [check.NAMES]

    shown = io.StringIO()
    code = await verify_home(
        node.home.paths.root, Console(file=shown, width=200), rebuild_names=True
    )
    assert code == 0, shown.getvalue()
    assert "name index rebuilt from list_state" in shown.getvalue()
    assert name in [m.name for m in await search_names(node.store, name)]
    assert not (await open_findings(node.store)).get(log_id)


async def test_a_row_indexed_under_another_name_is_a_finding(
    federation: FederationFactory,
) -> None:
    jinan, _, _ = await _build(federation)
    if jinan.store.backend != "sqlite":
        pytest.skip("SQLite's FTS5 index only")
    log_id = await _log_id(jinan, jinan)
    rowid, entry_id, _, norm = await _an_indexed_row(jinan, log_id)
    await _unindex(jinan, rowid, norm, instead="甲乙丙")  # one trigram
    diff = await name_index_diff(jinan.store, log_id)
    assert diff is not None and diff[0] == f"list_state entry {entry_id}"
    assert f"1 trigram(s) in it, {len(norm) - 2} in the name" in diff[1]


def test_the_expected_token_count_is_fts5s_for_every_stored_length() -> None:
    """The check's arithmetic (trigrams of a name, FTS5's varint) agrees with FTS5 itself
    for every length a stored name can have (up to 600 characters) and for none: no row of a
    correct index is ever a finding."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE list_state (log_id, last_idx, entry_id, name_norm)")
    db.execute(
        "CREATE VIRTUAL TABLE list_state_names USING fts5(name_norm, content='list_state', "
        "content_rowid='rowid', tokenize='trigram')"
    )
    names = [None, *("济a😀b"[i % 4] * n for i, n in enumerate(range(601)))]
    db.executemany(
        "INSERT INTO list_state VALUES (1, ?, ?, ?)",
        [(i, f"e{i}", n) for i, n in enumerate(names)],
    )
    db.execute(
        "INSERT INTO list_state_names(rowid, name_norm) SELECT rowid, name_norm FROM list_state"
    )
    assert db.execute(_DIFF.text, {"log_id": 1}).fetchone()[0] == 0
    sizes = [
        _varint(b) for (b,) in db.execute("SELECT sz FROM list_state_names_docsize ORDER BY id")
    ]
    assert sizes == [0, *(max(n - 2, 0) for n in range(601))]
    db.execute("UPDATE list_state_names_docsize SET sz = x'8101' WHERE id = 400")
    bad, first = db.execute(_DIFF.text, {"log_id": 1}).fetchone()[:2]
    assert (bad, first) == (1, 399)
