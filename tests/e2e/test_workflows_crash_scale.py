"""kill -9 of a `strata worker` process at scale: 10,000 three-step jobs, the worker killed with
thousands of effects applied and 64 jobs in flight; a fresh worker finishes them all. None is lost,
no effect is applied twice, and only steps in flight at the kill run again - with step transitions
group-committed, a step finished but not yet committed counts as in flight, never more than one
per job slot. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

import workflow_steps
from strata.store import Database
from strata.testing.databases import temporary_database
from strata.workflows.records import JobStatus, NewJob
from strata.workflows.store import STEPS as STEP_TABLE
from strata.workflows.store import JobStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TESTS = Path(__file__).resolve().parents[1]
JOBS = int(os.environ.get("STRATA_CRASH_SCALE_JOBS", "10000"))
CONCURRENCY = 64
STEPS = ["apply", "square", "done"]


def _spec(ledger: Path, url: str, artifacts: Path) -> dict[str, Any]:
    options = {"ledger": str(ledger)}
    return {
        "name": "crash-scale",
        "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "echo", "model": "echo"}],
        "routes": [{"name": "echo", "deployment": "echo"}],
        "store": {"database_url": url, "artifacts_url": str(artifacts)},
        # A lease far longer than any stall on a busy machine: re-executions here come from the kill only.
        "workflows": {"workers": 1, "concurrency": CONCURRENCY, "lease_s": 10, "poll_ms": 50},
        "pipelines": [{"name": "ledger", "steps": [
            {"name": "apply", "kind": "python", "entrypoint": "workflow_steps:apply_once", "options": options},
            {"name": "square", "kind": "python", "entrypoint": "workflow_steps:square", "options": options},
            {"name": "done", "kind": "postprocess"},
        ]}],
    }  # fmt: skip


def _count(ledger: Path, query: str) -> int:
    with sqlite3.connect(ledger, timeout=60) as db:
        return int(db.execute(query).fetchone()[0])


async def _submit_all(url: str) -> None:
    database = Database(url)
    await database.migrate()
    store = JobStore(database)
    try:
        for start in range(1, JOBS + 1, 100):  # a hundred submissions in flight: a busy client
            await asyncio.gather(*(
                store.submit(NewJob("acme", None, "ledger", {"amount": n}, STEPS, idempotency_key=f"job-{n}"))
                for n in range(start, min(start + 100, JOBS + 1))
            ))  # fmt: skip
    finally:
        await database.close()


async def _settled(url: str, timeout_s: float) -> dict[JobStatus, int]:
    database = Database(url)
    store = JobStore(database)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            counts = await store.state_counts()
            if sum(counts.get(s, 0) for s in (JobStatus.SUCCEEDED, JobStatus.DEAD_LETTER, JobStatus.CANCELLED)) == JOBS:
                return counts
            await asyncio.sleep(0.5)
        raise AssertionError(f"not every job settled in {timeout_s} s: {counts}")
    finally:
        await database.close()


async def _attempts(url: str) -> set[int]:
    database = Database(url)
    try:
        async with database.session() as session:
            return set((await session.scalars(select(STEP_TABLE.c.attempts).distinct())).all())
    finally:
        await database.close()


def _worker(spec_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "strata", "worker", str(spec_path), "--no-models", "--no-metrics"]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_of_a_worker_at_scale_loses_no_job_and_applies_no_effect_twice(kind: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    workflow_steps.create_ledger(ledger)
    log = tmp_path / "worker.log"
    with temporary_database(kind, tmp_path) as url:
        spec_path = tmp_path / "app.yaml"
        spec_path.write_text(yaml.safe_dump(_spec(ledger, url, tmp_path / "artifacts")))
        asyncio.run(_submit_all(url))
        first = _worker(spec_path, log)
        try:
            deadline = time.monotonic() + 300
            while _count(ledger, "SELECT count(*) FROM effects") < JOBS // 5:
                assert first.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the first worker made too little progress"
                time.sleep(0.05)
        finally:
            first.kill()  # SIGKILL: no drain, no release, leases left held, commits cut off
            first.wait()
        applied_at_kill = _count(ledger, "SELECT count(*) FROM effects")
        assert applied_at_kill < JOBS, "the kill landed after every job had finished: nothing was tested"
        second = _worker(spec_path, log)
        try:
            counts = asyncio.run(_settled(url, timeout_s=600))
        finally:
            second.terminate()
            second.wait(timeout=60)
        attempts = asyncio.run(_attempts(url))
    assert counts == {JobStatus.SUCCEEDED: JOBS}
    assert _count(ledger, "SELECT count(*) FROM effects") == JOBS
    assert _count(ledger, "SELECT total FROM balance") == JOBS * (JOBS + 1) // 2  # each amount added once
    runs = _count(ledger, "SELECT count(*) FROM invocations")
    print(f"{kind}: {applied_at_kill} of {JOBS} effects applied at the kill; {runs - 2 * JOBS} step re-executions")
    assert 2 * JOBS <= runs <= 2 * JOBS + CONCURRENCY  # only what was in flight at the kill ran again
    assert attempts <= {1, 2}
