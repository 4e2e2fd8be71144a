"""`strata worker`'s own HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``, nothing else.

A worker serves no API, but an operator still needs to scrape it and a supervisor (Kubernetes)
to probe it. The endpoint binds loopback unless told otherwise (metrics name pipelines and queue
sizes). ``/healthz`` (liveness) answers 200 from the start, while models load, and 503 once the
worker drains on SIGTERM, so a probe sees the drain; ``/readyz`` answers 200 only while its
workers are claiming jobs.
The queue depth by state is read from the database at scrape time (one grouped count), never on
a job's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from strata.workflows.records import JobStatus
from strata.workflows.store import JobStore

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class WorkerMonitor:
    """The ASGI app: ``state`` drives the probes; each scrape refreshes the queue gauge."""

    def __init__(self, store: JobStore, registries: list[CollectorRegistry]) -> None:
        self.store = store
        self.registries = registries
        self.state: Literal["starting", "ready", "draining"] = "starting"
        own = CollectorRegistry()
        self.registries.append(own)
        self.queue_depth = Gauge("strata_jobs_by_state", "Jobs in the database by state (read at scrape)", ["state"],
                                 registry=own)  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method != "GET":
            await _answer(send, 405, b'{"error":"method not allowed"}')
        elif path in ("/healthz", "/readyz"):
            healthy = self.state == "ready" or (path == "/healthz" and self.state == "starting")
            await _answer(send, 200 if healthy else 503, orjson.dumps({"status": self.state}))
        elif path == "/metrics":
            await self._refresh_queue_depth()
            text = b"".join(generate_latest(registry) for registry in self.registries)
            await _answer(send, 200, text, CONTENT_TYPE_LATEST)
        else:
            await _answer(send, 404, b'{"error":"not found"}')

    async def _refresh_queue_depth(self) -> None:
        try:
            counts = await self.store.state_counts()
        except Exception:  # a boundary: a scrape during a database outage still gets the counters
            log.warning("worker metrics: could not count jobs by state", exc_info=True)
            return
        for state in JobStatus:
            self.queue_depth.labels(state=state.value).set(counts.get(state, 0))


async def _answer(send: Send, status: int, body: bytes, content_type: str = "application/json") -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker owns SIGTERM: it drains (while /healthz says so), then stops this server.
        yield


class MonitorServer:
    """Serves a WorkerMonitor with uvicorn on this loop; ``port=None`` serves nothing."""

    def __init__(self, monitor: WorkerMonitor, host: str, port: int | None) -> None:
        self.monitor = monitor
        self._server = (
            None
            if port is None
            else _Server(uvicorn.Config(monitor, host=host, port=port, log_level="warning", access_log=False))
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._server is None:
            return
        self._task = asyncio.create_task(self._server.serve(), name="worker-monitor")
        while not self._server.started:
            if self._task.done():  # e.g. the port is taken: say so instead of waiting forever
                await self._task
                raise OSError(f"the worker's metrics endpoint could not start on port {self._server.config.port}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
