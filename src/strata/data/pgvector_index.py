"""The distributed vector index: chunks in PostgreSQL with pgvector, one table per dimension, an HNSW
index on cosine distance. Every gateway and worker pointed at the same database shares the stores.

Needs the ``vector`` extension (pgvector >= 0.8 for iterative index scans, which keep filtered
searches from coming back short); ``open`` creates it when the role may, and says so when it cannot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np

from strata.data.vector_filters import Filter, to_sql
from strata.data.vector_index import Chunk, Hit
from strata.errors import SpecError

EF_SEARCH = 100  # HNSW search breadth (hnsw.ef_search); at least k is used
# Rows written since a table's last ANALYZE that trigger the next one: the first ANALYZE_FIRST_ROWS,
# then a fifth of the rows it had. Without fresh statistics the planner guesses that the store filter
# keeps 0.5% of the table and reads the store's rows through its btree and sorts them all, which is
# a scan of the whole store: benchmarks measured 21 ms instead of about 2 at 28,672 vectors, until
# autovacuum got round to the table.
ANALYZE_FIRST_ROWS = 1000
ANALYZE_GROWTH = 0.2


def _table(dimensions: int) -> str:
    return f"strata_vectors_{int(dimensions)}"


def _literal(vector: np.ndarray) -> str:
    """pgvector's text form; cast with ``::vector`` (no client-side codec needed)."""
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def search_statement(
    store_ids: Sequence[str], vector: np.ndarray, k: int, condition: Filter | None = None
) -> tuple[str, list[Any]]:
    """The nearest-``k`` statement ``search`` sends, and its parameters (tests EXPLAIN it as sent).

    ``LIMIT`` is a literal, not a parameter: asyncpg prepares every statement, and after five runs
    PostgreSQL may switch to a generic plan, which costs ``LIMIT $n`` as a tenth of the table; with
    the literal every plan, generic or custom, is costed for the ``k`` rows wanted (one cached
    statement per ``k``). The vector and store ids stay parameters: the HNSW scan orders by ``$1``
    in a generic plan too. tests/unit/data/test_pgvector_plan.py checks both plans use the index.
    """
    params: list[Any] = [_literal(vector), list(store_ids)]
    where = "store_id = ANY($2)"
    if condition is not None:
        where += " AND " + to_sql(condition, "attributes", params)
    query = (
        f"SELECT store_id, file_id, position, text, attributes, 1 - (embedding <=> $1::vector) AS score "
        f"FROM {_table(len(vector))} WHERE {where} ORDER BY embedding <=> $1::vector LIMIT {int(k)}"
    )
    return query, params


