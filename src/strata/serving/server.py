"""The model server: every deployment of an app, and the routes clients address them by."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from strata.errors import ModelNotFound
from strata.observability.metrics import Metrics
from strata.runtime.base import Runtime
from strata.serving.deployment import Deployment, ProgressCallback
from strata.spec import AppSpec, RouteSpec


@dataclass(frozen=True, slots=True)
class Route:
    spec: RouteSpec
    deployment: Deployment

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.deployment.model.task


class ModelServer:
    def __init__(self, spec: AppSpec, runtime: Runtime, metrics: Metrics, *, seed: int | None = None) -> None:
        self.spec = spec
        self.runtime = runtime
        self.metrics = metrics
        rng = random.Random(seed)
        self.deployments = {
            d.name: Deployment(d, spec.model(d.model), runtime, metrics.for_deployment(d.name), rng=rng)
            for d in spec.deployments
        }
        self.routes = {r.name: Route(r, self.deployments[r.deployment]) for r in spec.routes}

    @property
    def ready(self) -> bool:
        return all(d.ready for d in self.deployments.values())

    @property
    def load_errors(self) -> dict[str, str]:
        return {rid: err for d in self.deployments.values() for rid, err in d.load_errors.items()}

    async def start(self, progress: ProgressCallback | None = None) -> None:
        """Load and warm every replica. Deployments load one after another so that, on a small
        machine, the first model is ready as early as possible."""
        for deployment in self.deployments.values():
            await deployment.start(progress)
            self.metrics.replicas_ready.labels(deployment=deployment.name).set(deployment.ready_replicas)

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.deployments.values()))
        await self.runtime.shutdown()

    def resolve(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(model)
        return route
