"""The one place that picks a vector index backend, by the URL in ``store.vectors_url``."""

from __future__ import annotations

from strata.data.embedded_index import EmbeddedIndex
from strata.data.pgvector_index import PgVectorIndex
from strata.data.vector_index import VectorIndex

POSTGRES_SCHEMES = ("postgresql://", "postgresql+asyncpg://", "postgres://")


def vector_index_for(url: str) -> VectorIndex:
    """``postgresql://...`` is pgvector (shared by every process on the database); anything else is a
    folder for the embedded index (one process)."""
    if url.startswith(POSTGRES_SCHEMES):
        return PgVectorIndex(url)
    return EmbeddedIndex(url)
