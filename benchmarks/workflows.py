"""(e) Workflows: durable jobs per second, and what one job costs end to end.

1. Throughput: jobs of a no-op three-step pipeline (three identity postprocess steps) submitted by a
   client process of its own (core 1), then drained by one `strata worker` process (core 0, 64 jobs
   at once) on SQLite and on PostgreSQL; the rate is read from the jobs' own timestamps (first step
   started to last job finished), so process start-up is not counted. Against the same pipeline run
   in memory with nothing persisted (the ceiling durability pays on). Targets: 500 jobs/s on
   PostgreSQL, 300 on SQLite.
2. One-step job end to end across processes: the client submits one-step jobs at 20/s to an idle
   worker process; submit committed -> job finished, from the database's timestamps. PostgreSQL
   wakes the worker by NOTIFY; SQLite has no notification, so the worker finds them by polling
   (``workflows.poll_ms``, default 200 ms).
3. Latency at low load in one server: a one-step job through the real server, one at a time - POST
   /v1/jobs, then its progress stream until it ends - against a no-op inference request to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from sqlalchemy import select

from benchmarks.gateway import SPEC as NOOP_SPEC
from benchmarks.harness import (
    LOADGEN_CPU,
    ROOT,
    SERVER_CPU,
    SERVER_ENV,
    Row,
    cpu_count,
    percentile,
    pinned_here,
    served,
)
from strata.spec import AppSpec
from strata.store import Database
from strata.testing import free_port
from strata.testing.databases import temporary_postgres_database
from strata.workflows import Workflows
from strata.workflows.pipeline import run_inline
from strata.workflows.records import JobStatus
from strata.workflows.store import JOBS, JobStore

CONCURRENCY = 64
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


@contextmanager
def _worker(database_url: str, folder: str, *, concurrency: int) -> Iterator[subprocess.Popen[bytes]]:
    """`strata worker` on the server core: the app's no-op pipelines, no models."""
    spec = {**NOOP_SPEC, "pipelines": PIPELINES, "workflows": {"workers": 1, "concurrency": concurrency}}
    spec["store"] = {"database_url": database_url, "artifacts_url": str(Path(folder) / "artifacts")}
    path = Path(folder) / "worker.yaml"
    path.write_text(yaml.safe_dump(spec))
    port = free_port()
    command = [sys.executable, "-m", "strata", "worker", str(path), "--no-models", "--metrics-port", str(port)]
    cpus = {SERVER_CPU} if cpu_count() > 1 else None
    with (Path(folder) / "worker.log").open("wb") as log:
        worker = subprocess.Popen(command, env={**os.environ, **SERVER_ENV}, stdout=log, stderr=subprocess.STDOUT,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)  # fmt: skip
        try:
            _wait_ready(f"http://127.0.0.1:{port}/readyz", worker)
            yield worker
        finally:
            worker.terminate()
            worker.wait(timeout=60)


def _wait_ready(url: str, worker: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the worker did not become ready (exit code {worker.poll()})")


def _client(database_url: str, pipeline: str, jobs: int, rate: float) -> float:
    """Submit from a process of its own on the load generator's core; its submit rate."""
    command = [sys.executable, "-m", "benchmarks.workflow_client", database_url, pipeline, str(jobs), str(rate)]
    cpus = {LOADGEN_CPU} if cpu_count() > 1 else None
    done = subprocess.run(command, capture_output=True, check=True, cwd=ROOT,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)  # fmt: skip
    return float(json.loads(done.stdout.decode().splitlines()[-1])["submitted_per_s"])


async def _finished(database_url: str, jobs: int, timeout_s: float = 600) -> list[tuple[float, float, float]]:
    """Wait until ``jobs`` jobs succeeded; (created, started, finished) of each."""
    database = Database(database_url)
    store = JobStore(database)
    deadline = time.monotonic() + timeout_s
    try:
        # Counted every 100 ms, in this process: a count per step would compete with the worker.
        while (await store.state_counts()).get(JobStatus.SUCCEEDED, 0) < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not finish {jobs} jobs in {timeout_s} s")
            await asyncio.sleep(0.1)
        async with database.session() as session:
            query = select(JOBS.c.created_at, JOBS.c.started_at, JOBS.c.finished_at)
            return [tuple(row) for row in (await session.execute(query)).all()]
    finally:
        await database.close()


def _drain(database_url: str, jobs: int) -> tuple[float, float]:
    """Jobs per second one worker process completes from a full queue, and the client's submit rate."""
    with tempfile.TemporaryDirectory() as folder:
        submitted = _client(database_url, "noop3", jobs, 0)
        with _worker(database_url, folder, concurrency=CONCURRENCY):
            times = asyncio.run(_finished(database_url, jobs))
    started, finished = min(t[1] for t in times), max(t[2] for t in times)
    return jobs / (finished - started), submitted


def _one_step_latencies(database_url: str, jobs: int) -> list[float]:
    """Submit -> finished of one-step jobs sent at 20/s to an idle worker in another process."""
    with tempfile.TemporaryDirectory() as folder, _worker(database_url, folder, concurrency=CONCURRENCY):
        _client(database_url, "noop1", jobs, 20)
        times = asyncio.run(_finished(database_url, jobs))
    return [finished - created for created, _, finished in times]


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
    jobs = max(2000, int(duration_s * 400))
    rows = []
    with pinned_here():
        ceiling = asyncio.run(_inline(jobs))
    rows.append(Row("workflows", "no-op 3-step pipeline in memory (ceiling)", ceiling, "jobs/s"))
    with tempfile.TemporaryDirectory() as folder:
        rows += _database_rows("SQLite", f"sqlite:///{Path(folder) / 'strata.db'}",
                               f"sqlite:///{Path(folder) / 'latency.db'}", jobs, 300)  # fmt: skip
    try:
        with temporary_postgres_database() as url, temporary_postgres_database() as latency_url:
            rows += _database_rows("PostgreSQL", url, latency_url, jobs, 500)
    except OSError as error:
        console.print(f"[yellow]workflows: PostgreSQL skipped ({error})[/]")
    latencies, requests = _latencies(duration_s)
    rows += [
        Row("workflows", "one-step job end to end p50 (submit -> done, in one server)",
            percentile(latencies, 50) * 1000, "ms"),
        Row("workflows", "one-step job end to end p99 (in one server)", percentile(latencies, 99) * 1000, "ms"),
        Row("workflows", "no-op inference request p50 (same server)", percentile(requests, 50) * 1000, "ms"),
    ]  # fmt: skip
    return rows


def _database_rows(name: str, url: str, latency_url: str, jobs: int, target: float) -> list[Row]:
    rate, submitted = _drain(url, jobs)
    latencies = _one_step_latencies(latency_url, 200)
    return [
        Row("workflows", f"durable 3-step jobs/s, {name} (1 worker process, {CONCURRENCY} at once)", rate, "jobs/s",
            f">= {target:g}", rate >= target),
        Row("workflows", f"client submits/s, {name} (its own process, one at a time)", submitted, "jobs/s"),
        Row("workflows", f"one-step job end to end p50, {name} (client and worker processes)",
            percentile(latencies, 50) * 1000, "ms"),
        Row("workflows", f"one-step job end to end p99, {name}", percentile(latencies, 99) * 1000, "ms"),
    ]  # fmt: skip
