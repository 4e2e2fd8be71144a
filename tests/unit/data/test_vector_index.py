"""Both vector index backends behind the one seam: upsert by id, nearest-first search, filters that agree
with the Python evaluation, deletes; the embedded index restores its saved graph or rebuilds it."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from strata.data import embedded_index
from strata.data.embedded_index import EmbeddedIndex
from strata.data.pgvector_index import PgVectorIndex
from strata.data.vector_filters import Filter, matches
from strata.data.vector_index import Chunk, VectorIndex

DIM = 16


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _attributes(position: int) -> dict[str, Any]:
    return {"color": ["red", "green", "blue"][position % 3], "size": position % 10, "odd": bool(position % 2)}


def _chunks(store: str, file: str, vectors: np.ndarray, start: int = 0) -> list[Chunk]:
    return [
        Chunk(store, file, start + i, f"text {start + i}", v, _attributes(start + i)) for i, v in enumerate(vectors)
    ]


@pytest.fixture(params=["embedded", "pgvector"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    backend: VectorIndex
    if request.param == "pgvector":
        backend = PgVectorIndex(request.getfixturevalue("pgvector_url"))
    else:
        backend = EmbeddedIndex(tmp_path / "vectors")
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def _store() -> str:
    return f"vs_{random.getrandbits(48):012x}"  # stores share one pgvector database


async def test_upsert_replaces_by_id_and_search_is_nearest_first(index: VectorIndex) -> None:
    store, vectors = _store(), _vectors(200)
    await index.upsert(_chunks(store, "f1", vectors[:100]))
    await index.upsert(_chunks(store, "f2", vectors[100:], start=100))
    await index.upsert(_chunks(store, "f1", vectors[:100]))  # a resumed batch: the same chunks again
    assert await index.count(store) == 200
    assert await index.count(store, "f1") == 100
    hits = await index.search([store], vectors[150], 5)
    assert hits[0].position == 150
    assert hits[0].file_id == "f2"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    exact = np.argsort(-(vectors @ vectors[150]))[:5]
    assert [h.position for h in hits] == [int(i) for i in exact]
    assert await index.search([_store()], vectors[0], 5) == []


FILTERS = [
    {"type": "eq", "key": "color", "value": "red"},
    {"type": "ne", "key": "color", "value": "red"},
    {"type": "gte", "key": "size", "value": 7},
    {"type": "lt", "key": "size", "value": 2.5},
    {"type": "eq", "key": "odd", "value": True},
    {"type": "eq", "key": "missing", "value": "x"},
    {"type": "ne", "key": "missing", "value": "x"},
    {"type": "and", "filters": [{"type": "eq", "key": "color", "value": "blue"},
                                {"type": "gt", "key": "size", "value": 3}]},
    {"type": "or", "filters": [{"type": "eq", "key": "size", "value": 0},
                               {"type": "eq", "key": "color", "value": "green"}]},
]  # fmt: skip


@pytest.mark.parametrize("raw", FILTERS, ids=[json.dumps(f) for f in FILTERS])
async def test_filters_agree_with_python(index: VectorIndex, raw: dict[str, Any]) -> None:
    store, vectors = _store(), _vectors(60, seed=1)
    await index.upsert(_chunks(store, "f", vectors))
    condition: Filter = TypeAdapter(Filter).validate_python(raw)
    hits = await index.search([store], vectors[0], 60, condition)
    expected = {p for p in range(60) if matches(condition, _attributes(p))}
    assert {h.position for h in hits} == expected
    assert all(matches(condition, h.attributes) for h in hits)


async def test_delete_a_file_then_the_store(index: VectorIndex) -> None:
    store, vectors = _store(), _vectors(40)
    await index.upsert(_chunks(store, "keep", vectors[:20]))
    await index.upsert(_chunks(store, "drop", vectors[20:], start=20))
    await index.delete(store, "drop")
    assert await index.count(store) == 20
    assert {h.file_id for h in await index.search([store], vectors[30], 40)} == {"keep"}
    await index.delete(store)
    assert await index.count(store) == 0
    assert await index.search([store], vectors[0], 5) == []


async def test_embedded_index_restores_its_graph_or_rebuilds_it(tmp_path: Path) -> None:
    vectors = _vectors(300)
    first = EmbeddedIndex(tmp_path)
    await first.open()
    await first.upsert(_chunks("vs", "f", vectors))
    await first.close()
    assert (tmp_path / "vs.usearch").exists()
    restored = EmbeddedIndex(tmp_path)
    await restored.open()
    assert (await restored.search(["vs"], vectors[7], 1))[0].position == 7
    await restored.upsert(_chunks("vs", "g", vectors[:10], start=300))
    # A crash now: the saved graph no longer matches the chunks, so the next start rebuilds it.
    assert not (tmp_path / "vs.json").exists()
    rebuilt = EmbeddedIndex(tmp_path)
    await rebuilt.open()
    assert await rebuilt.count("vs") == 310
    assert {h.file_id for h in await rebuilt.search(["vs"], vectors[3], 2)} == {"f", "g"}
    await rebuilt.close()
    await restored.close()


async def test_embedded_filtered_search_is_never_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact-scan limit a filtered search widens the graph search tenfold; when the filter
    passes fewer than k of those, the answer is the exact top k of the passing chunks, not a short list."""
    monkeypatch.setattr(embedded_index, "FILTER_SCAN_LIMIT", 10)  # the graph path at a test's size
    index = EmbeddedIndex(tmp_path / "vectors")
    await index.open()
    try:
        vectors = _vectors(2000, seed=5)
        await index.upsert(_chunks("s", "f", vectors))
        rare: Filter = TypeAdapter(Filter).validate_python(
            {
                "type": "and",
                "filters": [{"type": "eq", "key": "size", "value": 3}, {"type": "eq", "key": "color", "value": "red"}],
            }
        )  # one chunk in 30
        hits = await index.search(["s"], vectors[0], 5, rare)
        allowed = [i for i in range(2000) if matches(rare, _attributes(i))]
        exact = sorted(allowed, key=lambda i: -float(vectors[i] @ vectors[0]))[:5]
        assert [hit.position for hit in hits] == exact
    finally:
        await index.close()
