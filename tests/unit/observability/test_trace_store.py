"""Tail sampling (every error, the slowest, a sample of the rest) and the store's bounds and queries."""

from __future__ import annotations

from strata.observability.traces.context import new_span_id, new_trace_id
from strata.observability.traces.sampler import TailSampler
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


def _decisions(sampler: TailSampler, records: list[RequestRecord]) -> list[str | None]:
    return [sampler.decide(record) for record in records]


def test_every_error_is_kept() -> None:
    sampler = TailSampler(sample_per_s=0.0)
    assert _decisions(sampler, [_record(status=500), _record(status=429), _record(status=0)]) == ["error"] * 3
    assert sampler.decide(_record()) is None


def test_the_rest_is_sampled_at_most_sample_per_s() -> None:
    sampler = TailSampler(sample_per_s=2.0)
    first = [_record() for _ in range(10)]
    assert _decisions(sampler, first).count("sampled") == 2  # the bucket starts with one second's worth
    later = [_record() for _ in range(10)]
    for record in later:
        record.last_byte = first[0].last_byte + 1.0  # one second on: two more tokens
    assert _decisions(sampler, later).count("sampled") == 2


def test_a_caller_sampled_request_is_kept_and_probes_are_not() -> None:
    sampler = TailSampler(sample_per_s=100.0, quiet_routes=frozenset({"/healthz"}))
    assert sampler.decide(_record(route="/healthz")) is None
    assert sampler.decide(_record(route="/healthz", status=503)) == "error"
    none_left = TailSampler(sample_per_s=0.0)
    assert none_left.decide(_record(parent_span_id=7, trace_flags=1)) == "sampled"
    assert none_left.decide(_record(parent_span_id=7, trace_flags=0)) is None


def test_the_slowest_of_a_route_are_kept() -> None:
    sampler = TailSampler(sample_per_s=0.0)
    assert set(_decisions(sampler, [_record(latency_s=0.001 + (i % 10) * 1e-6) for i in range(256)])) == {None}
    assert sampler.decide(_record(latency_s=0.5)) == "slow"
    assert sampler.decide(_record(latency_s=0.5, route="/v1/other")) is None  # each route has its own p99


def _store(**capacities: int) -> TraceStore:
    return TraceStore(**{"max_errors": 5, "max_slow": 5, "max_sampled": 5, **capacities})


def test_each_ring_is_bounded_and_the_oldest_leaves_first() -> None:
    store = _store(max_sampled=0)
    errors = [_record(status=500) for _ in range(8)]
    for record in errors:
        store.keep(record, "error")
    store.keep(_record(), "sampled")  # a ring of size 0 keeps nothing
    assert len(store) == 5
    kept = {row["trace_id"] for row in store.summaries(TraceQuery(limit=100))}
    assert kept == {f"{r.trace_id:032x}" for r in errors[-5:]}
    assert store.spans(errors[0].trace_id) is None


def test_queries_filter_and_list_newest_first() -> None:
    store = _store()
    old = _record(model="a")
    old.received_at -= 10
    failed = _record(status=503, model="b", latency_s=0.2)
    new = _record(model="a")
    store.keep(old, "sampled")
    store.keep(failed, "error")
    store.keep(new, "sampled")
    rows = store.summaries(TraceQuery())
    assert [row["trace_id"] for row in rows][-1] == f"{old.trace_id:032x}"
    assert [row["error"] for row in store.summaries(TraceQuery(status="error"))] == [True]
    assert len(store.summaries(TraceQuery(status="ok"))) == 2
    assert {row["model"] for row in store.summaries(TraceQuery(model="a"))} == {"a"}
    assert [row["status_code"] for row in store.summaries(TraceQuery(min_duration_ms=100))] == [503]
    assert len(store.summaries(TraceQuery(limit=1))) == 1
    row = store.summaries(TraceQuery(status="error"))[0]
    assert row["span_count"] == 1  # no stage was stamped
    assert row["name"] == "POST /v1/embeddings"


def test_requests_sharing_a_trace_are_one_trace() -> None:
    store = _store()
    first, second = _record(), _record(status=500)
    second.trace_id = first.trace_id
    store.keep(first, "sampled")
    store.keep(second, "error")
    assert len(store) == 1
    spans = store.spans(first.trace_id)
    assert spans is not None
    assert {s.span_id for s in spans if s.server} == {first.span_id, second.span_id}
    assert store.summaries(TraceQuery())[0]["error"] is True


def test_a_kept_trace_holds_no_prompt_text() -> None:
    store = _store()
    record = _record(prompt="x" * 65_536)
    store.keep(record, "sampled")
    assert record.prompt is None
    assert store.spans(record.trace_id) is not None
