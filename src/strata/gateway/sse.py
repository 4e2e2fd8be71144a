"""Server-sent events that stop the producer the moment the client goes away.

Starlette's StreamingResponse may leave an abandoned generator suspended until garbage
collection; here the generator is always closed, so a disconnected client's sequence leaves
the running batch at the next decode step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from strata.gateway.disconnect import wait_for_disconnect

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def sse_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        # Like StreamingResponse, skip Response.__init__: it would declare a Content-Length of 0.
        self.status_code = 200
        self.background = None
        self.init_headers({**(headers or {}), "cache-control": "no-cache", "x-accel-buffering": "no"})
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watcher):
                task.cancel()
            await asyncio.gather(pump, watcher, return_exceptions=True)
            await self._events.aclose()  # type: ignore[attr-defined]
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            # Headers are gone already; the stream's own error event told the client. Log the cause.
            log.error("stream ended with an error", exc_info=pump.exception())

    async def _pump(self, send: Send) -> None:
        async for chunk in self._events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
