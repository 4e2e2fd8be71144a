"""A model that starts raising: the deployment's breaker opens, the fallback route serves (and
says so), and once the model is healthy again a half-open probe closes the breaker."""

from __future__ import annotations

import asyncio
import time

import pytest
from chaos_helpers import ChaosServer, Reply, predict, report

from strata.testing import MetricSamples
from strata.testing.chaos import Fault

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(60)]


async def test_breaker_opens_fallback_serves_half_open_recovers(
    chaos: ChaosServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with chaos.server.async_http(timeout=30) as client:
        healthy = await predict(client, "large")
        assert healthy.status == 200
        assert healthy.headers["x-strata-route"] == "large"
        assert "x-strata-fallback" not in healthy.headers

        chaos.control("large").set(Fault("raise"))
        failing_at = time.perf_counter()
        during: list[Reply] = []
        opened_after: float | None = None
        while time.perf_counter() - failing_at < 5:
            during.append(await predict(client, "large"))
            if chaos.deployment("large")["breaker"] != "closed":
                opened_after = time.perf_counter() - failing_at
                break
        during += [await predict(client, "large") for _ in range(10)]  # served while open

        chaos.control("large").clear()
        healed_at = time.perf_counter()
        recovered_after: float | None = None
        while time.perf_counter() - healed_at < 10:
            reply = await predict(client, "large")
            if reply.status == 200 and "x-strata-fallback" not in reply.headers:
                recovered_after = time.perf_counter() - healed_at
                break
            await asyncio.sleep(0.05)
    fallbacks = [r for r in during if r.headers.get("x-strata-fallback") == "large -> small"]
    report(
        capsys,
        f"breaker: opened {opened_after if opened_after is None else round(opened_after, 3)} s after the model "
        f"started raising; {len(fallbacks)}/{len(during)} requests served by the fallback, "
        f"{sum(r.status != 200 for r in during)} failed; closed again "
        f"{recovered_after if recovered_after is None else round(recovered_after, 3)} s after it healed",
    )
    assert opened_after is not None, "the breaker never opened"
    assert all(r.status == 200 for r in during), [r.status for r in during]
    assert len(fallbacks) == len(during), "every request while the model raised is served by the fallback"
    assert all(r.headers["x-strata-route"] == "small" for r in fallbacks)
    assert recovered_after is not None, "the half-open probe never closed the breaker"
    assert chaos.deployment("large")["breaker"] == "closed"
    samples = MetricSamples.scrape(chaos.server.url, headers=chaos.server.headers)
    assert samples.value("strata_fallbacks_total", route="large", fallback="small") >= len(fallbacks)
    assert samples.value("strata_deployment_breaker_open", deployment="large") == 0
