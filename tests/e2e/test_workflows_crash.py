"""kill -9 of a server mid-run: every accepted job finishes after the restart, each side effect once.

The side-effect step logs every execution, then applies its effect keyed by the step's idempotency
key in one transaction (tests/workflow_steps.py). Re-executions are allowed - execution is
at-least-once - and counted: only steps in flight at the kill may run twice, and the balance shows
each job's amount added exactly once.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import workflow_steps
from strata.testing import ServerProcess
from strata.testing.databases import temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TESTS = Path(__file__).resolve().parents[1]
JOBS = 200
CONCURRENCY = 8


def _spec(ledger: Path) -> dict[str, Any]:
    options = {"ledger": str(ledger)}
    return {
        "name": "crash",
        "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "echo", "model": "echo"}],
        "routes": [{"name": "echo", "deployment": "echo"}],
        "workflows": {"workers": 1, "concurrency": CONCURRENCY, "lease_s": 2, "poll_ms": 20},
        "pipelines": [{"name": "ledger", "steps": [
            {"name": "apply", "kind": "python", "entrypoint": "workflow_steps:apply_once",
             "compensate": "workflow_steps:undo_apply", "options": {**options, "sleep_s": 0.2}},
            {"name": "square", "kind": "python", "entrypoint": "workflow_steps:square", "options": options},
            {"name": "keep", "kind": "store"},
        ]}],
    }  # fmt: skip


def _count(ledger: Path, query: str) -> int:
    with sqlite3.connect(ledger, timeout=30) as db:
        return int(db.execute(query).fetchone()[0])


def _submit_all(client: httpx.Client) -> list[tuple[str, int]]:
    jobs = []
    for n in range(1, JOBS + 1):
        body = {"pipeline": "ledger", "input": {"amount": n}, "idempotency_key": f"crash-{n}"}
        response = client.post("/v1/jobs", json=body)
        assert response.status_code in (200, 202), response.text
        jobs.append((response.json()["id"], response.status_code))
    return jobs


def _wait_all(client: httpx.Client, ids: list[str], timeout_s: float = 120) -> dict[str, dict[str, Any]]:
    finished: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(finished) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id not in finished:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "dead_letter", "cancelled"):
                    finished[job_id] = job
        time.sleep(0.2)
    assert len(finished) == len(ids), f"{len(ids) - len(finished)} jobs did not finish"
    return finished


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_mid_run_loses_nothing_and_applies_each_effect_once(kind: str, tmp_path: Path) -> None:

    ledger = tmp_path / "ledger.db"
    workflow_steps.create_ledger(ledger)
    spec_path = tmp_path / "app.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(ledger)))
    key = f"sk-strata-test-{secrets.token_hex(16)}"
    with temporary_database(kind, tmp_path) as url:
        env = {
            "STRATA_DATABASE_URL": url,
            "STRATA_ARTIFACTS_URL": str(tmp_path / "artifacts"),
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        with ServerProcess(spec_path, env=env, api_key=key) as first, first.http() as client:
            submitted = _submit_all(client)
            while _count(ledger, "SELECT count(*) FROM effects") < 20:
                time.sleep(0.01)
            assert first.process is not None
            first.process.kill()  # SIGKILL: no shutdown, no flush, leases left held
            first.process.wait()
        applied_at_kill = _count(ledger, "SELECT count(*) FROM effects")
        assert applied_at_kill < JOBS, "the kill landed after every job had finished: nothing was tested"
        ids = [job_id for job_id, _ in submitted]
        with ServerProcess(spec_path, env=env, api_key=key) as second, second.http() as client:
            again = _submit_all(client)  # the client retries every submission: nothing is duplicated
            assert again == [(job_id, 200) for job_id in ids]
            finished = _wait_all(client, ids)
            jobs = list(finished.values())
            assert {job["status"] for job in jobs} == {"succeeded"}
            sample = finished[ids[-1]]
            download = client.get(sample["artifacts"][0]["url"])
            assert download.json() == {"amount": JOBS, "square": JOBS**2}
    assert _count(ledger, "SELECT count(*) FROM effects") == JOBS
    assert _count(ledger, "SELECT total FROM balance") == JOBS * (JOBS + 1) // 2  # each amount added once
    assert _count(ledger, "SELECT count(*) FROM compensations") == 0
    runs = _count(ledger, "SELECT count(*) FROM invocations")
    print(f"{kind}: {applied_at_kill} of {JOBS} effects applied at the kill; {runs - 2 * JOBS} step re-executions")
    # Finished steps never run again: only those in flight at the kill (at most one per job slot, per step) may.
    assert 2 * JOBS <= runs <= 2 * JOBS + CONCURRENCY
    attempts = [step["attempts"] for job in jobs for step in job["steps"]]
    assert set(attempts) <= {1, 2}
