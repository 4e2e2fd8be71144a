"""The engine against a real database (SQLite and PostgreSQL): runs, retries, dead letter with
compensation, idempotent submission, lease expiry and fencing, cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import workflow_steps
from strata.spec import AppSpec
from strata.store import Database
from strata.workflows import Workflows
from strata.workflows.records import JobState, LeaseLost, NewJob, StepDone
from strata.workflows.steps import StepContext

ECHO = {
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo"}],
    "routes": [{"name": "echo", "deployment": "echo"}],
}


def _spec(database: Database, folder: Path, pipelines: list[dict[str, Any]], **workflows: Any) -> AppSpec:
    settings = {"workers": 0, "lease_s": 30, "poll_ms": 10, **workflows}
    store = {"database_url": str(database.url), "artifacts_url": str(folder / "artifacts")}
    return AppSpec.model_validate({**ECHO, "store": store, "pipelines": pipelines, "workflows": settings})


def _python(name: str, function: str, ledger: Path, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "python", "entrypoint": f"workflow_steps:{function}",
            "options": {"ledger": str(ledger), **fields.pop("options", {})}, **fields}  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    workflow_steps.create_ledger(path)
    return path


@pytest.fixture
async def engine(database: Database, tmp_path: Path, ledger: Path) -> AsyncIterator[Workflows]:
    pipelines = [
        {"name": "pay", "steps": [
            _python("apply", "apply_once", ledger, compensate="workflow_steps:undo_apply"),
            _python("square", "square", ledger),
            {"name": "keep", "kind": "store"},
        ]},
        {"name": "flaky", "steps": [
            _python("flaky", "flaky", ledger, backoff_s=0.01, max_backoff_s=0.02, options={"failures": 2})]},
        {"name": "doomed", "steps": [
            _python("apply", "apply_once", ledger, compensate="workflow_steps:undo_apply"),
            _python("fail", "always_fails", ledger, max_attempts=3, backoff_s=0.01, max_backoff_s=0.02),
        ]},
        {"name": "refused", "steps": [_python("refuse", "refuses", ledger)]},
        {"name": "diamond", "steps": [
            {"name": "start", "kind": "validate", "json_schema": {"type": "object", "required": ["amount"]}},
            _python("left", "square", ledger, after=["start"]),
            _python("right", "square", ledger, after=["start"]),
            {"name": "join", "kind": "template", "after": ["left", "right"],
             "template": "{{ value.left.square + value.right.square }}"},
        ]},
    ]  # fmt: skip
    workflows = Workflows(_spec(database, tmp_path, pipelines), database, server=None, seed=1)
    try:
        yield workflows
    finally:
        await workflows.stop()


async def _submit(workflows: Workflows, pipeline: str, job_input: Any, **fields: Any) -> JobState:
    steps = workflows.pipelines[pipeline].order
    job, _ = await workflows.store.submit(NewJob("acme", None, pipeline, job_input, steps, **fields))
    return job


async def _wait(workflows: Workflows, job_id: str, tenant: str = "acme") -> JobState:
    for _ in range(2000):
        job = await workflows.store.get(tenant, job_id)
        assert job is not None
        if job.status in ("succeeded", "dead_letter", "cancelled"):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _rows(ledger: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger) as db:
        return db.execute(query).fetchall()


async def _kinds(workflows: Workflows, job_id: str) -> list[str]:
    return [kind for _, kind, _, _, _ in await workflows.store.events_after(job_id, 0)]


async def test_a_pipeline_runs_each_step_once_and_keeps_outputs(engine: Workflows, ledger: Path) -> None:
    engine.start_workers(1)
    jobs = [await _submit(engine, "pay", {"amount": n}) for n in range(1, 6)]
    finished = [await _wait(engine, job.id) for job in jobs]
    assert [job.status for job in finished] == ["succeeded"] * 5
    steps = await engine.store.steps(jobs[0].id)
    assert [(s.name, s.status, s.attempts) for s in steps] == [("apply", "succeeded", 1), ("square", "succeeded", 1),
                                                              ("keep", "succeeded", 1)]  # fmt: skip
    assert steps[1].output == {"amount": 1, "square": 1}
    artifact = finished[0].result["artifact_id"]
    assert await engine.artifacts.get("acme", artifact) == b'{"amount": 1, "square": 1}'
    assert [a.artifact_id for a in await engine.store.artifacts(jobs[0].id)] == [artifact]
    assert _rows(ledger, "SELECT total FROM balance") == [(15,)]
    assert _rows(ledger, "SELECT count(*) FROM invocations") == [(10,)]  # 5 jobs x 2 logged steps, no re-runs


async def test_a_dag_runs_branches_after_their_dependencies(engine: Workflows) -> None:
    engine.start_workers(1)
    job = await _wait(engine, (await _submit(engine, "diamond", {"amount": 3})).id)
    assert job.status == "succeeded"
    assert job.result == "18"


async def test_a_step_that_fails_twice_then_succeeds(engine: Workflows) -> None:
    engine.start_workers(1)
    job = await _wait(engine, (await _submit(engine, "flaky", {"x": 1})).id)
    assert job.status == "succeeded"
    assert job.result == {"value": {"x": 1}, "attempt": 3}
    kinds = await _kinds(engine, job.id)
    assert kinds.count("step_failed") == 2
    assert kinds.count("retry_scheduled") == 2
    assert (await engine.store.steps(job.id))[0].attempts == 3


async def test_a_step_that_always_fails_goes_to_dead_letter_after_compensation(engine: Workflows, ledger: Path) -> None:
    engine.start_workers(1)
    job = await _wait(engine, (await _submit(engine, "doomed", {"amount": 7})).id)
    assert job.status == "dead_letter"
    assert job.error == "step 'fail' failed after 3 attempt(s): RuntimeError: this step never works"
    steps = {s.name: s for s in await engine.store.steps(job.id)}
    assert (steps["apply"].status, steps["fail"].status, steps["fail"].attempts) == ("compensated", "failed", 3)
    assert _rows(ledger, "SELECT key, amount FROM compensations") == [(f"{job.id}:apply", 7)]
    assert _rows(ledger, "SELECT total FROM balance") == [(0,)]  # applied once, undone once
    kinds = await _kinds(engine, job.id)
    assert kinds[-3:] == ["compensating", "step_compensated", "dead_letter"]


async def test_a_non_retryable_failure_dead_letters_at_once(engine: Workflows) -> None:
    engine.start_workers(1)
    job = await _wait(engine, (await _submit(engine, "refused", None)).id)
    assert job.status == "dead_letter"
    assert job.error == "step 'refuse' failed after 1 attempt(s): refused for good"


async def test_an_idempotency_key_returns_the_first_job(engine: Workflows) -> None:
    first = await _submit(engine, "pay", {"amount": 1}, idempotency_key="order-1", request_hash="a")
    steps = engine.pipelines["pay"].order
    again, created = await engine.store.submit(
        NewJob("acme", None, "pay", {"amount": 1}, steps, idempotency_key="order-1", request_hash="a")
    )
    assert (again.id, created) == (first.id, False)
    other, created = await engine.store.submit(
        NewJob("globex", None, "pay", {"amount": 1}, steps, idempotency_key="order-1", request_hash="a")
    )
    assert created
    assert other.id != first.id
    assert await engine.store.get("globex", first.id) is None  # and so are jobs


async def test_an_expired_lease_is_reclaimed_and_the_stale_holder_is_fenced_off(engine: Workflows) -> None:
    job = await _submit(engine, "flaky", {"x": 1})
    [stale] = await engine.store.claim("dead-worker", 0.05, ["flaky"])
    assert stale is not None
    assert stale.job.id == job.id
    await engine.store.advance(stale, 0.05, start=["flaky"])  # it "started" the step, then died
    assert await engine.store.claim("other", 30, ["flaky"]) == []  # not while the lease holds
    await asyncio.sleep(0.1)
    [fresh] = await engine.store.claim("other", 30, ["flaky"])
    assert fresh is not None
    assert fresh.job.id == job.id
    assert fresh.steps["flaky"].status == "running"
    assert fresh.steps["flaky"].attempts == 1
    with pytest.raises(LeaseLost):
        await engine.store.advance(stale, 30, done=[StepDone("flaky", "too late")])
    assert "reclaimed" in await _kinds(engine, job.id)


async def test_a_cancelled_job_compensates_what_ran(engine: Workflows, ledger: Path) -> None:
    queued = await _submit(engine, "pay", {"amount": 5})
    cancelled = await engine.store.request_cancel("acme", queued.id)
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    job = await _submit(engine, "doomed", {"amount": 4})
    [claim] = await engine.store.claim("w", 30, ["doomed"])
    await engine.store.advance(claim, 30, start=["apply"])
    output = workflow_steps.apply_once({"amount": 4}, _context(engine, claim.job.id, ledger))
    await engine.store.advance(claim, 30, done=[StepDone("apply", output)])
    await engine.store.release(claim)
    assert (await engine.store.request_cancel("acme", job.id)).status == "running"  # type: ignore[union-attr]
    engine.start_workers(1)
    finished = await _wait(engine, job.id)
    assert finished.status == "cancelled"
    assert _rows(ledger, "SELECT total FROM balance") == [(0,)]


def _context(engine: Workflows, job_id: str, ledger: Path) -> StepContext:
    spec = engine.pipelines["doomed"].steps["apply"].spec
    return StepContext(job_id, "acme", None, spec, 1, {"amount": 4}, {}, engine.services)
