"""Opening a database: engine, dialect settings, migrations to head, session factory."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from node.errors import StorageError
from node.storage import dialect
from node.storage.reader import Reader

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _upgrade(conn: Connection) -> None:
    # Alembic (with the PostgreSQL dialect it loads) costs about 0.1 s to import: only a
    # database that is not at the head pays for it (see _at_head).
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


_REVISION = re.compile(r'^revision = "([0-9A-Za-z_]+)"$', re.M)
_DOWN = re.compile(r'^down_revision = (?:None|"([0-9A-Za-z_]+)")$', re.M)
_OTHER = re.compile(r"^(?:down_revision|branch_labels|depends_on)\b(?! = None$).*$", re.M)


def script_heads(scripts: Iterable[str]) -> frozenset[str] | None:
    """The head revisions of migration scripts, read from their text; None when a script is
    not in the plain form ours take (one string revision, one string or None down_revision,
    no branch labels or dependencies): then only Alembic can say."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for script in scripts:
        rev, down = _REVISION.findall(script), _DOWN.findall(script)
        others = [m for m in _OTHER.findall(script) if not _DOWN.fullmatch(m)]
        if len(rev) != 1 or len(down) != 1 or others or rev[0] in revisions:
            return None
        revisions.add(rev[0])
        if down[0]:
            downs.add(down[0])
    if not downs <= revisions:
        return None
    return frozenset(revisions - downs) or None


def migration_heads() -> frozenset[str] | None:
    """The heads of this package's migrations (None: ask Alembic)."""
    try:
        return script_heads(
            p.read_text(encoding="utf-8") for p in sorted((MIGRATIONS / "versions").glob("*.py"))
        )
    except (OSError, UnicodeDecodeError):
        return None


async def _at_head(engine: AsyncEngine) -> bool:
    """Whether the database already holds every migration, asked without importing Alembic.
    A connection error propagates (reported like the upgrade's); a database without the
    version table (a new one) is not at head."""
    heads = migration_heads()
    if heads is None:
        return False
    async with engine.connect() as conn:
        try:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        except SQLAlchemyError:
            return False
        return frozenset(str(v) for v in rows.scalars()) == heads


SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite_file(path: Path) -> None:
    """Refuse, in one line, a database path that is a directory, unreadable or not SQLite.

    Checked before connecting: a failed connect would be reported too, but aiosqlite's worker
    thread may then print a traceback of its own as the event loop closes.
    """
    if path.as_posix() == ":memory:" or not (path.exists() or path.is_symlink()):
        return  # created on first use
    if not path.is_file():
        raise StorageError(f"{path}: not a database file (a directory, or not a regular file)")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StorageError(f"{path}: cannot read the database ({exc.strerror or exc})") from None
    if head and head != SQLITE_HEADER:
        raise StorageError(f"{path}: not an SQLite database")


class Store:
    """A migrated database and its session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in
        # growing steps (up to 100 ms) in the busy handler. Queueing this process's write
        # transactions here instead keeps appends, checkpoints and applies from stalling.
        self._writer = asyncio.Lock() if engine.url.get_backend_name() == "sqlite" else None
        self._readers: dict[tuple[tuple[str, str], ...], Reader] = {}

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    @property
    def reader(self) -> Reader | None:
        """The store's plain-driver reader (:mod:`node.storage.reader`), shared by the query
        path and the node's polls, made on first use and closed with the store; None for an
        in-memory SQLite database, which no second connection can see."""
        return self.reader_with({})

    def reader_with(self, settings: Mapping[str, str]) -> Reader | None:
        """:attr:`reader`, with PostgreSQL's connections set up with *settings* (session
        settings, such as the planner's); a reader per set of settings. SQLite has none: its
        reader is the shared one."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:"):
                return None
            settings = {}
        key = tuple(sorted(settings.items()))
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = Reader.of(self, settings)
        return reader

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        try:
            parsed = dialect.normalise_url(url)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            parent = Path(parsed.database).parent
            if not parent.is_dir():
                raise StorageError(f"database directory {parent} does not exist")
            _check_sqlite_file(Path(parsed.database))
        # hide_parameters: a statement error's message (logged, or shown as an error line)
        # never carries the bound values, which may be IDs, names or pseudonyms.
        engine = create_async_engine(parsed, hide_parameters=True, **dialect.engine_options(parsed))
        dialect.configure(engine)
        store = cls(engine)
        if migrate:
            try:
                if not await _at_head(engine):
                    async with engine.begin() as conn:
                        await conn.run_sync(_upgrade)
            except (SQLAlchemyError, OSError) as exc:
                await engine.dispose()
                safe = parsed.render_as_string(hide_password=True)
                raise StorageError(f"cannot open database {safe}: {_first_line(exc)}") from None
        return store

    @classmethod
    @asynccontextmanager
    async def opened(cls, url: str) -> AsyncIterator[Store]:
        """``Store.open`` for the length of a ``with`` block."""
        store = await cls.open(url)
        try:
            yield store
        finally:
            await store.close()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on error."""
        if self._writer is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._writer, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def queued(self) -> AsyncIterator[None]:
        """This process's place in the write queue (SQLite), for a writer on a connection of
        its own (:mod:`node.storage.writer`)."""
        if self._writer is None:
            yield
            return
        async with self._writer:
            yield

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session for reads; use write_session() when it will commit."""
        async with self._sessions() as s:
            yield s

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session that will commit, queued behind this process's other writers."""
        if self._writer is None:
            async with self._sessions() as s:
                yield s
            return
        async with self._writer, self._sessions() as s:
            yield s

    async def journal_mode(self) -> str | None:
        sql = dialect.journal_mode_sql(self.engine.url)
        if sql is None:
            return None
        async with self.engine.connect() as conn:
            return str((await conn.execute(text(sql))).scalar_one())

    async def close(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            await reader.close()
        await self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
