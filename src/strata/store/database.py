"""One handle on the metadata database: engine, sessions and migrations, whatever the backend."""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from strata.store.background import DatabaseThread
from strata.store.unreachable import reported_as_unavailable
from strata.store.urls import async_database_url

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: PostgreSQL serialises concurrent migrations of several gateways on it.
_MIGRATION_LOCK_ID = 0x5354524154410001


_SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=10000", "foreign_keys=ON", "synchronous=NORMAL")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Database:
    """``db = Database("sqlite:///strata.db"); await db.migrate(); async with db.session() as s: ...``"""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = async_database_url(url)
        self.dialect = "sqlite" if self.url.drivername.startswith("sqlite") else "postgresql"
        options: dict[str, Any] = {}
        if self.dialect == "sqlite":
            Path(self.url.database or "").parent.mkdir(parents=True, exist_ok=True)
        else:
            # A server can drop idle connections; a local SQLite file cannot, so the ping (one more
            # round trip through aiosqlite's thread on every checkout) is kept for PostgreSQL only.
            options |= {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": pool_size}
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._pool_size = pool_size
        self._thread: DatabaseThread | None = None
        self._thread_lock = asyncio.Lock()
        self._on_own_thread = False  # set by DatabaseThread on the handle it owns
        self._sqlite: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error. A server that cannot
        be reached raises ``DependencyUnavailable`` (503 + Retry-After), see store.unreachable."""
        with reported_as_unavailable():
            async with self.sessions() as session, session.begin():
                yield session

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction; errors as ``session``."""
        with reported_as_unavailable():
            async with self.engine.begin() as connection:
                yield connection

    async def off_loop(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Run ``work`` on a database thread of its own (see store.background), with its own engine on
        the same database; the calling loop only awaits the result. An in-memory SQLite database cannot
        be opened twice, so there the work runs here."""
        if self.in_memory:
            return await work(self)
        if self._thread is None:
            async with self._thread_lock:
                if self._thread is None:
                    url = self.url.render_as_string(hide_password=False)
                    self._thread = await asyncio.to_thread(DatabaseThread, lambda: Database(url, pool_size=2))
        return await self._thread.run(work)

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database: one connection sees it, no second opener (thread or process)."""
        return self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")

    def own_thread(self) -> None:
        """Called by the DatabaseThread that owns this handle: work on it may block that thread."""
        self._on_own_thread = True

    def plain_sqlite(self) -> sqlite3.Connection | None:
        """A plain ``sqlite3`` connection (autocommit: callers BEGIN and COMMIT) for the small statements
        the background work repeats all the time (key-version polls, idle job checks, audit batches).

        Only on a file database's own thread (see ``off_loop``), else None: one statement through
        SQLAlchemy's async layer and aiosqlite's thread costs 0.4-0.9 ms of CPU, through sqlite3 about
        5 µs, and on a one-core gateway that CPU is taken from requests (and contends for the GIL)."""
        if not self._on_own_thread or self.dialect != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        if self._sqlite is None:
            connection = sqlite3.connect(self.url.database, isolation_level=None, check_same_thread=True)
            for pragma in _SQLITE_PRAGMAS:
                connection.execute(f"PRAGMA {pragma}")
            self._sqlite = connection
        return self._sqlite

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of one plain SQL statement (``?`` marks), the cheapest way the backend has."""
        plain = self.plain_sqlite()
        if plain is not None:
            row: tuple[Any, ...] | None = plain.execute(sql, tuple(params)).fetchone()
            return row
        with reported_as_unavailable():
            async with self.engine.connect() as connection:
                if connection.dialect.paramstyle == "numeric_dollar":
                    sql = _dollar_marks(sql)
                result = await connection.exec_driver_sql(sql, tuple(params))
                first = result.first()
                return tuple(first) if first is not None else None

    async def migrate(self) -> None:
        """Apply every migration head; safe to call from several processes at once."""
        if self.dialect == "sqlite":
            await asyncio.to_thread(self._migrate_sqlite_locked)
        else:
            async with self.engine.begin() as connection:
                await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                await connection.run_sync(_upgrade)

    def _migrate_sqlite_locked(self) -> None:
        # SQLite has no advisory locks: a lock file beside the database serialises migrating processes.
        lock_path = Path(f"{self.url.database}.migrate.lock")
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            asyncio.run(self._migrate_in_new_engine())

    async def _migrate_in_new_engine(self) -> None:
        # Runs on a worker thread with its own loop, so it needs its own engine (connections are loop-bound).
        engine = create_async_engine(self.url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_upgrade)
        finally:
            await engine.dispose()

    async def revision(self) -> set[str]:
        """The revisions the database is at (one per migration branch)."""
        async with self.engine.connect() as connection:
            return await connection.run_sync(_current_heads)

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.close)
        await self.engine.dispose()


def _dollar_marks(sql: str) -> str:
    """``?`` marks as asyncpg's ``$1, $2, ...`` (the statements here carry no literal '?')."""
    parts = sql.split("?")
    return "".join(part + (f"${index}" if index < len(parts) else "") for index, part in enumerate(parts, 1))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")


def _current_heads(connection: Connection) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())
