"""A deployment: N replicas of one model behind a router, with its own admission control,
breakers, retry budget and supervisor.

One try goes to one replica. A try that fails in a way another replica could fix (the model
raised, the replica died or stalled, the try timed out) is retried on a replica not yet tried,
while attempts, the retry budget and the request's deadline allow. A generation is retried only
until its first event: after that, text has reached the client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from strata.errors import DeadlineExceeded, ModelFailed, NotReady, Overloaded, ReplicaUnavailable, StrataError
from strata.observability.metrics import DeploymentMetrics
from strata.observability.resilience_metrics import ResilienceMetrics
from strata.serving.admission import AdmissionController
from strata.serving.breaker import BreakerState, CircuitBreaker
from strata.serving.clock import MONOTONIC, Clock
from strata.serving.deadline import NO_DEADLINE, Deadline
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream
from strata.serving.prefix_affinity import prefix_blocks
from strata.serving.retry_budget import RetryBudget
from strata.serving.router import PowerOfTwoRouter, ReplicaSlot, probe_was_slow, slow_outliers
from strata.serving.runtime import Replica, Runtime
from strata.serving.supervisor import ReplicaSupervisor
from strata.spec import DeploymentSpec, ModelSpec

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, str], None]
"""Called with (replica_id, phase) where phase is loading, ready or failed: <reason>."""

RETRYABLE = (ModelFailed, ReplicaUnavailable, DeadlineExceeded, Overloaded)
"""Errors another replica may not have. InvalidRequest (the request itself is bad) is never retried."""


DEFAULT_HOLD_S = 60.0  # how long a request waits for a replica of a managed deployment that does not autoscale


class TryTimeout(DeadlineExceeded):
    """One try passed the deployment's ``try_timeout_ms``."""


def is_client_deadline(error: StrataError) -> bool:
    """The client's own deadline passed: not a fault of the replica or the deployment (unlike a try timeout)."""
    return isinstance(error, DeadlineExceeded) and not isinstance(error, TryTimeout)


RELOAD_DRAIN_S = 30.0  # how long a replaced replica may take to finish what it holds before it is stopped


async def _drained(replica: Replica, limit_s: float) -> None:
    """Wait until ``replica`` holds nothing: nothing queued and no model call running (or ``limit_s``).
    Requests route to its successor already; stopping it now would fail the ones it still has."""
    deadline = time.monotonic() + limit_s
    await asyncio.sleep(0.01)  # a request that chose this replica just before the swap gets to enqueue
    while (replica.queue_depth or replica.stalled_s()) and time.monotonic() < deadline:  # noqa: ASYNC110 - a replica has no idle event
        await asyncio.sleep(0.01)


async def retire_replicas(replicas: Sequence[Replica], limit_s: float = RELOAD_DRAIN_S) -> None:
    """Stop replicas no request is routed to any more, each once it has finished what it holds."""

    async def one(replica: Replica) -> None:
        await _drained(replica, limit_s)
        await replica.stop()

    await asyncio.gather(*(one(replica) for replica in replicas))


