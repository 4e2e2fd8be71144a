import asyncio
import random
from typing import Any

import pytest
from fake_runtime import ScriptedReplica, ScriptedRuntime

from strata.errors import CircuitOpen, DeadlineExceeded, ModelFailed
from strata.observability.metrics import Metrics
from strata.observability.resilience_metrics import ResilienceMetrics
from strata.serving.deadline import Deadline
from strata.serving.deployment import Deployment
from strata.serving.route import RequestContext, Route
from strata.spec import DeploymentSpec, ModelSpec, RouteSpec
from strata.spec.resilience import RolloutSpec

MODEL = ModelSpec(name="m", kind="python", entrypoint="strata.models.python_model:EchoModel")
BREAKER = {"consecutive_failures": 2, "open_s": 60}


async def _routes(*specs: dict[str, Any]) -> tuple[dict[str, Route], dict[str, Deployment]]:
    metrics = Metrics()
    runtime = ScriptedRuntime()
    deployments = {}
    for name in ("big", "small", "blue", "green"):
        spec = DeploymentSpec(name=name, model="m", breaker=BREAKER)  # type: ignore[arg-type]
        deployments[name] = Deployment(spec, MODEL, runtime, metrics.for_deployment(name), rng=random.Random(0))
        await deployments[name].start()
    resilience = ResilienceMetrics(metrics.registry)
    routes = {s["name"]: Route(RouteSpec.model_validate(s), deployments, resilience) for s in specs}
    for route in routes.values():
        route.fallbacks = [routes[name] for name in route.spec.fallbacks]
    return routes, deployments


async def _call(route: Route, context: RequestContext | None = None) -> tuple[str, dict[str, str]]:
    context = context or RequestContext()

    async def work(deployment: Deployment) -> str:
        return str(await deployment.infer("x", context.deadline))

    result, _, served = await route.serve(context, work)
    return result, served.headers()


def _break(deployment: Deployment) -> None:
    replica = deployment.slots[0].replica
    assert isinstance(replica, ScriptedReplica)
    replica.fail = True


async def test_fallback_serves_and_says_so_then_breaker_skips_the_broken_route() -> None:
    routes, deployments = await _routes(
        {"name": "big", "deployment": "big", "fallbacks": ["small"]}, {"name": "small", "deployment": "small"}
    )
    result, headers = await _call(routes["big"])
    assert result.startswith("big-0")
    assert "x-strata-fallback" not in headers
    _break(deployments["big"])
    for _ in range(3):
        result, headers = await _call(routes["big"])
        assert result.startswith("small-0")
        assert headers["x-strata-fallback"] == "big -> small"
        assert headers["x-strata-route"] == "small"
    assert deployments["big"].breaker.state.value == "open"
    calls = deployments["big"].slots[0].replica.calls  # type: ignore[attr-defined]
    await _call(routes["big"])
    assert deployments["big"].slots[0].replica.calls == calls  # type: ignore[attr-defined]  # open: not even tried
    routes["big"].fallbacks = []
    with pytest.raises(CircuitOpen):
        await _call(routes["big"])


async def test_without_fallback_the_model_error_reaches_the_client() -> None:
    routes, deployments = await _routes({"name": "big", "deployment": "big"})
    _break(deployments["big"])
    with pytest.raises(ModelFailed):
        await _call(routes["big"])


async def test_versions_split_and_blue_green_switch() -> None:
    routes, _ = await _routes(
        {
            "name": "app",
            "versions": [
                {"name": "blue", "deployment": "blue", "weight": 100},
                {"name": "green", "deployment": "green"},
            ],
        }
    )
    assert (await _call(routes["app"]))[1]["x-strata-version"] == "blue"
    routes["app"].set_weights({"green": 100})
    assert (await _call(routes["app"]))[1]["x-strata-version"] == "green"
    routes["app"].set_weights({"blue": 100})
    assert (await _call(routes["app"]))[1]["x-strata-version"] == "blue"
    with pytest.raises(KeyError):
        routes["app"].set_weights({"purple": 100})


