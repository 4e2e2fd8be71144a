"""The worker's own endpoint: the probes follow start-up and the drain, /metrics counts jobs by state from the
database (SQLite and PostgreSQL) beside the engine's counters."""

from __future__ import annotations

import httpx

from strata.observability.workflow_metrics import WorkflowMetrics
from strata.store import Database
from strata.testing import MetricSamples
from strata.workflows.monitor import WorkerMonitor
from strata.workflows.records import NewJob
from strata.workflows.store import JobStore


async def test_health_follows_the_drain_and_metrics_count_jobs_by_state(database: Database) -> None:
    store = JobStore(database)
    for n in range(3):
        await store.submit(NewJob("acme", None, "p", {"n": n}, ["a"]))
    engine = WorkflowMetrics()
    engine.claimed.labels(pipeline="p").inc()
    monitor = WorkerMonitor(store, [engine.registry])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=monitor), base_url="http://worker") as client:
        assert (await client.get("/healthz")).json() == {"status": "starting"}  # alive while models load
        assert (await client.get("/readyz")).status_code == 503
        monitor.state = "ready"
        assert (await client.get("/healthz")).json() == {"status": "ready"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        samples = MetricSamples((await client.get("/metrics")).text)
        assert samples.value("strata_jobs_by_state", state="queued") == 3
        assert samples.value("strata_jobs_by_state", state="succeeded") == 0
        assert samples.value("strata_jobs_claimed_total", pipeline="p") == 1
        monitor.state = "draining"
        drained = await client.get("/healthz")
        assert (drained.status_code, drained.json()) == (503, {"status": "draining"})
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/nothing")).status_code == 404
        assert (await client.post("/metrics")).status_code == 405
