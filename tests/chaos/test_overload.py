"""10x overload: the requests admitted keep their p99 inside the deployment's latency target; the
rest are shed at once with 503 + Retry-After; the wait queue and the server's memory stay bounded.
The deployment declares only its target: admission predicts each request's latency and sheds by it.

The `busy` deployment serves about 20 requests/s (2 replicas, one 100 ms call at a time each);
requests arrive open-loop at 200/s, ten times that, from a load generator in its own process
(benchmarks/loadgen_open.py), so that the test process's own pace does not delay them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from benchmarks.overload import OpenLoad, finish, start_open_loop
from chaos_helpers import ChaosServer, p99, report

from strata.testing import MetricSamples

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(60)]

CAPACITY_RPS = 20.0
OVERLOAD = 10
DURATION_S = 3.0
LATENCY_TARGET_S = 0.4  # the deployment's targets.latency_p99_ms
MEMORY_GROWTH_LIMIT_MB = 64


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _open_loop(chaos: ChaosServer, rate_rps: float, duration_s: float) -> OpenLoad:
    """Send at a fixed rate whatever the answers: an overload does not slow its own arrivals."""
    server = chaos.server
    with tempfile.TemporaryDirectory() as name:
        process = start_open_loop(
            server.port, server.api_key, rate_rps, duration_s, Path(name), "busy",
            path="/v1/models/busy/predict", body={"inputs": [1]},
        )  # fmt: skip
        return finish(process, Path(name), "busy", duration_s + 60)


def test_overload_sheds_fast_and_keeps_admitted_latency(chaos: ChaosServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos.server.process is not None
    pid = chaos.server.process.pid
    _open_loop(chaos, CAPACITY_RPS / 2, 1.0)  # admission learns the deployment's pace from a few requests
    rss_before = _rss_mb(pid)
    replies = _open_loop(chaos, CAPACITY_RPS * OVERLOAD, DURATION_S)
    rss_after = _rss_mb(pid)
    admitted, shed = replies.latencies(200), replies.latencies(503)
    admission = chaos.deployment("busy")["admission"]
    admitted_p99, shed_p99 = p99(admitted), p99(shed)
    report(
        capsys,
        f"overload x{OVERLOAD}: {len(replies.statuses)} requests, {len(admitted)} admitted with p99 "
        f"{admitted_p99 * 1000:.0f} ms (target {LATENCY_TARGET_S * 1000:.0f} ms), {len(shed)} shed with p99 "
        f"{shed_p99 * 1000:.0f} ms, most waiting {admission['max_waiting_seen']}, "  # type: ignore[index]
        f"server RSS {rss_before:.0f} -> {rss_after:.0f} MB",
    )
    assert len(admitted) + len(shed) == len(replies.statuses), sorted(set(replies.statuses))
    assert len(admitted) >= CAPACITY_RPS * DURATION_S * 0.5, "the deployment must keep serving at capacity"
    assert len(shed) >= len(replies.statuses) * 0.5
    assert replies.retry_after_share == 1.0  # every 503 carries Retry-After
    assert admitted_p99 <= LATENCY_TARGET_S * 1.5  # the bound; a queue to max_queue would mean seconds
    assert shed_p99 <= LATENCY_TARGET_S  # shed at once, not after waiting
    assert admission["max_waiting_seen"] <= 8  # type: ignore[index]  # ~4 fit the target at 20/s
    assert admission["shed"]["slo"] > 0  # type: ignore[index]
    assert rss_after - rss_before <= MEMORY_GROWTH_LIMIT_MB
    shed_total = MetricSamples.scrape(chaos.server.url, headers=chaos.server.headers).value(
        "strata_shed_total", deployment="busy", reason="overloaded"
    )
    assert shed_total >= len(shed)
