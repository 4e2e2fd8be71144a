"""Bad input gets OpenAI's error JSON with the right status and the field named; nothing breaks."""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(limits_server: ServerProcess) -> Iterator[httpx.Client]:
    with limits_server.http() as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_malformed_and_empty_json(http: httpx.Client) -> None:
    error = _error(http.post("/v1/embeddings", content=b'{"model": "minilm", "input": '), 400)
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]
    assert _error(http.post("/v1/embeddings", content=b""), 400)["code"] == "invalid_json"
    assert _error(http.post("/v1/embeddings", content=b"[1, 2]"), 400)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": "minilm"}, "input", "missing_required_parameter"),
        ({"model": "minilm", "input": []}, "input", "invalid_value"),
        ({"model": "minilm", "input": ["ok", ""]}, "input", "invalid_value"),
        ({"model": "minilm", "input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
        ({"model": "minilm", "input": "x", "inptu": 1}, "inptu", "unknown_parameter"),
        ({"model": "minilm", "input": "x", "dimensions": 128}, "dimensions", "invalid_value"),
    ],
)
def test_bad_embedding_fields_are_named(http: httpx.Client, body: dict[str, Any], param: str, code: str) -> None:
    error = _error(http.post("/v1/embeddings", json=body), 400)
    assert error["param"] == param
    assert error["code"] == code
    assert param in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "echo"}, "messages"),
        ({"model": "echo", "messages": []}, "messages"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "n": 17}, "n"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "top_p": 0}, "top_p"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}, "stop"),
    ],
)
def test_bad_chat_fields_are_named(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    error = _error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param, error


def test_unknown_model_is_404(http: httpx.Client) -> None:
    body = {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}
    assert _error(http.post("/v1/chat/completions", json=body), 404)["code"] == "model_not_found"
    assert _error(http.get("/v1/models/gpt-9"), 404)["param"] == "model"
    assert _error(http.post("/v1/models/gpt-9/predict", json={"inputs": [1]}), 404)["code"] == "model_not_found"


def test_model_that_cannot_serve_the_endpoint(http: httpx.Client) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    error = _error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == "model"
    assert "does not support chat completions" in error["message"]


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    big = {"model": "minilm", "input": "x" * 5000}
    assert _error(http.post("/v1/embeddings", json=big), 413)["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the bytes received
        yield b'{"model": "minilm", "input": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    assert _error(http.post("/v1/embeddings", content=chunks()), 413)["code"] == "request_too_large"


def test_wrong_method_is_405_json(http: httpx.Client) -> None:
    assert _error(http.get("/v1/embeddings"), 405)["type"] == "invalid_request_error"


def test_model_error_is_500_and_the_replica_keeps_serving(http: httpx.Client) -> None:
    error = _error(http.post("/v1/models/echo/predict", json={"inputs": ["boom"]}), 500)
    assert error["code"] == "model_error"
    for _ in range(4):  # both replicas still answer
        reply = http.post("/v1/models/echo/predict", json={"inputs": ["fine", 2]})
        assert reply.json()["outputs"] == ["fine", 2]


async def test_overload_sheds_with_retry_after(limits_server: ServerProcess) -> None:
    # slow-echo: one replica, batch of 1, 200 ms per call, room for 3 requests (queue 2 + 1 running).
    async with limits_server.async_http() as client:
        replies = await asyncio.gather(
            *(client.post("/v1/models/slow-echo/predict", json={"inputs": [i]}) for i in range(12))
        )
    ok = [r for r in replies if r.status_code == 200]
    shed = [r for r in replies if r.status_code == 503]
    assert len(ok) + len(shed) == 12
    assert 1 <= len(ok) <= 3
    assert shed
    for reply in shed:
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.json()["error"]["code"] == "overloaded"
    async with limits_server.async_http() as client:
        after = await client.post("/v1/models/slow-echo/predict", json={"inputs": ["again"]})
        assert after.json()["outputs"] == ["again"]
        assert (await client.get("/healthz")).status_code == 200
