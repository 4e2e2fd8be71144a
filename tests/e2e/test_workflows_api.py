"""Jobs, pipelines and the OpenAI Batch API over real HTTP, with the shipped chat model."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from strata.testing import MetricSamples, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
APPS = Path(__file__).parent / "apps"
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(APPS / "workflows.yaml", env=env) as process:
        yield process


def _client(server: ServerProcess, tenant: str, scopes: list[str]) -> httpx.Client:
    with server.http() as admin:
        response = admin.post("/v1/admin/keys", json={"tenant": tenant, "scopes": scopes})
        assert response.status_code == 201, response.text
        key = response.json()["key"]
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture(scope="module")
def acme(server: ServerProcess) -> Iterator[httpx.Client]:
    with _client(server, "acme", ["jobs"]) as client:
        yield client


@pytest.fixture(scope="module")
def globex(server: ServerProcess) -> Iterator[httpx.Client]:
    with _client(server, "globex", ["jobs"]) as client:
        yield client


def _wait(client: httpx.Client, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "dead_letter", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["param"] == param, error
    return error


def test_a_pipeline_runs_as_a_job_with_progress_events_and_an_artifact(
    acme: httpx.Client, server: ServerProcess
) -> None:
    response = acme.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "Strata"}})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with acme.stream("GET", f"/v1/jobs/{job_id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        kinds = [json.loads(line[6:])["type"] for line in events.iter_lines() if line.startswith("data: ")]
    assert kinds[0] == "queued"
    assert kinds[-1] == "succeeded"
    assert kinds.count("step_succeeded") == 5
    job = acme.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert [s["status"] for s in job["steps"]] == ["succeeded"] * 5
    text = job["result"]
    assert isinstance(text, str)
    assert text
    assert text == text.strip()
    assert acme.get(f"/v1/jobs/{job_id}/result").json() == text
    [artifact] = job["artifacts"]
    download = acme.get(artifact["url"])
    assert download.status_code == 200
    assert download.text == text
    # A reconnecting client resumes after the last event it saw.
    with acme.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "0"}) as events:
        ids = [int(line[4:]) for line in events.iter_lines() if line.startswith("id: ")]
    with acme.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(ids[-2])}) as events:
        assert [int(line[4:]) for line in events.iter_lines() if line.startswith("id: ")] == ids[-1:]
    _error(acme.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"}), 400, "last-event-id")
    # The same pipeline, synchronously inside a request: greedy decoding gives the same answer.
    run = acme.post("/v1/pipelines/summarise/run", json={"input": {"topic": "Strata"}})
    assert run.status_code == 200, run.text
    assert run.json()["output"] == text
    # The generate step was billed to the job's tenant (the recorder writes every half second).
    for _ in range(50):
        usage = acme.get("/v1/usage").json()
        if usage["data"]:
            break
        time.sleep(0.1)
    assert sum(row["output_tokens"] for row in usage["data"]) > 0, usage
    samples = MetricSamples.scrape(server.url, server.headers)
    assert samples.value("strata_jobs_finished_total", pipeline="summarise", status="succeeded") >= 1
    assert (
        samples.value("strata_job_step_attempts_total", pipeline="summarise", step="answer", outcome="succeeded") >= 1
    )


def test_another_tenant_sees_nothing(acme: httpx.Client, globex: httpx.Client, server: ServerProcess) -> None:
    job_id = acme.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "secrets"}}).json()["id"]
    _wait(acme, job_id)
    artifact = acme.get(f"/v1/jobs/{job_id}").json()["artifacts"][0]["id"]
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("GET", f"/v1/jobs/{job_id}/result"),
        ("GET", f"/v1/jobs/{job_id}/artifacts"),
        ("GET", f"/v1/jobs/{job_id}/artifacts/{artifact}"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
    ]:
        response = globex.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "job_not_found"
    assert job_id not in {job["id"] for job in globex.get("/v1/jobs").json()["data"]}
    with _client(server, "acme", ["infer"]) as inference_only:
        response = inference_only.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "x"}})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_permissions"


def test_bad_submissions_are_refused_naming_the_field(acme: httpx.Client) -> None:
    def submit(body: dict[str, Any], **headers: str) -> httpx.Response:
        return acme.post("/v1/jobs", json=body, headers=headers)

    _error(submit({"pipeline": "summarise", "input": {"topic": 5}}), 400, "input.topic")
    _error(acme.post("/v1/pipelines/summarise/run", json={"input": {"topic": ""}}), 400, "input.topic")
    _error(acme.post("/v1/pipelines/nope/run", json={"input": {}}), 404, "pipeline")
    _error(submit({"pipeline": "summarise", "input": {}}), 400, "input")
    _error(submit({"pipeline": "nope", "input": {}}), 404, "pipeline")
    _error(submit({"pipeline": "openai-batch", "input": {}}), 404, "pipeline")  # batches come through /v1/batches
    _error(submit({"pipeline": "summarise", "input": {"topic": "x"}, "colour": "red"}), 400, "colour")
    _error(submit({"pipeline": "summarise", "input": {"topic": "x"}, "priority": 10**6}), 400, "priority")
    _error(acme.post("/v1/jobs", content=b"{not json"), 400, None)
    _error(acme.get("/v1/jobs", params={"limit": "lots"}), 400, "limit")
    first = submit({"pipeline": "wait", "input": 1}, **{"Idempotency-Key": "order-7"})
    assert first.status_code == 202
    again = submit({"pipeline": "wait", "input": 1, "idempotency_key": "order-7"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    error = _error(submit({"pipeline": "wait", "input": 2}, **{"Idempotency-Key": "order-7"}), 409, "idempotency_key")
    assert error["code"] == "idempotency_key_reused"
    _wait(acme, first.json()["id"])


def test_a_running_job_is_cancelled_at_the_next_step_boundary(acme: httpx.Client) -> None:
    job_id = acme.post("/v1/jobs", json={"pipeline": "wait", "input": None}).json()["id"]
    for _ in range(100):
        if acme.get(f"/v1/jobs/{job_id}").json()["steps"][0]["status"] == "running":
            break
        time.sleep(0.05)
    response = acme.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"]
    job = _wait(acme, job_id)
    assert job["status"] == "cancelled"
    assert [s["status"] for s in job["steps"]] == ["succeeded", "pending"]  # the second step never ran
    assert acme.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert acme.get(f"/v1/jobs/{job_id}/result").status_code == 409


def test_the_openai_batch_api_with_the_official_client(server: ServerProcess, globex: httpx.Client) -> None:
    with server.http() as admin:
        key = admin.post("/v1/admin/keys", json={"tenant": "batcher", "scopes": ["jobs"]}).json()["key"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        lines = [
            {"custom_id": f"q-{n}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": f"Count to {n}."}],
                      "max_tokens": 8, "temperature": 0}}
            for n in range(6)
        ] + [{"custom_id": "bad-model", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}}]  # fmt: skip
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        uploaded = client.files.create(file=("requests.jsonl", io.BytesIO(data)), purpose="batch")
        assert uploaded.purpose == "batch"
        assert uploaded.bytes == len(data)
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "t"}
        )
        assert batch.status in ("validating", "in_progress")
        deadline = time.monotonic() + 90
        while batch.status not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.2)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed", batch
        assert batch.request_counts is not None
        assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (7, 6, 1)
        assert batch.output_file_id is not None
        assert batch.error_file_id is not None
        output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
        assert [row["custom_id"] for row in output] == [f"q-{n}" for n in range(6)]
        for row in output:
            assert row["response"]["status_code"] == 200
            assert row["response"]["body"]["object"] == "chat.completion"
            assert row["response"]["body"]["choices"][0]["message"]["content"]
        [failed] = [json.loads(line) for line in client.files.content(batch.error_file_id).text.splitlines()]
        assert failed["custom_id"] == "bad-model"
        assert failed["error"]["code"] == "model_not_found"
        assert client.files.retrieve(uploaded.id).id == uploaded.id
        assert globex.get(f"/v1/batches/{batch.id}").status_code == 404  # another tenant's batch does not exist
        assert globex.get(f"/v1/files/{batch.output_file_id}/content").status_code == 404


def test_bad_batch_files_are_refused_naming_the_line(server: ServerProcess, acme: httpx.Client) -> None:
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip
    cases = {
        b"not json\n": "line 1",
        (json.dumps(good) + "\n" + json.dumps(good) + "\n").encode(): "line 2: duplicate custom_id 'a'",
        json.dumps({**good, "url": "/v1/embeddings"}).encode(): "line 1: method must be POST",
        json.dumps({**good, "body": {"model": "m"}}).encode(): "line 1: body.messages",
    }
    for content, expected in cases.items():
        response = acme.post("/v1/files", files={"file": ("f.jsonl", content)}, data={"purpose": "batch"})
        error = _error(response, 400, "file")
        assert expected in error["message"], error
    response = acme.post("/v1/files", files={"file": ("f.jsonl", b"{}")}, data={"purpose": "fine-tune"})
    _error(response, 400, "purpose")
    response = acme.post("/v1/batches", json={"input_file_id": "file-nope", "endpoint": "/v1/chat/completions",
                                              "completion_window": "24h"})  # fmt: skip
    _error(response, 404, "input_file_id")


def test_a_cancelled_batch_stops_sending_requests(server: ServerProcess) -> None:
    with server.http() as admin:
        key = admin.post("/v1/admin/keys", json={"tenant": "canceller", "scopes": ["jobs"]}).json()["key"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        body = {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": "Go on."}], "max_tokens": 64,
                "ignore_eos": True}  # fmt: skip
        lines = [
            {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": body} for n in range(200)
        ]
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        uploaded = client.files.create(file=("many.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status == "validating":
            time.sleep(0.05)
            batch = client.batches.retrieve(batch.id)
        assert client.batches.cancel(batch.id).status in ("in_progress", "cancelling")
        deadline = time.monotonic() + 60
        while batch.status not in ("cancelled", "completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "cancelled"
        assert batch.request_counts is not None
        assert batch.request_counts.completed < 200  # it stopped early: no more requests were sent
        assert batch.output_file_id is None


def test_a_model_allow_list_holds_for_jobs_and_batches(server: ServerProcess) -> None:
    with server.http() as admin:
        created = admin.post("/v1/admin/keys", json={"tenant": "narrow", "scopes": ["jobs"], "models": ["other"]})
        key = created.json()["key"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as narrow:
        response = narrow.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "x"}})
        assert _error(response, 403, "pipeline")["code"] == "insufficient_permissions"
        assert narrow.post("/v1/jobs", json={"pipeline": "wait", "input": 1}).status_code == 202  # no model used
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip
        uploaded = client.files.create(file=("one.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 30
        while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed"
        assert batch.error_file_id is not None
        [failed] = [json.loads(row) for row in client.files.content(batch.error_file_id).text.splitlines()]
        assert failed["error"]["code"] == "model_not_found"


def test_a_spent_budget_refuses_new_billable_jobs(server: ServerProcess) -> None:
    with _client(server, "broke", ["jobs"]) as broke:
        job = broke.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "money"}}).json()
        assert _wait(broke, job["id"])["status"] == "succeeded"  # its tokens are billed to 'broke'...
        for _ in range(100):  # ...and counted once the recorder has written them
            response = broke.post("/v1/jobs", json={"pipeline": "summarise", "input": {"topic": "more"}})
            if response.status_code == 429:
                break
            _wait(broke, response.json()["id"])
            time.sleep(0.1)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "insufficient_quota"
        assert broke.post("/v1/jobs", json={"pipeline": "wait", "input": 1}).status_code == 202  # no tokens in it


def test_an_upload_and_a_published_event_start_their_pipelines_once(server: ServerProcess) -> None:
    with server.http() as admin:
        key = admin.post("/v1/admin/keys", json={"tenant": "initech", "scopes": ["jobs"]}).json()["key"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        body = {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": "hi"}]}
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}
        uploaded = client.files.create(file=("one.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="batch")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            [job] = http.get("/v1/jobs", params={"pipeline": "on-upload"}).json()["data"]
            done = _wait(http, job["id"])
            assert done["status"] == "succeeded"
            assert done["result"]["type"] == "file.uploaded"
            assert done["result"]["data"]["file_id"] == uploaded.id
            event = {"type": "telemetry.received", "id": "vehicle-7-frame-1", "data": {"vehicle": 7}}
            first, again = http.post("/v1/events", json=event), http.post("/v1/events", json=event)
            assert first.status_code == again.status_code == 202
            assert first.json()["pipelines"] == ["on-telemetry"]
            jobs = http.get("/v1/jobs", params={"pipeline": "on-telemetry"}).json()["data"]
            assert len(jobs) == 1  # the same event id twice: one job
            assert _wait(http, jobs[0]["id"])["result"]["data"] == {"vehicle": 7}
            nobody = http.post("/v1/events", json={"type": "nobody.listens"})
            assert (nobody.status_code, nobody.json()["pipelines"]) == (202, [])
            bad = http.post("/v1/events", json={"type": "Not A Type", "data": {}})
            assert bad.status_code == 400
            assert bad.json()["error"]["param"] == "type"
