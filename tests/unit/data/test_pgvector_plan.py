"""The statement the pgvector index sends is planned as an HNSW index scan, both as a custom plan (its
first runs) and as the generic plan PostgreSQL may switch a prepared statement to after five runs; a
scan of the store's rows (btree, then sort) would still return the right rows, only by reading the whole
store per query. That is the plan the index got before it kept the table's statistics itself: with
autovacuum off for this table, the statistics here come from the index's own ANALYZE alone."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from strata.data.pgvector_index import PgVectorIndex, search_statement
from strata.data.vector_index import Chunk

DIM = 200  # a dimension no other test uses: this table and its HNSW index are this test's own
ROWS = 8000  # enough that the planner prices a full scan above the HNSW scan (at 3,000 it rightly does not)


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(item) for item in value) + "]::text[]"
    if isinstance(value, bool | int | float):
        return str(value).lower()
    return "'" + str(value).replace("'", "''") + "'"


def _plan_nodes(plan: dict[str, Any]) -> list[str]:
    nodes = [f"{plan['Node Type']} {plan.get('Index Name', '')}".strip()]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


async def test_search_statement_uses_the_hnsw_index(pgvector_url: str) -> None:
    index = PgVectorIndex(pgvector_url)
    await index.open()
    try:
        vectors = np.random.default_rng(3).normal(size=(ROWS, DIM)).astype(np.float32)
        await index.upsert([Chunk("plan", "f", 0, "", vectors[0])])  # creates the table
        async with index._ready().acquire() as connection:  # statistics come from the index alone
            await connection.execute(f"ALTER TABLE strata_vectors_{DIM} SET (autovacuum_enabled = false)")
        await index.upsert([Chunk("plan", "f", i, "", v) for i, v in enumerate(vectors)])
        query, params = search_statement(["plan"], vectors[7], 10)
        async with index._ready().acquire() as connection:
            # As asyncpg runs it: a prepared statement, planned per run at first (custom), then maybe
            # once for all runs (generic); plan_cache_mode forces each in turn.
            await connection.execute(f"PREPARE nearest AS {query}")
            arguments = ", ".join(_literal(param) for param in params)  # EXECUTE takes no $n of its own
            plans = {}
            for mode in ("force_custom_plan", "force_generic_plan"):
                await connection.execute(f"SET plan_cache_mode = {mode}")
                plans[mode] = await connection.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE nearest({arguments})")
            await connection.execute("DEALLOCATE nearest; RESET plan_cache_mode")
        for name, plan in plans.items():
            nodes = _plan_nodes(json.loads(plan)[0]["Plan"])
            assert f"Index Scan strata_vectors_{DIM}_hnsw" in nodes, f"{name} plan: {nodes}"
        hits = await index.search(["plan"], vectors[7], 10)
        assert [hit.position for hit in hits][:1] == [7]
        assert len(hits) == 10
    finally:
        await index.close()
