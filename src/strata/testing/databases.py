"""Throw-away databases for tests: a fresh SQLite file or a fresh PostgreSQL database per use.

A fresh PostgreSQL database per test run keeps concurrent runs (CI, other checkouts) apart on
one server and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

POSTGRES_SERVER = os.environ.get("STRATA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_SERVER)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """Create ``strata_test_<random>`` on the test server, yield its URL, drop it afterwards."""
    name = f"strata_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        base, _, _ = POSTGRES_SERVER.rpartition("/")
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def temporary_database(kind: str, folder: Path) -> Iterator[str]:
    """``kind`` is ``sqlite`` (a file in ``folder``) or ``postgresql``."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'strata.db'}"
    elif kind == "postgresql":
        with temporary_postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown database kind '{kind}' (sqlite or postgresql)")
