"""The response cache's stores: the bounded memory LRU with its TTL, and the semantic index."""

import numpy as np

from strata.data.cache_store import MemoryStore
from strata.data.semantic_index import SemanticIndex


def test_the_memory_store_expires_entries() -> None:
    now = [100.0]
    store = MemoryStore(max_entries=10, max_bytes=1 << 20)
    store._now = lambda: now[0]
    store.put("a", b"answer", ttl_s=5.0)
    assert store.read("a") == b"answer"
    now[0] = 104.9
    assert store.read("a") == b"answer"
    now[0] = 105.0
    assert store.read("a") is None
    assert len(store) == 0
    assert store.bytes == 0


def test_the_memory_store_is_bounded_by_entries_and_bytes_least_recently_used_first() -> None:
    store = MemoryStore(max_entries=2, max_bytes=1 << 20)
    store.put("a", b"1", 60)
    store.put("b", b"2", 60)
    assert store.read("a") == b"1"  # a is now the most recently used
    store.put("c", b"3", 60)
    assert store.read("b") is None
    assert (store.read("a"), store.read("c")) == (b"1", b"3")
    assert store.evicted == 1
    small = MemoryStore(max_entries=100, max_bytes=10)
    small.put("x", b"12345", 60)
    small.put("y", b"12345", 60)
    small.put("z", b"123", 60)
    assert small.read("x") is None
    assert small.bytes == 8
    small.put("huge", b"0" * 11, 60)  # larger than the whole bound: never kept
    assert small.read("huge") is None


def test_the_memory_store_purges_by_prefix() -> None:
    store = MemoryStore(max_entries=10, max_bytes=1 << 20)
    store.put("chat|v1|aaa|1", b"old", 60)
    store.put("chat|v1|bbb|1", b"new", 60)
    store.purge("chat|v1|aaa|")
    assert store.read("chat|v1|aaa|1") is None
    assert store.read("chat|v1|bbb|1") == b"new"


def _unit(values: list[float]) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_the_semantic_index_finds_the_most_similar_and_stays_bounded() -> None:
    index = SemanticIndex(per_partition=2, max_partitions=2)
    index.add("p", _unit([1, 0, 0]), "k1")
    index.add("p", _unit([0, 1, 0]), "k2")
    found = index.nearest("p", _unit([0.9, 0.1, 0]))
    assert found is not None
    assert found[0] == "k1"
    assert found[1] > 0.99
    assert index.nearest("other", _unit([1, 0, 0])) is None
    index.add("p", _unit([0, 0, 1]), "k3")  # the partition is full: k1, the oldest, goes
    found = index.nearest("p", _unit([1, 0, 0]))
    assert found is not None
    assert found[0] != "k1"
    assert len(index) == 2
    index.add("q", _unit([1, 0, 0]), "q1")
    index.add("r", _unit([1, 0, 0]), "r1")  # a third partition: the least recently used (p) goes
    assert index.nearest("p", _unit([0, 0, 1])) is None
    index.purge("q")
    assert index.nearest("q", _unit([1, 0, 0])) is None
