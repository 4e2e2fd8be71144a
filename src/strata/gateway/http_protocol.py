"""The HTTP/1.1 connection, guarded against slow and hostile clients (uvicorn's httptools protocol,
with the deadlines it lacks).

uvicorn arms no timer on a connection until its first response is complete: a client that opens a
connection and sends nothing, or trickles its headers a byte at a time (slowloris), holds the
connection and its memory for ever; headers have no size bound; a body may take any time; and a
streaming reader that stops reading parks the response (and the generation feeding it) on a write
that never drains. This protocol adds, per connection and with no cost on the request path beyond
arming and cancelling a timer:

1. ``header_timeout_s``: from the connection's opening, or the end of its previous response, to the
   end of the next request's headers. Past it the connection is closed (idle keep-alive connections
   are closed sooner, by uvicorn's ``timeout_keep_alive``).
2. ``max_header_bytes``: the request line and headers together; past it, 431 and close.
3. ``body_timeout_s``: from the end of the headers to the end of the body; past it the connection is
   closed and the application sees the client gone.
4. ``send_timeout_s``: how long a response may wait for a client that does not read (the transport's
   buffer over its high-water mark); past it the connection is aborted, so the application's send
   returns and a stream's generation is cancelled like any other disconnect.

The number of connections is bounded by ``gateway.max_connections`` (uvicorn's ``limit_concurrency``:
past it new requests get 503).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\nRequest headers are too large.\r\n"
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """Set the four limits with ``guarded_protocol``; the defaults here are the spec's."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    send_timeout_s = 30.0
    max_header_bytes = 65_536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None  # the header or the body deadline
        self._send_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    # 1. and 3.: one deadline at a time

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # a body in progress sees http.disconnect

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_header_bytes(len(name) + len(value))

    def _count_header_bytes(self, size: int) -> None:
        # 2. A bound on what the parser makes us keep before the request even starts.
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            return  # refused above: start no request
        self._arm(self.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a request already read starts now: its headers are in
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm(self.header_timeout_s)  # the next request's headers are due in time too

    # 4. A reader that stopped reading

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.send_timeout_s, self._abort_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _abort_stalled(self) -> None:
        self._send_deadline = None
        self.transport.abort()  # drops the unsent buffer: connection_lost frees the waiting send

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None
        super().connection_lost(exc)


def guarded_protocol(
    *, header_timeout_s: float, body_timeout_s: float, send_timeout_s: float, max_header_bytes: int
) -> type[GuardedHttpProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    limits = {
        "header_timeout_s": header_timeout_s,
        "body_timeout_s": body_timeout_s,
        "send_timeout_s": send_timeout_s,
        "max_header_bytes": max_header_bytes,
    }
    return type("StrataHttpProtocol", (GuardedHttpProtocol,), limits)
