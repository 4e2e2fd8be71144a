"""One background task that lives exactly as long as an ``async with`` block: started on entry,
cancelled and awaited on exit (so nothing it holds outlives the component that owns it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def task_running(work: Callable[[], Coroutine[Any, Any, None]] | None, name: str) -> AsyncIterator[None]:
    """Run ``work()`` as a task named ``name`` for the block; ``work`` None: nothing to run."""
    task = asyncio.create_task(work(), name=name) if work is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