async def test_sticky_sessions_stay_on_one_version() -> None:
    routes, _ = await _routes(
        {
            "name": "app",
            "sticky": "session",
            "versions": [
                {"name": "blue", "deployment": "blue", "weight": 50},
                {"name": "green", "deployment": "green", "weight": 50},
            ],
        }
    )
    for session in ("a", "b", "c", "d"):
        seen = {(await _call(routes["app"], RequestContext(session=session)))[1]["x-strata-version"] for _ in range(5)}
        assert len(seen) == 1


async def test_failing_canary_is_rolled_back_by_its_outcomes() -> None:
    routes, deployments = await _routes(
        {
            "name": "app",
            "versions": [
                {"name": "blue", "deployment": "blue", "weight": 100},
                {"name": "green", "deployment": "green"},
            ],
        }
    )
    route = routes["app"]
    route.start_rollout("green", RolloutSpec(steps=[10, 100], min_requests=3))
    _break(deployments["green"])
    failures = 0
    for _ in range(100):
        try:
            await _call(route)
        except (ModelFailed, CircuitOpen):  # the third finds green's breaker open: failing too
            failures += 1
    assert route.rollout is not None
    assert route.rollout.phase.value == "rolled_back"
    assert failures == 3
    assert route.split.weights == {"blue": 100, "green": 0}
    with pytest.raises(ValueError, match="no running rollout"):
        route.promote()


async def test_short_client_deadlines_leave_the_deployment_breaker_closed() -> None:
    routes, deployments = await _routes({"name": "big", "deployment": "big"})
    replica = deployments["big"].slots[0].replica
    assert isinstance(replica, ScriptedReplica)
    replica.delay_s = 0.05
    for _ in range(4):
        with pytest.raises(DeadlineExceeded):
            await _call(routes["big"], RequestContext(deadline=Deadline.after_ms(5)))
    assert deployments["big"].breaker.state.value == "closed"


async def test_a_version_added_beside_the_spec_takes_a_rollout_and_leaves_with_its_weight() -> None:
    """A registry canary's path: a sibling deployment added as a version, rolled out, then removed
    with its traffic handed to the stable version (whose deployment adopted the sibling's replicas)."""
    routes, deployments = await _routes({"name": "r", "deployment": "blue"})
    route, blue = routes["r"], deployments["blue"]
    canary = blue.sibling("blue@v2", MODEL)
    await canary.start()
    route.add_version("blue@v2", canary)
    assert route.weights == {"blue": 100.0, "blue@v2": 0.0}
    with pytest.raises(ValueError, match="already has"):
        route.add_version("blue@v2", canary)
    route.start_rollout("blue@v2", RolloutSpec(steps=[50, 100], auto_promote=False))
    served = {(await _call(route))[1]["x-strata-version"] for _ in range(4)}
    assert served == {"blue", "blue@v2"}
    route.promote()
    assert route.weights == {"blue": 0.0, "blue@v2": 100.0}
    old = blue.replicas
    await canary.stop_supervising()
    replaced = blue.adopt(canary)
    route.remove_version("blue@v2", to="blue")
    assert replaced == old
    assert route.weights == {"blue": 100.0}
    assert "blue@v2" not in route.versions
    result, headers = await _call(route)
    assert result.startswith("blue@v2-0")  # the stable version now answers with the adopted replica
    assert headers["x-strata-version"] == "blue"
    with pytest.raises(KeyError):
        route.remove_version("blue@v2", to="blue")


async def test_a_request_that_outlives_its_removed_version_is_answered() -> None:
    routes, deployments = await _routes({"name": "r", "deployment": "blue"})
    route, blue = routes["r"], deployments["blue"]
    canary = blue.sibling("blue@v2", MODEL)
    await canary.start()
    route.add_version("blue@v2", canary)
    route.set_weights({"blue": 0, "blue@v2": 100})
    replica = canary.slots[0].replica
    assert isinstance(replica, ScriptedReplica)
    replica.delay_s = 0.05
    pending = asyncio.create_task(_call(route))
    await asyncio.sleep(0.01)
    route.remove_version("blue@v2", to="blue")  # while the request runs on it
    result, headers = await pending
    assert result.startswith("blue@v2-0")
    assert headers["x-strata-version"] == "blue@v2"
