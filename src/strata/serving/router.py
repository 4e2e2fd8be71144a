"""Picks a replica for each request: the less loaded of two sampled at random.

Power of two choices gets close to least-outstanding-requests balancing without scanning every
replica, and never piles every request onto one replica whose count is momentarily stale.
Outstanding counts are kept here, on the caller's side, so they cost no round trip to a
remote replica.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from strata.errors import NotReady, Overloaded
from strata.runtime.base import Replica


@dataclass(slots=True)
class ReplicaSlot:
    replica: Replica
    outstanding: int = 0


class PowerOfTwoRouter:
    def __init__(self, slots: list[ReplicaSlot], *, capacity: int, rng: random.Random | None = None) -> None:
        self.slots = slots
        self._capacity = capacity  # most requests one replica may hold (queued + in its batch)
        self._rng = rng or random.Random()

    def choose(self) -> ReplicaSlot:
        ready = [slot for slot in self.slots if slot.replica.ready]
        if not ready:
            raise NotReady("no replica is ready yet (loading or warming up)", retry_after_s=2.0)
        open_slots = [slot for slot in ready if slot.outstanding < self._capacity]
        if not open_slots:
            raise Overloaded(f"all {len(ready)} replica(s) are at capacity ({self._capacity} requests each)")
        if len(open_slots) == 1:
            return open_slots[0]
        first, second = self._rng.sample(open_slots, 2)
        return first if first.outstanding <= second.outstanding else second
