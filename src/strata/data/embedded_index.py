"""The embedded vector index: chunks in a SQLite file (the durable truth), one in-memory HNSW graph
(usearch) per vector store for search. The graphs are saved beside the file on close and restored at
start when they match it; otherwise they are rebuilt from the file. One process owns the folder.

Small stores are searched exactly (a brute-force scan is faster than a graph below a few thousand
vectors and always exact). Filtered searches scan the store's attributes in memory.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from strata.data.vector_filters import Filter, matches
from strata.data.vector_index import Chunk, Hit

EXACT_BELOW = 4096  # vectors: under this a store is searched exactly
FILTER_SCAN_LIMIT = 50_000  # candidates: at most this many are scored exactly for a filtered query
EF_SEARCH = 128  # HNSW search breadth: recall@10 >= 0.95 at 100k vectors (benchmarks/retrieval.py)
CONNECTIVITY = 16
EF_CONSTRUCTION = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    store_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    attributes TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_chunks_store ON chunks (store_id, file_id);
"""


@dataclass(slots=True)
class _Store:
    """One vector store in memory: its graph and what filters and deletes need per key."""

    index: Index
    files: dict[int, str] = field(default_factory=dict)  # key -> file id
    attributes: dict[int, dict[str, Any]] = field(default_factory=dict)


def _new_index(dimensions: int) -> Index:
    return Index(
        ndim=dimensions, metric="cos", dtype="f32", connectivity=CONNECTIVITY,
        expansion_add=EF_CONSTRUCTION, expansion_search=EF_SEARCH,
    )  # fmt: skip


