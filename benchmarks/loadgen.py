"""A lean HTTP/1.1 load generator meant to run in its own process, pinned to its own core.

Raw asyncio streams with keep-alive connections and a pre-built request: the client's own
cost per request is a few tens of microseconds, so it neither starves the server nor
inflates the latencies it reports. Run as a module; it prints one JSON object with the raw
latencies, plus a summary of their percentiles both raw and corrected for coordinated omission.

Coordinated omission: each connection is a closed loop (send, wait for the answer, send again), so
while the server stalls the generator sends nothing and the requests a steady client would have
sent during the stall are never measured - a 100 ms stall counts once, not as the hundred 1 ms
requests that would have queued behind it. The correction is HdrHistogram's
``recordValueWithExpectedInterval``: for each latency L, with E the expected interval between two
requests of one connection, also record L-E, L-2E, ... while they are >= E. A closed-loop
connection sends its next request as soon as the previous one returns, so E is its service time:
we take the run's own median latency at that concurrency, computed after the run (the same E for
every connection of the run, since they all see the same server). The raw latencies and the
maximum (never corrected) stay available.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)


def expected_interval_s(latencies_s: Sequence[float]) -> float:
    """E for the correction: the run's median latency, i.e. how often one closed-loop connection sends."""
    return statistics.median(latencies_s) if latencies_s else 0.0


def corrected_for_coordinated_omission(latencies_s: Sequence[float], expected_interval_s: float) -> list[float]:
    """Each latency L, then L-E, L-2E, ... while >= E (HdrHistogram's recordValueWithExpectedInterval).

    ``E <= 0`` means no expected interval: the latencies come back unchanged.
    """
    corrected: list[float] = []
    for latency in latencies_s:
        corrected.append(latency)
        if expected_interval_s <= 0:
            continue
        missed = 1
        # L - k*E rather than repeated subtraction, so long stalls do not accumulate rounding error.
        while (backfill := latency - missed * expected_interval_s) >= expected_interval_s:
            corrected.append(backfill)
            missed += 1
    return corrected


def _at_rank(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100); NaN for no values."""
    return _at_rank(sorted(values), q)


def summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max of ``latencies_s``, in milliseconds."""
    ordered = sorted(latencies_s)
    if not ordered:
        return {}
    return {**{f"p{q:g}": _at_rank(ordered, q) * 1000.0 for q in (50, 90, 99, 99.9)}, "max": ordered[-1] * 1000.0}


def build_request(host: str, port: int, path: str, body: bytes, headers: list[str] | None = None) -> bytes:
    extra = "".join(f"{line}\r\n" for line in headers or [])
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:] if line)}
    if b"content-length" in headers:
        return status, await reader.readexactly(int(headers[b"content-length"]))
    # Chunked (streamed) bodies: read chunks until the terminating zero-length one.
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body)
        body += chunk[:-2]


async def worker(
    host: str, port: int, request: bytes, stop_at: float, budget: list[int], tally: Tally, keep_bodies: int
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status, body = await read_response(reader)
            tally.latencies_s.append(time.perf_counter() - started)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if len(tally.bodies) < keep_bodies:
                tally.bodies.append(body)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    with open(args.body_file, "rb") as handle:  # noqa: ASYNC230 - read once, before the clock starts
        body = handle.read()
    request = build_request(args.host, args.port, args.path, body, args.header)
    tally = Tally()
    # Warm-up: one request per connection, not measured.
    warm = Tally()
    await asyncio.gather(
        *(worker(args.host, args.port, request, float("inf"), [1], warm, 0) for _ in range(min(args.concurrency, 8)))
    )
    started = time.perf_counter()
    stop_at = started + args.duration
    budget = [args.requests if args.requests > 0 else 1 << 62]
    await asyncio.gather(
        *(
            worker(args.host, args.port, request, stop_at, budget, tally, args.keep_bodies)
            for _ in range(args.concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    interval = expected_interval_s(tally.latencies_s)
    return {
        "elapsed_s": elapsed,
        "expected_interval_s": interval,
        "summary_ms": {
            "raw": summary_ms(tally.latencies_s),
            "corrected": summary_ms(corrected_for_coordinated_omission(tally.latencies_s, interval)),
        },
        "requests": len(tally.latencies_s),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "latencies_s": tally.latencies_s,
        "bodies": [b.decode(errors="replace") for b in tally.bodies],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=0, help="stop after this many (0: duration only)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    parser.add_argument("--keep-bodies", type=int, default=0)
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header (repeatable)")
    parser.add_argument("--output", default=None, help="write the JSON here instead of stdout")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = json.dumps(asyncio.run(run(args)))
    if args.output is None:
        print(result)
        return
    # A file, not a pipe: a result of megabytes arrives whole (a pipe once delivered it broken at 64 KiB).
    with open(args.output, "w") as handle:
        handle.write(result)


if __name__ == "__main__":
    main()
