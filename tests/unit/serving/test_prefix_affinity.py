"""Prefix-aware replica choice: a shared prefix sticks to one replica until load says otherwise."""

import random

from tests.unit.serving.test_router import StaticReplica

from strata.serving.generation import GenerationRequest
from strata.serving.prefix_affinity import PrefixIndex, prefix_blocks
from strata.serving.router import PowerOfTwoRouter, ReplicaSlot
from strata.serving.sampling import SamplingParams
from strata.spec.engines import PrefixRoutingSpec

SYSTEM = "You are a careful assistant for a shipping company. " * 12  # ~ 630 characters


def chat(system: str, question: str) -> GenerationRequest:
    messages = ({"role": "system", "content": system}, {"role": "user", "content": question})
    return GenerationRequest(params=SamplingParams(), messages=messages)


def test_blocks_chain_so_a_shared_prefix_shares_leading_blocks() -> None:
    a = prefix_blocks(chat(SYSTEM, "Where is my parcel?"), 128)
    b = prefix_blocks(chat(SYSTEM, "How much is shipping to Oslo?"), 128)
    c = prefix_blocks(chat("Be brief. " + SYSTEM, "Where is my parcel?"), 128)
    assert len(a) >= 4
    assert a[:4] == b[:4]
    assert a[0] != c[0]
    assert not set(a) & set(c)
    assert prefix_blocks(GenerationRequest(params=SamplingParams(), prompt="short"), 128) == ()


def test_index_matches_leading_blocks_and_forgets_the_oldest() -> None:
    index = PrefixIndex(capacity=4)
    index.record((1, 2, 3), key=10)
    index.record((1, 2, 9), key=20)
    assert index.matched((1, 2, 3, 4)) == {10: 3, 20: 2}
    assert index.matched((7, 2, 3)) == {}  # no first block, no prefix
    index.record((5, 6), key=30)  # over capacity: the deepest, oldest blocks (3, then 9) are dropped
    assert len(index) == 4
    assert index.matched((1, 2, 3)) == {10: 2, 20: 2}


def router(slots: list[ReplicaSlot], **spec: object) -> PowerOfTwoRouter:
    prefix = PrefixRoutingSpec(enabled=True, **spec)  # type: ignore[arg-type]
    return PowerOfTwoRouter(slots, capacity=100, rng=random.Random(0), prefix=prefix)


def test_same_system_prompt_goes_to_the_same_replica() -> None:
    slots = [ReplicaSlot(StaticReplica(str(i))) for i in range(4)]
    chooser = router(slots)
    prompts = {name: "".join([name] * 300) for name in ("alpha ", "beta ", "gamma ")}
    homes: dict[str, set[str]] = {name: set() for name in prompts}
    for turn in range(30):
        for name, system in prompts.items():
            slot = chooser.choose(prefix=prefix_blocks(chat(system, f"question {turn}"), 256))
            homes[name].add(slot.replica.replica_id)
    assert all(len(replicas) == 1 for replicas in homes.values()), homes


def test_load_wins_over_affinity_past_max_imbalance() -> None:
    slots = [ReplicaSlot(StaticReplica("a")), ReplicaSlot(StaticReplica("b"))]
    chooser = router(slots, max_imbalance=2)
    blocks = prefix_blocks(chat(SYSTEM, "hi"), 128)
    home = chooser.choose(prefix=blocks)
    other = next(slot for slot in slots if slot is not home)
    home.outstanding = 2
    assert chooser.choose(prefix=blocks) is home  # 2 more than the other: still within the allowance
    home.outstanding = 3
    assert chooser.choose(prefix=blocks) is other  # too busy: the other replica takes it (and now holds it too)
    other.outstanding = 3
    assert chooser.choose(prefix=blocks) in (home, other)


def test_disabled_by_default() -> None:
    slots = [ReplicaSlot(StaticReplica("a")), ReplicaSlot(StaticReplica("b"))]
    plain = PowerOfTwoRouter(slots, capacity=100, rng=random.Random(0))
    assert plain.prefix_index is None
    assert plain.choose(prefix=(1, 2)) in slots
