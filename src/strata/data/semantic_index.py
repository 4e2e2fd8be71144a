"""The semantic cache's index: per partition, the last ``per_partition`` (vector, key) pairs.

A partition holds requests equal in everything but the text compared (see cache_key.semantic_query),
so a lookup is one matrix-vector product over at most ``per_partition`` L2-normalised vectors:
cosine similarity. Partitions are kept LRU, at most ``max_partitions``. Everything is bounded; a key
found here may have expired from the answer store meanwhile, which the caller treats as a miss.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class _Partition:
    vectors: np.ndarray  # (capacity, dimensions), a ring: row ``next`` is overwritten first
    keys: list[str] = field(default_factory=list)
    next: int = 0

    def add(self, vector: np.ndarray, key: str) -> None:
        capacity = self.vectors.shape[0]
        if len(self.keys) < capacity:
            self.vectors[len(self.keys)] = vector
            self.keys.append(key)
            return
        self.vectors[self.next] = vector
        self.keys[self.next] = key
        self.next = (self.next + 1) % capacity


class SemanticIndex:
    def __init__(self, per_partition: int, max_partitions: int) -> None:
        self.per_partition = per_partition
        self.max_partitions = max_partitions
        self._partitions: OrderedDict[str, _Partition] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(p.keys) for p in self._partitions.values())

    def add(self, partition: str, vector: np.ndarray, key: str) -> None:
        found = self._partitions.get(partition)
        if found is None:
            found = _Partition(np.zeros((self.per_partition, vector.shape[0]), dtype=np.float32))
            self._partitions[partition] = found
            if len(self._partitions) > self.max_partitions:
                self._partitions.popitem(last=False)
        elif found.vectors.shape[1] != vector.shape[0]:  # the embedding model changed its dimensions
            del self._partitions[partition]
            self.add(partition, vector, key)
            return
        self._partitions.move_to_end(partition)
        found.add(vector, key)

    def nearest(self, partition: str, vector: np.ndarray) -> tuple[str, float] | None:
        """The most similar kept key of ``partition`` and its cosine similarity (None: none kept)."""
        found = self._partitions.get(partition)
        if found is None or not found.keys or found.vectors.shape[1] != vector.shape[0]:
            return None
        self._partitions.move_to_end(partition)
        scores = found.vectors[: len(found.keys)] @ vector
        best = int(np.argmax(scores))
        return found.keys[best], float(scores[best])

    def purge(self, prefix: str) -> None:
        for name in [n for n in self._partitions if n.startswith(prefix)]:
            del self._partitions[name]
