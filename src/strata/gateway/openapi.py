"""The OpenAPI 3.1 document, generated from the route table: every path parameter, query parameter,
request body, response and error body (OpenAI's error shape) of every route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from strata.gateway.routing import Endpoint, Handler, RouteTable, Scope

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body: every error from every route has this shape."""

    error: ErrorDetail = Field(description="What went wrong, the field it concerns (param) and a stable code.")


# Statuses any route may answer, by what it needs; a route adds its own through ``Endpoint.errors``.
_COMMON_ERRORS = {
    400: "The request is malformed; `param` names the field.",
    404: "No such route, or an object of the caller's that does not exist.",
    405: "The path does not take this method.",
    413: "The request body is larger than the gateway accepts.",
    500: "A server error (logged with its cause).",
}
_KEYED_ERRORS = {
    401: "No valid API key or token.",
    403: "The key lacks the scope this route needs.",
    429: "A rate limit or the tenant's budget is exhausted; Retry-After says when to retry.",
}
_INFER_ERRORS = {
    499: "The client went away before the answer.",
    503: "Overloaded, not ready, or circuit open; Retry-After says when to retry.",
    504: "The request's deadline passed.",
}


def document(table: RouteTable, *, title: str, version: str) -> dict[str, Any]:
    models = _models(table.endpoints)
    keyed, schemas = models_json_schema(
        [(model, "validation") for model in models] + [(model, "serialization") for model in models],
        ref_template=REF,
    )
    refs = {model: keyed[(model, "validation")] for model in models}
    operation_ids = {endpoint.handler: _operation_id(endpoint) for endpoint in table.endpoints}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in table.endpoints:
        path = endpoint.path.replace(":path}", "}")
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint, refs, operation_ids)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _models(endpoints: list[Endpoint]) -> list[type[BaseModel]]:
    found: dict[type[BaseModel], None] = {ErrorResponse: None}
    for endpoint in endpoints:
        for model in (endpoint.request, endpoint.response, endpoint.events):
            if model is not None:
                found[model] = None
    return list(found)


def _operation_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method.lower()}_{endpoint.operation_id}"


def _operation(
    endpoint: Endpoint, refs: dict[type[BaseModel], dict[str, Any]], operation_ids: dict[Handler, str]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _operation_id(endpoint),
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "responses": _responses(endpoint, refs, operation_ids),
    }
    description = (endpoint.handler.__doc__ or "").strip()
    if description:
        operation["description"] = description
    if endpoint.scope is not Scope.OPEN:
        operation["security"] = [{"bearer": []}]
        operation["x-strata-scope"] = endpoint.scope.value
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in endpoint.path_params
    ]
    if endpoint.query is not None:
        parameters += _query_parameters(endpoint.query)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request is not None:
        media = "multipart/form-data" if endpoint.multipart else "application/json"
        operation["requestBody"] = {"required": True, "content": {media: {"schema": refs[endpoint.request]}}}
    return operation


def _responses(
    endpoint: Endpoint, refs: dict[type[BaseModel], dict[str, Any]], operation_ids: dict[Handler, str]
) -> dict[str, Any]:
    if endpoint.response is not None:
        content = {endpoint.response_media: {"schema": refs[endpoint.response]}}
        if endpoint.events is not None:  # ``stream: true`` answers server-sent events instead
            content["text/event-stream"] = {"schema": _event_schema(refs[endpoint.events], refs[ErrorResponse])}
    elif endpoint.events is not None:
        content = {"text/event-stream": {"schema": _event_schema(refs[endpoint.events], None)}}
    elif endpoint.response_media == "application/json":
        content = {"application/json": {"schema": {"description": "Any JSON value."}}}
    else:
        content = {endpoint.response_media: {"schema": {"type": "string"}}}
    success: dict[str, Any] = {"description": endpoint.summary, "content": content}
    if endpoint.links:
        success["links"] = _links(endpoint, operation_ids)
    responses: dict[str, Any] = {str(status): success for status in (endpoint.status, *endpoint.also_ok)}
    errors = dict(_COMMON_ERRORS)
    if endpoint.scope is not Scope.OPEN:
        errors |= _KEYED_ERRORS
    if endpoint.metered:
        errors |= _INFER_ERRORS
    for status in endpoint.errors:
        errors.setdefault(status, "See the description.")
    error_content = {"application/json": {"schema": refs[ErrorResponse]}}
    for status, description in sorted(errors.items()):
        responses[str(status)] = {"description": description, "content": error_content}
    return responses


def _event_schema(data: dict[str, Any], error: dict[str, Any] | None) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1 has a stream's ``schema`` describe each event): its fields,
    with ``data`` the JSON of ``data``. Given the ``error`` body, the stream is OpenAI's: ``data`` may
    instead be that error (reported in-band once the 200 is sent), and the last event is ``[DONE]``."""
    payload: dict[str, Any] = {"type": "string", "contentMediaType": "application/json", "contentSchema": data}
    if error is not None:
        payload = {"if": {"const": "[DONE]"}, "else": {**payload, "contentSchema": {"anyOf": [data, error]}}}
    properties = {"data": payload, "event": {"type": "string"}, "id": {"type": "string"}}
    return {"type": "object", "required": ["data"], "properties": properties}


def _links(endpoint: Endpoint, operation_ids: dict[Handler, str]) -> dict[str, Any]:
    """The OpenAPI links of a success response, each named after the handler it leads to (get_key)."""
    links: dict[str, Any] = {}
    for link in endpoint.links:
        target = operation_ids.get(link.target)
        if target is None:
            raise ValueError(f"{endpoint.method} {endpoint.path} links to {link.target!r}, which serves no route")
        described: dict[str, Any] = {"operationId": target}
        if link.params:
            described["parameters"] = dict(link.params)
        if link.body:
            described["requestBody"] = dict(link.body)
        links[target.split("_", 1)[1]] = described
    return links


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]
