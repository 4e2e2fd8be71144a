"""Traces end to end: the official openai client sends a traceparent and gets one back on every
response; the trace is read at the admin routes and arrives at a real OTLP receiver."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from tests.otlp_receiver import OTLPReceiver

from strata.observability.traces.otlp import OTLPExport
from strata.record import RequestRecord
from strata.spec.observability import OTLPSpec
from strata.testing import MetricSamples, ServerProcess

pytestmark = pytest.mark.e2e

CHAT = "strata-chat-tiny"
EMBED = "all-MiniLM-L6-v2"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def exporting(receiver: OTLPReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A small app exporting every trace to the receiver, with a vendor-style header."""
    spec = {
        "name": "exporting",
        "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
        "deployments": [{"name": "echo", "model": "echo", "batching": {"max_batch_size": 8, "max_wait_ms": 1}}],
        "routes": [{"name": "echo", "deployment": "echo"}],
        "observability": {"tracing": {"otlp": {"endpoint": receiver.url, "headers": {"x-collector-token": "t0k"}}}},
        "access": {"prices": [{"deployment": "echo", "per_compute_second": 1.0}]},
        "workflows": {"workers": 1, "poll_ms": 20},
        "pipelines": [
            {
                "name": "flaky",
                "steps": [
                    {
                        "name": "try",
                        "kind": "python",
                        "entrypoint": "workflow_steps:flaky",
                        "options": {"failures": 1},
                        "backoff_s": 0,
                    },
                ],
            }
        ],
    }
    spec["observability"]["logs"] = {"format": "json"}
    path: Path = tmp_path_factory.mktemp("traces") / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    tests = Path(__file__).resolve().parent.parent  # the flaky step lives in tests/workflow_steps.py
    env = {"PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(path, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def server(default_server: ServerProcess) -> ServerProcess:
    """The default app with no configuration: tracing is on."""
    return default_server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=60)


def _traceparent(response_headers: httpx.Headers) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = response_headers["traceparent"].split("-")
    assert version == "00"
    assert len(trace_id) == 32
    assert len(span_id) == 16
    return trace_id, span_id, flags


def _trace(server: ServerProcess, trace_id: str) -> dict[str, dict[str, object]]:
    with server.http() as http:
        answer = http.get(f"/v1/admin/traces/{trace_id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace_id"] == trace_id
    return {span["name"]: span for span in body["spans"]}


def test_a_callers_trace_continues_through_an_embedding(client: openai.OpenAI, server: ServerProcess) -> None:
    raw = client.embeddings.with_raw_response.create(
        model=EMBED,
        input=["a trace", "of two inputs"],
        extra_headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
    )
    assert len(raw.parse().data) == 2
    trace_id, span_id, flags = _traceparent(raw.headers)
    assert (trace_id, flags) == (CALLER_TRACE, "01")
    assert span_id != CALLER_SPAN

    spans = _trace(server, trace_id)
    root = spans["POST /v1/embeddings"]
    assert root["span_id"] == span_id
    assert root["parent_span_id"] == CALLER_SPAN
    assert {"auth", "parse", "admission", "batch", "inference", "serialise", "send"} <= set(spans)
    assert all(span["parent_span_id"] == span_id for name, span in spans.items() if span is not root)
    attributes = root["attributes"]
    assert isinstance(attributes, dict)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.request.model"] == EMBED
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["http.response.status_code"] == 200
    assert attributes["strata.tenant"]
    inference = spans["inference"]
    assert inference["attributes"]["strata.batch.size"] >= 1  # type: ignore[index]
    assert root["start_unix_nano"] <= inference["start_unix_nano"] <= inference["end_unix_nano"]  # type: ignore[operator]

    with server.http() as http:
        listed = http.get("/v1/admin/traces", params={"model": EMBED, "status": "ok"}).json()
    assert listed["object"] == "list"
    row = next(row for row in listed["data"] if row["trace_id"] == trace_id)
    assert row["route"] == "/v1/embeddings"
    assert row["error"] is False
    assert row["span_count"] == len(spans)


