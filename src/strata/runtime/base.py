"""Where replicas run. Callers (router, deployment) see only these two interfaces, so a Ray
backend can put replicas in actors without changing them."""

from __future__ import annotations

from typing import Any, Protocol

from strata.observability.metrics import DeploymentMetrics
from strata.serving.generation import GenerationRequest, GenerationStream
from strata.spec import DeploymentSpec, ModelSpec


class Replica(Protocol):
    """One copy of a model with its own batcher. ``infer`` serves batch models, ``generate`` LMs."""

    replica_id: str

    @property
    def ready(self) -> bool:
        """Loaded and warmed up: safe to route traffic to."""
        ...

    @property
    def alive(self) -> bool:
        """Its worker runs (liveness). False after the worker died: the replica must be restarted."""
        ...

    def stalled_s(self) -> float:
        """Seconds the current model call has run without finishing (0 when idle)."""
        ...

    @property
    def queue_depth(self) -> int: ...

    async def start(self) -> None:
        """Load the model and warm it up; raises if loading fails."""
        ...

    async def stop(self) -> None: ...

    async def infer(self, item: Any) -> Any: ...

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Queue a generation; raises Overloaded at once when the replica's queue is full."""
        ...


class Runtime(Protocol):
    def create_replica(
        self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics
    ) -> Replica: ...

    async def shutdown(self) -> None: ...
