"""Retrieval: recall@10 and query latency of both vector indexes at 100,000 vectors against exact search,
ingestion throughput through the served workflow engine, and a RAG chat request split into retrieval
and generation.

The index figures use 100,000 distinct chunks of real text (pydoc topics, then the docstrings of the
standard library and of site-packages; benchmarks/retrieval_corpus.py) embedded with the shipped
MiniLM, cached between runs; the queries are real text not in the set: the pydoc topic titles and
held-out chunks. Ground truth is an exact scan of the same set (numpy), in the same run.
STRATA_BENCH_RETRIEVAL_CACHE=KEY uses an earlier corpus's cached vectors as they are (the corpus
follows what is installed). STRATA_BENCH_RETRIEVAL_VECTORS=N measures the first N chunks only
(embedding all 100,000 on one core
takes hours on a busy machine; ``python -m benchmarks.retrieval_corpus`` fills the cache ahead).
"""

from __future__ import annotations

import asyncio
import json
import os
import pydoc_data.topics
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from rich.console import Console

from benchmarks.harness import Row, percentile, pinned_here, served
from benchmarks.retrieval_corpus import build_corpus, cached_vectors
from benchmarks.retrieval_corpus import vectors as corpus_vectors
from strata.apps import default_app_path
from strata.data.embedded_index import EmbeddedIndex
from strata.data.pgvector_index import PgVectorIndex, search_statement
from strata.data.vector_index import Chunk, VectorIndex
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.paths import resolve_model_path
from strata.orchestration.chunking import chunk_text
from strata.testing.pgvector import PgvectorUnavailable, pgvector_server

console = Console()
TOTAL = 100_000
QUERIES = 400  # held-out chunks, besides the pydoc topic titles
K = 10


def _corpus() -> str:
    topics = pydoc_data.topics.topics
    return "\n\n".join(topics[name] for name in sorted(topics))


async def _fill(index: VectorIndex, vectors: np.ndarray, store: str) -> float:
    started = time.perf_counter()
    for start in range(0, len(vectors), 2000):
        batch = vectors[start : start + 2000]
        await index.upsert([Chunk(store, "f", start + i, "", v) for i, v in enumerate(batch)])
    return time.perf_counter() - started