def test_a_stream_has_time_to_first_token_and_decode(client: openai.OpenAI, server: ServerProcess) -> None:
    before = MetricSamples.scrape(server.url, server.headers)
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8,
        stream=True,
        extra_body={"ignore_eos": True},  # eight tokens: an inter-token latency to measure
        # A sampled traceparent: the store keeps it whatever else the shared server is serving.
        extra_headers={"traceparent": f"00-{'5' * 32}-{CALLER_SPAN}-01"},
    )
    trace_id, _, _ = _traceparent(raw.headers)
    chunks = list(raw.parse())
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    spans = _trace(server, trace_id)
    assert {"time_to_first_token", "decode", "send"} <= set(spans)
    root = spans["POST /v1/chat/completions"]
    assert root["parent_span_id"] == CALLER_SPAN
    attributes = root["attributes"]
    assert isinstance(attributes, dict)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.response.finish_reasons"] == [chunks[-1].choices[0].finish_reason]
    assert attributes["gen_ai.usage.output_tokens"] >= 1
    after = MetricSamples.scrape(server.url, server.headers)
    for name in ("strata_time_to_first_token_seconds_count", "strata_time_per_output_token_seconds_count"):
        assert after.value(name, deployment="chat") == before.value(name, deployment="chat") + 1, name


