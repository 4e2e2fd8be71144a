import asyncio
import random

import pytest
from fake_runtime import ScriptedReplica, ScriptedRuntime

from strata.errors import DeadlineExceeded, InvalidRequest, ModelFailed
from strata.observability.metrics import Metrics
from strata.serving.deadline import Deadline
from strata.serving.deployment import Deployment
from strata.serving.generation import GenerationRequest
from strata.serving.sampling import SamplingParams
from strata.spec import DeploymentSpec, ModelSpec

MODEL = ModelSpec(name="m", kind="python", entrypoint="strata.models.python_model:EchoModel")


async def _deployment(runtime: ScriptedRuntime, **spec: object) -> Deployment:
    deployment = Deployment(
        DeploymentSpec.model_validate({"name": "d", "model": "m", **spec}),
        MODEL,
        runtime,
        Metrics().for_deployment("d"),
        rng=random.Random(0),
    )
    await deployment.start()
    return deployment


def _replica(deployment: Deployment, index: int) -> ScriptedReplica:
    replica = deployment.slots[index].replica
    assert isinstance(replica, ScriptedReplica)
    return replica


async def test_a_failed_try_is_retried_on_another_replica() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2)
    _replica(deployment, 0).fail = True
    results = {await deployment.infer(i) for i in range(10)}
    assert all(result.startswith("d-1:") for result in results)
    assert deployment.retry_budget.snapshot()["retries"] >= 1
    await deployment.stop()


async def test_bad_input_is_never_retried() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2)
    with pytest.raises(InvalidRequest):
        await deployment.infer("invalid")
    assert _replica(deployment, 0).calls + _replica(deployment, 1).calls == 1
    await deployment.stop()


async def test_every_replica_failing_reports_the_model_error() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2)
    for index in range(2):
        _replica(deployment, index).fail = True
    with pytest.raises(ModelFailed):
        await deployment.infer(1)
    await deployment.stop()


async def test_try_timeout_moves_to_another_replica() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2, retries={"try_timeout_ms": 50})
    _replica(deployment, 0).delay_s = 5
    _replica(deployment, 1).delay_s = 5
    with pytest.raises(DeadlineExceeded):
        await deployment.infer(1)
    _replica(deployment, 1).delay_s = 0
    assert (await deployment.infer(2)).startswith("d-1:")
    await deployment.stop()


async def test_the_client_deadline_bounds_every_try() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2)
    for index in range(2):
        _replica(deployment, index).delay_s = 5
    with pytest.raises(DeadlineExceeded, match="deadline"):
        await deployment.infer(1, Deadline.after_ms(30))
    await deployment.stop()


async def test_retries_stop_at_the_budget() -> None:
    deployment = await _deployment(
        ScriptedRuntime(), replicas=3, retries={"budget_ratio": 0.0, "min_retries_per_s": 0.1}
    )  # one retry per 10 s window
    _replica(deployment, 0).fail = True
    _replica(deployment, 1).fail = True
    outcomes = await asyncio.gather(*(deployment.infer(i) for i in range(20)), return_exceptions=True)
    assert deployment.retry_budget.snapshot()["retries"] == 1
    assert any(isinstance(outcome, ModelFailed) for outcome in outcomes)
    await deployment.stop()


async def test_failing_replica_is_ejected_then_probed_back() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2, breaker={"consecutive_failures": 2, "open_s": 0.05})
    _replica(deployment, 0).fail = True
    for i in range(10):
        await deployment.infer(i)
    assert deployment.slots[0].breaker.state.value == "open"
    calls = _replica(deployment, 0).calls
    for i in range(10):
        await deployment.infer(i)
    assert _replica(deployment, 0).calls == calls  # ejected: no traffic
    _replica(deployment, 0).fail = False
    await asyncio.sleep(0.06)
    await deployment.infer("probe")
    assert deployment.slots[0].breaker.state.value == "closed"
    await deployment.stop()


async def test_slow_replica_is_ejected() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=3, outlier={"min_samples": 1, "slow_ratio": 3})
    _replica(deployment, 2).delay_s = 0.05
    for slot in deployment.slots[:2]:
        slot.observe(0.001)
        slot.observe(0.001)
    for i in range(30):
        await deployment.infer(i)
    assert deployment.slots[2].breaker.state.value == "open"
    assert deployment.slots[2].breaker.reason.startswith("slow")
    await deployment.stop()


async def test_dead_replica_is_restarted_by_the_supervisor() -> None:
    runtime = ScriptedRuntime()
    deployment = await _deployment(runtime, replicas=2, health={"check_interval_ms": 10})
    dead = _replica(deployment, 0)
    dead.dead = True
    for _ in range(100):
        await asyncio.sleep(0.01)
        if deployment.slots[0].restarts:
            break
    assert deployment.slots[0].restarts == 1
    assert dead.stopped
    assert deployment.slots[0].replica is runtime.created[-1]
    assert deployment.ready_replicas == 2
    await deployment.stop()


async def test_generation_is_retried_before_its_first_event() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2)
    _replica(deployment, 0).fail = True
    request = GenerationRequest(params=SamplingParams(max_tokens=4))
    for _ in range(6):
        _stream, first, events = await deployment.generate(request)
        assert first.text == "d-1"
        await events.aclose()  # type: ignore[attr-defined]
    assert all(slot.outstanding == 0 for slot in deployment.slots)  # closing freed every slot
    _replica(deployment, 1).fail = True
    with pytest.raises(ModelFailed):
        await deployment.generate(request)
    await deployment.stop()


async def test_short_client_deadlines_do_not_eject_healthy_replicas() -> None:
    deployment = await _deployment(ScriptedRuntime(), replicas=2, breaker={"consecutive_failures": 2})
    for index in range(2):
        _replica(deployment, index).delay_s = 0.05
    for _ in range(4):
        with pytest.raises(DeadlineExceeded):
            await deployment.infer(1, Deadline.after_ms(5))
    assert [slot.breaker.state.value for slot in deployment.slots] == ["closed", "closed"]
    await deployment.stop()
