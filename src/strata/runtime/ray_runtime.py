"""The Ray runtime, gateway side: joins the cluster, finds (or creates) the app's controller, and
keeps every deployment's replica set in step with it.

Several gateways may run this at once, on any nodes: the first one creates the controller (a
detached named actor; the others get the same one), each syncs every ``sync_interval_ms`` and
routes with its own router, breakers and admission control. A sync that fails (the controller is
restarting) changes nothing: the gateway keeps routing to the replicas it knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ray
from prometheus_client import CollectorRegistry
from ray.exceptions import GetTimeoutError, RayError

from strata.errors import SpecError, StrataError
from strata.observability.cluster_metrics import register_cluster_metrics
from strata.observability.metrics import DeploymentMetrics
from strata.runtime.ray_controller import Controller, controller_name, spec_fingerprint
from strata.runtime.ray_messages import DeploymentView, ReplicaSet, RouteSplit
from strata.runtime.ray_replica import RayReplica
from strata.serving.runtime import MetricsTarget, Replica
from strata.spec import AppSpec, DeploymentSpec, ModelSpec

if TYPE_CHECKING:
    from strata.serving.deployment import Deployment, ProgressCallback
    from strata.serving.route import Route

log = logging.getLogger(__name__)

SYNC_TIMEOUT_S = 5.0
CONTROLLER_START_TIMEOUT_S = 120.0
HEAD_NODE_RESOURCE = "node:__internal_head__"  # every Ray head node has this resource


def connect(address: str, namespace: str) -> None:
    """Join the cluster once per process ('local' starts a private one, for trying distributed mode out)."""
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=None if address == "local" else address,
            namespace=namespace,
            log_to_driver=False,  # replica and controller logs stay in Ray's log folder, not on the gateway's console
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise SpecError(
            f"ray.address: cannot join the Ray cluster at '{address}' ({type(error).__name__}: {error}). "
            "Start one (`ray start --head`), join this node to one, or use address 'local' to try it out.",
            param="ray.address",
        ) from None


def find_controller(app: AppSpec) -> Any:
    """The running controller of ``app`` on the joined cluster; raises ValueError when there is none."""
    return ray.get_actor(controller_name(app.name), namespace=app.ray.namespace)


class RayRuntime:
    manages_replicas = True  # deployments follow the controller's replica set (see Deployment.follow)

    def __init__(self, app: AppSpec, *, address: str | None = None) -> None:
        self.app = app
        self.address = address or os.environ.get("STRATA_RAY_ADDRESS") or app.ray.address
        self.gateway_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        connect(self.address, app.ray.namespace)
        self.controller: Any = (
            ray.remote(Controller)
            .options(
                name=controller_name(app.name),
                namespace=app.ray.namespace,
                lifetime="detached",
                get_if_exists=True,  # the first gateway creates it; every other gets the same one
                max_restarts=-1,  # it keeps no state of its own: a restart adopts the running replicas
                max_concurrency=1000,
                num_cpus=0,
                # On the head node, whose loss takes the cluster (its GCS) with it anyway: losing any
                # other node then never costs the controller as well as that node's replicas.
                resources={HEAD_NODE_RESOURCE: 0.001},
            )
            .remote(app.model_dump_json())
        )
        self._check_same_app(app)
        self._deployments: dict[str, Deployment] = {}
        self._routes: Mapping[str, Route] = {}
        self._route_revisions: dict[str, int] = {}  # the newest split applied (or published) per route
        self._publishing: set[asyncio.Task[None]] = set()
        self._replicas: dict[str, RayReplica] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.view: dict[str, DeploymentView] = {}  # the controller's last answer: replicas, decisions (for /metrics)
        self.sync_failures = 0
        self.syncs = 0

    def _check_same_app(self, app: AppSpec) -> None:
        """Refuse to join a controller started from another version of the spec: gateways would route
        by one spec to replicas built from another. (Blocks start-up until the controller answers.)"""
        try:
            running = ray.get(self.controller.fingerprint.remote(), timeout=CONTROLLER_START_TIMEOUT_S)
        except GetTimeoutError:
            raise SpecError(
                f"the controller of app '{app.name}' did not answer within {CONTROLLER_START_TIMEOUT_S:.0f} s "
                "(is the head node overloaded, or out of memory?)",
                param="ray.address",
            ) from None
        if running != spec_fingerprint(app):
            raise SpecError(
                f"app '{app.name}' already runs on this cluster (namespace '{app.ray.namespace}') from a different "
                "spec; stop it first (`strata cluster down`) or give this one another name or ray.namespace",
                param="name",
            )

    def register_metrics(self, registry: CollectorRegistry) -> None:
        register_cluster_metrics(registry, lambda: self.view, lambda: self.sync_failures)

    def snapshot(self) -> dict[str, Any]:
        """For GET /v1/admin/cluster: this gateway, and the controller's view of every deployment."""
        return {
            "runtime": "ray",
            "address": self.address,
            "gateway": self.gateway_id,
            "syncs": self.syncs,
            "sync_failures": self.sync_failures,
            "deployments": {name: view.json() for name, view in self.view.items()},
        }

    def share_routes(self, routes: Mapping[str, Route]) -> None:
        """Traffic splits are cluster-wide: a split decided here (operator weights, rollout steps) goes
        to the controller, and the others' splits are applied here at each sync."""
        self._routes = routes
        for route in routes.values():
            route.publish_splits(self._publish_weights)

    def _publish_weights(self, route: str, weights: dict[str, float]) -> None:
        task = asyncio.get_running_loop().create_task(self._send_weights(route, weights))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _send_weights(self, route: str, weights: dict[str, float]) -> None:
        try:
            revision = await asyncio.wait_for(self.controller.set_route_weights.remote(route, weights), SYNC_TIMEOUT_S)
        except (RayError, TimeoutError) as error:  # the split holds here; the others keep theirs
            log.warning("could not share the new split of route %s: %s", route, type(error).__name__)
            return
        # Ours now: not applied again when the next sync brings it back.
        self._route_revisions[route] = max(revision, self._route_revisions.get(route, 0))

    def _follow_routes(self, splits: dict[str, RouteSplit]) -> None:
        for name, split in splits.items():
            route = self._routes.get(name)
            if route is not None and split.revision > self._route_revisions.get(name, 0):
                self._route_revisions[name] = split.revision
                route.follow_weights(split.weights)
        for name in self._route_revisions.keys() - splits.keys():
            # The controller forgot a split it had (it restarted): hand it ours again, so gateways that
            # start from now on get it too. Every gateway holds the same split, so whichever lands wins.
            self._publish_weights(name, self._routes[name].weights)

    def metrics_targets(self) -> list[MetricsTarget]:
        """Prometheus HTTP SD entries: one per replica that serves its own metrics."""
        entries: list[MetricsTarget] = []
        for deployment, view in self.view.items():
            for replica in view.replicas:
                url = replica.metrics_url
                if not url:
                    continue
                address, _, path = url.removeprefix("http://").partition("/")
                labels = {"__metrics_path__": f"/{path}", "app": self.app.name, "deployment": deployment}
                entries.append({"targets": [address], "labels": {**labels, "replica": replica.replica_id}})
        return entries

    def create_replica(
        self, deployment: DeploymentSpec, model: ModelSpec, index: int, metrics: DeploymentMetrics
    ) -> Replica:
        raise StrataError("the Ray runtime's replicas are started by its controller, not by a deployment")

    async def follow(self, deployment: Deployment, progress: ProgressCallback | None) -> None:
        """Keep ``deployment`` on the controller's replica set; return once its first replicas are ready
        (at once for a deployment that may scale to zero)."""
        self._deployments[deployment.name] = deployment
        if self._task is None:
            self._task = asyncio.create_task(self._sync_forever(), name="ray-sync")
        announced: set[str] = set()
        wanted = deployment.spec.replicas
        while True:
            await self._synced.wait()
            self._synced.clear()
            view = self.view.get(deployment.name)
            for replica in view.replicas if view else ():
                rid = replica.replica_id
                if progress and rid not in announced:
                    announced.add(rid)
                    progress(rid, "loading")
                if progress and replica.ready and rid + ":ready" not in announced:
                    announced.add(rid + ":ready")
                    progress(rid, "ready")
            if deployment.ready_replicas >= wanted or deployment.load_errors:
                return  # a model that cannot load is reported by /readyz; the controller retries with backoff
            if view is not None and view.desired == 0:
                return  # scaled to zero before its first replica was up: requests will start one

    async def _sync_forever(self) -> None:
        interval = self.app.ray.sync_interval_ms / 1000.0
        while True:
            try:
                await self.sync()
            except (RayError, TimeoutError) as error:  # controller restarting: keep routing as before
                self.sync_failures += 1
                log.warning("replica sync failed (%s); keeping the last replica set", type(error).__name__)
            self._synced.set()
            await asyncio.sleep(interval)

    async def sync(self) -> None:
        # Waiting for admission is demand the replicas' queues do not show (a latency target caps what is sent on).
        held = {name: d.held + d.admission.waiting for name, d in self._deployments.items()}
        answer: ReplicaSet = await asyncio.wait_for(
            self.controller.replica_set.remote(self.gateway_id, held), SYNC_TIMEOUT_S
        )
        self.view = answer.deployments
        self.syncs += 1
        for name, deployment in self._deployments.items():
            view = self.view.get(name)
            replicas = []
            for entry in view.replicas if view else ():
                if entry.state == "draining":
                    continue  # no new requests; those it holds finish on the slot they started on
                replica = self._replicas.get(entry.replica_id) or await self._handle(entry.replica_id)
                if replica is None:
                    continue
                replica.mark(ready=entry.ready, queue_depth=entry.queue_depth, stalled_s=entry.stalled_s)
                replicas.append(replica)
            deployment.follow(replicas, load_errors=view.load_errors if view else {})
        self._follow_routes(answer.routes)
        live = {r.replica_id for d in self._deployments.values() for r in d.replicas}
        self._replicas = {rid: r for rid, r in self._replicas.items() if rid in live}

    async def _handle(self, replica_id: str) -> RayReplica | None:
        try:
            actor = await asyncio.to_thread(ray.get_actor, replica_id, namespace=self.app.ray.namespace)
        except ValueError:  # removed between the controller's answer and now
            return None
        replica = RayReplica(replica_id, actor)
        self._replicas[replica_id] = replica
        return replica

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.address == "local":  # a private cluster: nothing outlives this gateway
            with contextlib.suppress(RayError):
                await asyncio.wait_for(self.controller.shutdown.remote(), SYNC_TIMEOUT_S)
            ray.shutdown()
