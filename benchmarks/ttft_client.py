"""Time to first token, measured by a client in its own process (pinned to its own core when asked).

Each of ``--concurrency`` workers sends streamed chat requests in turn, cycling through the request
bodies in ``--bodies-file`` (a JSON list), until ``--requests`` have been sent; the time from sending
a request to its first content chunk is its TTFT. Prints (or writes) ``{"ttft_s": [...], "errors": n}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from typing import Any

import httpx


async def one(client: httpx.AsyncClient, body: dict[str, Any]) -> float | None:
    started = time.perf_counter()
    async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        if response.status_code != 200:
            return None
        first: float | None = None
        async for line in response.aiter_lines():
            if first is None and line.startswith("data:") and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter() - started
        return first


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bodies = json.loads(open(args.bodies_file).read())  # noqa: ASYNC230, SIM115 - read once, before any request
    order = itertools.islice(itertools.cycle(bodies), args.requests)
    ttfts: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{args.port}", headers=headers, timeout=120) as client:

        async def worker() -> None:
            nonlocal errors
            for body in order:  # shared iterator: each body is sent once, in order
                ttft = await one(client, body)
                if ttft is None:
                    errors += 1
                else:
                    ttfts.append(ttft)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return {"ttft_s": ttfts, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--bodies-file", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(run(args))
    with open(args.output, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
