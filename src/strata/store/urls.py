"""Turns the database URL a user writes into the async driver URL SQLAlchemy needs."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from strata.errors import SpecError

# What users write -> the async driver Strata runs it with.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def async_database_url(text: str) -> URL:
    """``sqlite:///path`` or ``postgresql://host/db`` (async drivers implied), else a SpecError naming the URL."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise SpecError(
            f"store.database_url: cannot parse '{text}' (expected sqlite:///FILE or postgresql://HOST/DB)"
        ) from None
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        known = "sqlite:///FILE, postgresql://HOST/DB"
        raise SpecError(f"store.database_url: unsupported database '{url.drivername}' (use {known})")
    if driver.startswith("sqlite") and url.database in (None, ""):
        raise SpecError("store.database_url: SQLite needs a file (sqlite:///path/to/strata.db); memory is not shared")
    return url.set(drivername=driver)
