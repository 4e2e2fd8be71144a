"""``Deployment.reload``: each replica is replaced by one built for the new model, started before the
swap, and the old one is stopped only once it holds nothing; a new replica that cannot start changes
nothing."""

import asyncio
import random

import pytest
from fake_runtime import ScriptedReplica, ScriptedRuntime

from strata.observability.metrics import Metrics
from strata.serving.deployment import Deployment
from strata.spec import DeploymentSpec, ModelSpec

OLD = ModelSpec(name="m", kind="python", entrypoint="strata.models.python_model:EchoModel")
NEW = ModelSpec(name="m", kind="python", entrypoint="strata.models.python_model:EchoModel", options={"v": 2})


async def _deployment(runtime: ScriptedRuntime, replicas: int) -> Deployment:
    spec = DeploymentSpec.model_validate({"name": "d", "model": "m", "replicas": replicas})
    deployment = Deployment(spec, OLD, runtime, Metrics().for_deployment("d"), rng=random.Random(0))
    await deployment.start()
    return deployment


class RefusingReplica(ScriptedReplica):
    async def start(self) -> None:
        raise RuntimeError("cannot load")


async def test_reload_swaps_every_replica_and_finishes_in_flight_requests() -> None:
    runtime = ScriptedRuntime()
    deployment = await _deployment(runtime, replicas=2)
    old = [slot.replica for slot in deployment.slots]
    for replica in old:
        assert isinstance(replica, ScriptedReplica)
        replica.delay_s = 0.05
    in_flight = [asyncio.create_task(deployment.infer(i)) for i in range(4)]
    await asyncio.sleep(0)
    await deployment.reload(NEW)
    assert deployment.model is NEW
    fresh = [slot.replica for slot in deployment.slots]
    assert all(isinstance(r, ScriptedReplica) and r.started and not r.stopped for r in fresh)
    assert all(isinstance(r, ScriptedReplica) and r.stopped for r in old)
    assert not set(map(id, fresh)) & set(map(id, old))
    results = await asyncio.gather(*in_flight)
    assert len(results) == 4  # nothing failed while its replica was replaced
    assert all(result.startswith("d-") for result in await asyncio.gather(*(deployment.infer(i) for i in range(4))))


async def test_a_replica_that_cannot_start_leaves_the_old_one_serving() -> None:
    runtime = ScriptedRuntime()
    deployment = await _deployment(runtime, replicas=1)
    old = deployment.slots[0].replica
    runtime.create_replica = lambda spec, model, index, metrics: RefusingReplica("d-0")  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="cannot load"):
        await deployment.reload(NEW)
    assert deployment.model is OLD
    assert deployment.slots[0].replica is old
    assert isinstance(old, ScriptedReplica)
    assert not old.stopped
    assert await deployment.infer("x") == "d-0:x"
