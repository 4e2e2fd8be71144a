"""Admission control for one deployment: a concurrency limit, a bounded wait in priority order,
and shedding at once (503 + Retry-After) instead of timing out later.

1. Under the limit and nobody waiting: admitted.
2. Otherwise wait in the queue of the request's class; interactive is served before batch.
3. Queue full: an interactive request pushes out the newest batch waiter; else it is shed.
4. A waiter not admitted within ``max_wait_ms`` (or its deadline) is shed, so the requests that
   are admitted keep a bounded latency.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from enum import IntEnum

from strata.errors import DeadlineExceeded, Shed
from strata.serving.clock import MONOTONIC, Clock
from strata.serving.concurrency_limit import AIMDLimit, ConcurrencyLimit, FixedLimit
from strata.serving.deadline import Deadline
from strata.spec.resilience import AdmissionSpec

DEFAULT_TARGET_S = 1.0  # the adaptive limit's latency target when the deployment declares none


class Priority(IntEnum):
    INTERACTIVE = 0
    BATCH = 1


class Permit:
    """One admitted request; ``release`` (idempotent) frees its slot and feeds the limit."""

    def __init__(self, controller: AdmissionController | None, started: float) -> None:
        self._controller = controller
        self._started = started

    def release(self, *, ok: bool = True) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller._release(self._started, ok)


class AdmissionController:
    def __init__(self, spec: AdmissionSpec, *, target_s: float | None, name: str, clock: Clock = MONOTONIC) -> None:
        self._spec = spec
        self._name = name
        self._clock = clock
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
        self._waiting: dict[Priority, deque[asyncio.Future[None]]] = {p: deque() for p in Priority}
        self.in_flight = 0
        self.max_waiting_seen = 0
        self.shed: Counter[str] = Counter()

    @property
    def limit(self) -> int | None:
        return None if self._limit is None else self._limit.limit

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def snapshot(self) -> dict[str, object]:
        return {
            "limit": self.limit,
            "adaptive": self._spec.adaptive,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "max_waiting_seen": self.max_waiting_seen,
            "shed": dict(self.shed),
        }

    async def acquire(self, priority: Priority, deadline: Deadline) -> Permit:
        if self._limit is None:
            return Permit(None, self._clock())
        # 1. A free slot and nobody ahead: in at once.
        if self.in_flight < self._limit.limit and not self.waiting:
            self.in_flight += 1
            return Permit(self, self._clock())
        # 3. No room to wait: make room from the batch class, or shed now.
        if self.waiting >= self._spec.max_waiting and not self._evict_for(priority):
            self.shed["queue_full"] += 1
            raise Shed(f"{self._name}: at its concurrency limit with {self.waiting} waiting", retry_after_s=1.0)
        # 2. Wait in line, 4. for a bounded time.
        return await self._wait(priority, deadline)

    async def _wait(self, priority: Priority, deadline: Deadline) -> Permit:
        cap_s = None if self._spec.max_wait_ms is None else self._spec.max_wait_ms / 1000.0
        timeout_s = deadline.timeout_s(cap_s)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[priority].append(future)
        self.max_waiting_seen = max(self.max_waiting_seen, self.waiting)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            self._abandon(priority, future)
            if cap_s is None or deadline.expired():
                self.shed["deadline"] += 1
                raise DeadlineExceeded("The request's deadline passed while it waited for admission.") from None
            self.shed["wait_timeout"] += 1
            raise Shed(f"{self._name}: no slot within {self._spec.max_wait_ms:g} ms", retry_after_s=1.0) from None
        except asyncio.CancelledError:
            self._abandon(priority, future)
            raise
        return Permit(self, self._clock())

    def _abandon(self, priority: Priority, future: asyncio.Future[None]) -> None:
        """A waiter gave up; if it was admitted in the same instant, hand its slot on."""
        if future.done() and not future.cancelled() and future.exception() is None:
            self._release(self._clock(), True, sample=False)
            return
        future.cancel()
        if future in self._waiting[priority]:
            self._waiting[priority].remove(future)

    def _evict_for(self, priority: Priority) -> bool:
        batch = self._waiting[Priority.BATCH]
        if priority is not Priority.INTERACTIVE or not batch:
            return False
        evicted = batch.pop()  # the newest batch waiter has waited least
        self.shed["evicted_batch"] += 1
        evicted.set_exception(Shed(f"{self._name}: shed for interactive traffic", retry_after_s=2.0))
        return True

    def _release(self, started: float, ok: bool, *, sample: bool = True) -> None:
        assert self._limit is not None
        self.in_flight -= 1
        if sample:
            self._limit.on_sample(self._clock() - started, ok=ok, in_flight=self.in_flight)
        # Hand free slots to waiters, interactive first.
        while self.in_flight < self._limit.limit:
            future = self._next_waiter()
            if future is None:
                return
            self.in_flight += 1
            future.set_result(None)

    def _next_waiter(self) -> asyncio.Future[None] | None:
        for priority in Priority:
            queue = self._waiting[priority]
            while queue:
                future = queue.popleft()
                if not future.done():
                    return future
        return None
