"""PostgreSQL stopped under load, below the access layer: a served gateway on a private PostgreSQL.

While the database is down, inference with a key the gateway already knew keeps answering 200 (its
usage and audit rows wait in the recorder's bounded buffer); requests that need the database (key
admin, usage, jobs, files) answer 503 + Retry-After within 5 s, never a 500; nothing stops. When the
server returns, those routes work again by themselves, a job submitted then runs (the workers' claim
loop lived through it), and the usage and audit rows of the requests served during the outage are
written: none lost, none twice, the audit chain sound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from strata.testing import ServerProcess
from strata.testing.private_postgres import PrivatePostgres, available, private_postgres

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="needs PostgreSQL (initdb, pg_ctl)"),
]

SPEC = {
    "name": "outage",
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo"}],
    "routes": [{"name": "echo", "deployment": "echo"}],
    "access": {"audit_inference": True},
    "pipelines": [
        {"name": "check", "steps": [{"name": "check", "kind": "validate", "json_schema": {"type": "object"}}]}
    ],
}
ANSWER_WITHIN_S = 5.0
# Routes that read or write the metadata database, each as a (method, path, json body) an admin sends.
NEEDS_DATABASE = [
    ("GET", "/v1/admin/keys", None),
    ("POST", "/v1/admin/keys", {"tenant": "later", "scopes": ["infer"]}),
    ("GET", "/v1/usage", None),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/files", None),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, PrivatePostgres]]:
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    with private_postgres() as postgres, ServerProcess(path, env={"STRATA_DATABASE_URL": postgres.url}) as server:
        yield server, postgres


async def _infer_until(client: httpx.AsyncClient, key: str, stop: asyncio.Event, statuses: list[int]) -> None:
    while not stop.is_set():
        reply = await client.post("/v1/models/echo/predict", json={"inputs": ["ping"]},
                                  headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        statuses.append(reply.status_code)
        await asyncio.sleep(0.01)


async def _send(client: httpx.AsyncClient, method: str, path: str, body: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = await client.request(method, path, json=body)
    return reply, time.monotonic() - started


async def _until_all_ok(client: httpx.AsyncClient, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for method, path, body in NEEDS_DATABASE:
        while True:
            reply, _ = await _send(client, method, path, body)
            if reply.status_code < 300:
                break
            assert reply.status_code == 503, f"{method} {path}: {reply.status_code} {reply.text}"
            assert time.monotonic() < deadline, f"{method} {path} still 503 {timeout_s} s after the restart"
            await asyncio.sleep(0.2)


async def _job_runs(client: httpx.AsyncClient) -> None:
    submitted = await client.post("/v1/jobs", json={"pipeline": "check", "input": {"after": "the outage"}})
    assert submitted.status_code in (200, 201, 202), submitted.text
    deadline = time.monotonic() + 15
    while (job := (await client.get(f"/v1/jobs/{submitted.json()['id']}")).json())["status"] != "succeeded":
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"the job is still {job['status']} 15 s after the database returned"
        await asyncio.sleep(0.1)


async def test_a_stopped_database_answers_503_serves_inference_and_loses_no_row(
    served: tuple[ServerProcess, PrivatePostgres],
) -> None:
    server, postgres = served
    async with server.async_http(timeout=30) as admin:
        created = await admin.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["infer"]})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        await asyncio.sleep(0.5)  # a key change empties every gateway's key cache (after its next poll)
        assert (await admin.get("/v1/admin/keys")).status_code == 200  # the admin key cached again
        statuses: list[int] = []
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            load = asyncio.create_task(_infer_until(client, key, stop, statuses))
            await asyncio.sleep(0.5)
            postgres.stop()
            served_before_stop = statuses.count(200)
            for method, path, body in NEEDS_DATABASE:
                reply, took_s = await _send(admin, method, path, body)
                assert reply.status_code == 503, f"{method} {path}: {reply.status_code} {reply.text}"
                error = reply.json()["error"]
                assert error["code"] == "dependency_unavailable"
                assert "key store" not in error["message"], "authenticated from the cache, the route itself answers"
                assert int(reply.headers["retry-after"]) >= 1
                assert took_s < ANSWER_WITHIN_S, f"{method} {path} took {took_s:.1f} s"
            await asyncio.sleep(2.0)  # more inference during the outage, and the recorder's flushes fail
            assert statuses.count(200) > served_before_stop + 20, "inference stopped with the database"
            postgres.start()
            await _until_all_ok(admin, timeout_s=30)
            await asyncio.sleep(0.3)
            stop.set()
            await load
        assert set(statuses) == {200}, f"inference answered {sorted(set(statuses))} during the outage"
        usage = await admin.get("/v1/admin/usage", params={"tenant": "acme"})
        assert usage.status_code == 200, usage.text
        assert sum(row["requests"] for row in usage.json()["data"]) == len(statuses)  # none lost, none twice
        await _job_runs(admin)  # the workers' claim loop outlived the outage
        verdict = await admin.get("/v1/admin/audit/verify")
        assert verdict.status_code == 200, verdict.text
        assert verdict.json()["ok"] is True, verdict.json()
        assert verdict.json()["rows"] >= len(statuses)  # a row per inference, and the admin's own