class Deployment:
    def __init__(
        self,
        spec: DeploymentSpec,
        model: ModelSpec,
        runtime: Runtime,
        metrics: DeploymentMetrics,
        resilience: ResilienceMetrics | None = None,
        *,
        rng: random.Random | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.spec = spec
        self.model = model
        self.metrics = metrics
        self._runtime = runtime
        self._clock = clock
        self._resilience = resilience
        # A runtime that manages replicas itself (Ray: its controller starts, replaces and drains them)
        # hands the deployment its current set through ``follow``; otherwise the deployment owns them.
        self.managed = runtime.manages_replicas
        self.slots = (
            []
            if self.managed
            else [
                ReplicaSlot(runtime.create_replica(spec, model, i, metrics), CircuitBreaker(spec.breaker, clock=clock))
                for i in range(spec.replicas)
            ]
        )
        self.held = 0  # requests waiting for a replica to become ready (cold start, replacement)
        self._followed = False  # a managed deployment got its first replica set
        self._capacity_changed: asyncio.Event | None = None
        self._router = PowerOfTwoRouter(
            self.slots, capacity=spec.max_queue + spec.batching.max_batch_size, rng=rng, prefix=spec.prefix_routing
        )
        target_s = None if spec.targets.latency_p99_ms is None else spec.targets.latency_p99_ms / 1000.0
        self.admission = AdmissionController(
            spec.admission, target_s=target_s, name=spec.name, clock=clock, auto_limit=self._auto_limit(spec.replicas)
        )
        self.breaker = CircuitBreaker(spec.breaker, clock=clock)  # the whole deployment: drives fallbacks
        self.retry_budget = RetryBudget(spec.retries, clock=clock)
        self._try_timeout_s = None if spec.retries.try_timeout_ms is None else spec.retries.try_timeout_ms / 1000.0
        self._supervisor = ReplicaSupervisor(self.slots, spec.health, self._restart, name=spec.name)
        self.load_errors: dict[str, str] = {}
        self.load_seconds: dict[str, float] = {}
        self.restart_errors: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    def _auto_limit(self, replicas: int) -> int:
        """Admission's concurrency limit when a latency target sets none: enough to keep every replica's batches
        full - one batch in the model and the next one forming - and no more, so that the rest wait where the
        admission controller can order them fairly and predict their wait. A text generation's batch slot is
        held for the whole stream, so one batch per replica."""
        per_replica = self.spec.batching.max_batch_size * (1 if self.model.task == "generate" else 2)
        return per_replica * max(1, replicas)

    @property
    def ready(self) -> bool:
        """Every replica loaded once, and at least one takes traffic now (one restarting is not an outage).
        A managed deployment allowed to scale to zero is ready with none: its requests wait for a cold start."""
        if self.managed and self.spec.autoscaling is not None and self.spec.autoscaling.min_replicas == 0:
            return self._followed
        return all(slot.serving for slot in self.slots) and self.ready_replicas > 0

    def follow(self, replicas: Sequence[Replica], *, load_errors: Mapping[str, str] | None = None) -> None:
        """Route to exactly these replicas from now on (the managing runtime's current set). Slots of
        replicas that stay keep their breaker and latency history; requests on a dropped slot finish.
        ``load_errors``: why the runtime's latest replicas failed to load (replaces the previous ones)."""
        by_id = {slot.replica.replica_id: slot for slot in self.slots}
        slots = []
        for replica in replicas:
            slot = by_id.get(replica.replica_id) or ReplicaSlot(
                replica, CircuitBreaker(self.spec.breaker, clock=self._clock)
            )
            slot.serving = True
            slots.append(slot)
        self.slots[:] = slots  # in place: the router holds this list
        self.admission.resize(self._auto_limit(len(slots)))
        self.load_errors = dict(load_errors or {})
        self._followed = True
        if self.ready_replicas and self._capacity_changed is not None:
            self._capacity_changed.set()

    @property
    def replicas(self) -> list[Replica]:
        """The replicas routed to now."""
        return [slot.replica for slot in self.slots]

    @property
    def ready_replicas(self) -> int:
        return sum(slot.replica.ready for slot in self.slots)

    async def start(self, progress: ProgressCallback | None = None) -> None:
        if self.managed:
            await self._runtime.follow(self, progress)
            return
        await asyncio.gather(*(self._start_replica(slot, progress) for slot in self.slots))
        self._supervisor.start()

    async def _start_replica(self, slot: ReplicaSlot, progress: ProgressCallback | None) -> None:
        replica_id = slot.replica.replica_id
        if progress:
            progress(replica_id, "loading")
        started = time.perf_counter()
        try:
            await slot.replica.start()
        except Exception as error:  # boundary: a replica that cannot load must not stop the others
            self.load_errors[replica_id] = str(error)
            if progress:
                progress(replica_id, f"failed: {error}")
            return
        slot.serving = True
        self.load_seconds[replica_id] = time.perf_counter() - started
        if progress:
            progress(replica_id, "ready")

    async def _restart(self, slot: ReplicaSlot, why: str) -> None:
        """Swap in a fresh replica: out of routing at once, back in only once loaded and warmed."""
        old = slot.replica
        slot.breaker.trip(why)
        slot.replica = self._runtime.create_replica(self.spec, self.model, self.slots.index(slot), self.metrics)
        if self._resilience:
            self._resilience.restarts.labels(deployment=self.name).inc()
        try:
            # Together: stopping fails what the old one held (as retryable) while the new one loads.
            await asyncio.gather(old.stop(), slot.replica.start())
        except Exception as error:  # boundary: keep the slot out of routing and try again next check
            log.exception("%s: restarting %s failed", self.name, old.replica_id)
            self.restart_errors[old.replica_id] = str(error)
        else:
            slot.breaker.reset()
            slot.forget_latency()
            slot.restarts += 1
        finally:
            slot.restarting = False

    def rebind(self, model: ModelSpec) -> None:
        """Before ``start``: load ``model`` instead (replicas are built with their model spec, so the
        unstarted ones are built again). A managed runtime (Ray) builds replicas from the app spec in its
        controller instead, so this does not reach it."""
        self.model = model
        for index, slot in enumerate(self.slots):
            slot.replica = self._runtime.create_replica(self.spec, model, index, self.metrics)

    async def reload(self, model: ModelSpec) -> None:
        """Serve ``model`` from now on, one replica at a time, with no gap: each new replica loads and
        warms while the old one still serves, then takes its slot (the old one finishes what it holds).
        Costs one extra replica's memory while it runs. Not for a runtime that manages replicas itself."""
        if self.managed:
            raise StrataError(f"deployment '{self.name}': its runtime manages replicas; restart it to reload")
        for index, slot in enumerate(list(self.slots)):
            fresh = self._runtime.create_replica(self.spec, model, index, self.metrics)
            await fresh.start()  # raises: the old replica keeps serving, nothing swapped
            old, slot.replica = slot.replica, fresh
            slot.breaker.reset()
            slot.forget_latency()
            await _drained(old, RELOAD_DRAIN_S)
            await old.stop()
        self.model = model  # after the swaps: a failure part-way leaves the earlier model on record

    def sibling(self, name: str, model: ModelSpec) -> Deployment:
        """A deployment like this one (same replicas, batching, limits, metrics) serving ``model`` under
        ``name``: a registry promotion's canary, loaded beside this one. Sharing the metrics means the
        replicas it may hand over (``adopt``) already report as this deployment's."""
        spec = self.spec.model_copy(update={"name": name})
        return Deployment(spec, model, self._runtime, self.metrics, self._resilience, clock=self._clock)

    def adopt(self, other: Deployment) -> list[Replica]:
        """Serve with ``other``'s replicas and model from now on, in one step (no gap, no reload): a canary
        that won its rollout becomes this deployment. Returns the replicas this one served with, for the
        caller to ``retire_replicas``. Call ``other.stop_supervising()`` first: one supervisor per replica."""
        if self.managed or other.managed:
            raise StrataError(f"deployment '{self.name}': its runtime manages replicas; it cannot adopt others")
        replaced = self.replicas
        self.slots[:] = other.slots  # in place: the router and the supervisor hold this list
        self.model = other.model
        self.admission.resize(self._auto_limit(len(self.slots)))
        return replaced

    async def stop_supervising(self) -> None:
        await self._supervisor.stop()

    async def retire(self) -> None:
        """Stop once every replica finished what it holds (no route sends it traffic any more)."""
        await self._supervisor.stop()
        await retire_replicas(self.replicas)

    async def stop(self) -> None:
        await self._supervisor.stop()
        await asyncio.gather(*(slot.replica.stop() for slot in self.slots), return_exceptions=True)

    def snapshot(self) -> dict[str, object]:
        return {
            "ready_replicas": self.ready_replicas,
            "replicas": [slot.snapshot() for slot in self.slots],
            "breaker": self.breaker.state.value,
            "breaker_reason": self.breaker.reason,
            "admission": self.admission.snapshot(),
            "retry_budget": self.retry_budget.snapshot(),
            "restart_errors": self.restart_errors,
        }

    # One request: tries on distinct replicas.

    async def infer(self, item: Any, deadline: Deadline = NO_DEADLINE) -> Any:
        self.retry_budget.record_request()
        tried: set[int] = set()
        error: StrataError | None = None
        while True:
            slot = await self._choose(tried, error, deadline)
            started = self._clock()
            slot.outstanding += 1
            try:
                timeout_s = self._try_timeout(deadline)
                call = slot.replica.infer(item)
                result = await (call if timeout_s is None else asyncio.wait_for(call, timeout_s))
            except TimeoutError:
                error = self._timeout_error(deadline)
            except RETRYABLE as failure:
                error = failure
            except BaseException:
                slot.breaker.release_probe()
                raise
            else:
                self._on_success(slot, self._clock() - started)
                return result
            finally:
                slot.outstanding -= 1
            assert error is not None
            self._on_failure(slot, error)
            self._check_retry(error, tried, deadline)

    async def generate(
        self, request: GenerationRequest, deadline: Deadline = NO_DEADLINE
    ) -> tuple[GenerationStream, GenerationEvent, AsyncIterator[GenerationEvent]]:
        """Start a generation and wait for its first event (the last point a retry is safe).
        The caller must iterate the events or close the stream; either frees the batch slot."""
        self.retry_budget.record_request()
        tried: set[int] = set()
        error: StrataError | None = None
        prefix = self._prefix_blocks(request)
        while True:
            slot = await self._choose(tried, error, deadline, prefix)
            started = self._clock()
            try:
                stream = slot.replica.generate(request)
            except (Overloaded, ReplicaUnavailable) as failure:  # refused at once: try another
                error = failure
            else:
                slot.outstanding += 1
                stream.add_close_callback(functools.partial(_release, slot))
                events = stream.events()
                try:
                    first = await asyncio.wait_for(anext(events), self._try_timeout(deadline))
                except TimeoutError:
                    error = self._timeout_error(deadline)
                except RETRYABLE as failure:
                    error = failure
                except BaseException:
                    slot.breaker.release_probe()
                    stream.close()
                    raise
                else:
                    self._on_success(slot, self._clock() - started)
                    return stream, first, events
                stream.close()
            assert error is not None
            self._on_failure(slot, error)
            self._check_retry(error, tried, deadline)

    def _prefix_blocks(self, request: GenerationRequest) -> tuple[int, ...]:
        routing = self.spec.prefix_routing
        if not routing.enabled or len(self.slots) < 2:
            return ()
        return prefix_blocks(request, routing.block_chars)

    async def _choose(
        self, tried: set[int], last_error: StrataError | None, deadline: Deadline, prefix: tuple[int, ...] = ()
    ) -> ReplicaSlot:
        hold: Deadline | None = None  # one cold-start allowance per request, however often it waits
        while True:
            try:
                slot = self._router.choose(exclude=tried, prefix=prefix)
            except NotReady:
                if not self.managed:
                    raise
                if hold is None:
                    scaling = self.spec.autoscaling
                    hold_ms = 1000.0 * (scaling.cold_start_timeout_s if scaling else DEFAULT_HOLD_S)
                    hold = Deadline.after_ms(hold_ms, clock=self._clock)
                await self._wait_for_capacity(deadline, hold)  # the managing runtime is starting replicas
                continue
            except StrataError:
                if last_error is not None:  # no replica left for a retry: the client hears the real failure
                    raise last_error from None
                raise
            tried.add(id(slot))  # by identity: a managed deployment's slot list changes under us
            return slot

    async def _wait_for_capacity(self, deadline: Deadline, hold: Deadline) -> None:
        """Hold a request while no replica is ready (scaled to zero, or every replica being replaced);
        the held count reaches the controller, which treats it as demand and starts one at once."""
        hold_s = max(0.0, deadline.timeout_s(hold.remaining_s()) or 0.0)
        if self._capacity_changed is None:
            self._capacity_changed = asyncio.Event()
        self._capacity_changed.clear()
        self.held += 1
        try:
            await asyncio.wait_for(self._capacity_changed.wait(), hold_s)
        except TimeoutError:
            scaling = self.spec.autoscaling
            allowance = scaling.cold_start_timeout_s if scaling else DEFAULT_HOLD_S
            raise NotReady(
                f"{self.name}: no replica became ready within the {allowance:g} s a request may wait for one",
                retry_after_s=5.0,
            ) from None
        finally:
            self.held -= 1

    def _try_timeout(self, deadline: Deadline) -> float | None:
        return deadline.timeout_s(self._try_timeout_s)

    def _timeout_error(self, deadline: Deadline) -> DeadlineExceeded:
        if self._try_timeout_s is None or deadline.expired():
            return DeadlineExceeded("The request's deadline passed before an answer was ready.")
        return TryTimeout(f"{self.name}: a try took longer than {self.spec.retries.try_timeout_ms:g} ms")

    def _check_retry(self, error: StrataError | None, tried: set[int], deadline: Deadline) -> None:
        """Return to retry; raise ``error`` when no retry is allowed."""
        assert error is not None
        if len(tried) >= self.spec.retries.max_attempts or deadline.expired():
            raise error
        if len(tried) >= len(self.slots):
            raise error
        if not self.retry_budget.try_spend():
            if self._resilience:
                self._resilience.retries_denied.labels(deployment=self.name).inc()
            raise error
        if self._resilience:
            self._resilience.retries.labels(deployment=self.name).inc()

    def _on_success(self, slot: ReplicaSlot, latency_s: float) -> None:
        was_probe = slot.breaker.state is BreakerState.HALF_OPEN
        if was_probe and probe_was_slow(slot, latency_s, self.slots, self.spec.outlier):
            slot.breaker.record_failure("slow")
            self._ejected("slow")
            return
        slot.breaker.record_success()
        if was_probe:
            slot.forget_latency()  # judged afresh from its re-admission on
        slot.observe(latency_s)
        if len(self.slots) < 2:
            return  # an outlier is slow against its peers: one replica has none
        for outlier in slow_outliers(self.slots, self.spec.outlier):
            outlier.breaker.trip(f"slow: {outlier.latency_s or 0:.3f} s average")
            self._ejected("slow")

    def _on_failure(self, slot: ReplicaSlot, error: StrataError) -> None:
        if isinstance(error, Overloaded) or is_client_deadline(error):
            slot.breaker.release_probe()  # a full queue or a client's short deadline says nothing of its health
            return
        before = slot.breaker.trips
        slot.breaker.record_failure(error.code or "failure")
        if slot.breaker.trips != before:
            self._ejected(error.code or "failure")

    def _ejected(self, reason: str) -> None:
        if self._resilience:
            self._resilience.ejections.labels(deployment=self.name, reason=reason).inc()


def _release(slot: ReplicaSlot) -> None:
    slot.outstanding -= 1
