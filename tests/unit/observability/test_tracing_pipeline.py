"""The tracing pipeline: ids from a caller's traceparent, a bounded buffer, drained in batches."""

from __future__ import annotations

import asyncio

from strata.observability.traces.pipeline import DRAIN_INTERVAL_S, Tracing
from strata.record import RecordKind, RequestRecord
from strata.spec.observability import TracingSpec


class _Collected:
    def __init__(self) -> None:
        self.batches: list[list[RequestRecord]] = []
        self.closed = False

    def sampled(self, record: RequestRecord) -> bool:
        return True

    def export(self, records: list[RequestRecord]) -> None:
        self.batches.append(records)

    def shutdown(self) -> None:
        self.closed = True


def _finished(tracing: Tracing, headers: list[tuple[bytes, bytes]] | None = None) -> RequestRecord:
    record = RequestRecord("GET", "/v1/models", route="/v1/models")
    tracing.start(record, {"headers": headers or []})
    record.status, record.last_byte = 200, record.received + 0.001
    tracing.finish(record)
    return record


async def test_records_are_drained_in_one_batch_after_the_interval() -> None:
    exporter = _Collected()
    tracing = Tracing(TracingSpec(), exporter)
    records = [_finished(tracing) for _ in range(3)]
    assert exporter.batches == []  # nothing happens on the request path
    await asyncio.sleep(DRAIN_INTERVAL_S * 3)
    assert exporter.batches == [records]
    assert all(tracing.store.spans(r.trace_id) for r in records)
    await tracing.close()
    assert exporter.closed


async def test_a_callers_trace_is_continued() -> None:
    tracing = Tracing(TracingSpec())
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    record = _finished(tracing, [(b"traceparent", header)])
    assert record.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert record.parent_span_id == 0xB7AD6B7169203331
    assert record.span_id not in (0, record.parent_span_id)
    fresh = _finished(tracing, [(b"traceparent", b"not-a-traceparent")])
    assert fresh.trace_id
    assert not fresh.parent_span_id
    tracing.drain()


async def test_a_full_buffer_drops_and_counts() -> None:
    tracing = Tracing(TracingSpec(buffer_records=16), _Collected())
    for _ in range(20):
        _finished(tracing)
    assert tracing.dropped == 4
    tracing.drain()
    assert len(tracing.store) == 16


async def test_a_request_neither_kept_nor_exported_leaves_nothing() -> None:
    tracing = Tracing(TracingSpec(sample_per_s=0))
    record = _finished(tracing)
    tracing.drain()
    assert len(tracing.store) == 0
    assert tracing.store.spans(record.trace_id) is None


def _step(job_id: str, attempt: int, status: int = 200) -> RequestRecord:
    record = RequestRecord(
        "JOB", f"/v1/jobs/{job_id}/steps/fetch", route="/v1/jobs/{job_id}/steps/{step}", kind=RecordKind.JOB_STEP
    )
    record.status, record.attempt, record.last_byte = status, attempt, record.received + 0.01
    return record


async def test_job_steps_join_the_submitting_requests_trace_or_one_of_their_own() -> None:
    tracing = Tracing(TracingSpec())
    submitter = _finished(tracing)
    tracing.job_submitted("job_a", submitter)
    first, second = _step("job_a", 1, 500), _step("job_a", 2)
    tracing.job_step("job_a", first)
    tracing.job_step("job_a", second)
    elsewhere = [_step("job_b", 1), _step("job_b", 2)]
    for record in elsewhere:
        tracing.job_step("job_b", record)
    tracing.drain()
    assert first.trace_id == second.trace_id == submitter.trace_id
    assert first.links == ((submitter.trace_id, submitter.span_id),)
    spans = tracing.store.spans(submitter.trace_id)
    assert spans is not None
    steps = [s for s in spans if s.name == "job step fetch"]
    assert [(s.attributes["strata.job.attempt"], s.error) for s in steps] == [(1, True), (2, False)]
    assert steps[0].attributes["strata.job.id"] == "job_a"
    assert not steps[0].server  # an internal span, not a request the server answered
    assert elsewhere[0].trace_id == elsewhere[1].trace_id != submitter.trace_id  # one trace per job
