"""(e) Workflows: durable jobs per second, and what one job costs end to end.

1. Throughput: jobs of a no-op three-step pipeline (three identity postprocess steps) queued in
   advance, then drained by one in-process worker (32 jobs at once) on SQLite and on PostgreSQL;
   against the same pipeline run in memory with nothing persisted (the ceiling durability pays on).
2. Latency at low load: a one-step job through the real server, one at a time - POST /v1/jobs, then
   its progress stream until it ends - against a no-op inference request to the same server.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import Row, percentile, pinned_here, served
from strata.spec import AppSpec
from strata.store import Database
from strata.testing.databases import temporary_postgres_database
from strata.workflows import Workflows
from strata.workflows.pipeline import run_inline
from strata.workflows.records import NewJob

CONCURRENCY = 32
IDENTITY = {"kind": "postprocess"}  # no pick, no operations: returns its value
PIPELINES = [
    {"name": "noop3", "steps": [{"name": n, **IDENTITY} for n in ("a", "b", "c")]},
    {"name": "noop1", "steps": [{"name": "a", **IDENTITY}]},
]
console = Console()


def _spec(database_url: str, artifacts: str, workers: int) -> AppSpec:
    workflows = {"workers": workers, "concurrency": CONCURRENCY, "poll_ms": 5}
    store = {"database_url": database_url, "artifacts_url": artifacts}
    return AppSpec.model_validate({**NOOP_SPEC, "store": store, "pipelines": PIPELINES, "workflows": workflows})


async def _drain(database_url: str, jobs: int) -> float:
    """Jobs per second one worker completes from a full queue."""
    with tempfile.TemporaryDirectory() as folder:
        database = Database(database_url)
        await database.migrate()
        workflows = Workflows(_spec(database_url, folder, 0), database, server=None, seed=0)
        order = workflows.pipelines["noop3"].order
        for n in range(jobs):
            await workflows.store.submit(NewJob("bench", None, "noop3", {"n": n}, order))
        started = time.perf_counter()
        workflows.start_workers(1)
        try:
            # Counted every 20 ms, not on every change: a count per step would compete with the worker.
            while (await workflows.store.status_counts("bench")).get("succeeded", 0) < jobs:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            await workflows.stop()
            await database.close()
    return jobs / elapsed


async def _inline(jobs: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite:///{Path(folder) / 'strata.db'}")
        workflows = Workflows(_spec(str(database.url), folder, 0), database, server=None, seed=0)
        pipeline, rng = workflows.pipelines["noop3"], random.Random(0)
        started = time.perf_counter()
        for n in range(jobs):
            await run_inline(pipeline, {"n": n}, tenant="bench", key_id=None, services=workflows.services, rng=rng)
        elapsed = time.perf_counter() - started
        await database.close()
    return jobs / elapsed


def _latencies(duration_s: float) -> tuple[list[float], list[float]]:
    spec = {**NOOP_SPEC, "pipelines": PIPELINES, "workflows": {"workers": 1, "poll_ms": 200}}
    jobs, requests = [], []
    with served(spec) as server, server.http() as client:
        for _ in range(20):  # warm up both paths
            _one_job(client)
            client.post("/v1/models/noop/predict", json={"inputs": ["ping"]})
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            jobs.append(_one_job(client))
            started = time.perf_counter()
            assert client.post("/v1/models/noop/predict", json={"inputs": ["ping"]}).status_code == 200
            requests.append(time.perf_counter() - started)
    return jobs, requests


def _one_job(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.post("/v1/jobs", json={"pipeline": "noop1", "input": {"x": 1}})
    assert response.status_code == 202, response.text
    with client.stream("GET", f"/v1/jobs/{response.json()['id']}/events") as events:
        last = [line for line in events.iter_lines() if line.startswith("event: ")][-1]
    assert last == "event: succeeded", last
    return time.perf_counter() - started


def run(duration_s: float) -> list[Row]:
    jobs = max(200, int(duration_s * 100))
    rows = []
    with pinned_here(), tempfile.TemporaryDirectory() as folder:
        ceiling = asyncio.run(_inline(jobs))
        sqlite = asyncio.run(_drain(f"sqlite:///{Path(folder) / 'strata.db'}", jobs))
        rows += [
            Row("workflows", "no-op 3-step pipeline in memory (ceiling)", ceiling, "jobs/s"),
            Row("workflows", "durable jobs/s, SQLite (1 worker, 32 at once)", sqlite, "jobs/s"),
        ]
        try:
            with temporary_postgres_database() as url:
                postgres = asyncio.run(_drain(url, jobs))
            rows.append(Row("workflows", "durable jobs/s, PostgreSQL (1 worker, 32 at once)", postgres, "jobs/s"))
        except OSError as error:
            console.print(f"[yellow]workflows: PostgreSQL skipped ({error})[/]")
    latencies, requests = _latencies(duration_s)
    rows += [
        Row("workflows", "one-step job end to end p50 (submit -> done)", percentile(latencies, 50) * 1000, "ms"),
        Row("workflows", "one-step job end to end p99", percentile(latencies, 99) * 1000, "ms"),
        Row("workflows", "no-op inference request p50 (same server)", percentile(requests, 50) * 1000, "ms"),
    ]
    return rows
