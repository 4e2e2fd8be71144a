"""A thread with its own event loop and its own engine on the same database: where work that must not
cost the request loop anything runs (bulk writes of usage and audit rows, periodic polls).

SQLAlchemy's async layer runs on the loop that awaits it: even a one-row SELECT through aiosqlite or
asyncpg costs the awaiting loop a millisecond or two of Python (session, greenlet, result objects).
Awaited from here instead, the request loop pays for one future and one callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from strata.store.database import Database

T = TypeVar("T")


class DatabaseThread:
    def __init__(self, open_database: Callable[[], Database]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="database-thread", daemon=True)
        self._thread.start()
        self.database = self._run_sync(self._open(open_database))

    @staticmethod
    async def _open(open_database: Callable[[], Database]) -> Database:
        database = open_database()  # the engine is made on the thread's own loop
        database.own_thread()
        return database

    def _run_sync(self, work: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_awaited(work), self._loop).result()

    async def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """``work(database)`` on the thread; the caller's loop only waits for its result."""
        # Shielded: a caller that stops waiting (cancelled at shutdown) must not cancel the work midway
        # on the other loop, where it would leave a session or a transaction open; it finishes there.
        done = asyncio.run_coroutine_threadsafe(_call(work, self.database), self._loop)
        return await asyncio.shield(asyncio.wrap_future(done))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run_sync(_drain_and_close(self.database))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


async def _drain_and_close(database: Database) -> None:
    """Let work already started finish, then close the engine."""
    running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*running, return_exceptions=True)
    await database.close()


async def _awaited(work: Awaitable[T]) -> T:
    return await work


async def _call(work: Callable[[Any], Awaitable[T]], database: Any) -> T:
    return await work(database)
