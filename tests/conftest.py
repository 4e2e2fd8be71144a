"""Fixtures shared by every test package."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from strata.store import Database
from strata.testing.databases import temporary_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty metadata database: each test using it runs once on SQLite and once on PostgreSQL."""
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated metadata database on each backend."""
    db = Database(database_url)
    await db.migrate()
    try:
        yield db
    finally:
        await db.close()
