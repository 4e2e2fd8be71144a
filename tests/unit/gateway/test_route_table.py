"""The route table: dispatch by method and path, every platform route declared with its scope, and an
OpenAPI document that describes every path parameter, body and error."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.responses import Response

from strata.apps import default_app
from strata.gateway.app import create_app
from strata.gateway.call import Call
from strata.gateway.routing import Endpoint, Match, RouteTable, Scope
from strata.spec import AppSpec


async def _handler(call: Call) -> Response:
    return Response(b"")


def _endpoint(method: str, path: str) -> Endpoint:
    return Endpoint(method, path, _handler, Scope.INFER, "test", "test")


def test_fixed_paths_templates_and_path_parameters_with_slashes() -> None:
    table = RouteTable(
        [
            _endpoint("GET", "/v1/models"),
            _endpoint("POST", "/v1/models/{model:path}/predict"),
            _endpoint("GET", "/v1/models/{model:path}"),
            _endpoint("GET", "/v1/jobs/{job_id}"),
            _endpoint("POST", "/v1/jobs/{job_id}/cancel"),
        ]
    )
    assert _match(table, "GET", "/v1/models").params == {}
    assert _match(table, "POST", "/v1/models/org/m1/predict").params == {"model": "org/m1"}
    assert _match(table, "GET", "/v1/models/org/m1").endpoint.path == "/v1/models/{model:path}"
    assert _match(table, "GET", "/v1/jobs/j1").params == {"job_id": "j1"}
    assert table.match("GET", "/v1/jobs/j1/extra") is None  # a plain parameter is one segment
    assert table.match("DELETE", "/v1/jobs/j1") == {"GET"}  # a 405 names what the path takes
    assert table.match("GET", "/v1/nothing") is None


def _match(table: RouteTable, method: str, path: str) -> Match:
    found = table.match(method, path)
    assert isinstance(found, Match), found
    return found


def test_a_route_declared_twice_is_refused() -> None:
    table = RouteTable([_endpoint("GET", "/v1/models")])
    with pytest.raises(ValueError, match="declared twice"):
        table.add(_endpoint("GET", "/v1/models"))


def _default_app() -> Any:
    spec = default_app()
    raw = spec.model_dump()
    raw["store"]["database_url"] = "sqlite:///:memory:"  # built, never started: nothing is written
    return create_app(AppSpec.model_validate(raw))


def test_every_platform_route_is_declared_with_a_scope_that_matches_its_prefix() -> None:
    table = _default_app().table
    for endpoint in table.endpoints:
        assert endpoint.summary
        assert endpoint.tag
        if endpoint.path.startswith("/v1/admin") or endpoint.path == "/metrics":
            assert endpoint.scope is Scope.ADMIN, endpoint.path
        elif endpoint.path.startswith(
            ("/v1/jobs", "/v1/files", "/v1/batches", "/v1/pipelines", "/v1/events", "/v1/vector_stores")
        ):
            assert endpoint.scope is Scope.JOBS, endpoint.path
        elif endpoint.path.startswith("/v1/prompts"):  # read with what chat needs; changed as a resource
            assert endpoint.scope is (Scope.INFER if endpoint.method == "GET" else Scope.JOBS), endpoint.path
        elif endpoint.path.startswith("/v1/") and endpoint.path != "/v1/usage":
            assert endpoint.scope is Scope.INFER, endpoint.path
    open_paths = {e.path for e in table.endpoints if e.scope is Scope.OPEN}
    # The probes, and the dashboard's page and files (they hold no data: every route they call needs admin).
    assert open_paths == {"/healthz", "/readyz", "/dashboard", "/dashboard/{asset}"}
    metered = {e.path for e in table.endpoints if e.metered}
    assert metered == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models/{model:path}/predict"}


def test_the_openapi_document_describes_every_parameter_body_and_error() -> None:
    document = _default_app().openapi()
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    operations = 0
    for path, methods in document["paths"].items():
        declared = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in methods.items():
            operations += 1
            named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == declared, f"{method.upper()} {path}"
            assert {"400", "500"} <= set(operation["responses"])
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorResponse"}
            if method in ("post", "put") and not path.endswith(("/cancel", "/promote", "/abort", "/rollback")):
                assert "requestBody" in operation, f"{method.upper()} {path} has no described body"
    assert operations >= 40
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ChatCompletionRequest")
    for name in ("ChatCompletionRequest", "ChatCompletion", "EmbeddingList", "ErrorResponse", "ModelList"):
        assert name in schemas
    # OpenAI's own field names and types on the OpenAI routes.
    request = schemas["ChatCompletionRequest"]
    assert {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stream"} <= set(
        request["properties"]
    )
    assert schemas["ChatCompletion"]["properties"]["object"]["const"] == "chat.completion"
    usage = schemas["Usage"]["properties"]
    assert {name: usage[name]["type"] for name in usage} == {
        "prompt_tokens": "integer",
        "completion_tokens": "integer",
        "total_tokens": "integer",
    }
