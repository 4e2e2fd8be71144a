"""Tracing's CPU cost per request, measured in process: the gateway driven as ASGI, no sockets.

A served benchmark on a shared machine measures the neighbours as much as the server; this one
measures what tracing itself adds to one request's work on the event loop. Two gateways of the same
app (the no-op model, access ON with a tenant key, usage and audit), one with tracing off and one
on, are built in this process and driven in alternating blocks of requests; each block's time
includes draining the trace buffer (the sampling work tracing does after responses), so the
figure is tracing's whole per-request cost. Medians over blocks resist interference.

    python -m benchmarks.tracing_cost --blocks 30 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import pinned_here
from benchmarks.request_path import BODY, EXPECTED, PATH, with_access
from strata.access.control import ADMIN_KEY_ENV
from strata.gateway.app import create_app
from strata.gateway.asgi import Gateway
from strata.spec import AppSpec

ADMIN_KEY = "sk-strata-bench-admin-0123456789abcdef"
_BODY = json.dumps(BODY).encode()


class InProcessClient:
    """Calls a gateway as an ASGI server would, with a client that stays connected."""

    def __init__(self, gateway: Gateway, key: str) -> None:
        self.gateway = gateway
        self.key = key.encode()
        self._never: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return await self._never  # connected until the response is sent
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"authorization", b"Bearer " + self.key), (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b"",
                 "http_version": "1.1", "scheme": "http", "root_path": "", "server": ("127.0.0.1", 8000),
                 "client": ("127.0.0.1", 40000)}  # fmt: skip
        await self.gateway(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@asynccontextmanager
async def running(tracing: bool, folder: Path) -> AsyncIterator[InProcessClient]:
    """A started gateway (lifespan run, models ready) and a client holding a fresh tenant key."""
    spec = with_access({**NOOP_SPEC, "observability": {"tracing": {"enabled": tracing}}})
    name = "on" if tracing else "off"
    spec["store"] = {"database_url": f"sqlite:///{folder / name}.db", "artifacts_url": str(folder / name)}
    gateway = create_app(AppSpec.model_validate(spec))
    startup, shutdown = asyncio.Event(), asyncio.Event()
    messages = iter([{"type": "lifespan.startup"}])

    async def receive() -> dict[str, Any]:
        for message in messages:
            return message
        await shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            startup.set()

    lifetime = asyncio.create_task(gateway({"type": "lifespan"}, receive, send))
    await startup.wait()
    admin = InProcessClient(gateway, ADMIN_KEY)
    while (await admin.call("GET", "/readyz"))[0] != 200:  # noqa: ASYNC110 - polled as a client would
        await asyncio.sleep(0.05)
    status, created = await admin.call("POST", "/v1/admin/keys", b'{"tenant": "bench", "scopes": ["infer"]}')
    assert status == 201, created
    try:
        yield InProcessClient(gateway, json.loads(created)["key"])
    finally:
        shutdown.set()
        await lifetime


async def _block(client: InProcessClient, requests: int) -> float:
    """CPU seconds of the event loop's thread per request, the trace buffer's drain included.

    Thread CPU time, not wall time: on a shared machine the wall clock also counts the time other
    processes held the core; what tracing costs is work on this thread."""
    started = time.thread_time()
    for _ in range(requests):
        status, body = await client.call("POST", PATH, _BODY)
        if status != 200:
            raise AssertionError(f"{status}: {body!r}")
    tracing = client.gateway.tracing
    if tracing is not None:
        tracing.drain()
    elapsed = time.thread_time() - started
    if json.loads(body) != EXPECTED:
        raise AssertionError(f"unexpected answer {body!r}")
    return elapsed / requests


async def measure(blocks: int, requests: int) -> dict[str, float]:
    os.environ[ADMIN_KEY_ENV] = ADMIN_KEY
    per_request: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        # In A/A runs the gateway built first measured a few microseconds slower: tracing's is built
        # first, so that bias counts against tracing, never for it.
        async with running(True, Path(folder)) as on, running(False, Path(folder)) as off:
            clients = {False: off, True: on}
            for index in range(blocks + 1):
                for tracing in (False, True) if index % 2 == 0 else (True, False):
                    seconds = await _block(clients[tracing], requests)
                    if index:  # the first round warms both up (inline model, caches)
                        per_request[tracing].append(seconds)
    off_us = statistics.median(per_request[False]) * 1e6
    on_us = statistics.median(per_request[True]) * 1e6
    return {"off_us": off_us, "on_us": on_us, "added_us": on_us - off_us, "throughput_ratio": off_us / on_us}


def run(blocks: int, requests: int) -> dict[str, float]:
    with pinned_here():
        return asyncio.run(measure(blocks, requests))


def main() -> None:
    parser = argparse.ArgumentParser(description="Tracing's CPU cost per request, in process.")
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--requests", type=int, default=2000, help="requests per block")
    args = parser.parse_args()
    print(json.dumps(run(args.blocks, args.requests), indent=1))


if __name__ == "__main__":
    main()
