"""A deterministic, trace-driven simulation of one deployment under an autoscaling policy.

The model: each replica serves up to ``batch_slots`` requests at once, each for a service time
drawn from a gamma distribution (mean ``service_time_s``, coefficient of variation
``service_time_cv``); one FIFO queue sits in front of all replicas (the router's least-outstanding
choice behaves close to a shared queue); a new replica takes ``cold_start_s`` before it serves;
a removed replica takes no new requests and leaves once its last request finishes. Every
``control_interval_s`` the policy gets a ``LoadSample`` of the simulated state, as the controller
would build it, and its decision is applied at once.

It is an event simulation over request times, not a clock: each free batch slot is a heap entry
(free-at time, replica), and a request starts on the earliest free slot of a live replica or
waits in the queue. That is exact for a shared FIFO queue and costs a few heap operations per
request, so a 10-minute trace of ~100 k requests runs in a fraction of a second. Arrivals and
service times come from a seeded generator: a run is a pure function of its inputs.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from strata.scaling.policy import LoadSample, ScalingDecision, ScalingPolicy, StrataAutoscaler, ThresholdAutoscaler
from strata.scaling.traces import FloatArray, Trace, poisson_arrivals
from strata.spec.scaling import AutoscalingSpec

# After the trace ends the run goes on (no arrivals) until the queue is served, at most this long.
DRAIN_LIMIT_S = 120.0


@dataclass(frozen=True, slots=True)
class DeploymentModel:
    batch_slots: int = 4
    service_time_s: float = 0.1
    service_time_cv: float = 0.3
    cold_start_s: float = 8.0
    control_interval_s: float = 0.5


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    now_s: float
    before: int
    after: int
    reason: str


@dataclass(frozen=True, slots=True)
class SimulationResult:
    trace: str
    policy: str
    duration_s: float  # simulated: the trace, then until its last request was served (or DRAIN_LIMIT_S)
    requests: int
    unserved: int  # still queued at the drain limit; counted as violations, their wait so far as latency
    replica_seconds: float
    slo_violation_share: float  # requests slower than the latency target / all requests
    seconds_over_slo: float  # control intervals whose p99 was over the target, in seconds
    p99_latency_s: float
    max_replicas: int
    events: tuple[ScaleEvent, ...]

    @property
    def scale_events(self) -> int:
        return len(self.events)


class FixedReplicas:
    """Reference policy: always ``max_replicas`` (what a fixed deployment sized for the peak costs)."""

    def __init__(self, spec: AutoscalingSpec, latency_target_s: float | None = None) -> None:
        self.spec = spec

    def decide(self, sample: LoadSample) -> ScalingDecision:
        return ScalingDecision(self.spec.max_replicas, sample.replicas, "bounds", {})


@dataclass(slots=True)
class _Replica:
    started_s: float
    ready_s: float
    removed_s: float | None = None
    busy_until_s: float = 0.0


@dataclass(slots=True)
class _Deployment:
    """Replicas, their batch slots, the queue, and the requests in service."""

    model: DeploymentModel
    replicas: list[_Replica] = field(default_factory=list)
    slots: list[tuple[float, int]] = field(default_factory=list)  # heap: (free at, replica index)
    queue: deque[tuple[float, float]] = field(default_factory=deque)  # (arrival, service time), FIFO
    finishing: list[tuple[float, float]] = field(default_factory=list)  # heap: (finish, latency)
    latencies: list[float] = field(default_factory=list)

    def start_replica(self, now_s: float, ready_s: float) -> None:
        index = len(self.replicas)
        self.replicas.append(_Replica(now_s, ready_s, busy_until_s=ready_s))
        for _ in range(self.model.batch_slots):
            heapq.heappush(self.slots, (ready_s, index))

    def remove_replicas(self, now_s: float, count: int) -> None:
        """Starting replicas go first (nothing to drain), then those that finish their work soonest."""
        live = [r for r in self.replicas if r.removed_s is None]
        live.sort(key=lambda r: (r.ready_s <= now_s, r.busy_until_s))
        for replica in live[:count]:
            # It gets no new requests (its slots are skipped) and leaves when its last one finishes.
            replica.removed_s = max(now_s, replica.busy_until_s) if replica.ready_s <= now_s else now_s

    def arrive(self, arrival_s: float, service_s: float) -> None:
        self.serve_queue(arrival_s)
        if not self.queue:
            slot = self._free_slot(arrival_s)
            if slot is not None:
                self._start(arrival_s, service_s, arrival_s, slot)
                return
        self.queue.append((arrival_s, service_s))

    def serve_queue(self, until_s: float) -> None:
        """Start waiting requests on every slot that frees up to ``until_s``, in time order."""
        while self.queue:
            slot = self._free_slot(until_s)
            if slot is None:
                return
            arrival_s, service_s = self.queue.popleft()
            self._start(arrival_s, service_s, max(arrival_s, self.slots[0][0]), slot)

    def finished_by(self, now_s: float) -> list[float]:
        """Latencies of the requests that finished up to ``now_s`` and were not yet collected."""
        done = []
        while self.finishing and self.finishing[0][0] <= now_s:
            done.append(heapq.heappop(self.finishing)[1])
        return done

    def _free_slot(self, at_s: float) -> int | None:
        """The replica of the earliest slot free at ``at_s`` (slots of removed replicas are dropped)."""
        while self.slots:
            free_s, index = self.slots[0]
            if self.replicas[index].removed_s is not None:
                heapq.heappop(self.slots)
                continue
            return index if free_s <= at_s else None
        return None

    def _start(self, arrival_s: float, service_s: float, start_s: float, index: int) -> None:
        finish_s = start_s + service_s
        heapq.heapreplace(self.slots, (finish_s, index))
        replica = self.replicas[index]
        replica.busy_until_s = max(replica.busy_until_s, finish_s)
        heapq.heappush(self.finishing, (finish_s, finish_s - arrival_s))
        self.latencies.append(finish_s - arrival_s)

    def counts(self, now_s: float) -> tuple[int, int]:
        """(replicas not being removed, of which ready)."""
        live = [r for r in self.replicas if r.removed_s is None]
        return len(live), sum(1 for r in live if r.ready_s <= now_s)

    def replica_seconds(self, end_s: float) -> float:
        return sum(min(end_s, r.removed_s if r.removed_s is not None else end_s) - r.started_s for r in self.replicas)


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def _service_times(model: DeploymentModel, count: int, rng: np.random.Generator) -> FloatArray:
    shape = 1.0 / model.service_time_cv**2
    return rng.gamma(shape, model.service_time_s / shape, size=count)


@dataclass(slots=True)
class _Run:
    """One simulated run: the deployment, the policy, the arrivals still to come, what was measured."""

    deployment: _Deployment
    policy: ScalingPolicy
    arrivals: list[float]
    services: list[float]
    latency_target_s: float
    next_arrival: int = 0
    last_arrival_s: float | None = None
    seconds_over_slo: float = 0.0
    most_replicas: int = 0
    events: list[ScaleEvent] = field(default_factory=list)

    def busy(self) -> bool:
        return bool(self.deployment.queue or self.deployment.finishing)

    def step(self, now: float, interval: float) -> None:
        """1. the arrivals of one control interval  2. the sample  3. the decision, applied at once."""
        deployment, first = self.deployment, self.next_arrival
        while self.next_arrival < len(self.arrivals) and self.arrivals[self.next_arrival] < now:
            deployment.arrive(self.arrivals[self.next_arrival], self.services[self.next_arrival])
            self.next_arrival += 1
        if self.next_arrival > first:
            self.last_arrival_s = self.arrivals[self.next_arrival - 1]
        deployment.serve_queue(now)
        p99 = _p99(deployment.finished_by(now))
        if p99 is not None and p99 > self.latency_target_s:
            self.seconds_over_slo += interval
        replicas, ready = deployment.counts(now)
        queued = len(deployment.queue)
        sample = LoadSample(
            now_s=now,
            replicas=replicas,
            ready_replicas=ready,
            in_flight=float(queued + len(deployment.finishing)),
            queued=float(queued),
            p99_latency_s=p99,
            arrivals_per_s=(self.next_arrival - first) / interval,
            idle_s=now - (self.last_arrival_s if self.last_arrival_s is not None else 0.0),
        )
        self._apply(now, replicas, self.policy.decide(sample))

    def _apply(self, now: float, replicas: int, decision: ScalingDecision) -> None:
        if decision.desired > replicas:
            for _ in range(decision.desired - replicas):
                self.deployment.start_replica(now, now + self.deployment.model.cold_start_s)
        elif decision.desired < replicas:
            self.deployment.remove_replicas(now, replicas - decision.desired)
        if decision.desired != replicas:
            self.events.append(ScaleEvent(now, replicas, decision.desired, decision.reason))
        self.most_replicas = max(self.most_replicas, decision.desired)


def simulate(
    trace: Trace,
    policy: ScalingPolicy,
    *,
    policy_name: str,
    latency_target_s: float,
    initial_replicas: int,
    model: DeploymentModel | None = None,
    seed: int = 0,
) -> SimulationResult:
    """Run ``trace`` through a deployment that starts with ``initial_replicas`` ready and follows ``policy``.

    The same ``seed`` gives the same arrivals and service times whatever the policy, so two
    policies are compared on identical requests.
    """
    model = model or DeploymentModel()
    rng = np.random.default_rng(seed)
    arrivals = poisson_arrivals(trace, rng)
    services = _service_times(model, len(arrivals), rng)
    deployment = _Deployment(model)
    for _ in range(initial_replicas):
        deployment.start_replica(0.0, 0.0)
    run = _Run(deployment, policy, arrivals.tolist(), services.tolist(), latency_target_s)
    run.most_replicas = initial_replicas
    now, interval = 0.0, model.control_interval_s
    while now < trace.duration_s or (run.busy() and now < trace.duration_s + DRAIN_LIMIT_S):
        now += interval
        run.step(now, interval)
    unserved = [now - arrival_s for arrival_s, _ in deployment.queue]
    latencies = np.asarray(deployment.latencies + unserved)
    return SimulationResult(
        trace=trace.name,
        policy=policy_name,
        duration_s=now,
        requests=len(latencies),
        unserved=len(unserved),
        replica_seconds=deployment.replica_seconds(now),
        slo_violation_share=float(np.mean(latencies > latency_target_s)) if len(latencies) else 0.0,
        seconds_over_slo=run.seconds_over_slo,
        p99_latency_s=float(np.percentile(latencies, 99)) if len(latencies) else 0.0,
        max_replicas=run.most_replicas,
        events=tuple(run.events),
    )


def _initial_replicas(trace: Trace, spec: AutoscalingSpec, model: DeploymentModel) -> int:
    """Warm start sized for the trace's first rate, so no policy pays for a cold first minute."""
    need = math.ceil(float(trace.rates[0]) * model.service_time_s / spec.target_in_flight)
    return min(max(need, spec.min_replicas, 1), spec.max_replicas)


