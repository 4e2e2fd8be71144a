"""The seam every vector index backend sits behind (``vector_backends.vector_index_for`` picks one).

A chunk's id is derived from its store, file and position (``chunk_id``): writing the same chunk
again replaces it, so an ingestion resumed after a crash never duplicates a chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from strata.data.vector_filters import Filter


def chunk_id(store_id: str, file_id: str, position: int) -> str:
    return hashlib.sha256(f"{store_id}:{file_id}:{position}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Chunk:
    store_id: str
    file_id: str
    position: int  # the chunk's place in its file, from 0
    text: str
    vector: np.ndarray  # float32, L2-normalised
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return chunk_id(self.store_id, self.file_id, self.position)


@dataclass(frozen=True, slots=True)
class Hit:
    store_id: str
    file_id: str
    position: int
    text: str
    score: float  # cosine similarity, 1 = the same direction
    attributes: dict[str, Any]


class VectorIndex(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by id (one store, one dimension)."""

    async def search(
        self, store_ids: Sequence[str], vector: np.ndarray, k: int, condition: Filter | None = None
    ) -> list[Hit]:
        """The ``k`` chunks nearest to ``vector`` in these stores that pass ``condition``, best first."""

    async def count(self, store_id: str, file_id: str | None = None) -> int: ...

    async def delete(self, store_id: str, file_id: str | None = None) -> None:
        """Every chunk of the store, or of one file in it."""
