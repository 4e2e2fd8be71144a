"""A route: the model name clients send, served by weighted versions, with a fallback chain.

1. Pick a version (traffic split, sticky by user or session when asked).
2. The version's deployment breaker must let the call through, then its admission control.
3. Serve it; record the outcome per version (the rollout analysis reads it) and on the breaker.
4. If it failed in a way a fallback route could fix (model error, replica failures, overload,
   open breaker), try the route's fallbacks in order; the response says which one served.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from strata.errors import (
    CircuitOpen,
    ModelFailed,
    Overloaded,
    ReplicaUnavailable,
    StrataError,
)
from strata.observability.resilience_metrics import ResilienceMetrics
from strata.record import current_record
from strata.serving.admission import Permit, Priority
from strata.serving.breaker import BreakerState
from strata.serving.clock import MONOTONIC, Clock
from strata.serving.deadline import NO_DEADLINE, Deadline
from strata.serving.deployment import Deployment, TryTimeout, is_client_deadline
from strata.serving.outcomes import OutcomeWindow
from strata.serving.rollout import Rollout, RolloutPhase
from strata.serving.traffic import TrafficSplit
from strata.spec import RouteSpec
from strata.spec.resilience import RolloutSpec

T = TypeVar("T")

Work = Callable[[Deployment], Awaitable[T]]

_MAX_SERVED = 256
FALLBACK_ON = (ModelFailed, ReplicaUnavailable, Overloaded, TryTimeout)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the gateway read from the request for the serving layer (never the raw request)."""

    deadline: Deadline = NO_DEADLINE
    priority: Priority = Priority.INTERACTIVE
    user: str | None = None
    session: str | None = None
    tenant: str = "default"  # the caller's tenant: admission queues fairly between tenants


@dataclass(frozen=True, slots=True)
class Served:
    """Which route and version answered: sent back as response headers."""

    route: str
    version: str
    fallback_from: str | None = None
    deployment: str = ""  # the deployment that served: its metrics get the rest of the request
    raw_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Encoded once: a route serves from a handful of these (see Route.serve), not one per request.
        raw = tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers().items())
        object.__setattr__(self, "raw_headers", raw)

    def headers(self) -> dict[str, str]:
        headers = {"x-strata-route": self.route, "x-strata-version": self.version}
        if self.fallback_from is not None:
            headers["x-strata-fallback"] = f"{self.fallback_from} -> {self.route}"
        return headers


