"""Client disconnects free their batch slot; /metrics reports every stage of the request path."""

import json
import socket
import time

import httpx
import pytest

from strata.testing import MetricSamples, ServerProcess

pytestmark = pytest.mark.e2e


def _metric(client: httpx.Client, name: str, **labels: str) -> float:
    return MetricSamples.scrape(str(client.base_url).rstrip("/"), client.headers).value(name, **labels)


def test_disconnect_mid_stream_frees_the_slot(default_server: ServerProcess) -> None:
    body = {
        "model": "strata-chat-tiny",
        "messages": [{"role": "user", "content": "Tell me a joke."}],
        "max_tokens": 400,
        "ignore_eos": True,
        "stream": True,
    }
    with default_server.http() as client:
        before = _metric(client, "strata_tokens_total", deployment="chat", direction="out")
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
            assert any(line.startswith("data: ") for line in received)
        # The connection is closed mid-generation: the sequence must leave the batch.
        deadline = time.monotonic() + 10
        while _metric(client, "strata_running_sequences", deployment="chat") > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _metric(client, "strata_running_sequences", deployment="chat") == 0
        time.sleep(0.3)
        generated = _metric(client, "strata_tokens_total", deployment="chat", direction="out") - before
        assert generated < 300, generated  # it stopped well before its 400 tokens
        reply = client.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 5})
        assert reply.status_code == 200


def _wait_until_idle(client: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while _metric(client, "strata_running_sequences", deployment="chat") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _metric(client, "strata_running_sequences", deployment="chat") == 0


def test_disconnect_before_a_whole_reply_frees_the_slot(default_server: ServerProcess) -> None:
    body = json.dumps({
        "model": "strata-chat-tiny", "messages": [{"role": "user", "content": "Tell me a joke."}],
        "max_tokens": 400, "ignore_eos": True,
    }).encode()  # fmt: skip
    with default_server.http() as client:
        before = _metric(client, "strata_tokens_total", deployment="chat", direction="out")
        with socket.create_connection(("127.0.0.1", default_server.port)) as raw:
            head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            raw.sendall(head.encode() + body)
            time.sleep(0.3)  # generation is under way; now the client gives up
        _wait_until_idle(client)
        time.sleep(0.3)
        generated = _metric(client, "strata_tokens_total", deployment="chat", direction="out") - before
        assert generated < 300, generated


def test_metrics_cover_every_stage(default_server: ServerProcess) -> None:
    with default_server.http() as client:
        client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["a", "b"]}).raise_for_status()
        chat = {"model": "strata-chat-tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        client.post("/v1/chat/completions", json=chat).raise_for_status()
        client.post("/v1/embeddings", json={"model": "nope", "input": "a"})
    samples = MetricSamples.scrape(default_server.url, default_server.headers)
    for deployment in ("chat", "embeddings"):
        for stage in ("parse", "queue_wait", "batch_formation", "inference", "postprocess"):
            count = samples.value("strata_stage_latency_seconds_count", deployment=deployment, stage=stage)
            assert count >= 1, (deployment, stage)
        assert samples.value("strata_batch_size_count", deployment=deployment) >= 1, deployment
        assert samples.has("strata_queue_depth", deployment=deployment), deployment
        assert samples.value("strata_tokens_total", deployment=deployment, direction="in") >= 1, deployment
    assert samples.value("strata_tokens_total", deployment="chat", direction="out") >= 1
    assert samples.value("strata_requests_total", route="/v1/embeddings", status="200") >= 1
    assert samples.value("strata_request_errors_total", route="/v1/embeddings", code="404") >= 1
    assert samples.value("strata_request_latency_seconds_bucket", route="/v1/embeddings", le="+Inf") >= 2
    assert samples.value("strata_replicas_ready", deployment="chat") == 1.0


def test_health_and_readiness(default_server: ServerProcess) -> None:
    with default_server.http(timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["deployments"]["chat"]["ready_replicas"] == 1
