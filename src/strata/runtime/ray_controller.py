"""The controller: one detached Ray actor per app that owns the replica actors.

Every ``control_interval_ms`` it runs one reconcile pass per deployment (see ``ray_replica_set``).

It keeps no state Ray does not keep too: replica actors are named (``APP:DEPLOYMENT:N``) and
detached, so a restarted controller adopts the ones running instead of starting new ones, and the
gateways never notice that it restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time

import ray

from strata.runtime.ray_messages import ReplicaSet, RouteSplit
from strata.runtime.ray_replica_set import DeploymentController, FixedReplicas, replica_prefix
from strata.spec import AppSpec

log = logging.getLogger("strata.controller")


def controller_name(app: str) -> str:
    return f"{app}:controller"


def spec_fingerprint(app: AppSpec) -> str:
    """What must match between a gateway and the running controller of its app: everything that
    shapes replicas and routing (not the gateway's port, its stores or its access settings)."""
    return hashlib.sha256(app.model_dump_json(exclude={"gateway", "store", "access"}).encode()).hexdigest()[:16]


class Controller:
    """The actor class (``ray.remote`` is applied by whoever creates it)."""

    def __init__(self, app_json: str) -> None:
        self.app = AppSpec.model_validate_json(app_json)
        self.namespace = self.app.ray.namespace
        self.deployments = {
            d.name: DeploymentController(self.app, d, self.app.model(d.model)) for d in self.app.deployments
        }
        self._adopt()
        # Route splits decided on one gateway, for all (revisions from this actor's clock, see RouteSplit).
        # Kept here only: after a restart gateways keep their split, and hand it back.
        self.route_weights: dict[str, RouteSplit] = {}
        self._loop: asyncio.Task[None] | None = None
        self.started_at = time.time()

    def _adopt(self) -> None:
        """Take over the replicas a previous incarnation started (this one may be a restart)."""
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] != self.namespace:
                continue
            for controller in self.deployments.values():
                prefix = replica_prefix(self.app.name, controller.spec.name)
                name = entry["name"]
                if name.startswith(prefix) and name[len(prefix) :].isdigit():
                    with contextlib.suppress(ValueError):
                        controller.adopt(name, ray.get_actor(name, namespace=self.namespace))

    def _ensure_loop(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run(), name="control-loop")

    async def _run(self) -> None:
        interval = self.app.ray.control_interval_ms / 1000.0
        sync = self.app.ray.sync_interval_ms / 1000.0
        while True:
            for controller in self.deployments.values():
                try:
                    await controller.observe()
                    controller.reconcile(self.namespace, time.monotonic(), sync)
                except Exception:  # boundary: one deployment's trouble must not stop the others' control
                    log.exception("%s: reconcile failed", controller.spec.name)
            await asyncio.sleep(interval)

    async def replica_set(self, gateway: str, held: dict[str, int]) -> ReplicaSet:
        """A gateway's sync: it reports requests it holds for a cold start, and gets every deployment's
        replicas (draining ones are left out of routing by the gateway) and the latest decisions."""
        self._ensure_loop()
        now = time.monotonic()
        for name, count in held.items():
            if name in self.deployments:
                self.deployments[name].held[gateway] = (count, now)
        return ReplicaSet(
            started_at=self.started_at,
            deployments={name: c.view() for name, c in self.deployments.items()},
            routes=dict(self.route_weights),
        )

    async def set_route_weights(self, route: str, weights: dict[str, float]) -> int:
        """A gateway's new split for ``route``, for every gateway; returns its revision."""
        current = self.route_weights.get(route)
        revision = max(time.time_ns(), current.revision + 1 if current else 0)
        self.route_weights[route] = RouteSplit(revision, dict(weights))
        return revision

    async def scale(self, deployment: str, replicas: int) -> None:
        """Set the replica count of a deployment that does not autoscale (an operator's decision)."""
        policy = self.deployments[deployment].policy
        if not isinstance(policy, FixedReplicas):
            raise ValueError(f"deployment '{deployment}' autoscales: change its autoscaling bounds instead")
        policy.replicas = replicas
        self._ensure_loop()

    async def fingerprint(self) -> str:
        """The spec this controller runs (gateways refuse to join one of another version)."""
        self._ensure_loop()
        return spec_fingerprint(self.app)

    async def shutdown(self) -> None:
        """Stop every replica (the app is being torn down, not one gateway restarting)."""
        if self._loop is not None:
            self._loop.cancel()
        for controller in self.deployments.values():
            for record in list(controller.records.values()):
                controller.kill(record)
