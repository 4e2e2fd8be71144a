"""Two `strata worker` processes on one PostgreSQL database never run the same step at the same time.

Some steps outlast the lease (1 s): only the heartbeat keeps them owned, so a broken heartbeat or a
claim that is not exclusive shows up as the same step running in both processes, or twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from strata.spec import parse_spec
from strata.store import Database
from strata.testing import MetricSamples, ServerProcess, free_port
from strata.testing.databases import temporary_postgres_database
from strata.workflows.records import NewJob
from strata.workflows.store import JobStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TESTS = Path(__file__).resolve().parents[1]
JOBS = 60
STEPS = ["a", "b", "c"]


def _spec(log: Path) -> dict[str, Any]:
    def step(name: str, sleep_s: float) -> dict[str, Any]:
        options = {"log": str(log), "sleep_s": sleep_s}
        return {"name": name, "kind": "python", "entrypoint": "workflow_steps:interval", "options": options}

    return {
        "name": "two-workers",
        "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "echo", "model": "echo"}],
        "routes": [{"name": "echo", "deployment": "echo"}],
        "workflows": {"concurrency": 4, "lease_s": 1.0, "poll_ms": 20},
        "pipelines": [
            {"name": "quick", "steps": [step(n, 0.02) for n in STEPS]},
            {"name": "slow", "steps": [step("a", 0.02), step("b", 1.5), step("c", 0.02)]},  # b outlasts the lease
        ],
    }


async def _submit(url: str) -> list[str]:
    database = Database(url)
    await database.migrate()
    store = JobStore(database)
    try:
        ids = []
        for n in range(JOBS):
            pipeline = "slow" if n % 10 == 0 else "quick"
            job, _ = await store.submit(NewJob("acme", None, pipeline, {"n": n}, STEPS))
            ids.append(job.id)
        return ids
    finally:
        await database.close()


async def _wait(url: str, ids: list[str], timeout_s: float = 90) -> set[str]:
    database = Database(url)
    store = JobStore(database)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            jobs = [await store.get("acme", job_id) for job_id in ids]
            statuses = {job.status for job in jobs if job is not None}
            if statuses <= {"succeeded", "dead_letter", "cancelled"}:
                return statuses
            await asyncio.sleep(0.2)
        raise AssertionError("the workers did not finish every job")
    finally:
        await database.close()


def test_two_workers_never_run_one_step_at_once(tmp_path: Path) -> None:
    log = tmp_path / "intervals.jsonl"
    spec_path = tmp_path / "app.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(log)))
    parse_spec(_spec(log))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with temporary_postgres_database() as url:
        ids = asyncio.run(_submit(url))  # all queued before either worker starts: they compete for every job
        command = [sys.executable, "-m", "strata", "worker", str(spec_path), "--database-url", url, "--no-models"]
        ports = [free_port(), free_port()]
        logs = [(tmp_path / f"worker-{i}.log").open("wb") for i in range(2)]
        workers = [
            subprocess.Popen([*command, "--metrics-port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
            for out, port in zip(logs, ports, strict=True)
        ]
        try:
            assert asyncio.run(_wait(url, ids)) == {"succeeded"}
            claimed = 0.0
            for port in ports:  # each worker serves its own metrics and health
                assert httpx.get(f"http://127.0.0.1:{port}/readyz").json() == {"status": "ready"}
                samples = MetricSamples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
                assert samples.value("strata_jobs_by_state", state="succeeded") == JOBS
                assert samples.value("strata_jobs_by_state", state="queued") == 0
                claimed += samples.total("strata_jobs_claimed_total")
                assert samples.total("strata_job_step_attempts_total") > 0
            assert claimed >= JOBS
        finally:
            for worker in workers:
                worker.terminate()
            for worker, out in zip(workers, logs, strict=True):
                worker.wait(timeout=30)
                out.close()
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in log.read_text().splitlines():
        record = json.loads(line)
        runs[record["key"]].append(record)
    assert len(runs) == JOBS * len(STEPS)
    assert {key: len(r) for key, r in runs.items() if len(r) != 1} == {}  # no step ran twice, let alone at once
    pids = {record["pid"] for records in runs.values() for record in records}
    assert len(pids) == 2  # both processes took work
    for worker in workers:
        assert worker.returncode == 0  # SIGTERM: a clean stop


def test_a_worker_process_with_its_own_models_runs_generate_steps(tmp_path: Path) -> None:
    """The gateway runs no workers; `strata worker` loads the app's models itself and does the job."""
    spec = yaml.safe_load((TESTS / "e2e" / "apps" / "workflows.yaml").read_text())
    spec["workflows"] = {"workers": 0, "poll_ms": 20}
    spec_path = tmp_path / "app.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = {
        "STRATA_DATABASE_URL": f"sqlite:///{tmp_path / 'strata.db'}",  # one SQLite file, two processes
        "STRATA_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    with ServerProcess(spec_path, env=env) as gateway, gateway.http() as client:
        job_id = client.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "workers"}}).json()["id"]
        time.sleep(0.5)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"  # nobody runs it in the gateway
        # models: on, a pipeline generates
        command = [sys.executable, "-m", "strata", "worker", str(spec_path), "--metrics-port", str(free_port())]
        with (tmp_path / "worker.log").open("wb") as out:
            worker = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    job = client.get(f"/v1/jobs/{job_id}").json()
                    if job["status"] in ("succeeded", "dead_letter"):
                        break
                    time.sleep(0.2)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
        assert job["status"] == "succeeded", (job, (tmp_path / "worker.log").read_text())
        assert isinstance(job["result"], str)
        assert job["result"]
        assert client.get(job["artifacts"][0]["url"]).text == job["result"]  # written by the worker, read here
        usage = client.get("/v1/admin/usage").json()
        assert any(row["output_tokens"] > 0 for row in usage["data"]), usage  # billed from the worker process
    assert worker.returncode == 0


