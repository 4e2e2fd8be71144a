"""The replica actor: one local replica (model + its batcher) living in a Ray worker process.

Inside the actor nothing is new: it holds exactly the replica the local runtime builds, so dynamic
and continuous batching behave the same on a laptop and on a cluster. What the actor adds is what
the gateway and the controller need to see from outside the process: a status (ready, queue,
requests in progress, how long the current model call has run) and a latency window for the
autoscaler. What it answers is typed (``ray_messages``); a request's StrataError comes back as itself,
wrapped in a ``Failure``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import ray

from strata.errors import StrataError
from strata.observability.metrics import Metrics
from strata.observability.replica_endpoint import LOOPBACK, serve_replica_metrics
from strata.record import current_record
from strata.runtime.ray_messages import Failure, Loaded, ReplicaStages, ReplicaStatus, TraceContext, Traced
from strata.spec import DeploymentSpec, ModelSpec
from strata.spec.scaling import RaySpec

if TYPE_CHECKING:  # the controller imports this module to name the class: it must not pull in torch
    from strata.serving.generation import GenerationEvent, GenerationRequest

LATENCY_WINDOW = 512  # latencies kept for the p99 the autoscaler reads: enough for a stable tail


class ReplicaActor:
    """Decorated with ``ray.remote`` by the controller. Async actor: many requests are in flight at
    once, which is what lets the batcher inside form batches."""

    def __init__(
        self, deployment: DeploymentSpec, model: ModelSpec, replica_id: str, cluster: RaySpec | None = None
    ) -> None:
        # Imported here, in the replica's process: the controller, which only names this class, never
        # pays for the model backends (torch, transformers) on its (re)start.
        from strata.runtime.local import LocalRuntime

        self.replica_id = replica_id
        self._node_id: str = ray.get_runtime_context().get_node_id()
        self._deployment = deployment.name
        self._metrics = Metrics()  # the replica's own: batch sizes, queue waits, tokens (see status)
        serves = cluster is not None and cluster.replica_metrics_port is not None
        self._metrics_url = self._serve_metrics(cluster) if cluster is not None and serves else None
        self._replica = LocalRuntime().create_replica(
            deployment, model, 0, self._metrics.for_deployment(deployment.name)
        )
        self._replica.replica_id = replica_id
        self._started = False
        self._in_flight = 0
        self._arrivals = 0
        self._finished_count = 0
        self._latencies: deque[tuple[int, float]] = deque(maxlen=LATENCY_WINDOW)  # (finished_count, seconds)
        self._last_arrival = time.monotonic()

    async def start(self) -> Loaded:
        """Load and warm the model; returns the seconds it took and where the replica is (its node, its
        metrics endpoint), so it is known from the moment it is ready. Raises if the model cannot load."""
        started = time.perf_counter()
        await self._replica.start()
        self._started = True
        return Loaded(time.perf_counter() - started, self._node_id, self._metrics_url)

    async def stop(self) -> None:
        await self._replica.stop()

    def status(self, since: int = 0) -> ReplicaStatus:
        """What the gateway routes on and the controller scales on; cheap, called a few times a second."""
        return ReplicaStatus(
            replica_id=self.replica_id,
            ready=self._started and self._replica.ready,
            alive=self._replica.alive,
            queue_depth=self._replica.queue_depth,
            stalled_s=self._replica.stalled_s(),
            in_flight=self._in_flight,
            arrivals=self._arrivals,
            idle_s=time.monotonic() - self._last_arrival,
            finished=self._finished_count,
            tokens_out=self._tokens("out"),
            latencies_s=tuple(seconds for count, seconds in self._latencies if count > since),
            node_id=self._node_id,
            metrics_url=self._metrics_url,
        )

    async def infer(self, item: Any, trace: TraceContext | None = None) -> Any:
        """The model's result, or a Failure. A traced call runs under a record of the caller's trace (the
        batcher stamps it as it would the gateway's) and is answered with its stages (``Traced``)."""
        self._arrived()
        started = time.perf_counter()
        record = trace.record(self.replica_id) if trace is not None else None
        token = current_record.set(record) if record is not None else None  # this call's own task context
        try:
            output = await self._replica.infer(item)
        except StrataError as error:
            return Failure.of(error)
        finally:
            if token is not None:
                current_record.reset(token)
            self._finished(started)
        if record is None:
            return output
        return Traced(output, ReplicaStages.of(record, self.replica_id, self._node_id))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent | Failure]:
        """A Ray streaming generator: a GenerationEvent per event, or one Failure that ends it.
        When the gateway cancels (its client left), this generator is cancelled and closing the
        local stream frees the sequence's batch slot before the next decode step."""
        self._arrived()
        started = time.perf_counter()
        try:
            try:
                stream = self._replica.generate(request)
            except StrataError as error:
                yield Failure.of(error)
                return
            try:
                async for event in stream.events():
                    yield event
            except StrataError as error:
                yield Failure.of(error)
            finally:
                stream.close()  # idempotent; when cancelled mid-stream, this is what frees the batch slot
        finally:
            self._finished(started)

    def _serve_metrics(self, cluster: RaySpec) -> str:
        """The batcher runs here, in the replica's process, so its metrics are scraped here: one endpoint
        per replica (Prometheus sums them), never re-exported by gateways, which would count them once
        per gateway. On loopback unless the spec says 'node', which takes a token (replica_endpoint.py)."""
        assert cluster.replica_metrics_port is not None
        host, token = LOOPBACK, None
        if cluster.replica_metrics_host == "node":
            host = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            token = os.environ.get(cluster.replica_metrics_token_env or "") or None
            if token is None:  # never open without one: the spec promised a token
                raise StrataError(f"ray.replica_metrics_token_env: {cluster.replica_metrics_token_env} is not set "
                                  "on this node; replica metrics on the node's address need it")  # fmt: skip
        _, url = serve_replica_metrics(self._metrics.registry, host, cluster.replica_metrics_port, token)
        return url

    def _tokens(self, direction: str) -> float:
        labels = {"deployment": self._deployment, "direction": direction}
        return self._metrics.registry.get_sample_value("strata_tokens_total", labels) or 0.0

    def _arrived(self) -> None:
        self._arrivals += 1
        self._in_flight += 1
        self._last_arrival = time.monotonic()

    def _finished(self, started: float) -> None:
        self._in_flight -= 1
        self._finished_count += 1
        self._latencies.append((self._finished_count, time.perf_counter() - started))
