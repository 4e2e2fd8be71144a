"""The autoscaler driving real replicas on the cluster: a burst scales up, the quiet after scales
down (draining, nothing dropped); an idle deployment scales to zero and a request arriving then is
held through the cold start instead of failing."""

from __future__ import annotations

import asyncio
import time

import pytest
from ray_apps import Load, echo_app, ray_runtime, serving, wait_until

from strata.runtime.ray_messages import DeploymentView
from strata.serving.server import ModelServer
from strata.testing.ray_cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

# Short windows and cooldowns so a test sees whole scale cycles in seconds; the policy is the real one.
FAST = {
    "upscale_cooldown_s": 0.5,
    "downscale_cooldown_s": 1.0,
    "downscale_stabilization_s": 1.0,
    "in_flight_window_s": 1.0,
    "forecast_window_s": 2.0,
    "forecast_horizon_s": 0.0,
    "drain_timeout_s": 10.0,
}


def _view(server: ModelServer) -> DeploymentView:
    return ray_runtime(server).view["echo"]


def _live(server: ModelServer) -> int:
    return sum(r.state != "draining" for r in _view(server).replicas)


async def test_a_burst_scales_up_and_the_quiet_after_it_scales_down(cluster: LocalCluster, app_name: str) -> None:
    scaling = {"min_replicas": 1, "max_replicas": 3, "target_in_flight": 2, "target_queue": 4, **FAST}
    spec = echo_app(app_name, {"name": "echo", "replicas": 1, "resources": {"cpus": 0.3}, "autoscaling": scaling})
    async with serving(spec, cluster.address) as server:
        async with Load(server, "echo", clients=12) as load:
            await wait_until(lambda: server.deployments["echo"].ready_replicas == 3, 60, "three ready replicas")
        await wait_until(lambda: len(_view(server).replicas) == 1, 60, "the quiet to scale back to one")
        assert load.failures == []
        reasons = _view(server).decision_counts
        assert any(reason in reasons for reason in ("in_flight", "backlog", "latency"))
        assert [d.desired > d.current for d in _view(server).decisions][:1] == [True]
        assert _view(server).desired == 1


async def test_an_idle_deployment_scales_to_zero_and_a_request_waits_through_the_cold_start(
    cluster: LocalCluster, app_name: str
) -> None:
    scaling = {"min_replicas": 0, "max_replicas": 1, "scale_to_zero_after_s": 1.0, "cold_start_timeout_s": 60, **FAST}
    spec = echo_app(app_name, {"name": "echo", "replicas": 1, "resources": {"cpus": 0.3}, "autoscaling": scaling})
    async with serving(spec, cluster.address) as server:
        await wait_until(lambda: _view(server).replicas == (), 30, "scale to zero")
        assert server.ready  # a deployment that may scale to zero is ready with none: requests wait
        started = time.monotonic()
        answers = await asyncio.gather(*(server.deployments["echo"].infer(f"cold {i}") for i in range(5)))
        waited = time.monotonic() - started
        assert answers == [f"cold {i}" for i in range(5)]
        assert _live(server) == 1
        assert waited > 0.2  # they really waited for a replica to start (process spawn + model load)
        assert _view(server).decision_counts.get("cold_start", 0) >= 1  # demand at zero starts one at once
