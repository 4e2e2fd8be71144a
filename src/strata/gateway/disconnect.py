"""Noticing a client that goes away, so its work stops instead of running to the end."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from strata.errors import ClientGone

T = TypeVar("T")


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client disconnects. Only call once the request body has been read."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``, cancelling it (its finally blocks free what it holds) if the client leaves."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        await asyncio.wait({task, watcher})
    if task.cancelled():
        raise ClientGone("The client disconnected before the response was ready.")
    return task.result()