async def _measure(index: VectorIndex, store: str, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    for query in queries[:20]:  # warm caches and connections
        await index.search([store], query, K)
    latencies, recalls = [], []
    for query, exact in zip(queries, truth, strict=True):
        started = time.perf_counter()
        hits = await index.search([store], query, K)
        latencies.append(time.perf_counter() - started)
        recalls.append(len({h.position for h in hits} & set(exact.tolist())) / K)
    return {"recall": statistics.fmean(recalls), "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000}  # fmt: skip


async def _embedded(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        index = EmbeddedIndex(folder)
        await index.open()
        build_s = await _fill(index, vectors, "bench")
        result = await _measure(index, "bench", queries, truth)
        await index.close()
    return {**result, "build_s": build_s}


async def _pgvector(url: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    index = PgVectorIndex(url)
    await index.open()
    await index.upsert([Chunk("bench", "f", 0, "", vectors[0])])  # creates the table and its HNSW index
    pool = index._ready()
    table = f"strata_vectors_{vectors.shape[1]}"
    started = time.perf_counter()
    async with pool.acquire() as connection:  # bulk load, then build the graph once (pgvector's advice)
        await connection.execute(f"DROP INDEX IF EXISTS {table}_hnsw")
    await _fill(index, vectors, "bench")
    async with pool.acquire() as connection:
        await connection.execute("SET maintenance_work_mem = '1GB'")
        await connection.execute(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)")
    build_s = time.perf_counter() - started
    result = await _measure(index, "bench", queries, truth)
    query, params = search_statement(["bench"], queries[0], K)
    async with pool.acquire() as connection:  # the plan of the statement as the index sends it
        plan = json.loads(await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *params))[0]["Plan"]
    uses_index = f"{table}_hnsw" in json.dumps(plan)
    console.print(f"retrieval: pgvector plan {plan['Node Type']} > {plan['Plans'][0]['Node Type']}, hnsw: {uses_index}")
    await index.close()
    return {**result, "build_s": build_s, "hnsw_plan": float(uses_index)}


def _index_rows(total: int) -> list[Row]:
    earlier = os.environ.get("STRATA_BENCH_RETRIEVAL_CACHE")  # a cache folder's key, when the corpus moved on
    queries, vectors = (
        cached_vectors(earlier, total) if earlier else corpus_vectors(build_corpus(TOTAL, QUERIES), total)
    )
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
    console.print(f"retrieval: {len(vectors):,} real chunk vectors, {len(queries)} real queries not in the set")
    rows: list[Row] = []
    results = {"embedded (usearch HNSW)": asyncio.run(_embedded(vectors, queries, truth))}
    console.print(f"retrieval: embedded {results['embedded (usearch HNSW)']}")  # a long run: show it as it goes
    try:
        with tempfile.TemporaryDirectory() as folder, pgvector_server(Path(folder) / "data") as url:
            results["pgvector 0.8 (HNSW)"] = asyncio.run(_pgvector(url, vectors, queries, truth))
            console.print(f"retrieval: pgvector {results['pgvector 0.8 (HNSW)']}")
    except PgvectorUnavailable as error:
        console.print(f"[yellow]retrieval: pgvector skipped ({error})[/]")
    size = f"{len(vectors):,} x {vectors.shape[1]}"
    for name, result in results.items():
        goal_p50 = "embedded" in name
        rows += [
            Row("retrieval", f"{name}: recall@10 vs exact, {size}", result["recall"], "", ">= 0.95",
                result["recall"] >= 0.95),
            Row("retrieval", f"{name}: query p50 (k=10)", result["p50"], "ms", "<= 2" if goal_p50 else "",
                result["p50"] <= 2 if goal_p50 else None),
            Row("retrieval", f"{name}: query p99 (k=10)", result["p99"], "ms"),
            Row("retrieval", f"{name}: load + build", result["build_s"], "s"),
        ]  # fmt: skip
        if "hnsw_plan" in result:
            rows.append(Row("retrieval", f"{name}: the search statement's plan is the HNSW index scan",
                            result["hnsw_plan"], "yes=1", "1", result["hnsw_plan"] == 1))  # fmt: skip
    return rows


def _embedding_ceiling(chunks: list[str]) -> float:
    """Chunks/s of MiniLM called directly on one core with one torch thread, as the server runs it."""
    with pinned_here():
        model = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"))
        model.predict_batch(chunks[:4])
        started = time.perf_counter()
        for start in range(0, len(chunks), 32):
            model.predict_batch(chunks[start : start + 32])
        return len(chunks) / (time.perf_counter() - started)


def _served_rows(requests: int) -> list[Row]:
    spec = yaml.safe_load(default_app_path().read_text())
    text = _corpus()
    ceiling = _embedding_ceiling(chunk_text(text, 200, 40)[:64])
    with served(spec) as server, server.http(timeout=300) as client:
        upload = client.post("/v1/files", files={"file": ("python-docs.txt", text.encode())},
                             data={"purpose": "assistants"})  # fmt: skip
        upload.raise_for_status()
        store = client.post("/v1/vector_stores", json={"name": "python-docs"}).json()["id"]
        started = time.perf_counter()
        client.post(f"/v1/vector_stores/{store}/files", json={"file_id": upload.json()["id"]}).raise_for_status()
        while client.get(f"/v1/vector_stores/{store}").json()["file_counts"]["in_progress"]:
            time.sleep(0.05)
        ingest_s = time.perf_counter() - started
        chunks = len(chunk_text(text, spec.get("retrieval", {}).get("chunk_size_tokens", 200), 40))
        totals, retrievals = _rag(client, store, requests)
    total_p50, retrieval_p50 = percentile(totals, 50), percentile(retrievals, 50)
    console.print(f"retrieval: ceiling {ceiling:.2f} chunks/s, served {chunks / ingest_s:.2f} chunks/s, RAG p50 "
                  f"{total_p50 * 1000:.1f} ms (retrieval {retrieval_p50 * 1000:.1f} ms)")  # fmt: skip
    return [
        Row("retrieval", "ingestion ceiling: MiniLM in process, 200-word chunks, batches of 32", ceiling,
            "chunks/s"),
        Row("retrieval", f"ingestion through the workflow engine ({chunks} chunks of 200 words)", chunks / ingest_s,
            "chunks/s"),
        Row("retrieval", "ingestion served / in-process ceiling", chunks / ingest_s / ceiling, "ratio"),
        Row("retrieval", "RAG chat end to end p50 (top_k 4, 16 tokens)", total_p50 * 1000, "ms"),
        Row("retrieval", "  of which retrieval p50 (embed query + search)", retrieval_p50 * 1000, "ms"),
        Row("retrieval", "  of which generation p50 (the rest)", (total_p50 - retrieval_p50) * 1000, "ms"),
    ]  # fmt: skip


def _rag(client: httpx.Client, store: str, requests: int) -> tuple[list[float], list[float]]:
    questions = ["How does the with statement work?", "What does assert do?", "How are exceptions raised?",
                 "What is a lambda?", "How do I define a class?"]  # fmt: skip
    totals, retrievals = [], []
    for n in range(requests):
        body: dict[str, Any] = {
            "model": "strata-chat-tiny", "max_tokens": 16, "temperature": 0,
            "messages": [{"role": "user", "content": questions[n % len(questions)]}],
            "retrieval": {"vector_store_ids": [store], "top_k": 4},
        }  # fmt: skip
        started = time.perf_counter()
        response = client.post("/v1/chat/completions", json=body)
        totals.append(time.perf_counter() - started)
        response.raise_for_status()
        retrievals.append(float(response.headers["x-strata-retrieval-ms"]) / 1000)
    return totals, retrievals


def run(duration_s: float) -> list[Row]:
    rows = _served_rows(max(10, int(duration_s * 5)))
    return rows + _index_rows(int(os.environ.get("STRATA_BENCH_RETRIEVAL_VECTORS", TOTAL)))