class PgVectorIndex:
    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._tables: set[int] = set()  # dimensions whose table exists
        self._analyzed: dict[int, int] = {}  # dimensions -> rows this process counted at its last ANALYZE
        self._written: dict[int, int] = {}  # dimensions -> rows this process wrote since then

    async def open(self) -> None:
        # The search settings ride on every connection: a query is then one round trip, no transaction.
        settings = {"hnsw.ef_search": str(EF_SEARCH), "hnsw.iterative_scan": "relaxed_order"}
        self._pool = await asyncpg.create_pool(
            _dsn(self.url), min_size=1, max_size=self.pool_size, server_settings=settings
        )
        async with self._pool.acquire() as connection:
            try:
                await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except asyncpg.PostgresError as error:
                await self._pool.close()
                raise SpecError(
                    f"store.vectors_url: the database has no pgvector extension ({error}); install pgvector "
                    "(https://github.com/pgvector/pgvector) and run CREATE EXTENSION vector as a superuser once.",
                    param="store.vectors_url",
                ) from None
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables "
                "WHERE tablename LIKE 'strata_vectors_%' AND schemaname = current_schema()"
            )
        self._tables = {int(row["tablename"].rsplit("_", 1)[1]) for row in rows}

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _ready(self) -> asyncpg.Pool:
        assert self._pool is not None, "open() the index first"
        return self._pool

    async def _ensure_table(self, connection: asyncpg.Connection, dimensions: int) -> None:
        if dimensions in self._tables:
            return
        table = _table(dimensions)
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, store_id text NOT NULL, "
            f"file_id text NOT NULL, position integer NOT NULL, text text NOT NULL, "
            f"attributes jsonb NOT NULL DEFAULT '{{}}', embedding vector({int(dimensions)}) NOT NULL)"
        )
        await connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_store ON {table} (store_id, file_id)")
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)"
        )
        self._tables.add(dimensions)

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        dimensions = len(chunks[0].vector)
        table = _table(dimensions)
        rows = [
            (c.id, c.store_id, c.file_id, c.position, c.text, json.dumps(c.attributes), _literal(c.vector))
            for c in chunks
        ]
        async with self._ready().acquire() as connection:
            await self._ensure_table(connection, dimensions)
        async with self._ready().acquire() as connection, connection.transaction():  # the batch whole or not at all
            await connection.executemany(
                f"INSERT INTO {table} (id, store_id, file_id, position, text, attributes, embedding) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::vector) ON CONFLICT (id) DO UPDATE SET "
                "text = excluded.text, attributes = excluded.attributes, embedding = excluded.embedding",
                rows,
            )
            await self._keep_statistics(connection, dimensions, len(rows))

    async def _keep_statistics(self, connection: asyncpg.Connection, dimensions: int, rows: int) -> None:
        """ANALYZE the table once it has grown enough (ingestion only, never the search path)."""
        written = self._written[dimensions] = self._written.get(dimensions, 0) + rows
        known = self._analyzed.get(dimensions, 0)
        if written >= max(ANALYZE_FIRST_ROWS, ANALYZE_GROWTH * known):
            await connection.execute(f"ANALYZE {_table(dimensions)}")
            self._analyzed[dimensions], self._written[dimensions] = known + written, 0

    async def search(
        self, store_ids: Sequence[str], vector: np.ndarray, k: int, condition: Filter | None = None
    ) -> list[Hit]:
        dimensions = len(vector)
        if dimensions not in self._tables or not store_ids:
            return []
        query, params = search_statement(store_ids, vector, k, condition)
        async with self._ready().acquire() as connection:
            if k <= EF_SEARCH:
                rows = await connection.fetch(query, *params)
            else:  # a wider search than the connection's setting: widen it for this query only
                async with connection.transaction():
                    await connection.execute(f"SET LOCAL hnsw.ef_search = {int(k)}")
                    rows = await connection.fetch(query, *params)
        hits = [
            Hit(r["store_id"], r["file_id"], r["position"], r["text"], float(r["score"]), json.loads(r["attributes"]))
            for r in rows
        ]
        hits.sort(key=lambda hit: hit.score, reverse=True)  # relaxed order: re-sort the few returned
        return hits

    async def count(self, store_id: str, file_id: str | None = None) -> int:
        total = 0
        async with self._ready().acquire() as connection:
            for dimensions in sorted(self._tables):
                if file_id is None:
                    query, args = f"SELECT count(*) FROM {_table(dimensions)} WHERE store_id = $1", [store_id]
                else:
                    query = f"SELECT count(*) FROM {_table(dimensions)} WHERE store_id = $1 AND file_id = $2"
                    args = [store_id, file_id]
                total += int(await connection.fetchval(query, *args))
        return total

    async def delete(self, store_id: str, file_id: str | None = None) -> None:
        async with self._ready().acquire() as connection:
            for dimensions in sorted(self._tables):
                if file_id is None:
                    await connection.execute(f"DELETE FROM {_table(dimensions)} WHERE store_id = $1", store_id)
                else:
                    await connection.execute(
                        f"DELETE FROM {_table(dimensions)} WHERE store_id = $1 AND file_id = $2", store_id, file_id
                    )
