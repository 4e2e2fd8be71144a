"""A streaming-chat load generator, run in its own process pinned to its own core: time to first token
and the gaps between tokens, as the client sees them.

Each connection is a closed loop of streamed chat completions on one keep-alive connection (raw
asyncio streams, chunked transfer decoded by hand). For each request it records the time from
sending to the first SSE event that carries text (TTFT) and the time between consecutive text
events (inter-token gaps). Prints one JSON object (or writes it to ``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field

from benchmarks.loadgen import build_request


@dataclass
class StreamTally:
    ttft_s: list[float] = field(default_factory=list)
    gaps_s: list[float] = field(default_factory=list)
    totals_s: list[float] = field(default_factory=list)
    errors: int = 0
    texts: list[str] = field(default_factory=list)


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, tally: StreamTally) -> None:
    started = time.perf_counter()
    writer.write(request)
    status_line = await reader.readuntil(b"\r\n")
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass  # headers: a stream is always chunked
    ok = b" 200 " in status_line
    buffer, last, text = b"", 0.0, []
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            break
        now = time.perf_counter()
        buffer += chunk[:-2]
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event.removeprefix(b"data: ")
            if data == b"[DONE]":
                continue
            payload = json.loads(data)
            if "error" in payload:
                ok = False
                continue
            content = payload["choices"][0]["delta"].get("content") if payload.get("choices") else None
            if content:
                text.append(content)
                if not last:
                    tally.ttft_s.append(now - started)
                else:
                    tally.gaps_s.append(now - last)
                last = now
    tally.totals_s.append(time.perf_counter() - started)
    if not ok:
        tally.errors += 1
    if len(tally.texts) < 2:
        tally.texts.append("".join(text))


async def _worker(host: str, port: int, request: bytes, stop_at: float, tally: StreamTally) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            await _one(reader, writer, request, tally)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    body = json.dumps(
        {
            "model": args.model,
            "messages": [{"role": "user", "content": args.prompt}],
            "stream": True,
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
    ).encode()
    request = build_request(args.host, args.port, "/v1/chat/completions", body, args.header)
    await _worker(args.host, args.port, request, time.perf_counter() + 1.0, StreamTally())  # warm-up
    tally = StreamTally()
    stop_at = time.perf_counter() + args.duration
    await asyncio.gather(*(_worker(args.host, args.port, request, stop_at, tally) for _ in range(args.concurrency)))
    return {"ttft_s": tally.ttft_s, "gaps_s": tally.gaps_s, "totals_s": tally.totals_s, "errors": tally.errors,
            "texts": tally.texts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(run(args))
    with open(args.output, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
