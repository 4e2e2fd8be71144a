"""(b) Gateway overhead: a no-op model behind the full HTTP path, against calling it directly."""

from __future__ import annotations

import time

from benchmarks.harness import Row, load, percentile, served
from strata.models.python_model import EchoModel

TARGET_ADDED_P50_MS = 1.0
SPEC = {
    "name": "bench-gateway",
    "models": [{"name": "noop", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    # Batch of one: the gate closes at once, so what is measured is the gateway, not batching delay.
    "deployments": [
        {
            "name": "noop",
            "model": "noop",
            "max_queue": 4096,
            "batching": {"max_batch_size": 1, "max_wait_ms": 0},
        }
    ],
    "routes": [{"name": "noop", "deployment": "noop"}],
}


def direct_call_s(calls: int = 20_000) -> list[float]:
    model = EchoModel()
    timings = []
    for index in range(calls):
        started = time.perf_counter()
        model.predict_batch([index])
        timings.append(time.perf_counter() - started)
    return timings


def run(duration_s: float) -> list[Row]:
    direct = direct_call_s()
    direct_p50_ms = percentile(direct, 50) * 1000
    body = {"inputs": ["ping"]}
    rows = [Row("gateway", "direct call p50", direct_p50_ms * 1000, "us")]
    with served(SPEC) as server:
        for concurrency in (1, 64):
            result = load(server, "/v1/models/noop/predict", body, concurrency=concurrency, duration_s=duration_s)
            rows.append(Row("gateway", f"requests/s c={concurrency}", result.throughput, "req/s"))
            rows.append(Row("gateway", f"errors c={concurrency}", result.errors, "requests"))
            if concurrency == 1:
                added_p50 = result.percentile_ms(50) - direct_p50_ms
                added_p99 = result.percentile_ms(99) - percentile(direct, 99) * 1000
                rows += [
                    Row(
                        "gateway",
                        "added latency p50 c=1",
                        added_p50,
                        "ms",
                        f"<= {TARGET_ADDED_P50_MS} ms",
                        added_p50 <= TARGET_ADDED_P50_MS,
                    ),
                    Row("gateway", "added latency p99 c=1", added_p99, "ms"),
                ]
            else:
                rows.append(Row("gateway", f"p99 latency c={concurrency}", result.percentile_ms(99), "ms"))
    return rows
