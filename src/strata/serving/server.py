"""The model server: every deployment of an app, and the routes clients address them by."""

from __future__ import annotations

import asyncio
import contextlib
import random

from strata.errors import ModelNotFound
from strata.observability.metrics import Metrics
from strata.observability.resilience_metrics import ResilienceMetrics
from strata.serving.deployment import Deployment, ProgressCallback
from strata.serving.route import Route
from strata.serving.runtime import Runtime
from strata.spec import AppSpec

ROLLOUT_TICK_S = 0.1  # how often running rollouts check whether a step's window has passed

__all__ = ["ModelServer", "Route"]


class ModelServer:
    def __init__(self, spec: AppSpec, runtime: Runtime, metrics: Metrics, *, seed: int | None = None) -> None:
        self.spec = spec
        self.runtime = runtime
        self.metrics = metrics
        self.resilience = ResilienceMetrics(metrics.registry)
        runtime.register_metrics(metrics.registry)  # a cluster runtime exports its own state
        rng = random.Random(seed)
        self.deployments = {
            d.name: Deployment(
                d, spec.model(d.model), runtime, metrics.for_deployment(d.name), self.resilience, rng=rng
            )
            for d in spec.deployments
        }
        for name in self.deployments:
            self.resilience.declare(name)
        self.routes = {r.name: Route(r, self.deployments, self.resilience) for r in spec.routes}
        for route in self.routes.values():
            route.fallbacks = [self.routes[name] for name in route.spec.fallbacks]
        runtime.share_routes(self.routes)  # a cluster runtime: one split for every gateway
        self._rollout_ticker: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return all(d.ready for d in self.deployments.values())

    @property
    def load_errors(self) -> dict[str, str]:
        return {rid: err for d in self.deployments.values() for rid, err in d.load_errors.items()}

    async def start(self, progress: ProgressCallback | None = None) -> None:
        """Load and warm every replica. Deployments load one after another so that, on a small
        machine, the first model is ready as early as possible."""
        self._rollout_ticker = asyncio.create_task(self._tick_rollouts(), name="rollouts")
        for deployment in self.deployments.values():
            await deployment.start(progress)
            self.metrics.replicas_ready.labels(deployment=deployment.name).set(deployment.ready_replicas)

    async def _tick_rollouts(self) -> None:
        while True:
            await asyncio.sleep(ROLLOUT_TICK_S)
            for route in self.routes.values():
                route.analyse()

    async def stop(self) -> None:
        if self._rollout_ticker is not None:
            self._rollout_ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rollout_ticker
        await asyncio.gather(*(d.stop() for d in self.deployments.values()))
        await self.runtime.shutdown()

    def resolve(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(model)
        return route
