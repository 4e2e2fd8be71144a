import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from strata.errors import SpecError
from strata.store import Database, async_database_url
from strata.store.database import MIGRATIONS


def _heads() -> set[str]:
    from alembic.script import ScriptDirectory

    from strata.store.database import alembic_config

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


@pytest.mark.parametrize(
    ("written", "driver"),
    [
        ("sqlite:///x/strata.db", "sqlite+aiosqlite"),
        ("postgresql://127.0.0.1/db", "postgresql+asyncpg"),
        ("postgres://127.0.0.1/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://127.0.0.1/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_async_drivers(written: str, driver: str) -> None:
    assert async_database_url(written).drivername == driver


@pytest.mark.parametrize(
    ("written", "reason"),
    [("mysql://127.0.0.1/db", "unsupported database 'mysql'"), ("sqlite://", "needs a file"), ("::", "cannot parse")],
)
def test_bad_urls_are_named(written: str, reason: str) -> None:
    with pytest.raises(SpecError, match=reason) as caught:
        async_database_url(written)
    assert caught.value.message.startswith("store.database_url")


async def test_migrate_reaches_every_head_and_is_idempotent(database: Database) -> None:
    assert await database.revision() == _heads()
    await database.migrate()
    assert await database.revision() == _heads()
    async with database.session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nested' / 'strata.db'}")
    try:
        await database.migrate()
        async with database.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await database.close()


@pytest.mark.slow
def test_processes_migrating_at_once_do_not_collide(database_url: str) -> None:
    """Several gateways start together against one database: each migrates, none fails."""
    script = f"import asyncio; from strata.store import Database; asyncio.run(Database({database_url!r}).migrate())"
    processes = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE) for _ in range(3)]
    outcomes = [(p.communicate(timeout=120)[1].decode(), p.returncode) for p in processes]
    assert [stderr for stderr, code in outcomes if code != 0] == []

    async def heads() -> set[str]:
        database = Database(database_url)
        try:
            return await database.revision()
        finally:
            await database.close()

    assert asyncio.run(heads()) == _heads()


def test_migrations_ship_with_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert any(MIGRATIONS.glob("versions/0001_*.py"))
