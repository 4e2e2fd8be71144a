"""OTLP export: sampled traces' spans, built from their records, to an OpenTelemetry collector.

The OpenTelemetry SDK does the protocol work: its BatchSpanProcessor queues spans (bounded) and a
thread of its own encodes and posts them (OTLP/HTTP, protobuf), so no export ever runs on the
request loop. Strata builds the spans itself, from records, and hands them over finished.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from strata.observability.traces.context import SAMPLED
from strata.observability.traces.spans import SpanData, spans_of
from strata.record import RequestRecord
from strata.spec.observability import OTLPSpec

_SAMPLED_FLAGS = TraceFlags(TraceFlags.SAMPLED)
_ID_BITS = 2**64


class OTLPExport:
    def __init__(self, spec: OTLPSpec, service: str, version: str) -> None:
        exporter = OTLPSpanExporter(endpoint=spec.endpoint, headers=dict(spec.headers), timeout=spec.timeout_s)
        self._processor = BatchSpanProcessor(
            exporter,
            max_queue_size=spec.max_queue_spans,
            schedule_delay_millis=1000,
            export_timeout_millis=int(spec.timeout_s * 1000),
        )
        self._resource = Resource.create({"service.name": service, "service.version": version})
        self._scope = InstrumentationScope("strata", version)
        # As OpenTelemetry's TraceIdRatioBased sampler: the low 64 bits of the trace id under a bound.
        self._bound = round(spec.sampling_ratio * _ID_BITS)

    def sampled(self, record: RequestRecord) -> bool:
        if record.parent_span_id:  # the caller's decision stands (parent-based sampling)
            return bool(record.trace_flags & SAMPLED)
        return (record.trace_id & (_ID_BITS - 1)) < self._bound

    def export(self, records: list[RequestRecord]) -> None:
        for record in records:
            for span in spans_of(record):
                self._processor.on_end(self._readable(span))

    def shutdown(self) -> None:
        self._processor.shutdown()  # type: ignore[no-untyped-call]  # exports what is queued first

    def _readable(self, span: SpanData) -> ReadableSpan:
        parent = None
        if span.parent_span_id:
            parent = SpanContext(
                span.trace_id, span.parent_span_id, is_remote=not span.server, trace_flags=_SAMPLED_FLAGS
            )
        links = [
            Link(SpanContext(trace, linked, is_remote=False, trace_flags=_SAMPLED_FLAGS))
            for trace, linked in span.links
        ]
        return ReadableSpan(
            name=span.name,
            context=SpanContext(span.trace_id, span.span_id, is_remote=False, trace_flags=_SAMPLED_FLAGS),
            parent=parent,
            resource=self._resource,
            attributes=span.attributes,
            links=links,
            kind=SpanKind.SERVER if span.server else SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR) if span.error else Status(StatusCode.UNSET),
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=self._scope,
        )
