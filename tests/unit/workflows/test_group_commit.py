"""Group commit against a real database (SQLite and PostgreSQL): concurrent advances share
transactions, and each job keeps its own fence and its own failure."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from strata.spec import AppSpec
from strata.store import Database
from strata.workflows import Workflows
from strata.workflows.records import Claim, JobChange, JobStatus, LeaseLost, NewJob, StepDone

IDENTITY = {"kind": "postprocess"}
ECHO = {
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo"}],
    "routes": [{"name": "echo", "deployment": "echo"}],
}


@pytest.fixture
async def workflows(database: Database, tmp_path: Path) -> Workflows:
    store = {"database_url": str(database.url), "artifacts_url": str(tmp_path / "artifacts")}
    pipelines = [{"name": "two", "steps": [{"name": "a", **IDENTITY}, {"name": "b", **IDENTITY}]}]
    spec = AppSpec.model_validate({**ECHO, "store": store, "pipelines": pipelines, "workflows": {"workers": 0}})
    return Workflows(spec, database, server=None, seed=1)


async def _claims(workflows: Workflows, count: int) -> list[Claim]:
    for n in range(count):
        await workflows.store.submit(NewJob("acme", None, "two", {"n": n}, ["a", "b"]))
    claims = await workflows.store.claim("w", 30, ["two"], limit=count)
    assert len(claims) == count
    return claims


async def test_concurrent_advances_commit_together_and_each_gets_its_own_answer(workflows: Workflows) -> None:
    claims = await _claims(workflows, 20)
    committer = workflows.store._commits
    before = committer.groups
    answers = await asyncio.gather(*(workflows.store.advance(c, 30, start=["a"]) for c in claims))
    assert all(answer.attempts == {"a": 1} for answer in answers)
    assert committer.groups - before < 20 / 2  # shared transactions, not one per job
    done = JobChange(JobStatus.SUCCEEDED, "succeeded", result={"ok": True}, finished=True, release_at=0.0)
    await asyncio.gather(
        *(workflows.store.advance(c, 30, done=[StepDone("a", {"n": i})], start=["b"]) for i, c in enumerate(claims))
    )
    await asyncio.gather(*(workflows.store.advance(c, 30, done=[StepDone("b", 1)], job=done) for c in claims))
    for i, claim in enumerate(claims):
        job = await workflows.store.get("acme", claim.job.id)
        assert job is not None
        assert (job.status, job.result) == (JobStatus.SUCCEEDED, {"ok": True})
        steps = {s.name: s for s in await workflows.store.steps(claim.job.id)}
        assert (steps["a"].output, steps["a"].attempts, steps["b"].status) == ({"n": i}, 1, "succeeded")


async def test_a_lost_lease_fails_only_its_own_job_in_a_group(workflows: Workflows) -> None:
    claims = await _claims(workflows, 6)
    await asyncio.gather(*(workflows.store.advance(c, 30, start=["a"]) for c in claims))
    stale = claims[2]
    await workflows.store.release(stale)  # the lease is gone: another worker may hold the job now
    results = await asyncio.gather(
        *(workflows.store.advance(c, 30, done=[StepDone("a", "x")]) for c in claims), return_exceptions=True
    )
    assert isinstance(results[2], LeaseLost)
    assert [isinstance(r, LeaseLost) for i, r in enumerate(results) if i != 2] == [False] * 5
    steps = {s.name: s for s in await workflows.store.steps(stale.job.id)}
    assert steps["a"].status == "running"  # the fenced-off write left nothing


async def test_one_advance_the_database_refuses_fails_alone(workflows: Workflows) -> None:
    claims = await _claims(workflows, 5)
    await asyncio.gather(*(workflows.store.advance(c, 30, start=["a"]) for c in claims))
    unstorable: Any = {"bad": object()}  # not JSON: the whole group's transaction fails on it
    outputs = [unstorable if i == 3 else i for i in range(5)]
    results = await asyncio.gather(
        *(workflows.store.advance(c, 30, done=[StepDone("a", o)]) for c, o in zip(claims, outputs, strict=True)),
        return_exceptions=True,
    )
    assert isinstance(results[3], Exception)
    assert not isinstance(results[3], LeaseLost)
    assert [isinstance(r, Exception) for i, r in enumerate(results) if i != 3] == [False] * 4
    for i, claim in enumerate(claims):
        steps = {s.name: s for s in await workflows.store.steps(claim.job.id)}
        assert steps["a"].status == ("running" if i == 3 else "succeeded")
