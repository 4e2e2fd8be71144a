"""The local runtime: replicas live in this process; their compute runs on their own threads,
never on the event loop (torch releases the GIL inside its kernels)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from strata.errors import InvalidRequest, StrataError
from strata.models.base import BatchModel
from strata.models.factory import build_batch_model, build_decode_engine
from strata.observability.metrics import DeploymentMetrics
from strata.runtime.llamacpp_replica import LlamaCppReplica
from strata.runtime.upstream import UpstreamReplica
from strata.runtime.vllm_engine import VLLMReplica
from strata.serving.batcher import DynamicBatcher
from strata.serving.continuous import ContinuousBatcher
from strata.serving.generation import GenerationRequest, GenerationStream
from strata.serving.runtime import MetricsTarget, Replica
from strata.spec import DeploymentSpec, ModelSpec

if TYPE_CHECKING:
    from strata.serving.deployment import Deployment, ProgressCallback
    from strata.serving.route import Route


class _Queue(Protocol):
    @property
    def queue_depth(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    def stalled_s(self) -> float: ...


BatcherT = TypeVar("BatcherT", bound=_Queue)


class _LocalReplica(Generic[BatcherT]):
    """What both replica kinds share: identity, and readiness meaning "its batcher runs"."""

    def __init__(self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics) -> None:
        self.replica_id = f"{deployment.name}-{index}"
        self._deployment = deployment
        self._model_spec = model
        self._metrics = metrics
        self._batcher: BatcherT | None = None

    @property
    def ready(self) -> bool:
        return self._batcher is not None and self._batcher.alive

    @property
    def alive(self) -> bool:
        return self._batcher is None or self._batcher.alive  # not started yet is not dead

    def stalled_s(self) -> float:
        return self._batcher.stalled_s() if self._batcher else 0.0

    @property
    def queue_depth(self) -> int:
        return self._batcher.queue_depth if self._batcher else 0


class LocalBatchReplica(_LocalReplica[DynamicBatcher]):
    """A batch model behind a dynamic batcher; one model call at a time on its own thread."""

    def __init__(self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics) -> None:
        super().__init__(deployment, model, index, metrics)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.replica_id)
        self.model: BatchModel | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        device = self._deployment.resources.device
        cpus = self._deployment.resources.cpus
        model = await loop.run_in_executor(self._executor, build_batch_model, self._model_spec, device, cpus)
        await loop.run_in_executor(self._executor, model.warmup)
        self.model = model
        batching = self._deployment.batching
        batcher = DynamicBatcher(
            model.predict_batch,
            max_batch_size=batching.max_batch_size,
            max_wait_ms=batching.max_wait_ms,
            max_queue=self._deployment.max_queue,
            executor=self._executor,
            metrics=self._metrics,
            name=self.replica_id,
            inline=batching.inline,
            inline_below_us=batching.inline_below_us,
        )
        batcher.start()
        self._batcher = batcher

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()
            self._batcher = None
        # A stalled model call cannot be interrupted; its thread is abandoned, not waited for.
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def infer(self, item: Any) -> Any:
        assert self._batcher is not None, "route only to ready replicas"
        return await self._batcher.submit(item)

    def generate(self, request: GenerationRequest) -> GenerationStream:
        raise InvalidRequest(f"model '{self._model_spec.name}' does not generate text", param="model")


class LocalGenerationReplica(_LocalReplica[ContinuousBatcher]):
    """A causal LM behind a continuous batcher running on its own decode thread."""

    def __init__(self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics) -> None:
        super().__init__(deployment, model, index, metrics)
        self.engine: Any = None

    async def start(self) -> None:
        engine = await asyncio.to_thread(build_decode_engine, self._model_spec, self._deployment.resources.device)
        await asyncio.to_thread(engine.warmup)
        self.engine = engine
        batcher = ContinuousBatcher(
            engine,
            max_running=self._deployment.batching.max_batch_size,
            max_queue=self._deployment.max_queue,
            metrics=self._metrics,
            name=self.replica_id,
        )
        batcher.start()
        self._batcher = batcher

    async def stop(self) -> None:
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            await asyncio.to_thread(batcher.stop)

    async def infer(self, item: Any) -> Any:
        raise InvalidRequest(f"model '{self._model_spec.name}' only generates text", param="model")

    def generate(self, request: GenerationRequest) -> GenerationStream:
        assert self._batcher is not None, "route only to ready replicas"
        return self._batcher.submit(request)


class LocalRuntime:
    """Replicas in this process, owned by their deployments: everything cluster-wide is a no-op here."""

    manages_replicas = False  # each deployment creates, supervises and restarts its own

    def create_replica(
        self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics
    ) -> Replica:
        if model.kind == "openai":
            return UpstreamReplica(deployment, model, index, metrics)
        if model.kind == "vllm":
            return VLLMReplica(deployment, model, index, metrics)
        if model.kind == "llama-cpp":
            return LlamaCppReplica(deployment, model, index, metrics)
        if model.task == "generate":
            return LocalGenerationReplica(deployment, model, index, metrics)
        return LocalBatchReplica(deployment, model, index, metrics)

    async def follow(self, deployment: Deployment, progress: ProgressCallback | None) -> None:
        raise StrataError("the local runtime has no replica set to follow: deployments create their replicas")

    def share_routes(self, routes: Mapping[str, Route]) -> None:
        return None  # one gateway: its splits are the only ones

    def register_metrics(self, registry: CollectorRegistry) -> None:
        return None  # the server's own metrics cover every replica

    def snapshot(self) -> dict[str, Any]:
        return {"runtime": "local"}

    def metrics_targets(self) -> list[MetricsTarget]:
        return []  # the server's /metrics has every replica's

    async def shutdown(self) -> None:
        return None
