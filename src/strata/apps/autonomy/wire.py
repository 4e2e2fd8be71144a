"""A lean keep-alive HTTP/1.1 client for the fleet driver (demo and benchmark).

At thousands of requests per second httpx's connection pool costs more CPU than the server it
measures (its pool scans every connection on every request), so a load generator built on it
reports its own lag as server latency. This client keeps a fixed pool of asyncio stream
connections and parses only what Strata sends (status, headers, Content-Length bodies).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class WireError(ConnectionError):
    """The server closed the connection or sent something this client does not read."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> Reply:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise WireError(f"reply without Content-Length (status {status})")
        return Reply(status, headers, await self.reader.readexactly(int(headers["content-length"])))


class LeanClient:
    def __init__(self, base_url: str, headers: dict[str, str], *, connections: int = 32) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._open = 0
        self._limit = connections

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> Reply:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._fixed}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return await self._send(head.encode("latin-1") + body)

    async def get(self, path: str) -> Reply:
        return await self._send(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._fixed}\r\n".encode())

    async def _send(self, request: bytes) -> Reply:
        connection = await self._acquire()
        try:
            reply = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            self._discard(connection)
            raise WireError(f"{type(error).__name__}: {error}") from error
        if reply.headers.get("connection", "").lower() == "close":
            self._discard(connection)
        else:
            self._idle.put_nowait(connection)
        return reply

    async def _acquire(self) -> _Connection:
        if not self._idle.empty() or self._open >= self._limit:
            return await self._idle.get()
        self._open += 1
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            self._open -= 1
            raise
        return _Connection(reader, writer)

    def _discard(self, connection: _Connection) -> None:
        self._open -= 1
        connection.writer.close()

    async def close(self) -> None:
        while not self._idle.empty():
            self._discard(self._idle.get_nowait())
