"""One handle on the metadata database: engine, sessions and migrations, whatever the backend."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from strata.store.background import DatabaseThread
from strata.store.urls import async_database_url

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: PostgreSQL serialises concurrent migrations of several gateways on it.
_MIGRATION_LOCK_ID = 0x5354524154410001


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
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

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            yield connection

    async def off_loop(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Run ``work`` on a database thread of its own (see store.background), with its own engine on
        the same database; the calling loop only awaits the result. An in-memory SQLite database cannot
        be opened twice, so there the work runs here."""
        if self.url.database in (None, "", ":memory:") and self.dialect == "sqlite":
            return await work(self)
        if self._thread is None:
            async with self._thread_lock:
                if self._thread is None:
                    url = self.url.render_as_string(hide_password=False)
                    self._thread = await asyncio.to_thread(DatabaseThread, lambda: Database(url, pool_size=2))
        return await self._thread.run(work)

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
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.close)
        await self.engine.dispose()


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
