"""Shared fixtures: database backends (SQLite, and a real PostgreSQL the session starts) and
a factory of in-process federations on 127.0.0.1:0."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from node.local_federation import LocalFederation
from node.logs import configure_logging
from node.storage import Store
from tests.pgserver import PgServer, find_pg_bin

BACKENDS = ["sqlite", "postgresql"]

CITY_POOL = [
    ("jinan", "370100"),
    ("lanzhou", "620100"),
    ("taiyuan", "140100"),
    ("zhengzhou", "410100"),
    ("xian", "610100"),
]


@pytest.fixture(scope="session", autouse=True)
def _json_logs() -> None:
    """Node logs go through the standard library, where caplog can see them."""
    configure_logging("info")


@pytest.fixture(scope="session", autouse=True)
def _no_metrics_listener() -> Iterator[None]:
    """Nodes under test serve no metrics listener (the default port would be shared by every
    node of every test run); tests/test_metrics.py turns it on at 127.0.0.1:0."""
    before = os.environ.get("CREDITNODE_METRICS_LISTEN")
    os.environ["CREDITNODE_METRICS_LISTEN"] = ""
    yield
    if before is None:
        os.environ.pop("CREDITNODE_METRICS_LISTEN", None)
    else:
        os.environ["CREDITNODE_METRICS_LISTEN"] = before


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    required = os.environ.get("CREDITNODE_TEST_POSTGRES") == "require"
    if find_pg_bin() is None:
        if required:
            pytest.fail(
                "PostgreSQL is required (CREDITNODE_TEST_POSTGRES=require) but initdb "
                "is missing; run `make postgres-server`"
            )
        yield None
        return
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


DbUrlFactory = Callable[[str], Awaitable[str | None]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, pg_server: PgServer | None) -> str:
    if request.param == "postgresql" and pg_server is None:
        pytest.skip("PostgreSQL not installed (make test installs and requires it)")
    return str(request.param)


@pytest.fixture
async def new_database(backend: str, pg_server: PgServer | None) -> AsyncIterator[DbUrlFactory]:
    """A factory of empty databases on the test's backend (None = the node home's SQLite)."""
    created: list[str] = []

    async def make(label: str) -> str | None:
        if backend == "sqlite":
            return None
        assert pg_server is not None
        name = f"t_{label.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(pg_server.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(name)
        return pg_server.url(name)

    yield make
    if pg_server is not None and created:
        conn = await asyncpg.connect(pg_server.admin_dsn)
        try:
            for name in created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def db_url(new_database: DbUrlFactory, tmp_path: Path) -> str:
    """One empty database URL on the test's backend."""
    return await new_database("db") or f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated store on :func:`db_url`, closed after the test."""
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()


FederationFactory = Callable[..., Awaitable[LocalFederation]]


@pytest.fixture
async def federation(
    tmp_path: Path, new_database: DbUrlFactory
) -> AsyncIterator[FederationFactory]:
    """``await federation(n)`` starts n enrolled in-process nodes; all stop at teardown."""
    started: list[LocalFederation] = []

    async def make(
        n: int = 3,
        *,
        cities: Sequence[tuple[str, str]] | None = None,
        enroll: bool = True,
        heartbeat: bool = False,
        heartbeat_seconds: float = 0.5,
        subscribe: bool = True,
    ) -> LocalFederation:
        chosen = list(cities or CITY_POOL[:n])
        urls = {name: await new_database(name) for name, _ in chosen}
        fed = LocalFederation(
            tmp_path / f"fed{len(started)}",
            chosen,
            enroll=enroll,
            heartbeat=heartbeat,
            heartbeat_seconds=heartbeat_seconds,
            database_url=lambda name: urls.get(name),
            subscribe=subscribe,
        )
        await fed.__aenter__()
        started.append(fed)
        return fed

    yield make
    for fed in started:
        await fed.stop(grace=0.5)
