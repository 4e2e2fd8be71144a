"""Spans built from a finished request record: one root, a child per stage reached, GenAI attributes."""

from __future__ import annotations

from strata.observability.traces.spans import spans_of
from strata.principal import Principal
from strata.record import RequestRecord


def _embedding_record() -> RequestRecord:
    record = RequestRecord("POST", "/v1/embeddings", route="/v1/embeddings")
    record.caller = Principal("acme", "key-1", frozenset({"infer"}))
    record.trace_id, record.span_id, record.parent_span_id = 0xABC, 0x12, 0x34
    t = record.received
    record.authorised, record.parsed, record.admitted = t + 0.001, t + 0.002, t + 0.003
    record.queued, record.batch_formed = t + 0.003, t + 0.008
    record.inference_started, record.inference_ended, record.batch_size = t + 0.0081, t + 0.02, 4
    record.first_byte, record.last_byte = t + 0.021, t + 0.022
    record.model, record.tokens_in, record.status = "minilm", 7, 200
    return record


def test_a_batched_request_has_a_span_per_stage() -> None:
    spans = spans_of(_embedding_record())
    root, *stages = spans
    assert root.name == "POST /v1/embeddings"
    assert root.server
    assert root.parent_span_id == 0x34
    assert root.span_id == 0x12
    assert [s.name for s in stages] == ["auth", "parse", "admission", "batch", "inference", "serialise", "send"]
    assert all(s.parent_span_id == root.span_id and s.trace_id == 0xABC for s in stages)
    assert len({s.span_id for s in spans}) == len(spans)
    batch = next(s for s in stages if s.name == "batch")
    assert batch.attributes["strata.batch.size"] == 4
    assert abs(batch.duration_ms - 5.0) < 0.01
    assert abs(root.duration_ms - 22.0) < 0.01
    assert all(root.start_ns <= s.start_ns <= s.end_ns <= root.end_ns for s in stages)
    assert root.attributes["gen_ai.operation.name"] == "embeddings"
    assert root.attributes["gen_ai.request.model"] == "minilm"
    assert root.attributes["gen_ai.usage.input_tokens"] == 7
    assert root.attributes["strata.tenant"] == "acme"
    assert root.attributes["http.route"] == "/v1/embeddings"
    assert not root.error


def test_a_stream_has_time_to_first_token_and_decode() -> None:
    record = RequestRecord("POST", "/v1/chat/completions", route="/v1/chat/completions")
    t = record.received
    record.trace_id, record.span_id = 1, 2
    record.authorised, record.parsed, record.admitted = t + 0.001, t + 0.002, t + 0.003
    record.first_token, record.first_byte = t + 0.050, t + 0.051
    record.inference_ended, record.last_byte = t + 0.2, t + 0.201
    record.tokens_in, record.tokens_out, record.finish_reason, record.status = 5, 16, "length", 200
    root, *stages = spans_of(record)
    assert [s.name for s in stages] == ["auth", "parse", "admission", "time_to_first_token", "decode", "send"]
    ttft = next(s for s in stages if s.name == "time_to_first_token")
    assert abs(ttft.duration_ms - 47.0) < 0.01
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert root.attributes["gen_ai.usage.output_tokens"] == 16


def test_a_refused_request_is_an_error_with_only_the_stages_it_reached() -> None:
    record = RequestRecord("POST", "/v1/embeddings", route="/v1/embeddings")
    record.trace_id, record.span_id = 1, 2
    record.status, record.error_code = 401, "invalid_api_key"
    record.first_byte = record.received + 0.0001
    record.last_byte = record.received + 0.0002
    root, *stages = spans_of(record)
    assert root.error
    assert root.attributes["error.type"] == "invalid_api_key"
    assert [s.name for s in stages] == ["send"]
    assert root.as_json()["status"] == "error"
    assert root.as_json()["parent_span_id"] is None