class Route:
    def __init__(
        self,
        spec: RouteSpec,
        deployments: dict[str, Deployment],
        metrics: ResilienceMetrics,
        *,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.spec = spec
        self._metrics = metrics
        self._clock = clock
        self.versions = {v.name: deployments[v.deployment] for v in spec.traffic_versions()}
        self.split = TrafficSplit({v.name: v.weight for v in spec.traffic_versions()})
        self.outcomes = {name: OutcomeWindow(clock=clock) for name in self.versions}
        # Metric children bound once: the request path does no label lookups.
        self._version_counters = {
            (name, ok): metrics.version_requests.labels(route=spec.name, version=name, outcome="ok" if ok else "error")
            for name in self.versions
            for ok in (True, False)
        }
        self.rollout: Rollout | None = None
        self.fallbacks: list[Route] = []  # wired by the model server once every route exists
        self._served: dict[tuple[str, str, bool, str], Served] = {}  # see _served_by
        self._publish: Callable[[str, dict[str, float]], None] | None = None  # see publish_splits

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return next(iter(self.versions.values())).model.task

    @property
    def deployment(self) -> Deployment:
        """The deployment with the most traffic now (what /v1/models reports on)."""
        return self.versions[self.split.heaviest]

    @property
    def weights(self) -> dict[str, float]:
        """The traffic split now: version -> weight (a copy)."""
        return dict(self.split.weights)

    def pick_version(self, context: RequestContext) -> str:
        sticky = self.spec.sticky
        key = context.user if sticky == "user" else context.session if sticky == "session" else None
        return self.split.pick(key)

    # Serving

    async def serve(
        self, context: RequestContext, work: Work[T], *, hold: bool = False, picked: str | None = None
    ) -> tuple[T, Permit, Served]:
        """Run ``work`` on a version of this route, or of its fallbacks. With ``hold`` the admission
        permit stays taken on success: the caller releases it (a stream, when it ends). ``picked``:
        one already picked by pick_version (the response cache looked its answers up there)."""
        chain = [self, *self.fallbacks]
        for position, route in enumerate(chain):
            version = picked if position == 0 and picked is not None else route.pick_version(context)
            try:
                result, permit, deployment = await route._serve_version(version, context, work, hold)
            except FALLBACK_ON:
                if position == len(chain) - 1 or context.deadline.expired():
                    raise
                continue
            if position > 0:
                self._metrics.fallbacks.labels(route=self.name, fallback=route.name).inc()
            served = self._served_by(route, version, position > 0, deployment)
            record = current_record.get()
            if record is not None:
                record.served_route, record.served_version, record.deployment = route.name, version, served.deployment
            return result, permit, served
        raise AssertionError("the chain always has this route")

    def _served_by(self, route: Route, version: str, fallback: bool, deployment: Deployment) -> Served:
        """The (immutable) Served for this answer, made once per route, version and deployment."""
        key = (route.name, version, fallback, deployment.name)
        served = self._served.get(key)
        if served is None:
            if len(self._served) >= _MAX_SERVED:  # versions come and go (registry canaries): start afresh
                self._served.clear()
            served = self._served[key] = Served(route.name, version, self.name if fallback else None, deployment.name)
        return served

    async def _serve_version(
        self, version: str, context: RequestContext, work: Work[T], hold: bool
    ) -> tuple[T, Permit, Deployment]:
        deployment = self.versions[version]
        if not deployment.breaker.allow():
            self._record(version, ok=False, latency_s=0.0)  # a version whose breaker is open is failing its callers
            retry_after = max(1.0, deployment.breaker.retry_after_s())
            raise CircuitOpen(f"{deployment.name}: circuit open after repeated failures", retry_after_s=retry_after)
        try:
            permit = await deployment.admission.acquire(context.priority, context.deadline, context.tenant)
            record = current_record.get()
            if record is not None:
                record.admitted = time.perf_counter()
        except BaseException as refused:  # shed, deadline passed, or the client left: no verdict on the version
            deployment.breaker.release_probe()
            if isinstance(refused, StrataError):
                self._metrics.shed.labels(deployment=deployment.name, reason=refused.code or "shed").inc()
            raise
        started = self._clock()
        try:
            result = await work(deployment)
        except StrataError as error:
            permit.release(ok=False)
            self._record_failure(version, deployment, error, self._clock() - started)
            raise
        except BaseException:
            permit.release(ok=False)
            deployment.breaker.release_probe()
            raise
        if hold:
            permit.answered()  # a stream's client has its first event: what its latency target measures
        else:
            permit.release(ok=True)
        deployment.breaker.record_success()
        self._update_breaker_gauge(deployment)
        self._record(version, ok=True, latency_s=self._clock() - started)
        return result, permit, deployment

    def _record_failure(self, version: str, deployment: Deployment, error: StrataError, latency_s: float) -> None:
        if error.status < 500:  # the request was bad: no verdict on the version
            deployment.breaker.release_probe()
            return
        if isinstance(error, Overloaded) or is_client_deadline(error):  # shed load, short deadline: no fault
            deployment.breaker.release_probe()
        else:
            deployment.breaker.record_failure(error.code or "failure")
            self._update_breaker_gauge(deployment)
        self._record(version, ok=False, latency_s=latency_s)

    def _update_breaker_gauge(self, deployment: Deployment) -> None:
        self._metrics.show_breaker(deployment.name, deployment.breaker.state is not BreakerState.CLOSED)

    def _record(self, version: str, *, ok: bool, latency_s: float) -> None:
        counter = self._version_counters.get((version, ok))
        if counter is None:
            return  # a version removed while this request ran on it (a registry canary that ended): no window left
        counter.inc()
        self.outcomes[version].record(ok=ok, latency_s=latency_s)
        if self.rollout is not None and version == self.rollout.canary:
            self.analyse()  # judge the canary at once: a bad one must not wait for the next tick

    # Traffic management (admin API)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Set the split (a blue-green switch is {new: 100}); ends a running rollout."""
        unknown = sorted(set(weights) - set(self.versions))
        if unknown:
            raise KeyError(f"unknown version(s) {unknown}; known: {sorted(self.versions)}")
        full = {name: float(weights.get(name, 0.0)) for name in self.versions}
        self._set_split(full)
        if self.rollout is not None and self.rollout.phase is RolloutPhase.RUNNING:
            self.rollout.roll_back("weights set by an operator")

    def add_version(self, name: str, deployment: Deployment) -> None:
        """Serve ``deployment`` as one more version, at weight 0 until a rollout or an operator gives it
        traffic (a registry promotion's canary is added this way, beside the versions of the spec)."""
        if name in self.versions:
            raise ValueError(f"route '{self.name}' already has a version '{name}'")
        self.versions[name] = deployment
        self.outcomes[name] = OutcomeWindow(clock=self._clock)
        for ok in (True, False):
            outcome = "ok" if ok else "error"
            self._version_counters[(name, ok)] = self._metrics.version_requests.labels(
                route=self.name, version=name, outcome=outcome
            )
        self.split.set_weights(self.split.weights | {name: 0.0})  # not published: weight 0 changes no traffic

    def remove_version(self, name: str, *, to: str) -> None:
        """Remove a version added by ``add_version``; whatever weight it had moves to version ``to``."""
        if name not in self.versions or to not in self.versions or name == to:
            raise KeyError(f"route '{self.name}': cannot move version '{name}' to '{to}'")
        weights = self.split.weights
        weights[to] += weights.pop(name)
        self._set_split(weights)
        del self.versions[name], self.outcomes[name]
        for ok in (True, False):
            del self._version_counters[(name, ok)]

    def publish_splits(self, publish: Callable[[str, dict[str, float]], None]) -> None:
        """Call ``publish`` with (route, weights) for every split this gateway decides from now on (an
        operator's weights, each rollout step): a cluster runtime hands them to the other gateways."""
        self._publish = publish

    def follow_weights(self, weights: dict[str, float]) -> None:
        """Take a split another gateway decided (not published again). A rollout this gateway was
        running yields to it: the operator or the other gateway's rollout has the newer word."""
        known = {name: float(weights.get(name, 0.0)) for name in self.versions}
        if abs(sum(known.values()) - 100) > 1e-6:
            return  # a split over versions this gateway lacks: keep ours (one spec version is enforced)
        self.split.set_weights(known)
        if self.rollout is not None and self.rollout.phase is RolloutPhase.RUNNING:
            self.rollout.roll_back("traffic changed through another gateway")

    def _set_split(self, weights: dict[str, float]) -> None:
        self.split.set_weights(weights)
        if self._publish is not None:
            self._publish(self.name, self.weights)

    def rollout_spec(self, overrides: dict[str, object]) -> RolloutSpec:
        """The route's rollout defaults with ``overrides`` (raises pydantic's ValidationError naming the field)."""
        return RolloutSpec.model_validate(self.spec.rollout.model_dump() | overrides)

    def start_rollout(self, canary: str, spec: RolloutSpec) -> Rollout:
        if canary not in self.versions:
            raise KeyError(f"unknown version '{canary}'; known: {sorted(self.versions)}")
        if self.rollout is not None and self.rollout.phase is RolloutPhase.RUNNING:
            raise ValueError(f"a rollout of '{self.rollout.canary}' is already running")
        weights = self.split.weights
        others = {name: weight for name, weight in weights.items() if name != canary}
        if not others:
            raise ValueError("a rollout needs a stable version beside the canary")
        stable = max(others, key=lambda name: others[name])
        for window in self.outcomes.values():
            window.clear()
        self.rollout = Rollout(stable=stable, canary=canary, spec=spec, clock=self._clock)
        self._apply_rollout()
        return self.rollout

    def analyse(self) -> None:
        """Let the rollout judge the current windows and apply what it decides."""
        rollout = self.rollout
        if rollout is None or rollout.phase is not RolloutPhase.RUNNING:
            return
        window = rollout.spec.window_s
        if rollout.evaluate(self.outcomes[rollout.stable].stats(window), self.outcomes[rollout.canary].stats(window)):
            self._apply_rollout()

    def promote(self) -> Rollout:
        rollout = self._running_rollout()
        rollout.promote()
        self._apply_rollout()
        return rollout

    def abort(self, reason: str = "aborted by an operator") -> Rollout:
        rollout = self._running_rollout()
        rollout.roll_back(reason)
        self._apply_rollout()
        return rollout

    def _running_rollout(self) -> Rollout:
        if self.rollout is None or self.rollout.phase is not RolloutPhase.RUNNING:
            raise ValueError(f"route '{self.name}' has no running rollout")
        return self.rollout

    def _apply_rollout(self) -> None:
        assert self.rollout is not None
        weights = {name: 0.0 for name in self.versions} | self.rollout.weights()
        self._set_split(weights)

    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.name,
            "task": self.task,
            "versions": [
                {"name": name, "deployment": deployment.name, "weight": self.split.weights[name]}
                for name, deployment in self.versions.items()
            ],
            "sticky": self.spec.sticky,
            "fallbacks": [route.name for route in self.fallbacks],
            "rollout": None if self.rollout is None else self.rollout.status(),
        }
