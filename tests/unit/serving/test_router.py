import random
from typing import Any

import pytest

from strata.errors import NotReady, Overloaded
from strata.serving.generation import GenerationRequest, GenerationStream
from strata.serving.router import PowerOfTwoRouter, ReplicaSlot


class StaticReplica:
    """A replica that only reports readiness; routing never calls into it."""

    def __init__(self, replica_id: str, ready: bool = True) -> None:
        self.replica_id = replica_id
        self._ready = ready

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def queue_depth(self) -> int:
        return 0

    @property
    def alive(self) -> bool:
        return True

    def stalled_s(self) -> float:
        return 0.0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def infer(self, item: Any) -> Any:
        return item

    def generate(self, request: GenerationRequest) -> GenerationStream:
        raise NotImplementedError


def test_picks_the_less_loaded_of_two() -> None:
    slots = [ReplicaSlot(StaticReplica("a"), outstanding=5), ReplicaSlot(StaticReplica("b"), outstanding=1)]
    router = PowerOfTwoRouter(slots, capacity=100, rng=random.Random(0))
    assert all(router.choose().replica.replica_id == "b" for _ in range(20))


def test_balances_load_over_many_replicas() -> None:
    slots = [ReplicaSlot(StaticReplica(str(i))) for i in range(4)]
    router = PowerOfTwoRouter(slots, capacity=1000, rng=random.Random(1))
    for _ in range(400):
        router.choose().outstanding += 1
    counts = [slot.outstanding for slot in slots]
    assert max(counts) - min(counts) <= 2, counts


def test_skips_replicas_not_ready_and_full_ones() -> None:
    slots = [
        ReplicaSlot(StaticReplica("loading", ready=False)),
        ReplicaSlot(StaticReplica("full"), outstanding=3),
        ReplicaSlot(StaticReplica("open"), outstanding=2),
    ]
    router = PowerOfTwoRouter(slots, capacity=3, rng=random.Random(2))
    assert router.choose().replica.replica_id == "open"
    slots[2].outstanding = 3
    with pytest.raises(Overloaded):
        router.choose()


def test_no_ready_replica_is_not_ready() -> None:
    router = PowerOfTwoRouter([ReplicaSlot(StaticReplica("x", ready=False))], capacity=1)
    with pytest.raises(NotReady):
        router.choose()
