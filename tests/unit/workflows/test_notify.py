"""Cross-process wake-ups on a real PostgreSQL: a job submitted through another connection (as
another process would) is claimed at once, not at the next poll; polling still covers a worker
whose notification connection is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.spec import AppSpec
from strata.store import Database
from strata.testing.databases import temporary_database
from strata.workflows import Workflows
from strata.workflows.records import JobStatus, NewJob

ECHO = {
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo"}],
    "routes": [{"name": "echo", "deployment": "echo"}],
}
POLL_S = 30.0  # far longer than the test waits: only a notification can wake the worker in time


def _spec(url: str, folder: Path, poll_ms: float) -> AppSpec:
    store = {"database_url": url, "artifacts_url": str(folder / "artifacts")}
    pipelines = [{"name": "one", "steps": [{"name": "a", "kind": "postprocess"}]}]
    workflows = {"workers": 0, "poll_ms": poll_ms}
    return AppSpec.model_validate({**ECHO, "store": store, "pipelines": pipelines, "workflows": workflows})


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    with temporary_database("postgresql", tmp_path) as url:
        yield url


async def _finished_within(submitter: Workflows, timeout_s: float) -> float:
    job, _ = await submitter.store.submit(NewJob("acme", None, "one", {"x": 1}, ["a"]))
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        current = await submitter.store.get("acme", job.id)
        if current is not None and current.status == JobStatus.SUCCEEDED:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job.id} not finished within {timeout_s} s")


async def test_a_job_submitted_elsewhere_wakes_an_idle_worker_at_once(postgres: str, tmp_path: Path) -> None:
    worker_db, client_db = Database(postgres), Database(postgres)
    await worker_db.migrate()
    worker = Workflows(_spec(postgres, tmp_path, POLL_S * 1000), worker_db, server=None, seed=1)
    client = Workflows(_spec(postgres, tmp_path, POLL_S * 1000), client_db, server=None, seed=2)
    worker.start_workers(1)
    try:
        assert worker.listener is not None
        await asyncio.wait_for(worker.listener.listening.wait(), 10)
        await asyncio.sleep(0.2)  # the worker's first (empty) claim is done: it now waits on its poll
        for _ in range(3):
            assert await _finished_within(client, timeout_s=5) < 5
    finally:
        await worker.stop()
        await worker_db.close()
        await client_db.close()


async def test_polling_still_finds_work_when_notifications_are_down(postgres: str, tmp_path: Path) -> None:
    worker_db, client_db = Database(postgres), Database(postgres)
    await worker_db.migrate()
    worker = Workflows(_spec(postgres, tmp_path, 100), worker_db, server=None, seed=1)
    client = Workflows(_spec(postgres, tmp_path, 100), client_db, server=None, seed=2)
    assert worker.listener is not None
    worker.listener = None  # as if the LISTEN connection could not be opened
    worker.start_workers(1)
    try:
        assert await _finished_within(client, timeout_s=5) < 5
    finally:
        await worker.stop()
        await worker_db.close()
        await client_db.close()
