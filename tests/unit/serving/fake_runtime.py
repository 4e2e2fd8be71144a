"""A runtime whose replicas are plain objects the test scripts: fail, slow down, die."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from strata.errors import InvalidRequest, ModelFailed
from strata.observability.metrics import DeploymentMetrics
from strata.serving.deployment import Deployment, ProgressCallback
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream
from strata.serving.route import Route
from strata.serving.runtime import MetricsTarget
from strata.spec import DeploymentSpec, ModelSpec


class ScriptedReplica:
    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id
        self.started = False
        self.stopped = False
        self.fail = False
        self.delay_s = 0.0
        self.dead = False
        self.calls = 0

    @property
    def ready(self) -> bool:
        return self.started and not self.dead and not self.stopped

    @property
    def alive(self) -> bool:
        return not self.dead

    def stalled_s(self) -> float:
        return 0.0

    @property
    def queue_depth(self) -> int:
        return 0

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def infer(self, item: Any) -> Any:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if item == "invalid":
            raise InvalidRequest("bad input", param="inputs")
        if self.fail:
            raise ModelFailed(f"{self.replica_id} failed")
        return f"{self.replica_id}:{item}"

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Answers at once: one event with the replica's name, or an error event when failing."""
        self.calls += 1
        stream = GenerationStream(asyncio.get_running_loop())
        if self.fail:
            stream.publish(GenerationEvent("", 1, 0, error=f"{self.replica_id} failed"))
        else:
            stream.publish(GenerationEvent(self.replica_id, 1, 1, finish_reason="stop"))
        return stream


class ScriptedRuntime:
    """Deployments own its replicas, as on the local runtime."""

    manages_replicas = False

    def __init__(self) -> None:
        self.created: list[ScriptedReplica] = []

    def create_replica(
        self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics
    ) -> ScriptedReplica:
        replica = ScriptedReplica(f"{deployment.name}-{index}")
        self.created.append(replica)
        return replica

    async def follow(self, deployment: Deployment, progress: ProgressCallback | None) -> None:
        raise AssertionError("deployments own the scripted runtime's replicas")

    def share_routes(self, routes: Mapping[str, Route]) -> None:
        return None

    def register_metrics(self, registry: CollectorRegistry) -> None:
        return None

    def snapshot(self) -> dict[str, Any]:
        return {"runtime": "scripted"}

    def metrics_targets(self) -> list[MetricsTarget]:
        return []

    async def shutdown(self) -> None:
        return None
