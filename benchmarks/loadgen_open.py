"""An open-loop HTTP/1.1 load generator, meant to run in its own process: requests leave at a fixed
rate whatever the answers, as independent clients' requests do, so an overload does not slow its
own arrivals (a closed loop would, and would hide the overload it is meant to create).

Raw asyncio streams and a pre-built request, as in benchmarks/loadgen.py; each request takes an
idle keep-alive connection or opens one (up to ``--max-connections``; past it the request counts
as ``dropped``, status 0). Each reply is recorded as (sent at, latency, status, Retry-After seen).
Latency is measured from the request's scheduled send time, so a late send counts against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field

from benchmarks.loadgen import build_request

DROPPED = 0  # status of a request that found no connection free under --max-connections


@dataclass
class Replies:
    sent_at_s: list[float] = field(default_factory=list)  # seconds since the run began
    latencies_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    retry_after: list[bool] = field(default_factory=list)

    def add(self, sent_at_s: float, latency_s: float, status: int, retry_after: bool) -> None:
        self.sent_at_s.append(sent_at_s)
        self.latencies_s.append(latency_s)
        self.statuses.append(status)
        self.retry_after.append(retry_after)


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:] if line)}
    await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers.get(b"retry-after", b"").isdigit()


class Connections:
    """Idle keep-alive connections, reused; a new one opened when none is idle."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self._host, self._port, self._limit = host, port, limit
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection[0].at_eof():
                return connection
            # The server closed it while it sat idle (its keep-alive timeout): dropped here, as HTTP
            # clients check a pooled connection before reusing it, instead of failing a request on it.
            self.lost(connection)
        if self.open >= self._limit:
            return None
        self.open += 1
        return await asyncio.open_connection(self._host, self._port)

    def give_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self._idle.append(connection)

    def lost(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.open -= 1
        connection[1].close()

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


async def _one(connections: Connections, request: bytes, scheduled: float, began: float, replies: Replies) -> None:
    connection = await connections.take()
    if connection is None:
        replies.add(scheduled - began, 0.0, DROPPED, False)
        return
    reader, writer = connection
    try:
        writer.write(request)
        status, retry_after = await _read_reply(reader)
    except (OSError, asyncio.IncompleteReadError):
        connections.lost(connection)
        replies.add(scheduled - began, time.perf_counter() - scheduled, -1, False)
        return
    replies.add(scheduled - began, time.perf_counter() - scheduled, status, retry_after)
    connections.give_back(connection)


async def run(args: argparse.Namespace) -> dict[str, object]:
    with open(args.body_file, "rb") as handle:  # noqa: ASYNC230 - read once, before the clock starts
        body = handle.read()
    request = build_request(args.host, args.port, args.path, body, args.header)
    connections = Connections(args.host, args.port, args.max_connections)
    replies = Replies()
    tasks: set[asyncio.Task[None]] = set()
    began = time.perf_counter()
    total = int(args.rate * args.duration)
    for index in range(total):
        scheduled = began + index / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(connections, request, scheduled, began, replies))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    connections.close()
    return {
        "rate": args.rate,
        "elapsed_s": time.perf_counter() - began,
        "connections": connections.open,
        "sent_at_s": replies.sent_at_s,
        "latencies_s": replies.latencies_s,
        "statuses": replies.statuses,
        "retry_after": replies.retry_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second, sent open-loop")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-connections", type=int, default=2048)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header (repeatable)")
    parser.add_argument("--output", required=True, help="write the JSON here")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    with open(args.output, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
