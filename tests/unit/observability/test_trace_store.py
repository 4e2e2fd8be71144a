"""The trace store's tail sampling and bounds: every error, the slowest, a sample of the rest."""

from __future__ import annotations

from strata.observability.traces.context import new_span_id, new_trace_id
from strata.observability.traces.store import TraceQuery, TraceStore
from strata.record import RequestRecord


def _record(
    latency_s: float = 0.001, status: int = 200, route: str = "/v1/embeddings", **fields: object
) -> RequestRecord:
    record = RequestRecord("POST", route, route=route)
    record.trace_id, record.span_id, record.status = new_trace_id(), new_span_id(), status
    record.last_byte = record.received + latency_s
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _store(**overrides: float) -> TraceStore:
    settings: dict[str, float] = {"max_errors": 5, "max_slow": 5, "max_sampled": 5, "sample_per_s": 0.0}
    settings.update(overrides)
    return TraceStore(quiet_routes=frozenset({"/healthz"}), **settings)  # type: ignore[arg-type]


def test_every_error_is_kept_and_the_ring_is_bounded() -> None:
    store = _store()
    errors = [_record(status=500) for _ in range(8)]
    store.offer(errors, now=0.0)
    assert len(store) == 5
    kept = {row["trace_id"] for row in store.summaries(TraceQuery(limit=100))}
    assert kept == {f"{r.trace_id:032x}" for r in errors[-5:]}  # the oldest left first
    assert store.spans(errors[0].trace_id) is None


def test_the_rest_is_sampled_at_most_sample_per_s() -> None:
    store = _store(sample_per_s=2.0, max_sampled=100)
    store.offer([_record() for _ in range(10)], now=0.0)
    assert len(store) == 2  # the bucket starts with one second's worth
    store.offer([_record() for _ in range(10)], now=1.0)
    assert len(store) == 4
    store.offer([_record() for _ in range(10)], now=1.0)
    assert len(store) == 4


def test_a_caller_sampled_request_is_kept_and_probes_are_not() -> None:
    store = _store(sample_per_s=100.0)
    traced = _record(parent_span_id=7, trace_flags=1)
    unsampled = _record(parent_span_id=7, trace_flags=0)
    store.offer([traced, _record(route="/healthz")], now=0.0)
    assert store.spans(traced.trace_id) is not None
    assert len(store) == 1
    store = _store(sample_per_s=0.0)
    store.offer([unsampled], now=0.0)
    assert len(store) == 0


def test_the_slowest_of_a_route_are_kept() -> None:
    store = _store(max_slow=3)
    fast = [_record(latency_s=0.001 + i * 1e-6) for i in range(200)]
    store.offer(fast, now=0.0)
    assert len(store) == 0  # nothing failed, nothing sampled, and the p99 is only now known
    slow = _record(latency_s=0.5)
    store.offer([slow, _record(latency_s=0.0011, route="/v1/other")], now=0.0)
    assert [row["trace_id"] for row in store.summaries(TraceQuery())] == [f"{slow.trace_id:032x}"]


def test_queries_filter_and_list_newest_first() -> None:
    store = _store(sample_per_s=100.0, max_sampled=100)
    old = _record(model="a")
    old.received_at -= 10
    failed = _record(status=503, model="b", latency_s=0.2)
    new = _record(model="a")
    store.offer([old, failed, new], now=0.0)
    rows = store.summaries(TraceQuery())
    assert [row["trace_id"] for row in rows][-1] == f"{old.trace_id:032x}"
    assert [row["error"] for row in store.summaries(TraceQuery(status="error"))] == [True]
    assert len(store.summaries(TraceQuery(status="ok"))) == 2
    assert {row["model"] for row in store.summaries(TraceQuery(model="a"))} == {"a"}
    assert [row["status_code"] for row in store.summaries(TraceQuery(min_duration_ms=100))] == [503]
    assert len(store.summaries(TraceQuery(limit=1))) == 1
    row = store.summaries(TraceQuery(status="error"))[0]
    assert row["span_count"] == 1
    assert row["name"] == "POST /v1/embeddings"


def test_requests_sharing_a_trace_are_one_trace() -> None:
    store = _store(sample_per_s=100.0, max_sampled=100)
    first, second = _record(), _record()
    second.trace_id = first.trace_id
    store.offer([first, second], now=0.0)
    assert len(store) == 1
    spans = store.spans(first.trace_id)
    assert spans is not None
    assert {s.span_id for s in spans if s.server} == {first.span_id, second.span_id}
