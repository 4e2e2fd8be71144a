"""One replica turns 10x slow: the router avoids it and the outlier check ejects it, so the
overall p99 stays within 2x of the healthy p99 (the issue's criterion)."""

from __future__ import annotations

import pytest
from chaos_helpers import ChaosServer, closed_loop, p99, report

from strata.testing.chaos import Fault

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(60)]

CONCURRENCY = 8
PHASE_S = 4.0


async def test_slow_replica_keeps_p99_within_twice_healthy(
    chaos: ChaosServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with chaos.server.async_http(timeout=30) as client:
        await closed_loop(client, "slowable", concurrency=CONCURRENCY, duration_s=0.5)  # warm connections
        healthy = await closed_loop(client, "slowable", concurrency=CONCURRENCY, duration_s=PHASE_S)
        chaos.control("slowable").set(Fault("slow", replicas=1, factor=10))
        degraded = await closed_loop(client, "slowable", concurrency=CONCURRENCY, duration_s=PHASE_S)
    chaos.control("slowable").clear()
    assert all(r.status == 200 for r in healthy + degraded)
    healthy_p99 = p99([r.latency_s for r in healthy])
    degraded_p99 = p99([r.latency_s for r in degraded])
    replicas = chaos.deployment("slowable")["replicas"]
    ejected = [r["id"] for r in replicas if r["breaker"] != "closed"]  # type: ignore[index,union-attr]
    report(
        capsys,
        f"slow replica: healthy p99 {healthy_p99 * 1000:.0f} ms ({len(healthy)} requests), with one replica 10x slow "
        f"p99 {degraded_p99 * 1000:.0f} ms ({len(degraded)} requests), ratio {degraded_p99 / healthy_p99:.2f}, "
        f"ejected {ejected}",
    )
    assert ejected, "the slow replica should be ejected"
    assert degraded_p99 <= 2 * healthy_p99
