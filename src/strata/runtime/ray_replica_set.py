"""One deployment's replicas as the controller sees them: desired vs actual, and the reconcile pass.

Every control interval, per deployment:
1. look at each replica (status call with a timeout): a dead actor is dropped, a hung one or one
   whose model call has stalled past ``health.stall_timeout_s`` is killed and dropped;
2. sum what the replicas report (requests in flight, queued, latencies, arrivals) and what the
   gateways hold during a cold start into one LoadSample, and ask the autoscaling policy how many
   replicas the deployment should have (a fixed ``replicas`` when it does not autoscale);
3. start replicas up to that count, or drain the surplus: a draining replica is left out of every
   gateway's replica set but keeps serving what it holds; it is killed only once it holds nothing
   and every gateway has had two syncs to see it leave (or ``drain_timeout_s`` passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from strata.runtime.ray_actor import ReplicaActor
from strata.runtime.ray_messages import Decision, DeploymentView, Loaded, ReplicaState, ReplicaStatus, ReplicaView
from strata.scaling.policy import LoadSample, ScalingDecision, ScalingPolicy, StrataAutoscaler
from strata.spec import AppSpec, DeploymentSpec, ModelSpec

log = logging.getLogger("strata.controller")

STATUS_TIMEOUT_S = 2.0  # a replica that cannot answer a status call this fast is busy or hung
HUNG_AFTER_MISSES = 3  # status timeouts in a row before a replica counts as hung
HELD_FRESH_S = 2.0  # a gateway's report of held requests counts this long
DECISIONS_KEPT = 100
SLOW_START_S = 60.0  # a replica still starting after this long gets a warning (placement or a slow load)


def replica_prefix(app: str, deployment: str) -> str:
    return f"{app}:{deployment}:"


@dataclass
class ReplicaRecord:
    replica_id: str
    handle: Any
    state: ReplicaState = "starting"  # starting -> ready -> draining; gone once removed
    started_at: float = field(default_factory=time.monotonic)
    draining_since: float | None = None
    node_id: str | None = None  # known once loaded (before the first status): where it runs
    metrics_url: str | None = None
    status: ReplicaStatus | None = None  # its latest answer to a status call
    misses: int = 0
    seen_finished: int = 0
    seen_arrivals: int = 0
    start_task: asyncio.Task[None] | None = None
    slow_start_logged: bool = False

    @property
    def in_flight(self) -> int:
        return self.status.in_flight if self.status else 0

    def view(self) -> ReplicaView:
        status = self.status
        # Before its first status, a replica this controller loaded is ready; an adopted one is not yet.
        ready = status.ready if status else self.start_task is not None
        return ReplicaView(
            replica_id=self.replica_id,
            state=self.state,
            ready=self.state == "ready" and ready,
            queue_depth=status.queue_depth if status else 0,
            stalled_s=status.stalled_s if status else 0.0,
            in_flight=self.in_flight,
            node_id=status.node_id if status else self.node_id,
            metrics_url=status.metrics_url if status else self.metrics_url,
            starting_for_s=round(time.monotonic() - self.started_at, 1) if self.state == "starting" else None,
        )


class FixedReplicas:
    """The policy of a deployment without an autoscaling section: always ``replicas``."""

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas  # changed by an operator's `scale` call

    def decide(self, sample: LoadSample) -> ScalingDecision:
        return ScalingDecision(desired=self.replicas, current=sample.replicas, reason="fixed", terms={})


def policy_for(spec: DeploymentSpec) -> ScalingPolicy:
    if spec.autoscaling is None:
        return FixedReplicas(spec.replicas)
    target = None if spec.targets.latency_p99_ms is None else spec.targets.latency_p99_ms / 1000.0
    return StrataAutoscaler(spec.autoscaling, target)


class DeploymentController:
    """Desired vs actual replicas of one deployment."""

    def __init__(self, app: AppSpec, spec: DeploymentSpec, model: ModelSpec) -> None:
        self.app = app
        self.spec = spec
        self.model = model
        self.policy = policy_for(spec)
        self.records: dict[str, ReplicaRecord] = {}
        self.next_index = 0
        self.held: dict[str, tuple[int, float]] = {}  # gateway -> (requests held, when reported)
        self.last_request_at = time.monotonic()
        self.last_tick_at = time.monotonic()
        self.decision: ScalingDecision | None = None
        self.decisions: deque[Decision] = deque(maxlen=DECISIONS_KEPT)
        self.decision_counts: dict[str, int] = {}
        self.replaced = 0
        self.load_errors: dict[str, str] = {}
        self.load_failures = 0  # in a row: each doubles the wait before the next start (no hot crash loop)
        self.start_after = 0.0

    # Replica lifecycle

    def adopt(self, name: str, handle: Any) -> None:
        record = ReplicaRecord(name, handle, state="ready")
        self.records[name] = record
        index = int(name.rsplit(":", 1)[1])
        self.next_index = max(self.next_index, index + 1)

    def start_one(self, namespace: str) -> None:
        replica_id = f"{replica_prefix(self.app.name, self.spec.name)}{self.next_index}"
        self.next_index += 1
        handle = (
            ray.remote(ReplicaActor)
            .options(
                name=replica_id,
                namespace=namespace,
                lifetime="detached",
                max_restarts=0,  # a dead replica is replaced by a new one: its state is simple
                max_concurrency=10_000,  # async actor: requests wait in the batcher, not in Ray
                scheduling_strategy="SPREAD",  # replicas on different nodes: losing one node loses fewest
                **actor_resources(self.spec),
            )
            .remote(self.spec, self.model, replica_id, self.app.ray)
        )
        record = ReplicaRecord(replica_id, handle)
        record.start_task = asyncio.create_task(self._load(record), name=f"load-{replica_id}")
        self.records[replica_id] = record
        log.info("%s: starting replica %s", self.spec.name, replica_id)

    async def _load(self, record: ReplicaRecord) -> None:
        try:
            loaded: Loaded = await record.handle.start.remote()
        except RayError as error:  # the model cannot load: the replica goes, the reason stays visible
            if record.replica_id not in self.records:
                return  # drained or replaced while loading: killed on purpose, not a load failure
            self.load_errors[record.replica_id] = str(error).strip().splitlines()[-1][:500]
            log.error("%s: replica %s failed to load: %s", self.spec.name, record.replica_id, error)
            self.load_failures += 1
            self.start_after = time.monotonic() + min(60.0, 2.0**self.load_failures)
            self.kill(record)
            return
        self.load_failures = 0
        record.node_id, record.metrics_url = loaded.node_id, loaded.metrics_url
        if record.state == "starting":
            record.state = "ready"
        log.info("%s: replica %s ready in %.2f s", self.spec.name, record.replica_id, loaded.seconds)

    def kill(self, record: ReplicaRecord) -> None:
        self.records.pop(record.replica_id, None)
        with contextlib.suppress(RayError, ValueError):
            ray.kill(record.handle, no_restart=True)

    # One pass

    async def observe(self) -> None:
        """Refresh every replica's status; drop the dead and the hung."""
        records = [r for r in self.records.values() if r.start_task is None or r.start_task.done()]
        results = await asyncio.gather(*(_status(r.handle, r.seen_finished) for r in records), return_exceptions=True)
        for record, result in zip(records, results, strict=True):
            if isinstance(result, GetTimeoutError | TimeoutError):
                record.misses += 1
                if record.misses >= HUNG_AFTER_MISSES:
                    self._replace(record, "does not answer")
            elif isinstance(result, RayActorError):
                self._replace(record, "its actor died")
            elif isinstance(result, BaseException):
                record.misses += 1
            else:
                record.misses = 0
                record.status = result
                if not self.spec.health.restart:
                    continue
                if not result.alive:  # the actor answers, but its batcher's worker died
                    self._replace(record, "its worker died")
                elif result.stalled_s > self.spec.health.stall_timeout_s:
                    self._replace(record, f"no progress for {result.stalled_s:.1f} s")

    def _replace(self, record: ReplicaRecord, why: str) -> None:
        log.warning("%s: replica %s is gone (%s); reconcile starts another", self.spec.name, record.replica_id, why)
        self.replaced += record.state != "draining"
        self.kill(record)

    def sample(self, now: float) -> LoadSample:
        live = [r for r in self.records.values() if r.state != "draining"]
        statuses = [r.status for r in self.records.values() if r.status]
        latencies = sorted(s for status in statuses for s in status.latencies_s)
        arrivals = 0
        for record in self.records.values():
            if record.status:
                arrivals += max(0, record.status.arrivals - record.seen_arrivals)
                record.seen_arrivals = record.status.arrivals
                record.seen_finished = record.status.finished
        held = sum(count for count, at in self.held.values() if now - at <= HELD_FRESH_S)
        if arrivals or held:
            self.last_request_at = now
        idle = [s.idle_s for s in statuses]
        elapsed = max(now - self.last_tick_at, 1e-3)
        self.last_tick_at = now
        return LoadSample(
            now_s=now,
            replicas=len(live),
            ready_replicas=sum(r.state == "ready" for r in live),
            in_flight=float(sum(s.in_flight for s in statuses)),
            queued=float(sum(s.queue_depth for s in statuses) + held),
            p99_latency_s=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
            arrivals_per_s=(arrivals + held) / elapsed,
            idle_s=min([now - self.last_request_at, *idle]),
        )

    def reconcile(self, namespace: str, now: float, sync_interval_s: float) -> None:
        decision = self.policy.decide(self.sample(now))
        self._record(decision, now)
        live = [r for r in self.records.values() if r.state != "draining"]
        if now >= self.start_after:
            for _ in range(decision.desired - len(live)):
                self.start_one(namespace)
        for record in live:
            if record.state == "starting" and not record.slow_start_logged and now - record.started_at > SLOW_START_S:
                record.slow_start_logged = True
                log.warning(
                    "%s: replica %s is still starting after %.0f s; if no node offers %s, Ray holds it until one does",
                    self.spec.name,
                    record.replica_id,
                    now - record.started_at,
                    actor_resources(self.spec),
                )
        surplus = len(live) - decision.desired
        if surplus > 0:
            # Cheapest to lose first: replicas still loading, then the least busy.
            victims = sorted(live, key=lambda r: (r.state != "starting", r.in_flight))[:surplus]
            for record in victims:
                record.state = "draining"
                record.draining_since = now
                log.info("%s: draining replica %s (%s)", self.spec.name, record.replica_id, decision.reason)
        drain_timeout = self.spec.autoscaling.drain_timeout_s if self.spec.autoscaling else 30.0
        for record in [r for r in self.records.values() if r.state == "draining"]:
            assert record.draining_since is not None
            waited = now - record.draining_since
            idle = record.in_flight == 0
            if (idle and waited >= 2 * sync_interval_s + 0.1) or waited >= drain_timeout:
                log.info("%s: removing drained replica %s after %.2f s", self.spec.name, record.replica_id, waited)
                self.kill(record)

    def _record(self, decision: ScalingDecision, now: float) -> None:
        self.decision = decision
        self.decision_counts[decision.reason] = self.decision_counts.get(decision.reason, 0) + 1
        if decision.desired != decision.current:
            terms = {k: round(v, 3) for k, v in decision.terms.items()}
            entry = Decision(time.time(), self.spec.name, decision.current, decision.desired, decision.reason, terms)
            self.decisions.append(entry)
            log.info(
                "%s: scale %d -> %d (%s) %s",
                self.spec.name,
                decision.current,
                decision.desired,
                decision.reason,
                entry.terms,
            )

    def view(self) -> DeploymentView:
        decision = self.decision
        return DeploymentView(
            replicas=tuple(r.view() for r in self.records.values()),
            desired=decision.desired if decision else None,
            reason=decision.reason if decision else None,
            decision_counts=dict(self.decision_counts),
            decisions=tuple(self.decisions)[-10:],
            replaced=self.replaced,
            load_errors=dict(self.load_errors),
        )


async def _status(handle: Any, since: int) -> ReplicaStatus:
    status: ReplicaStatus = await asyncio.wait_for(handle.status.remote(since), STATUS_TIMEOUT_S)
    return status


def actor_resources(spec: DeploymentSpec) -> dict[str, Any]:
    """Ray placement options from a deployment's resources: a GPU deployment only lands on GPU nodes."""
    resources = spec.resources
    options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus}
    if resources.memory_mb is not None:
        options["memory"] = resources.memory_mb * 1024 * 1024
    if resources.custom:
        options["resources"] = dict(resources.custom)
    if resources.accelerator_type is not None:
        options["accelerator_type"] = resources.accelerator_type
    return options
