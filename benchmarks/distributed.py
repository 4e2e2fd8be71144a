"""(g) Distributed mode: what the Ray backend costs per request, and what a second replica buys.

Both on a one-node Ray cluster started here (2 CPUs), with the gateway's ModelServer in this
process, so the numbers are the runtime's and not HTTP's:
- overhead: one client, requests one after another, to a no-op EchoModel behind the local
  runtime (a thread in this process) and behind the Ray runtime (an actor in another process).
  The floor is a bare Ray round trip measured in the same run (an async actor method returning
  its argument, awaited the same way): the Ray runtime should cost about local + that floor, and
  what it costs beyond is ours (the actor-side batcher, status bookkeeping, error wrapping);
- scaling: 32 concurrent clients against a model that takes 20 ms per batch of up to 8 and
  releases the GIL meanwhile (as torch kernels do), with 1 and then 2 Ray replicas (the
  controller's ``scale``): the deployment's capacity should double.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.harness import Row
from strata.observability.metrics import Metrics
from strata.runtime import LocalRuntime, Runtime
from strata.serving.deployment import Deployment
from strata.serving.server import ModelServer
from strata.spec import AppSpec, parse_spec

ECHO = "strata.models.python_model:EchoModel"
SCALING_CLIENTS = 32


def _spec(name: str, runtime: str, options: dict[str, Any], batch: int) -> AppSpec:
    return parse_spec(
        {
            "name": name,
            "runtime": runtime,
            "ray": {"namespace": name, "sync_interval_ms": 100, "control_interval_ms": 200},
            "models": [{"name": "echo", "kind": "python", "entrypoint": ECHO, "options": options}],
            "deployments": [
                {
                    "name": "echo",
                    "model": "echo",
                    "resources": {"cpus": 0.5},
                    "batching": {"max_batch_size": batch, "max_wait_ms": 0},
                }
            ],
            "routes": [{"name": "echo", "deployment": "echo"}],
        }
    )


@contextlib.contextmanager
def _ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


async def _served(spec: AppSpec, runtime: Runtime) -> ModelServer:
    server = ModelServer(spec, runtime, Metrics())
    await server.start()
    return server


async def _sequential_p50_us(deployment: Deployment, seconds: float) -> float:
    for i in range(50):  # warm the path (connections, caches) before measuring
        await deployment.infer(i)
    latencies = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        started = time.perf_counter()
        await deployment.infer(0)
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies) * 1e6


async def _throughput(deployment: Deployment, seconds: float) -> float:
    done = 0
    until = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < until:
            await deployment.infer(1)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(SCALING_CLIENTS)))
    return done / (time.perf_counter() - started)


class _Bare:
    async def echo(self, item: Any) -> Any:
        return item


async def _bare_ray_p50_us(seconds: float) -> float:
    import ray

    actor = ray.remote(_Bare).remote()
    for i in range(50):
        await actor.echo.remote(i)
    latencies = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        started = time.perf_counter()
        await actor.echo.remote(0)
        latencies.append(time.perf_counter() - started)
    ray.kill(actor)
    return statistics.median(latencies) * 1e6


async def _overhead(duration_s: float) -> list[Row]:
    from strata.runtime.ray_runtime import RayRuntime

    local_spec = _spec("bench-local", "local", {}, batch=32)
    local = await _served(local_spec, LocalRuntime())
    local_us = await _sequential_p50_us(local.deployments["echo"], duration_s)
    await local.stop()
    ray_spec = _spec("bench-ray", "ray", {}, batch=32)
    runtime = RayRuntime(ray_spec)
    served = await _served(ray_spec, runtime)
    ray_us = await _sequential_p50_us(served.deployments["echo"], duration_s)
    await served.stop()
    await runtime.controller.shutdown.remote()
    bare_us = await _bare_ray_p50_us(duration_s)
    ratio = ray_us / (local_us + bare_us)
    return [
        Row("distributed", "no-op request p50, local runtime", local_us, "µs"),
        Row("distributed", "no-op request p50, Ray runtime", ray_us, "µs"),
        Row("distributed", "bare Ray actor round trip p50 (the floor)", bare_us, "µs"),
        Row("distributed", "Ray hop added per request (Ray - local)", ray_us - local_us, "µs"),
        Row("distributed", "Ray runtime / (local + bare Ray round trip)", ratio, "x", "<= 1.25", ratio <= 1.25),
    ]


async def _scaling(duration_s: float) -> list[Row]:
    from strata.runtime.ray_runtime import RayRuntime

    spec = _spec("bench-scaling", "ray", {"sleep_ms": 20.0}, batch=8)
    runtime = RayRuntime(spec)
    server = await _served(spec, runtime)
    deployment = server.deployments["echo"]
    one = await _throughput(deployment, duration_s)
    await runtime.controller.scale.remote("echo", 2)
    deadline = time.monotonic() + 60
    while deployment.ready_replicas < 2 and time.monotonic() < deadline:  # noqa: ASYNC110 - set by the sync loop
        await asyncio.sleep(0.1)
    await _throughput(deployment, 1.0)  # the new replica warms up before it is measured
    two = await _throughput(deployment, duration_s)
    await server.stop()
    await runtime.controller.shutdown.remote()
    ratio = two / one
    return [
        Row("distributed", "20 ms/batch model, 1 Ray replica", one, "req/s"),
        Row("distributed", "20 ms/batch model, 2 Ray replicas", two, "req/s"),
        Row("distributed", "throughput 2 replicas / 1 replica", ratio, "x", ">= 1.8", ratio >= 1.8),
    ]


def run(duration_s: float) -> list[Row]:
    with _ray():
        return asyncio.run(_overhead(duration_s)) + asyncio.run(_scaling(duration_s))
