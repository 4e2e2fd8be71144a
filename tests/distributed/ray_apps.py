"""App specs and load loops the distributed tests share."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import ray

from strata.errors import StrataError
from strata.observability.metrics import Metrics
from strata.runtime.ray_runtime import RayRuntime
from strata.serving.server import ModelServer
from strata.spec import AppSpec, parse_spec

ECHO = "strata.models.python_model:EchoModel"

NODES = {
    "head": {"num_cpus": 2},
    "cpu": {"num_cpus": 2},
    "gpu": {"num_cpus": 2, "num_gpus": 1, "resources": {"gpu_node": 1}},
}


def echo_app(name: str, *deployments: dict[str, Any], control_interval_ms: float = 200.0) -> AppSpec:
    """An app of EchoModel deployments, each reachable by a route of its own name."""
    return parse_spec(
        {
            "name": name,
            "runtime": "ray",
            "ray": {"namespace": name, "sync_interval_ms": 100, "control_interval_ms": control_interval_ms},
            "models": [{"name": "echo", "kind": "python", "entrypoint": ECHO, "options": {"sleep_ms": 5}}],
            "deployments": [{"model": "echo", **d} for d in deployments],
            "routes": [{"name": d["name"], "deployment": d["name"]} for d in deployments],
        }
    )


@contextlib.asynccontextmanager
async def serving(spec: AppSpec, address: str) -> AsyncIterator[ModelServer]:
    """A gateway-side ModelServer on the Ray runtime; on exit it stops, and so do the app's actors
    (they are detached: the cluster outlives the test)."""
    runtime = RayRuntime(spec, address=address)
    server = ModelServer(spec, runtime, Metrics())
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        await runtime.controller.shutdown.remote()
        ray.kill(runtime.controller, no_restart=True)


def ray_runtime(server: ModelServer) -> RayRuntime:
    runtime = server.runtime
    assert isinstance(runtime, RayRuntime)
    return runtime


def replica_nodes(server: ModelServer, deployment: str) -> dict[str, str]:
    """replica id -> node id, as the controller last reported it."""
    return {r.replica_id: r.node_id for r in ray_runtime(server).view[deployment].replicas if r.node_id}


class Load:
    """``clients`` concurrent callers sending requests in a loop from entering the block until ``stop``
    (or leaving the block); every outcome counted."""

    def __init__(self, server: ModelServer, deployment: str, clients: int) -> None:
        self._deployment = server.deployments[deployment]
        self._clients = clients
        self._stop = asyncio.Event()
        self.ok = 0
        self.failures: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self._clients)]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Idempotent: a test stops the load once it has done its job; leaving the block stops it too."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, index: int) -> None:
        sent = 0
        while not self._stop.is_set():
            item = f"{index}-{sent}"
            sent += 1
            try:
                answer = await self._deployment.infer(item)
            except StrataError as error:
                self.failures.append(f"{type(error).__name__}: {error.message}")
                continue
            if answer != item:
                self.failures.append(f"wrong answer {answer!r} for {item!r}")
            else:
                self.ok += 1


async def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll ``condition`` (a plain or an async callable) until it is true."""
    deadline = time.monotonic() + timeout_s
    while not await _truth(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _truth(value: object) -> bool:
    return bool(await value) if inspect.isawaitable(value) else bool(value)
