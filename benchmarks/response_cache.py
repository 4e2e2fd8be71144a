"""Response cache: a cache hit over HTTP against the same request answered by the model, same run.

The shipped chat model behind a route with the exact cache on (in memory). The load generator (its
own process, its own core) sends one deterministic chat request over and over: the warm-up request
is the miss that keeps the answer, every measured one is a hit. The same request with
``Cache-Control: no-cache`` is answered by the model each time: the ratio says what a hit saves.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Row, load, served
from strata.testing.metrics import MetricSamples

GOAL_HIT_P50_MS = 1.0
PATH = "/v1/chat/completions"
SPEC = {
    "name": "bench-cache",
    "models": [{"name": "strata-chat-tiny", "kind": "hf-causal-lm", "path": "builtin:strata-chat-tiny"}],
    "deployments": [{"name": "chat", "model": "strata-chat-tiny", "batching": {"max_batch_size": 16}}],
    "routes": [{"name": "chat", "deployment": "chat", "cache": {"mode": "exact"}}],
}
BODY: dict[str, Any] = {
    "model": "chat",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0,
    "max_tokens": 16,
}


def run(duration_s: float) -> list[Row]:
    rows: list[Row] = []
    with served(SPEC) as server:
        hits = load(server, PATH, BODY, concurrency=1, duration_s=duration_s)
        misses = load(server, PATH, BODY, concurrency=1, duration_s=duration_s, headers=["Cache-Control: no-cache"])
        hits16 = load(server, PATH, BODY, concurrency=16, duration_s=duration_s)
        samples = MetricSamples.scrape(server.url, server.headers)
    # Every measured request of the hit runs was a hit (the warm-ups hold the one miss), per the server.
    counted = samples.value("strata_cache_requests_total", route="chat", result="hit")
    all_hits = counted >= hits.requests + hits16.requests
    hit_p50 = hits.percentile_ms(50)
    rows += [
        Row("response_cache", "hit p50 c=1", hit_p50, "ms", f"<= {GOAL_HIT_P50_MS} ms", hit_p50 <= GOAL_HIT_P50_MS),
        Row("response_cache", "hit p99 c=1", hits.percentile_ms(99), "ms"),
        Row("response_cache", "hit requests/s c=1", hits.throughput, "req/s"),
        Row("response_cache", "hit requests/s c=16", hits16.throughput, "req/s"),
        Row("response_cache", "hit p99 c=16", hits16.percentile_ms(99), "ms"),
        Row("response_cache", "model (no-cache) p50 c=1", misses.percentile_ms(50), "ms"),
        Row("response_cache", "model p50 / hit p50 c=1", misses.percentile_ms(50) / hit_p50, "x"),
        Row("response_cache", "hits counted by the server", counted, "requests",
            ">= requests sent to the hit runs", all_hits),
        Row("response_cache", "errors", hits.errors + misses.errors + hits16.errors, "requests", "0",
            hits.errors + misses.errors + hits16.errors == 0),
    ]  # fmt: skip
    return rows
