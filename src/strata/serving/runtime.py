"""What serving needs from a runtime (where replicas run): the ``Replica`` and ``Runtime`` protocols.

Serving owns these interfaces because it is what consumes them (router, deployment, model server);
the runtimes in ``strata.runtime`` implement them, with replicas in this process or in Ray actors
across a cluster, without changing their callers. The dependency runs one way: a runtime builds on
serving (its batchers, its generation messages), serving never imports a runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from prometheus_client import CollectorRegistry

from strata.observability.metrics import DeploymentMetrics
from strata.serving.generation import GenerationRequest, GenerationStream
from strata.spec import DeploymentSpec, ModelSpec

if TYPE_CHECKING:
    from strata.serving.deployment import Deployment, ProgressCallback
    from strata.serving.route import Route


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


class MetricsTarget(TypedDict):
    """One entry of Prometheus HTTP service discovery: a replica that serves its own metrics."""

    targets: list[str]
    labels: dict[str, str]


class Runtime(Protocol):
    """Where deployments' replicas run. A runtime is one of two kinds:

    - its deployments own their replicas (``manages_replicas`` false, the local runtime): a deployment
      builds each with ``create_replica``, then starts, supervises and restarts it itself;
    - it manages replicas itself (``manages_replicas`` true, Ray: a controller starts, replaces and
      drains them): a deployment's ``start`` hands it to ``follow``, which keeps the deployment on the
      runtime's replica set (through ``Deployment.follow``).

    The other members have a do-nothing answer on a runtime of one process (see ``LocalRuntime``).
    """

    @property
    def manages_replicas(self) -> bool:
        """Whether the runtime starts and replaces replicas itself (deployments then ``follow`` it)."""
        ...

    def create_replica(
        self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics
    ) -> Replica:
        """A new, unstarted replica (a runtime whose deployments own their replicas)."""
        ...

    async def follow(self, deployment: Deployment, progress: ProgressCallback | None) -> None:
        """Keep ``deployment`` on the runtime's replica set; return once its first replicas are ready
        (a runtime that manages replicas)."""
        ...

    def share_routes(self, routes: Mapping[str, Route]) -> None:
        """The server's routes, once they exist: a cluster runtime shares their traffic splits with the
        other gateways."""
        ...

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Export the runtime's own state (a cluster's replicas, its autoscaling) on the server's registry."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The runtime's view as JSON, for GET /v1/admin/cluster."""
        ...

    def metrics_targets(self) -> list[MetricsTarget]:
        """Replicas that serve their own metrics (empty when the server's /metrics has them all)."""
        ...

    async def shutdown(self) -> None: ...
