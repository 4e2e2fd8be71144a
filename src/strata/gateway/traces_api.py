"""GET /v1/admin/traces and /v1/admin/traces/{trace_id}: the trace store, read by operators."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from strata.errors import NotFound
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.observability.traces.pipeline import Tracing
from strata.observability.traces.store import TraceQuery
from strata.protocol.errors import invalid_request_from

_TRACE_ID_LENGTH = 32


class TraceListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=1000, description="At most this many traces, newest first.")
    status: Literal["error", "ok"] | None = Field(default=None, description="Only failed (4xx/5xx) or only ok traces.")
    min_duration_ms: float | None = Field(default=None, ge=0, description="Only traces at least this long.")
    model: str | None = Field(default=None, description="Only traces of requests that named this model.")


class TraceSummary(BaseModel):
    trace_id: str = Field(description="32 hex digits, as in the traceparent header.")
    name: str = Field(description="The first request's span name: METHOD route.")
    route: str
    model: str | None
    tenant: str
    status_code: int
    error: bool = Field(description="A request of the trace answered 4xx or 5xx.")
    start_unix_nano: int
    duration_ms: float
    span_count: int


class TraceList(BaseModel):
    object: Literal["list"]
    data: list[TraceSummary]


class SpanLink(BaseModel):
    trace_id: str
    span_id: str


class SpanOut(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    start_unix_nano: int
    end_unix_nano: int
    attributes: dict[str, str | int | float | bool | list[str]]
    status: Literal["ok", "error"]
    links: list[SpanLink] = Field(description="Spans this one follows from (a job step: the submitting request).")


class TraceDetail(BaseModel):
    trace_id: str
    spans: list[SpanOut]


class TracesAPI:
    def __init__(self, tracing: Tracing | None) -> None:
        self.tracing = tracing

    async def list_traces(self, call: Call) -> Response:
        try:
            query = TraceListQuery.model_validate(dict(call.query))
        except ValidationError as error:
            raise invalid_request_from(error) from None
        if self.tracing is None:
            return json_response({"object": "list", "data": []})
        self.tracing.drain()
        found = TraceQuery(query.limit, query.status, query.min_duration_ms, query.model)
        return json_response({"object": "list", "data": self.tracing.store.summaries(found)})

    async def get_trace(self, call: Call) -> Response:
        trace_id = call.params["trace_id"]
        spans = None
        if self.tracing is not None and _is_trace_id(trace_id):
            self.tracing.drain()
            spans = self.tracing.store.spans(int(trace_id, 16))
        if spans is None:
            raise NotFound(f"No trace '{trace_id}' is kept (the store keeps recent, failed and slow traces).")
        return json_response({"trace_id": trace_id.lower(), "spans": [span.as_json() for span in spans]})


def _is_trace_id(text: str) -> bool:
    return len(text) == _TRACE_ID_LENGTH and all(c in "0123456789abcdefABCDEF" for c in text)
