"""Which database errors become 503 + Retry-After (the server cannot be reached now) and which stay as
they are (a bug or a bad statement)."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import exc, text

from strata.errors import DependencyUnavailable
from strata.store import Database
from strata.store.unreachable import unreachable
from strata.testing import free_port


def _wrapped(driver_error: Exception, *, invalidated: bool = False) -> exc.DBAPIError:
    return exc.DBAPIError.instance("SELECT 1", {}, driver_error, Exception, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        _wrapped(Exception("server closed the connection unexpectedly"), invalidated=True),
        _wrapped(sqlite3.OperationalError("database is locked")),
        exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    ],
    ids=["refused", "timeout", "cut-mid-query", "sqlite-locked", "pool-exhausted"],
)
def test_cannot_reach_the_server(error: Exception) -> None:
    assert unreachable(error)


def test_an_error_raised_from_a_refused_connection_counts() -> None:
    error = RuntimeError("while loading keys")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(sqlite3.OperationalError("no such table: api_keys")),
        exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        FileNotFoundError(2, "No such file or directory"),
        ValueError("a bug"),
    ],
    ids=["missing-table", "constraint", "file-not-found", "bug"],
)
def test_a_wrong_statement_or_a_bug_is_not_an_outage(error: Exception) -> None:
    assert not unreachable(error)


async def test_a_session_on_a_server_that_is_not_there_is_503_at_once() -> None:
    database = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    started = time.monotonic()
    try:
        with pytest.raises(DependencyUnavailable) as refused:
            async with database.session() as session:
                await session.execute(text("SELECT 1"))
        assert refused.value.status == 503
        assert refused.value.headers()["Retry-After"] == "1"
        assert time.monotonic() - started < 5
        with pytest.raises(DependencyUnavailable):
            await database.fetch_one("SELECT 1")
    finally:
        await database.close()


async def test_a_bad_statement_is_raised_as_itself() -> None:
    database = Database("sqlite:///:memory:")
    try:
        with pytest.raises(exc.OperationalError, match="no such table"):
            async with database.session() as session:
                await session.execute(text("SELECT * FROM nowhere"))
    finally:
        await database.close()