class EmbeddedIndex:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._stores: dict[str, _Store] = {}
        self._lock = threading.Lock()  # graphs are changed on the writer thread, searched on the caller's
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="vector-index")  # SQLite: one writer
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, self._open)

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.folder / "chunks.db", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        store_ids = [row[0] for row in self._db.execute("SELECT DISTINCT store_id FROM chunks")]
        for store_id in store_ids:
            self._stores[store_id] = self._load(store_id)

    def _load(self, store_id: str) -> _Store:
        """The store's graph from its saved copy when that matches the file, else rebuilt from the file."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT key, file_id, attributes FROM chunks WHERE store_id = ? ORDER BY key", (store_id,)
        ).fetchall()
        keys = [row[0] for row in rows]
        saved, meta = self._graph_path(store_id), self._meta_path(store_id)
        index: Index | None = None
        if saved.exists() and meta.exists():
            expected = json.loads(meta.read_text())
            if expected == {"count": len(keys), "max_key": keys[-1] if keys else 0}:
                index = Index.restore(str(saved))
        if index is None:
            index = self._rebuild(store_id, keys)
        store = _Store(index)
        for key, file_id, attributes in rows:
            store.files[key] = file_id
            store.attributes[key] = json.loads(attributes)
        return store

    def _rebuild(self, store_id: str, keys: list[int]) -> Index:
        assert self._db is not None
        vectors = self._db.execute("SELECT vector FROM chunks WHERE store_id = ? ORDER BY key", (store_id,))
        matrix = np.stack([np.frombuffer(row[0], dtype=np.float32) for row in vectors])
        index = _new_index(matrix.shape[1])
        index.add(np.asarray(keys, dtype=np.uint64), matrix)
        return index

    def _graph_path(self, store_id: str) -> Path:
        return self.folder / f"{store_id}.usearch"

    def _meta_path(self, store_id: str) -> Path:
        return self.folder / f"{store_id}.json"

    async def close(self) -> None:
        if self._db is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._writer, self._save_all)
        self._writer.shutdown(wait=True)

    def _save_all(self) -> None:
        assert self._db is not None
        for store_id, store in self._stores.items():
            keys = sorted(store.files)
            store.index.save(str(self._graph_path(store_id)))
            meta = {"count": len(keys), "max_key": keys[-1] if keys else 0}
            self._meta_path(store_id).write_text(json.dumps(meta))
        self._db.close()
        self._db = None

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        if chunks:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._upsert, list(chunks))

    def _upsert(self, chunks: list[Chunk]) -> None:
        assert self._db is not None
        store_id = chunks[0].store_id
        self._forget_saved(store_id)
        with self._db:  # one transaction: the batch is written whole or not at all
            keys = [
                self._db.execute(
                    "INSERT INTO chunks (id, store_id, file_id, position, text, attributes, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET text = excluded.text, "
                    "attributes = excluded.attributes, vector = excluded.vector RETURNING key",
                    (c.id, c.store_id, c.file_id, c.position, c.text, json.dumps(c.attributes),
                     np.asarray(c.vector, dtype=np.float32).tobytes()),
                ).fetchone()[0]
                for c in chunks
            ]  # fmt: skip
        matrix = np.stack([np.asarray(c.vector, dtype=np.float32) for c in chunks])
        with self._lock:
            store = self._stores.get(store_id)
            if store is None:
                store = self._stores[store_id] = _Store(_new_index(matrix.shape[1]))
            replaced = [key for key in keys if key in store.files]
            if replaced:
                store.index.remove(np.asarray(replaced, dtype=np.uint64))
            store.index.add(np.asarray(keys, dtype=np.uint64), matrix)
            for key, chunk in zip(keys, chunks, strict=True):
                store.files[key] = chunk.file_id
                store.attributes[key] = chunk.attributes

    def _forget_saved(self, store_id: str) -> None:
        # A saved graph is only trusted when it matches the file: after any change it may not.
        self._meta_path(store_id).unlink(missing_ok=True)

    async def search(
        self, store_ids: Sequence[str], vector: np.ndarray, k: int, condition: Filter | None = None
    ) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32)
        found: list[tuple[float, str, int]] = []
        with self._lock:
            for store_id in store_ids:
                store = self._stores.get(store_id)
                if store is not None and len(store.files):
                    found += [(score, store_id, key) for score, key in _nearest(store, query, k, condition)]
        found.sort(reverse=True)
        return await self._hits(found[:k])

    async def _hits(self, found: list[tuple[float, str, int]]) -> list[Hit]:
        if not found:
            return []
        rows = await asyncio.get_running_loop().run_in_executor(self._writer, self._rows, [key for _, _, key in found])
        hits = []
        for score, store_id, key in found:
            row = rows.get(key)
            if row is not None:  # deleted between the search and this read
                file_id, position, text, attributes = row
                hits.append(Hit(store_id, file_id, position, text, score, json.loads(attributes)))
        return hits

    def _rows(self, keys: list[int]) -> dict[int, tuple[str, int, str, str]]:
        assert self._db is not None
        marks = ",".join("?" * len(keys))
        query = f"SELECT key, file_id, position, text, attributes FROM chunks WHERE key IN ({marks})"
        return {row[0]: row[1:] for row in self._db.execute(query, keys)}

    async def count(self, store_id: str, file_id: str | None = None) -> int:
        with self._lock:
            store = self._stores.get(store_id)
            if store is None:
                return 0
            if file_id is None:
                return len(store.files)
            return sum(1 for owner in store.files.values() if owner == file_id)

    async def delete(self, store_id: str, file_id: str | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, self._delete, store_id, file_id)

    def _delete(self, store_id: str, file_id: str | None) -> None:
        assert self._db is not None
        self._forget_saved(store_id)
        with self._db:
            if file_id is None:
                self._db.execute("DELETE FROM chunks WHERE store_id = ?", (store_id,))
            else:
                self._db.execute("DELETE FROM chunks WHERE store_id = ? AND file_id = ?", (store_id, file_id))
        with self._lock:
            store = self._stores.get(store_id)
            if store is None:
                return
            if file_id is None:
                del self._stores[store_id]
                self._graph_path(store_id).unlink(missing_ok=True)
                return
            gone = [key for key, owner in store.files.items() if owner == file_id]
            if gone:
                store.index.remove(np.asarray(gone, dtype=np.uint64))
            for key in gone:
                del store.files[key]
                del store.attributes[key]


def _nearest(store: _Store, query: np.ndarray, k: int, condition: Filter | None) -> list[tuple[float, int]]:
    """(cosine similarity, key) of the store's best ``k`` chunks passing ``condition``."""
    if condition is not None:
        allowed = [key for key, attributes in store.attributes.items() if matches(condition, attributes)]
        if len(allowed) <= FILTER_SCAN_LIMIT:
            return _exact(store, np.asarray(allowed, dtype=np.uint64), query, k)
        wider = store.index.search(query, min(len(store.files), k * 10))
        passing = set(allowed)
        found = [(1.0 - float(d), int(key)) for key, d in zip(wider.keys, wider.distances, strict=True)
                 if int(key) in passing][:k]  # fmt: skip
        if len(found) < k:  # the filter dropped most of the graph's nearest: a short answer is a wrong one
            return _exact(store, np.asarray(allowed, dtype=np.uint64), query, k)
        return found
    exact = len(store.files) < EXACT_BELOW
    matches_found = store.index.search(query, min(k, len(store.files)), exact=exact)
    return [(1.0 - float(d), int(key)) for key, d in zip(matches_found.keys, matches_found.distances, strict=True)]


def _exact(store: _Store, keys: np.ndarray, query: np.ndarray, k: int) -> list[tuple[float, int]]:
    if not len(keys):
        return []
    vectors = np.asarray(store.index.get(keys), dtype=np.float32).reshape(len(keys), -1)
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    scores = (vectors @ query) / np.maximum(norms, 1e-12)
    best = np.argsort(-scores)[:k]
    return [(float(scores[i]), int(keys[i])) for i in best]
