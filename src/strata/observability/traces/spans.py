"""The spans of one finished request, built from its record's stage stamps after the response went.

Nothing on the request path opens or closes a span: every layer already stamps the record, and this
turns the stamps into a root span (the request) with one child per stage the request reached.
Attributes follow OpenTelemetry's HTTP and GenAI semantic conventions where one exists
(``http.route``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...); Strata's own are
``strata.*``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from strata.observability.traces.context import new_span_id
from strata.record import RecordKind, RequestRecord

AttributeValue = str | int | float | bool | list[str]

_GENERATION_ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "text_completion"}
_OPERATIONS = {**_GENERATION_ROUTES, "/v1/embeddings": "embeddings", "/v1/models/{model:path}/predict": "predict"}


@dataclass(slots=True)
class SpanData:
    trace_id: int
    span_id: int
    parent_span_id: int  # 0: a root span with no parent
    name: str
    start_ns: int  # unix epoch nanoseconds
    end_ns: int
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    error: bool = False
    server: bool = False  # the request's own span (OTLP kind SERVER); stages are INTERNAL
    links: tuple[tuple[int, int], ...] = ()  # (trace id, span id) of spans this one follows from

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def as_json(self) -> dict[str, object]:
        return {
            "span_id": f"{self.span_id:016x}",
            "parent_span_id": f"{self.parent_span_id:016x}" if self.parent_span_id else None,
            "name": self.name,
            "start_unix_nano": self.start_ns,
            "end_unix_nano": self.end_ns,
            "attributes": self.attributes,
            "status": "error" if self.error else "ok",
            "links": [{"trace_id": f"{trace:032x}", "span_id": f"{span:016x}"} for trace, span in self.links],
        }


def is_error(record: RequestRecord) -> bool:
    """An error response (4xx and 5xx alike: a shed or refused request is what an operator looks for)."""
    return record.status >= 400 or record.status == 0


def operation_of(record: RequestRecord) -> str | None:
    """The GenAI operation a route performs (gen_ai.operation.name), None for the platform's own routes."""
    if record.kind is not RecordKind.HTTP:
        return "chat" if record.tokens_out else None
    return _OPERATIONS.get(record.route)


def spans_of(record: RequestRecord) -> list[SpanData]:
    """The request's root span, then one span per stage it reached, in the order they happened."""
    to_ns = _clock(record)
    end = record.last_byte or record.received
    root = SpanData(
        record.trace_id, record.span_id, record.parent_span_id, _root_name(record),
        to_ns(record.received), to_ns(end), _root_attributes(record), is_error(record),
        server=record.kind is RecordKind.HTTP, links=record.links,
    )  # fmt: skip
    spans = [root]
    for name, start, stop in _stages(record):
        if start and stop and stop >= start:
            span = SpanData(record.trace_id, new_span_id(), record.span_id, name, to_ns(start), to_ns(stop))
            if name in ("batch", "inference"):
                _replica_attributes(record, span.attributes)
            spans.append(span)
    return spans


def _replica_attributes(record: RequestRecord, attributes: dict[str, AttributeValue]) -> None:
    """Where a batch and its model call ran: the batch's size, and the replica and node that reported it."""
    if record.batch_size:
        attributes["strata.batch.size"] = record.batch_size
    if record.replica is not None:
        attributes["strata.replica.id"] = record.replica
    if record.node is not None:
        attributes["strata.node.id"] = record.node


def _clock(record: RequestRecord) -> Callable[[float], int]:
    # Stage stamps are perf_counter readings; received_at is the wall clock at the same instant.
    base_ns = int(record.received_at * 1e9)
    received = record.received

    def to_ns(stamp: float) -> int:
        return base_ns + int((stamp - received) * 1e9)

    return to_ns


def _root_name(record: RequestRecord) -> str:
    if record.kind is RecordKind.HTTP:
        return f"{record.method} {record.route}"
    if record.kind is RecordKind.JOB_STEP:
        return f"job step {record.path.rsplit('/', 1)[-1]}"
    return f"{record.kind.value} {record.route}"


def _stages(record: RequestRecord) -> list[tuple[str, float, float]]:
    """(span name, start, end) of each stage, from the stamps; a stage whose stamps are 0 is skipped."""
    authorised = record.authorised or record.received
    parsed = record.parsed or authorised
    before_serving = record.features_read or parsed
    served_from = record.admitted or before_serving
    stages = [
        ("auth", record.received, record.authorised),
        ("parse", authorised, record.parsed),
        ("feature_read", parsed, record.features_read),
        ("admission", before_serving, record.admitted),
    ]
    if record.first_token:  # generation: time to first token, then decode until the last token
        stages += [
            ("time_to_first_token", served_from, record.first_token),
            ("decode", record.first_token, record.inference_ended),
        ]
    else:
        stages += [
            ("batch", record.queued, record.batch_formed),
            ("inference", record.inference_started, record.inference_ended),
        ]
    serialised_from = record.inference_ended or record.parsed  # 0: the handler never ran (refused, 404)
    if serialised_from and not record.first_token:
        stages.append(("serialise", serialised_from, record.first_byte))
    stages.append(("send", record.first_byte, record.last_byte))
    return stages


def _root_attributes(record: RequestRecord) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "http.request.method": record.method,
        "http.route": record.route,
        "url.path": record.path,
        "http.response.status_code": record.status,
        "strata.tenant": record.tenant,
        "strata.record.kind": record.kind.value,
    }
    if record.kind is RecordKind.JOB_STEP:
        _, _, _, job_id, _, step = record.path.split("/", 5)  # /v1/jobs/{job_id}/steps/{step}
        attributes.update({"strata.job.id": job_id, "strata.job.step": step, "strata.job.attempt": record.attempt})
    if record.caller.key_id:
        attributes["strata.key_id"] = record.caller.key_id
    if record.error_code:
        attributes["error.type"] = record.error_code
    elif record.status >= 400:
        attributes["error.type"] = str(record.status)
    operation = operation_of(record)
    if operation is not None:
        attributes["gen_ai.operation.name"] = operation
        attributes["gen_ai.system"] = "strata"
    if record.model is not None:
        attributes["gen_ai.request.model"] = record.model
    if record.served_as() is not None and record.served_route is not None:
        attributes["gen_ai.response.model"] = record.served_as() or ""
    if record.deployment is not None:
        attributes["strata.deployment"] = record.deployment
    if record.served_version is not None:
        attributes["strata.version"] = record.served_version
    if record.tokens_in or record.tokens_out:
        attributes["gen_ai.usage.input_tokens"] = record.tokens_in
        attributes["gen_ai.usage.output_tokens"] = record.tokens_out
    if record.finish_reason is not None:
        attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
    if record.batch_size:
        attributes["strata.batch.size"] = record.batch_size
    if record.request_bytes:
        attributes["http.request.body.size"] = record.request_bytes
    if record.response_bytes:
        attributes["http.response.body.size"] = record.response_bytes
    return attributes
