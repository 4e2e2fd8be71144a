"""Admission control for one deployment: a concurrency limit, a bounded wait in priority order and
fair between tenants, and shedding at once (503 + Retry-After) instead of timing out later.

1. Under the limit and nobody waiting: admitted.
2. With a latency target (``targets.latency_p99_ms``, ``admission.slo``): predict the request's
   latency from where it would wait and the queue's drain rate (``WaitPredictor``); one that would
   pass ``slo_headroom`` x the target is shed now, its Retry-After the time the queue ahead of it
   takes to drain. A tenant with less than its share of the waiters may use the whole target.
3. Otherwise wait in the queue of the request's class; interactive is served before batch, and
   within a class tenants take turns by weight (``FairQueue``).
4. Queue full: an interactive request pushes out the newest batch waiter; else it is shed.
5. A waiter not admitted within ``max_wait_ms`` (or its deadline) is shed, so the requests that
   are admitted keep a bounded latency.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from enum import IntEnum

from strata.errors import DeadlineExceeded, Shed
from strata.serving.clock import MONOTONIC, Clock
from strata.serving.concurrency_limit import AIMDLimit, ConcurrencyLimit, FixedLimit
from strata.serving.deadline import Deadline
from strata.serving.fair_queue import FairQueue
from strata.serving.wait_predictor import WaitPredictor
from strata.spec.resilience import AdmissionSpec

DEFAULT_TARGET_S = 1.0  # the adaptive limit's latency target when the deployment declares none
DEFAULT_TENANT = "default"
QUEUE_FULL_RETRY_S = 1.0  # Retry-After of a full queue before any request has been timed
RESIDUAL_SLOT = 0.5  # slot releases a request waits for besides those ahead: half a hold, on average
IN_DEPLOYMENT_SHARE = 0.5  # of the latency budget, what an automatic limit lets requests spend inside the deployment


class Priority(IntEnum):
    INTERACTIVE = 0
    BATCH = 1


class Permit:
    """One admitted request. ``answered`` (streams: the first event went out) and ``release``
    (idempotent: frees its slot) feed the limit and the latency prediction."""

    __slots__ = ("_answered", "_controller", "_load", "_started")

    def __init__(self, controller: AdmissionController | None, started: float, load: int = 1) -> None:
        self._controller = controller
        self._started = started
        self._load = load  # requests holding a slot when this one got its own, itself included
        self._answered: float | None = None

    def answered(self) -> None:
        if self._controller is not None and self._answered is None:
            self._answered = self._controller._clock()

    def release(self, *, ok: bool = True) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller._release(self._started, self._answered, self._load, ok)


Waiter = asyncio.Future[None]


class AdmissionController:
    def __init__(
        self,
        spec: AdmissionSpec,
        *,
        target_s: float | None,
        name: str,
        clock: Clock = MONOTONIC,
        auto_limit: int | None = None,
    ) -> None:
        """``auto_limit``: the concurrency limit when the deployment has a latency target and ``slo`` on but
        no ``max_concurrency`` (enough to keep its replicas' batches full; see ``resize``)."""
        self._spec = spec
        self._name = name
        self._clock = clock
        self._target_s = target_s if spec.slo else None
        self._budget_s = None if self._target_s is None else self._target_s * spec.slo_headroom
        self._limit: ConcurrencyLimit | None = None
        if spec.max_concurrency is not None:
            self._limit = (
                AIMDLimit(
                    initial=spec.max_concurrency,
                    minimum=spec.min_concurrency,
                    maximum=spec.max_concurrency,
                    target_s=target_s or DEFAULT_TARGET_S,
                )
                if spec.adaptive
                else FixedLimit(spec.max_concurrency)
            )
        elif self._target_s is not None and auto_limit is not None:
            self._limit = FixedLimit(auto_limit)
        self._auto = spec.max_concurrency is None and self._limit is not None
        self._waiting: dict[Priority, FairQueue[Waiter]] = {p: FairQueue(spec.tenant_weights) for p in Priority}
        self.predictor = WaitPredictor()
        self.in_flight = 0
        self.max_waiting_seen = 0
        self.shed: Counter[str] = Counter()

    @property
    def limit(self) -> int | None:
        """Requests let into the deployment at once. An automatic limit is also held to as many as are answered
        within half the latency budget (answer time grows with the requests inside: Little's law), so that a
        model too slow for full batches within the target gets smaller ones, and the other half of the budget
        is left for waiting in fair order. A stream counts by its first event, not by how long it goes on."""
        if self._limit is None:
            return None
        ceiling = self._limit.limit
        answer_s = self.predictor.answer_s
        if not self._auto or self._budget_s is None or not answer_s:
            return ceiling
        allowed_s = self._budget_s * IN_DEPLOYMENT_SHARE
        # Answer time taken to grow in proportion to the requests inside: right for one replica serving one at a
        # time, pessimistic for batches and parallel replicas - so while answers stay within the allowance the
        # limit also probes one above the load it was measured at, and finds out.
        fits = self.predictor.load * allowed_s / answer_s
        if answer_s <= allowed_s:
            fits = max(fits, round(self.predictor.load) + 1)
        return max(1, min(ceiling, int(fits)))

    @property
    def waiting(self) -> int:
        return len(self._waiting[Priority.INTERACTIVE]) + len(self._waiting[Priority.BATCH])

    def _current_limit(self) -> int:
        limit = self.limit
        assert limit is not None
        return limit

    def resize(self, auto_limit: int) -> None:
        """The deployment's replica count changed: an automatic limit follows it (an explicit one stays)."""
        if self._auto and isinstance(self._limit, FixedLimit) and auto_limit != self._limit.limit:
            self._limit = FixedLimit(auto_limit)
            self._admit_waiters()

    def predicted_s(self, priority: Priority = Priority.INTERACTIVE, tenant: str = DEFAULT_TENANT) -> float | None:
        """The latency a new request would be predicted now (None: no limit, or nothing timed yet)."""
        if self._limit is None or not self.predictor.ready:
            return None
        if self.in_flight < self._current_limit() and not self.waiting:
            return self.predictor.answer_s
        return self.predictor.latency_s(self._ahead(priority, tenant) + RESIDUAL_SLOT, self.in_flight)

    def snapshot(self) -> dict[str, object]:
        predicted = self.predicted_s()
        return {
            "limit": self.limit,
            "adaptive": self._spec.adaptive,
            "slo_target_ms": None if self._target_s is None else self._target_s * 1000,
            "predicted_ms": None if predicted is None else round(predicted * 1000, 2),
            "drain_per_s": None if (rate := self.predictor.drain_rate) is None else round(rate, 1),
            "answer_ms": None if (answer := self.predictor.answer_s) is None else round(answer * 1000, 2),
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "max_waiting_seen": self.max_waiting_seen,
            "shed": dict(self.shed),
        }

    async def acquire(self, priority: Priority, deadline: Deadline, tenant: str = DEFAULT_TENANT) -> Permit:
        if self._limit is None:
            return Permit(None, self._clock())
        # 1. A free slot and nobody ahead: in at once.
        if self.in_flight < self._current_limit() and not self.waiting:
            self.in_flight += 1
            return Permit(self, self._clock(), self.in_flight)
        # 2. It would have to wait: shed now if the wait would break the latency target.
        self._check_target(priority, tenant)
        # 4. No room to wait: make room from the batch class, or shed now.
        if self.waiting >= self._spec.max_waiting and not self._evict_for(priority):
            self.shed["queue_full"] += 1
            raise Shed(
                f"{self._name}: at its concurrency limit with {self.waiting} waiting",
                retry_after_s=self._drain_s(self.waiting) or QUEUE_FULL_RETRY_S,
            )
        # 3. Wait in line, 5. for a bounded time.
        return await self._wait(priority, tenant, deadline)

    def _check_target(self, priority: Priority, tenant: str) -> None:
        if self._budget_s is None or not self.predictor.ready:
            return
        assert self._limit is not None
        assert self._target_s is not None
        ahead = self._ahead(priority, tenant) + RESIDUAL_SLOT  # and then a slot must free for this request
        predicted = self.predictor.latency_s(ahead, self.in_flight)
        # The headroom under the target is kept for tenants within their share: a flood is shed at the budget,
        # and a quiet tenant's request, served next in fair order, may still use the whole target.
        budget_s = self._target_s if self._waiting[priority].within_share(tenant) else self._budget_s
        if predicted <= budget_s:
            return
        self.shed["slo"] += 1
        raise Shed(
            f"{self._name}: predicted latency {predicted * 1000:.0f} ms would pass its "
            f"{self._target_s * 1000:g} ms target ({self.waiting} waiting)",
            retry_after_s=self._drain_s(ahead),  # by then the requests waiting now have their slots
        )

    def _ahead(self, priority: Priority, tenant: str) -> int:
        """Waiters a new request would be admitted after: interactive ones first, then its class in fair order."""
        ahead = self._waiting[priority].ahead_of_new(tenant)
        if priority is Priority.BATCH:
            ahead += len(self._waiting[Priority.INTERACTIVE])
        return ahead

    def _drain_s(self, ahead: float) -> float:
        return self.predictor.drain_s(ahead)

    async def _wait(self, priority: Priority, tenant: str, deadline: Deadline) -> Permit:
        cap_s = None if self._spec.max_wait_ms is None else self._spec.max_wait_ms / 1000.0
        timeout_s = deadline.timeout_s(cap_s)
        future: Waiter = asyncio.get_running_loop().create_future()
        self._waiting[priority].push(tenant, future)
        self.max_waiting_seen = max(self.max_waiting_seen, self.waiting)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            self._abandon(priority, tenant, future)
            if cap_s is None or deadline.expired():
                self.shed["deadline"] += 1
                raise DeadlineExceeded("The request's deadline passed while it waited for admission.") from None
            self.shed["wait_timeout"] += 1
            raise Shed(f"{self._name}: no slot within {self._spec.max_wait_ms:g} ms", retry_after_s=1.0) from None
        except asyncio.CancelledError:
            self._abandon(priority, tenant, future)
            raise
        return Permit(self, self._clock(), self.in_flight)

    def _abandon(self, priority: Priority, tenant: str, future: Waiter) -> None:
        """A waiter gave up; if it was admitted in the same instant, hand its slot on."""
        if future.done() and not future.cancelled() and future.exception() is None:
            self._release(self._clock(), None, 1, True, sample=False)
            return
        future.cancel()
        self._waiting[priority].remove(tenant, future)

    def _evict_for(self, priority: Priority) -> bool:
        if priority is not Priority.INTERACTIVE:
            return False
        evicted = self._waiting[Priority.BATCH].pop_newest()  # the newest batch waiter has waited least
        if evicted is None:
            return False
        self.shed["evicted_batch"] += 1
        evicted.set_exception(Shed(f"{self._name}: shed for interactive traffic", retry_after_s=2.0))
        return True

    def _release(self, started: float, answered: float | None, load: int, ok: bool, *, sample: bool = True) -> None:
        assert self._limit is not None
        self.in_flight -= 1
        if sample:
            now = self._clock()
            self._limit.on_sample(now - started, ok=ok, in_flight=self.in_flight)
            answer_s = (answered or now) - started if ok else None
            self.predictor.observe(hold_s=now - started, answer_s=answer_s, load=load)
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        """Hand free slots to waiters, interactive first."""
        assert self._limit is not None
        while self.in_flight < self._current_limit():
            future = self._next_waiter()
            if future is None:
                return
            self.in_flight += 1
            future.set_result(None)

    def _next_waiter(self) -> Waiter | None:
        for priority in Priority:
            queue = self._waiting[priority]
            while (future := queue.pop()) is not None:
                if not future.done():
                    return future
        return None
