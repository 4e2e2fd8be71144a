"""Wake-ups across processes on PostgreSQL: a submitted or released job NOTIFYs, workers LISTEN.

Without it a worker in another process (a `strata worker`, another gateway) finds new work only
at its next poll (``workflows.poll_ms``, 200 ms by default). The notification is sent inside the
submitting transaction, so PostgreSQL delivers it only once the job is committed and claimable.
Polling stays as the fallback: a lost connection is reopened with backoff, and nothing depends on
a notification arriving (at least once is not needed; a missed one costs one poll interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from strata.store import Database

log = logging.getLogger(__name__)

CHANNEL = "strata_jobs"
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :pipeline)")


async def announce(session: AsyncSession, pipeline: str) -> None:
    """Tell listening workers that a job of ``pipeline`` is claimable once this transaction commits."""
    await session.execute(_NOTIFY, {"pipeline": pipeline})


class JobListener:
    """Calls ``wake`` on every notification, over one dedicated connection kept open."""

    def __init__(self, database: Database, wake: Callable[[], None], *, retry_s: float = 1.0) -> None:
        self._dsn = database.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wake = wake
        self._retry_s = retry_s
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while a LISTEN is in place (tests wait on it)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="workflow-job-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        delay = self._retry_s
        while True:
            try:
                await self._listen_once()
                delay = self._retry_s
            except (TimeoutError, OSError, asyncpg.PostgresError) as error:
                log.warning("job notifications unavailable (%s); polling until reconnected", error)
            self.listening.clear()
            self._wake()  # anything announced while disconnected is found by a claim now
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        try:
            await connection.add_listener(CHANNEL, lambda *_: self._wake())
            self.listening.set()
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
