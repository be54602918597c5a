"""Storage on both engines: migrations, WAL, and the peer repository."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SAWarning

from keys import PeerBundle
from node.errors import StorageError
from node.home import init_home, load_home
from node.peers.enrollment import export_bundle
from node.storage import Store
from node.storage.peers import PeerRepository


def _bundle(tmp_path: Path, name: str, region: str, port: int) -> PeerBundle:
    init_home(
        tmp_path / name,
        name=name,
        region=region,
        federation="yellow-river",
        advertise=f"127.0.0.1:{port}",
    )
    return export_bundle(load_home(tmp_path / name))


async def test_migrations_create_tables_once(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert {
            "peers",
            "logs",
            "log_leaves",
            "log_hashes",
            "checkpoints",
            "list_state",
            "disclosures",
            "quarantine",
            "feed_evidence",
            "audit_entries",
        } <= set(tables)
        assert "releases" not in tables  # folded into the audit log
        assert version == [(_head(),)]
    finally:
        await store.close()
    again = await Store.open(db_url)  # re-running migrations on a current schema is a no-op
    await again.close()


def _partial(options: dict[str, object]) -> bool:
    return any(k.endswith("_where") and v is not None for k, v in options.items())


async def test_no_index_of_a_written_table_is_a_leading_part_of_another(db_url: str) -> None:
    """An index whose columns begin another's serves no read the longer one does not, and
    every row written pays for it (migration 0026 dropped ix_list_state_uscc)."""
    store = await Store.open(db_url)
    try:
        async with store.engine.connect() as conn:

            def indexes(c: Connection) -> dict[str, list[tuple[tuple[str | None, ...], bool]]]:
                found = inspect(c)
                with warnings.catch_warnings():  # SQLite's reflection skips expression indexes
                    warnings.simplefilter("ignore", SAWarning)
                    return {
                        t: [
                            (tuple(i["column_names"]), _partial(i.get("dialect_options", {})))
                            for i in found.get_indexes(t)
                        ]
                        for t in ("list_state", "log_leaves", "log_hashes", "audit_entries")
                    }

            by_table = await conn.run_sync(indexes)
    finally:
        await store.close()
    assert any(cols == ("uscc", "name_norm") for cols, _ in by_table["list_state"])
    for table, found in by_table.items():
        for cols, partial in found:
            if partial or None in cols:  # a partial index or an expression's: its own rows
                continue
            longer = [o for o, _ in found if len(o) > len(cols) and o[: len(cols)] == cols]
            assert not longer, (table, cols, longer)


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        assert await store.journal_mode() == "wal"
        assert store.backend == "sqlite"
    finally:
        await store.close()


async def test_peer_repository(db_url: str, tmp_path: Path) -> None:
    store = await Store.open(db_url)
    repo = PeerRepository(store)
    try:
        lanzhou = _bundle(tmp_path, "lanzhou", "620100", 7002)
        taiyuan = _bundle(tmp_path, "taiyuan", "140100", 7003)
        assert await repo.upsert(taiyuan)
        assert await repo.upsert(lanzhou)
        assert [p.name for p in await repo.list()] == ["lanzhou", "taiyuan"]

        when = dt.datetime(2026, 11, 22, 8, 30, tzinfo=dt.UTC)
        await repo.record_contact(
            "lanzhou",
            state="up",
            seen=True,
            when=when,
            software_version="9.9",
            protocol_version="v1",
        )
        row = await repo.get("lanzhou")
        assert row is not None
        assert (row.state, row.last_seen, row.software_version) == ("up", when, "9.9")

        moved = lanzhou.model_copy(update={"endpoint": "127.0.0.1:8002"})
        assert not await repo.upsert(moved)  # re-enrollment updates in place
        row = await repo.get("lanzhou")
        assert row is not None
        assert (row.endpoint, row.state, row.last_seen) == ("127.0.0.1:8002", "unknown", when)

        assert await repo.remove("taiyuan")
        assert not await repo.remove("taiyuan")
        assert [p.name for p in await repo.list()] == ["lanzhou"]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "only sqlite and postgresql"),
        ("not a url", "not a URL"),
        ("sqlite:////nonexistent/dir/n.db", "does not exist"),
        ("postgresql://nobody@127.0.0.1:1/x", "cannot open database"),
    ],
)
async def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        await Store.open(url)


def _head() -> str:
    """The newest migration, read from the scripts: every one of them ran."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from node.storage._store import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