def test_an_error_carries_a_traceparent_and_is_kept(client: openai.OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        client.embeddings.create(model="no-such-model", input="x")
    trace_id, _, _ = _traceparent(refused.value.response.headers)
    with server.http() as http:
        failed = http.get("/v1/admin/traces", params={"status": "error"}).json()["data"]
    assert trace_id in {row["trace_id"] for row in failed}
    assert all(row["error"] for row in failed)
    root = _trace(server, trace_id)["POST /v1/embeddings"]
    assert root["status"] == "error"
    assert root["parent_span_id"] is None  # no traceparent sent: a new trace


def test_unknown_traces_and_bad_queries_are_openai_errors(server: ServerProcess) -> None:
    with server.http() as http:
        missing = http.get(f"/v1/admin/traces/{'0' * 31}1")
        bad = http.get("/v1/admin/traces", params={"limit": "0"})
        unknown = http.get("/v1/admin/traces", params={"colour": "red"})
        anonymous = httpx.get(f"{server.url}/v1/admin/traces")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "traceparent" in missing.headers
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "limit"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "colour"
    assert anonymous.status_code == 401
    assert "traceparent" in anonymous.headers


@pytest.mark.slow  # its own server: 30-47 s to start on the shared 2-core machine (measured), most of it imports
def test_traces_are_exported_to_an_otlp_receiver(exporting: ServerProcess, receiver: OTLPReceiver) -> None:
    with exporting.http() as http:
        answer = http.post("/v1/models/echo/predict", json={"inputs": [1, 2, 3]})
    assert answer.status_code == 200
    trace_id, span_id, _ = _traceparent(answer.headers)
    expected = len(_trace(exporting, trace_id))
    spans = receiver.wait_for(int(trace_id, 16), expected)
    by_name = {span.name: span for span in spans}  # type: ignore[attr-defined]
    root = by_name["POST /v1/models/{model:path}/predict"]
    assert root.span_id.hex() == span_id
    assert root.kind == root.SPAN_KIND_SERVER
    assert by_name["inference"].parent_span_id.hex() == span_id
    attributes = {a.key: a.value for a in root.attributes}
    assert attributes["gen_ai.request.model"].string_value == "echo"
    assert attributes["http.response.status_code"].int_value == 200
    resource = {a.key: a.value.string_value for a in receiver.resource_spans()[0].resource.attributes}
    assert resource["service.name"] == "strata-exporting"
    lines = [json.loads(line) for line in exporting.logs().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("kind") == "access" and line["trace_id"] == trace_id]
    assert len(access) == 1  # the request's access line, in the one JSON schema
    assert access[0]["span_id"] == span_id
    assert access[0]["route"] == "/v1/models/{model:path}/predict"
    assert access[0]["status"] == 200
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    costs = MetricSamples.scrape(exporting.url, exporting.headers)
    assert costs.value("strata_request_cost_count", deployment="echo") >= 1  # priced per compute second
    assert costs.value("strata_request_cost_sum", deployment="echo") > 0
    assert all(headers.get("x-collector-token") == "t0k" for headers in receiver.headers)


def _finished(trace_id: int, parent_span_id: int = 0, flags: int = 1) -> RequestRecord:
    record = RequestRecord("GET", "/v1/models", route="/v1/models")
    record.trace_id, record.span_id, record.parent_span_id, record.trace_flags = trace_id, 0x1234, parent_span_id, flags
    record.status, record.first_byte, record.last_byte = 200, record.received + 0.001, record.received + 0.002
    return record


def test_the_sampling_ratio_and_the_callers_flag_decide_what_is_exported(receiver: OTLPReceiver) -> None:
    export = OTLPExport(OTLPSpec(endpoint=receiver.url, sampling_ratio=0.5), service="unit", version="0")
    low, high = 0xAB << 64 | 1, 0xCD << 64 | (2**64 - 1)  # the ratio reads the low 64 bits
    asked, refused = 0xEF << 64 | (2**64 - 1), 0xEE << 64 | 1
    records = [_finished(low), _finished(high), _finished(asked, 7, 1), _finished(refused, 7, 0)]
    assert [export.sampled(record) for record in records] == [True, False, True, False]
    export.export([record for record in records if export.sampled(record)])
    export.shutdown()  # flushes
    assert len(receiver.spans_of(low)) == 2  # the request and its send
    assert receiver.spans_of(high) == []
    assert len(receiver.spans_of(asked)) == 2


@pytest.mark.slow  # shares the exporting server
def test_each_attempt_of_a_job_step_is_a_span_linked_to_the_submitting_request(exporting: ServerProcess) -> None:
    with exporting.http() as http:
        submitted = http.post("/v1/jobs", json={"pipeline": "flaky", "input": {"n": 1}})
        assert submitted.status_code == 202, submitted.text
        trace_id, span_id, _ = _traceparent(submitted.headers)
        job = submitted.json()["id"]
        deadline = time.monotonic() + 30
        while http.get(f"/v1/jobs/{job}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not succeed"
            time.sleep(0.05)
        spans = http.get(f"/v1/admin/traces/{trace_id}").json()["spans"]
    steps = sorted(
        (s for s in spans if s["name"] == "job step try"), key=lambda s: s["attributes"]["strata.job.attempt"]
    )
    assert [s["attributes"]["strata.job.attempt"] for s in steps] == [1, 2]  # the retry is visible
    assert [s["status"] for s in steps] == ["error", "ok"]
    assert all(s["attributes"]["strata.job.id"] == job for s in steps)
    assert all(s["links"] == [{"trace_id": trace_id, "span_id": span_id}] for s in steps)
    assert any(s["name"] == "POST /v1/jobs" and s["span_id"] == span_id for s in spans)


def test_latency_buckets_carry_the_trace_of_a_recent_request(client: openai.OpenAI, server: ServerProcess) -> None:
    """OpenMetrics exemplars: a latency bucket on a dashboard links to one request's trace."""
    trace = "6" * 32
    client.embeddings.create(
        model=EMBED, input=["exemplar"], extra_headers={"traceparent": f"00-{trace}-{CALLER_SPAN}-01"}
    )
    with server.http() as http:
        scraped = http.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        classic = http.get("/metrics")
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in text_string_to_metric_families(scraped.text)}
    buckets = [s for s in families["strata_request_latency_seconds"].samples if s.name.endswith("_bucket")]
    [ours] = [s for s in buckets if s.exemplar is not None and s.exemplar.labels["trace_id"] == trace]
    assert ours.labels["route"] == "/v1/embeddings"
    assert 0 < ours.exemplar.value <= float(ours.labels["le"])
    assert classic.headers["content-type"].startswith("text/plain")
    assert trace not in classic.text  # the Prometheus text format has no exemplars
