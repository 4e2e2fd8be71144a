"""A deployment: N replicas of one model behind a router."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from strata.observability.metrics import DeploymentMetrics
from strata.runtime.base import Runtime
from strata.serving.generation import GenerationRequest, GenerationStream
from strata.serving.router import PowerOfTwoRouter, ReplicaSlot
from strata.spec import DeploymentSpec, ModelSpec

ProgressCallback = Callable[[str, str], None]
"""Called with (replica_id, phase) where phase is loading, ready or failed: <reason>."""


class Deployment:
    def __init__(
        self,
        spec: DeploymentSpec,
        model: ModelSpec,
        runtime: Runtime,
        metrics: DeploymentMetrics,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.metrics = metrics
        self.slots = [ReplicaSlot(runtime.create_replica(spec, model, i, metrics)) for i in range(spec.replicas)]
        self._router = PowerOfTwoRouter(self.slots, capacity=spec.max_queue + spec.batching.max_batch_size, rng=rng)
        self.load_errors: dict[str, str] = {}
        self.load_seconds: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ready(self) -> bool:
        return all(slot.replica.ready for slot in self.slots)

    @property
    def ready_replicas(self) -> int:
        return sum(slot.replica.ready for slot in self.slots)

    async def start(self, progress: ProgressCallback | None = None) -> None:
        await asyncio.gather(*(self._start_replica(slot, progress) for slot in self.slots))

    async def _start_replica(self, slot: ReplicaSlot, progress: ProgressCallback | None) -> None:
        replica_id = slot.replica.replica_id
        if progress:
            progress(replica_id, "loading")
        started = time.perf_counter()
        try:
            await slot.replica.start()
        except Exception as error:  # boundary: a replica that cannot load must not stop the others
            self.load_errors[replica_id] = str(error)
            if progress:
                progress(replica_id, f"failed: {error}")
            return
        self.load_seconds[replica_id] = time.perf_counter() - started
        if progress:
            progress(replica_id, "ready")

    async def stop(self) -> None:
        await asyncio.gather(*(slot.replica.stop() for slot in self.slots), return_exceptions=True)

    async def infer(self, item: Any) -> Any:
        slot = self._router.choose()
        slot.outstanding += 1
        try:
            return await slot.replica.infer(item)
        finally:
            slot.outstanding -= 1

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Start a generation on the chosen replica. Overload raises here, before any output.
        The caller must iterate ``events()`` or call ``close()``; either frees the batch slot."""
        slot = self._router.choose()
        stream = slot.replica.generate(request)
        slot.outstanding += 1

        def release() -> None:
            slot.outstanding -= 1

        stream.add_close_callback(release)
        return stream
