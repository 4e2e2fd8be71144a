"""A stream whose reader stops reading is dropped after send_timeout_s, and its generator closed (the
work behind a stream is freed); run with uvicorn in this process and a client that never reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import Receive, Scope, Send

from strata.gateway.http_protocol import guarded_protocol
from strata.gateway.sse import SSEResponse
from strata.testing import free_port

SEND_TIMEOUT_S = 0.3


async def test_a_reader_that_stops_reading_is_dropped_and_its_stream_closed() -> None:
    closed = asyncio.Event()
    sent = 0

    async def events() -> AsyncIterator[bytes]:
        nonlocal sent
        try:
            while True:  # an endless stream: only the client leaving can end it
                sent += 1
                await asyncio.sleep(0)  # a producer waits for its next token; this one only yields
                yield b"data: " + b"x" * 65_536 + b"\n\n"
        finally:
            closed.set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await SSEResponse(events())(scope, receive, send)

    protocol = guarded_protocol(header_timeout_s=5, body_timeout_s=5, send_timeout_s=SEND_TIMEOUT_S,
                                max_header_bytes=65_536)  # fmt: skip
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110  # uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        # The client reads nothing more: its buffers and the server's fill, the server's writes pause,
        # and after send_timeout_s the connection is dropped and the stream's generator closed.
        await asyncio.wait_for(closed.wait(), timeout=20)
        assert sent > 10  # it did stream until the reader's buffers were full
        writer.close()
    finally:
        server.should_exit = True
        await serving
