"""Which database errors mean "the server cannot be reached now" rather than "this statement is wrong".

A stopped, restarting or unreachable PostgreSQL, a connection cut mid-query, a pool with no connection
free in time, or a SQLite file locked past its busy timeout: nothing was done, and the same request
may succeed shortly. ``Database`` turns these into ``DependencyUnavailable`` (503 + Retry-After), so a
route that needs the database answers as the access layer's key lookups do, never with a 500. Any
other error (a constraint, a missing table, a bad statement) is a bug or a bad request and stays as it is.
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy import exc

from strata.errors import DependencyUnavailable

RETRY_AFTER_S = 1.0
_NETWORK_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
                             errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPIPE})  # fmt: skip
# OS-level connection failures, and asyncpg's own: the server refuses connections while it starts or
# stops (57P03, 57P01/02), or the connection went away under a query.
_GONE = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.ConnectionDoesNotExistError,
)


def unreachable(error: BaseException) -> bool:
    """True when ``error``, or anything it wraps, says the database cannot be reached now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _says_unreachable(current):
            return True
        wrapped = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error here
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__ or current.__context__
    return False


def _says_unreachable(error: BaseException) -> bool:
    if isinstance(error, _GONE):
        return True
    if isinstance(error, OSError):
        return error.errno in _NETWORK_ERRNOS
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.TimeoutError):  # no pooled connection came free in time
        return True
    return isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error)


@contextmanager
def reported_as_unavailable() -> Iterator[None]:
    """Raise ``DependencyUnavailable`` instead of an error that says the database cannot be reached
    (the driver's error stays chained, for the logs); let any other error through as it is."""
    try:
        yield
    except Exception as error:
        if unreachable(error):
            raise DependencyUnavailable(
                "The metadata database cannot be reached right now; retry shortly.", retry_after_s=RETRY_AFTER_S
            ) from error
        raise