def test_sigterm_drains_a_worker_its_health_says_so_and_the_running_step_finishes(tmp_path: Path) -> None:
    log = tmp_path / "intervals.jsonl"
    spec = _spec(log)
    options = {"log": str(log), "sleep_s": 2.0}
    spec["pipelines"] = [
        {"name": "long", "steps": [{"name": "a", "kind": "python", "entrypoint": "workflow_steps:interval",
                                    "options": options}]}
    ]  # fmt: skip
    spec["workflows"] = {"concurrency": 1, "lease_s": 10, "poll_ms": 20, "shutdown_grace_s": 10}
    spec_path = tmp_path / "app.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    with temporary_postgres_database() as url:
        command = [sys.executable, "-m", "strata", "worker", str(spec_path), "--database-url", url, "--no-models",
                   "--metrics-port", str(port)]  # fmt: skip
        with (tmp_path / "worker.log").open("wb") as out:
            worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                health = f"http://127.0.0.1:{port}/healthz"
                deadline = time.monotonic() + 60
                while not _answers(f"http://127.0.0.1:{port}/readyz") and time.monotonic() < deadline:
                    time.sleep(0.1)
                job_id = asyncio.run(_submit_one(url, "long"))
                asyncio.run(_wait_running(url, job_id))
                worker.terminate()
                seen = set()
                while worker.poll() is None and time.monotonic() < deadline:
                    with contextlib.suppress(httpx.HTTPError):
                        seen.add(httpx.get(health, timeout=1).status_code)
                    time.sleep(0.05)
            finally:
                worker.kill() if worker.poll() is None else None
                worker.wait(timeout=30)
        assert worker.returncode == 0, (tmp_path / "worker.log").read_text()
        assert 503 in seen  # the probe saw the drain
        assert asyncio.run(_wait(url, [job_id], timeout_s=10)) == {"succeeded"}  # the running step was let finish


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _wait_running(url: str, job_id: str) -> None:
    database = Database(url)
    try:
        for _ in range(500):
            if [step.status for step in await JobStore(database).steps(job_id)] == ["running"]:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the step never started")
    finally:
        await database.close()


async def _submit_one(url: str, pipeline: str) -> str:
    database = Database(url)
    await database.migrate()
    try:
        job, _ = await JobStore(database).submit(NewJob("acme", None, pipeline, {"n": 0}, ["a"]))
        return job.id
    finally:
        await database.close()