def compare(
    trace: Trace,
    spec: AutoscalingSpec,
    *,
    latency_target_s: float,
    model: DeploymentModel | None = None,
    seed: int = 0,
) -> list[SimulationResult]:
    """The same trace (same arrivals, same service times) under strata, threshold and fixed-at-max."""
    model = model or DeploymentModel()
    warm = _initial_replicas(trace, spec, model)
    runs: list[tuple[str, ScalingPolicy, int]] = [
        ("strata", StrataAutoscaler(spec, latency_target_s), warm),
        ("threshold", ThresholdAutoscaler(spec, latency_target_s), warm),
        ("fixed_max", FixedReplicas(spec), spec.max_replicas),
    ]
    return [
        simulate(
            trace,
            policy,
            policy_name=name,
            latency_target_s=latency_target_s,
            initial_replicas=initial,
            model=model,
            seed=seed,
        )
        for name, policy, initial in runs
    ]


# The deployment the benchmark and docs/guides/autoscaling.md numbers use: 4 slots x 100 ms = 40 requests/s per replica
# at full batches; 3 in flight per replica is 75% of that, so a replica at target has room for noise.
SIMULATION_SPEC = AutoscalingSpec(min_replicas=1, max_replicas=16, target_in_flight=3.0, target_queue=4.0)
SIMULATION_LATENCY_TARGET_S = 0.3
