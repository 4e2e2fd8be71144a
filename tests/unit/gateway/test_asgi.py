"""The gateway's one pass over a request, driven as ASGI: dispatch, errors as OpenAI JSON, the body
limit, and a request record that metrics and the access layer read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.responses import Response

from strata.access import AccessControl
from strata.errors import InvalidRequest
from strata.gateway.asgi import Gateway
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.gateway.routing import Endpoint, RouteTable, Scope
from strata.observability.metrics import Metrics
from strata.observability.traces.pipeline import Tracing
from strata.protocol.requests import PredictRequest
from strata.record import RequestRecord, current_record
from strata.spec import AppSpec
from strata.spec.observability import TracingSpec
from strata.store import Database

SEEN: list[RequestRecord] = []


async def _echo(call: Call) -> Response:
    body = call.parse(PredictRequest)
    record = current_record.get()
    assert record is call.record  # the record travels with the request's task
    call.record.tokens_in = len(body.inputs)
    return json_response({"outputs": body.inputs, "job": call.params.get("job_id")})


async def _bad(call: Call) -> Response:
    raise InvalidRequest("nope", param="inputs")


async def _bug(call: Call) -> Response:
    raise RuntimeError("a bug")


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _gateway(tmp_path: Path) -> tuple[Gateway, Metrics]:
    spec = AppSpec.model_validate(
        {
            "name": "t",
            "models": [{"name": "m", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
            "deployments": [{"name": "m", "model": "m"}],
            "routes": [{"name": "m", "deployment": "m"}],
            "access": {"enabled": False},
            "store": {"database_url": f"sqlite:///{tmp_path / 'db'}"},
        }
    )
    table = RouteTable(
        [
            Endpoint("POST", "/v1/echo", _echo, Scope.INFER, "echo", "t", request=PredictRequest, metered=True),
            Endpoint("POST", "/v1/jobs/{job_id}/echo", _echo, Scope.JOBS, "echo", "t", request=PredictRequest),
            Endpoint("POST", "/v1/bad", _bad, Scope.INFER, "bad", "t"),
            Endpoint("GET", "/v1/bug", _bug, Scope.INFER, "bug", "t"),
        ]
    )
    metrics = Metrics()
    access = AccessControl(spec, Database(spec.store.database_url))
    original = access.finish

    async def finish(record: RequestRecord) -> None:
        SEEN.append(record)
        await original(record)

    access.finish = finish  # type: ignore[method-assign]
    gateway = Gateway(table, access, metrics, max_body_bytes=64, lifespan=_nothing, title="t", version="0")
    return gateway, metrics


async def _call(gateway: Gateway, method: str, path: str, body: bytes = b"", chunks: int = 1) -> tuple[int, Any, dict]:
    sent: list[dict[str, Any]] = []
    size = -(-len(body) // chunks)
    parts = [body[i : i + size] for i in range(0, len(body), size)] if chunks > 1 else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json")]
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers}
    await gateway(scope, receive, send)
    start, whole = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], orjson.loads(whole), dict(start["headers"])


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    SEEN.clear()
    built, _ = _gateway(tmp_path)
    return built


async def test_a_request_is_dispatched_with_its_path_parameters_and_recorded(gateway: Gateway) -> None:
    status, body, _ = await _call(gateway, "POST", "/v1/jobs/j-1/echo", b'{"inputs": [1, 2]}')
    assert (status, body) == (200, {"outputs": [1, 2], "job": "j-1"})
    status, body, _ = await _call(gateway, "POST", "/v1/echo", b'{"inputs": [3]}')
    assert status == 200
    [record] = SEEN  # only metered routes reach the access layer's bookkeeping
    assert (record.route, record.status, record.tokens_in) == ("/v1/echo", 200, 1)
    assert record.received < record.authorised <= record.parsed <= record.first_byte <= record.last_byte
    assert record.request_bytes == len(b'{"inputs": [3]}')
    assert record.request_sha256 is not None
    assert record.response_sha256 is not None
    requests = gateway.metrics.registry.get_sample_value(
        "strata_requests_total", {"route": "/v1/echo", "status": "200"}
    )
    assert requests == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/v1/nothing", b"", 404, "not_found"),
        ("GET", "/v1/echo", b"", 405, "method_not_allowed"),
        ("POST", "/v1/echo", b"", 400, "invalid_json"),
        ("POST", "/v1/echo", b'{"inputs": []}', 400, "invalid_value"),
        ("POST", "/v1/echo", b'{"inputs": [1], "extra": 2}', 400, "unknown_parameter"),
        ("POST", "/v1/bad", b"", 400, "invalid_value"),
        ("GET", "/v1/bug", b"", 500, "internal_error"),
        ("POST", "/v1/echo", b'{"inputs": ["' + b"x" * 100 + b'"]}', 413, "request_too_large"),
    ],
)
async def test_every_error_is_openai_json_with_its_status(
    gateway: Gateway, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    got, payload, headers = await _call(gateway, method, path, body)
    assert got == status
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert payload["error"]["code"] == code
    if status == 405:
        assert headers[b"allow"] == b"POST"
    errors = gateway.metrics.registry.get_sample_value(
        "strata_request_errors_total", {"route": "other" if status in (404, 405) else path, "code": str(status)}
    )
    assert errors == 1


async def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(gateway: Gateway) -> None:
    status, payload, _ = await _call(gateway, "POST", "/v1/echo", b'{"inputs": ["' + b"y" * 100 + b'"]}', chunks=4)
    assert status == 413
    assert payload["error"]["code"] == "request_too_large"
    status, _, _ = await _call(gateway, "POST", "/v1/echo", b'{"inputs": ["ok"]}', chunks=3)
    assert status == 200


async def test_the_lifespan_runs_startup_and_shutdown(gateway: Gateway) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await inbox.put({"type": "lifespan.startup"})
    await inbox.put({"type": "lifespan.shutdown"})
    await gateway({"type": "lifespan"}, inbox.get, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/echo", b'{"inputs": [3]}', 200),
        ("GET", "/v1/nothing", b"", 404),
        ("POST", "/v1/bad", b"", 400),
        ("GET", "/v1/bug", b"", 500),
    ],
)
async def test_every_response_names_its_trace(
    gateway: Gateway, method: str, path: str, body: bytes, status: int
) -> None:
    gateway.tracing = Tracing(TracingSpec())
    answered, _, headers = await _call(gateway, method, path, body)
    assert answered == status
    version, trace_id, span_id, flags = headers[b"traceparent"].decode().split("-")
    assert (version, flags) == ("00", "01")
    gateway.tracing.drain()
    spans = gateway.tracing.store.spans(int(trace_id, 16))
    assert spans is not None  # at low traffic every request is kept
    assert spans[0].span_id == int(span_id, 16)
    assert spans[0].error == (status >= 400)
