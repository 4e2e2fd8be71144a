"""Kill a replica under load: no retry-safe request fails, and the deployment is back to full
capacity within 2 s (the issue's criterion)."""

from __future__ import annotations

import asyncio
import time

import pytest
from chaos_helpers import ChaosServer, closed_loop, report

from strata.testing import MetricSamples
from strata.testing.chaos import Fault

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(60)]

RECOVERY_LIMIT_S = 2.0


async def _watch_recovery(chaos: ChaosServer, faulted_at: float, timeout_s: float) -> float | None:
    """Seconds from the fault until a restarted replica is back and every replica is ready."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        state = await asyncio.to_thread(chaos.deployment, "crashy")
        replicas = state["replicas"]  # type: ignore[index]
        if sum(r["restarts"] for r in replicas) >= 1 and all(r["ready"] for r in replicas):  # type: ignore[union-attr]
            return time.perf_counter() - faulted_at
        await asyncio.sleep(0.02)
    return None


async def test_killed_replica_is_retried_around_and_restarted(
    chaos: ChaosServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with chaos.server.async_http(timeout=30) as client:
        load = asyncio.create_task(closed_loop(client, "crashy", concurrency=8, duration_s=4.0))
        await asyncio.sleep(1.0)
        faulted_at = time.perf_counter()
        chaos.control("crashy").set(Fault("crash", replicas=1))
        recovery_s = await _watch_recovery(chaos, faulted_at, timeout_s=10)
        replies = await load
    failed = [r.status for r in replies if r.status != 200]
    after = [r for r in replies if r.sent_at >= faulted_at]
    state = chaos.deployment("crashy")
    report(
        capsys,
        f"replica crash: {len(replies)} requests ({len(after)} after the crash), {len(failed)} failed, "
        f"back to full capacity in {recovery_s if recovery_s is None else round(recovery_s, 3)} s, "
        f"retries {state['retry_budget']['retries']}",  # type: ignore[index]
    )
    assert not failed, f"statuses of failed requests: {failed}"
    assert len(after) > 50, "the load must run on after the crash"
    assert recovery_s is not None, "the crashed replica was not restarted within 10 s"
    assert recovery_s <= RECOVERY_LIMIT_S
    assert (
        MetricSamples.scrape(chaos.server.url, headers=chaos.server.headers).value(
            "strata_replica_restarts_total", deployment="crashy"
        )
        == 1
    )
