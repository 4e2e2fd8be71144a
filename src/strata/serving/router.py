"""Picks a replica for each request: the cheaper of two sampled at random.

Power of two choices gets close to least-outstanding-requests balancing without scanning every
replica, and never piles every request onto one replica whose count is momentarily stale.
The cost of a replica is its outstanding requests (plus the new one) times its recent latency - or
the age of its current model call, if longer - so a replica that turned slow is avoided at once,
even before its first slow answer comes back and well before the outlier check ejects it. Outstanding
counts are kept here, on the caller's side, so they cost no round trip to a remote replica.
Replicas whose breaker is open (ejected) are skipped; a half-open one gets a single probe.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from strata.errors import NotReady, Overloaded, ReplicaUnavailable
from strata.serving.breaker import BreakerState, CircuitBreaker
from strata.serving.prefix_affinity import PrefixIndex
from strata.serving.runtime import Replica
from strata.spec.engines import PrefixRoutingSpec
from strata.spec.resilience import BreakerSpec, OutlierSpec

EWMA_ALPHA = 0.3  # weight of the newest latency sample


@dataclass(slots=True)
class ReplicaSlot:
    replica: Replica
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(BreakerSpec()))
    outstanding: int = 0
    latency_s: float | None = None  # exponentially weighted average of recent latencies
    samples: int = 0
    restarts: int = 0
    restarting: bool = False
    serving: bool = False  # loaded once: from then on its health is supervised

    def observe(self, latency_s: float) -> None:
        self.samples += 1
        if self.latency_s is None:
            self.latency_s = latency_s
        else:
            self.latency_s += EWMA_ALPHA * (latency_s - self.latency_s)

    def forget_latency(self) -> None:
        self.latency_s = None
        self.samples = 0

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.replica.replica_id,
            "ready": self.replica.ready,
            "alive": self.replica.alive,
            "breaker": self.breaker.state.value,
            "breaker_reason": self.breaker.reason,
            "outstanding": self.outstanding,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 2),
            "restarts": self.restarts,
        }


class PowerOfTwoRouter:
    def __init__(
        self,
        slots: list[ReplicaSlot],
        *,
        capacity: int,
        rng: random.Random | None = None,
        prefix: PrefixRoutingSpec | None = None,
    ) -> None:
        self.slots = slots
        self._capacity = capacity  # most requests one replica may hold (queued + in its batch)
        self._rng = rng or random.Random()
        self._max_imbalance = prefix.max_imbalance if prefix else 0
        self.prefix_index = PrefixIndex(prefix.capacity_blocks) if prefix and prefix.enabled else None

    def choose(self, exclude: Collection[int] = (), prefix: Sequence[int] = ()) -> ReplicaSlot:
        """A ready, admitted replica not in ``exclude`` (``id()`` of the slots already tried: the slot list
        of a deployment whose runtime manages its replicas can change between two tries). ``prefix``: the
        prompt's block hashes, when the deployment routes by prefix (see ``prefix_affinity``)."""
        if len(self.slots) == 1:  # one replica: the choice below, without building its lists
            only = self.slots[0]
            if (only.replica.ready and id(only) not in exclude and only.outstanding < self._capacity
                    and only.breaker.state is BreakerState.CLOSED):  # fmt: skip
                return only
        ready = [slot for slot in self.slots if slot.replica.ready]
        if not ready:
            raise NotReady("no replica is ready yet (loading, warming up or restarting)", retry_after_s=2.0)
        candidates = [s for s in ready if id(s) not in exclude]
        admitted = [slot for slot in candidates if slot.breaker.would_allow()]
        if not admitted:
            raise ReplicaUnavailable(f"no replica left to try: {len(ready)} ready, the others ejected or tried")
        open_slots = [slot for slot in admitted if slot.outstanding < self._capacity]
        if not open_slots:
            raise Overloaded(f"all {len(ready)} replica(s) are at capacity ({self._capacity} requests each)")
        # A half-open replica's probe goes first: that is how an ejected replica earns its way back.
        probe = next((s for s in open_slots if s.breaker.state is BreakerState.HALF_OPEN), None)
        if probe is not None and probe.breaker.allow():
            return probe
        closed = [s for s in open_slots if s.breaker.state is BreakerState.CLOSED]
        if not closed:
            raise ReplicaUnavailable("every replica is ejected or being probed")
        if len(closed) == 1:
            return closed[0]
        chosen = self._by_prefix(closed, prefix) if prefix and self.prefix_index is not None else None
        if chosen is None:
            first, second = self._rng.sample(closed, 2)
            chosen = first if self._cost(first) <= self._cost(second) else second
        if prefix and self.prefix_index is not None:
            self.prefix_index.record(prefix, id(chosen.replica))  # it holds this prefix now (or soon)
        return chosen

    def _by_prefix(self, closed: list[ReplicaSlot], prefix: Sequence[int]) -> ReplicaSlot | None:
        """The replica that was sent the longest part of this prefix, unless it is busier than the least
        busy one by more than max_imbalance (then load wins, and a second replica gets the prefix)."""
        assert self.prefix_index is not None
        matched = self.prefix_index.matched(prefix)
        if not matched:
            return None
        best = max(closed, key=lambda slot: (matched.get(id(slot.replica), 0), -slot.outstanding))
        if not matched.get(id(best.replica)):
            return None
        least_busy = min(slot.outstanding for slot in closed)
        return best if best.outstanding <= least_busy + self._max_imbalance else None

    def _cost(self, slot: ReplicaSlot) -> float:
        known = [s.latency_s for s in self.slots if s.latency_s is not None]
        typical = statistics.median(known) if known else 1.0
        latency = slot.latency_s if slot.latency_s is not None else typical
        return (slot.outstanding + 1) * max(latency, slot.replica.stalled_s())


def slow_outliers(slots: list[ReplicaSlot], spec: OutlierSpec) -> list[ReplicaSlot]:
    """Closed replicas whose latency average is ``slow_ratio`` x their peers' median, within the ejection cap."""
    judged = [s for s in slots if s.samples >= spec.min_samples and s.latency_s is not None]
    if len(judged) < 2:
        return []
    ejected = sum(1 for s in slots if s.breaker.state is not BreakerState.CLOSED)
    room = int(spec.max_ejected_share * len(slots)) - ejected
    outliers = []
    for slot in sorted(judged, key=lambda s: -(s.latency_s or 0.0)):
        peers = [s.latency_s for s in judged if s is not slot and s.latency_s is not None]
        if room <= 0 or slot.breaker.state is not BreakerState.CLOSED:
            continue
        if _slower(slot.latency_s or 0.0, statistics.median(peers), spec):
            outliers.append(slot)
            room -= 1
    return outliers


def probe_was_slow(slot: ReplicaSlot, latency_s: float, slots: list[ReplicaSlot], spec: OutlierSpec) -> bool:
    peers = [s.latency_s for s in slots if s is not slot and s.latency_s is not None]
    return bool(peers) and _slower(latency_s, statistics.median(peers), spec)


def _slower(latency_s: float, typical_s: float, spec: OutlierSpec) -> bool:
    return latency_s > spec.slow_ratio * typical_s and (latency_s - typical_s) * 1000 > spec.min_gap_ms
