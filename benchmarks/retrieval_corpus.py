"""The retrieval benchmark's real text and its MiniLM vectors, cached.

Text available offline on every machine that runs Strata: Python's bundled documentation
(``pydoc_data.topics``), then the docstrings of the standard library's modules, then those of the
installed packages (site-packages), each source file's docstrings chunked like an uploaded file.
Identical chunks are kept once. The chunk list is shuffled with a fixed seed so that any prefix of it
is a fair sample; the first ``queries`` chunks are held out as queries (real text not in the set).

Embedding 100,000 chunks with MiniLM on one CPU thread takes a long time, so the vectors are cached
under ``benchmarks/results/retrieval-vectors/<hash of the chunk list>/`` in shards: a rerun, or a
run cut short and started again, embeds only the shards it lacks.

``python -m benchmarks.retrieval_corpus --total 100000`` fills the cache ahead of ``strata bench``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import json
import pydoc_data.topics
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.paths import resolve_model_path
from strata.orchestration.chunking import chunk_text

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "results" / "retrieval-vectors"
MODEL = "builtin:all-MiniLM-L6-v2"
CHUNK_WORDS = 40  # short chunks: MiniLM's cost grows with tokens, and 100,000 must embed on one core
OVERLAP_WORDS = 8
MIN_WORDS = 6  # shorter fragments ("Return self.") say too little to be a retrieval target
SHARD = 4096  # chunks per cached file
BATCH = 64
SEED = 7

console = Console()


@dataclass(frozen=True)
class Corpus:
    queries: list[str]  # held out: topic titles, then real chunks not in the set
    chunks: list[str]  # the set, distinct

    @property
    def key(self) -> str:
        digest = hashlib.sha256(MODEL.encode())
        for text in [*self.queries, "\x00", *self.chunks]:
            digest.update(text.encode() + b"\x00")
        return digest.hexdigest()[:16]


def _documents() -> Iterator[str]:
    """Natural-language documents, in a fixed order: pydoc topics, then each .py file's docstrings."""
    topics = pydoc_data.topics.topics
    yield from (topics[name] for name in sorted(topics))
    paths = sysconfig.get_paths()
    stdlib, site = Path(paths["stdlib"]), Path(paths["purelib"])
    for root in (stdlib, site):
        for path in sorted(root.rglob("*.py")):
            if root == stdlib and "site-packages" in path.parts:
                continue
            text = _docstrings(path)
            if text:
                yield text


def _docstrings(path: Path) -> str:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):  # test fixtures with bad syntax, unreadable files
        return ""
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
    return "\n\n".join(doc for doc in found if doc)


def build_corpus(total: int, queries: int) -> Corpus:
    """``total`` distinct real chunks for the set and ``queries`` held-out ones (plus topic titles);
    the list is cached too (parsing every installed .py file takes minutes), keyed by what it reads."""
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    sources = json.dumps([sys.version, installed, total, queries, CHUNK_WORDS, OVERLAP_WORDS, MIN_WORDS, SEED])
    path = CACHE / f"corpus-{hashlib.sha256(sources.encode()).hexdigest()[:16]}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        return Corpus(queries=cached["queries"], chunks=cached["chunks"])
    corpus = _collect(total, queries)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"queries": corpus.queries, "chunks": corpus.chunks}))
    return corpus


def _collect(total: int, queries: int) -> Corpus:
    wanted = total + queries
    pool: dict[str, None] = {}  # ordered and distinct
    for document in _documents():
        for chunk in chunk_text(document, CHUNK_WORDS, OVERLAP_WORDS):
            if len(chunk.split()) >= MIN_WORDS:
                pool[chunk] = None
        if len(pool) >= wanted * 1.1:  # a little spare, so the shuffle mixes sources beyond the last file
            break
    if len(pool) < wanted:
        raise RuntimeError(f"only {len(pool)} distinct chunks of real text found, {wanted} wanted")
    texts = list(pool)
    order = np.random.default_rng(SEED).permutation(len(texts))
    shuffled = [texts[i] for i in order[:wanted]]
    titles = sorted(pydoc_data.topics.topics)
    return Corpus(queries=titles + shuffled[:queries], chunks=shuffled[queries:])


def _embed(model: HFEmbeddingModel, texts: list[str]) -> np.ndarray:
    """Unit vectors in the texts' order; batched by length so that little of a batch is padding."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), model.dimensions), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        picked = order[start : start + BATCH]
        for i, embedding in zip(picked, model.predict_batch([texts[i] for i in picked]), strict=True):
            out[i] = embedding.vector
    unit: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
    return unit


def vectors(corpus: Corpus, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(query vectors, set vectors) for the corpus, from the cache where it has them; embeds the rest
    with one torch thread, as the harness pins the server. ``limit``: only the first that many chunks."""
    folder = CACHE / corpus.key
    folder.mkdir(parents=True, exist_ok=True)
    listed = folder / "chunks.json"
    if not listed.exists():  # the list beside its vectors: --key resumes it after the packages change
        listed.write_text(json.dumps({"queries": corpus.queries, "chunks": corpus.chunks}))
    chunks = corpus.chunks[:limit] if limit else corpus.chunks
    model: HFEmbeddingModel | None = None
    parts = []
    shards = [("queries", corpus.queries)] + [
        (f"shard-{n:04d}", chunks[start : start + SHARD]) for n, start in enumerate(range(0, len(chunks), SHARD))
    ]
    started, done = time.perf_counter(), 0
    for name, texts in shards:
        path = folder / f"{name}-{len(texts)}.npy"
        if not path.exists():
            if model is None:
                torch.set_num_threads(1)
                model = HFEmbeddingModel(resolve_model_path(MODEL))
            np.save(path.with_suffix(".tmp.npy"), _embed(model, texts))
            path.with_suffix(".tmp.npy").rename(path)  # a shard is whole or absent
            done += len(texts)
            rate = done / (time.perf_counter() - started)
            console.print(f"retrieval corpus: embedded {name} ({done:,} chunks this run, {rate:.1f} chunks/s)")
        parts.append(np.load(path))
    return parts[0], np.concatenate(parts[1:]) if len(parts) > 1 else np.empty((0, 384), np.float32)


def cached_vectors(key: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(query vectors, set vectors) of an earlier corpus from its cache folder alone: the corpus is
    rebuilt from what is installed, so a package installed since changes its key and its chunks."""
    folder = CACHE / key
    queries = np.load(next(folder.glob("queries-*.npy")))
    shards = [np.load(path) for path in sorted(folder.glob("shard-*[0-9].npy"))]
    return queries, np.concatenate(shards)[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--key", help="resume the corpus cached under this key instead of building one")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.key:
        cached = json.loads((CACHE / args.key / "chunks.json").read_text())
        corpus = Corpus(queries=cached["queries"], chunks=cached["chunks"])
    else:
        corpus = build_corpus(args.total, args.queries)
    console.print(f"retrieval corpus: {len(corpus.chunks):,} chunks + {len(corpus.queries)} queries "
                  f"in {time.perf_counter() - started:.0f} s, cache key {corpus.key}")  # fmt: skip
    queries, matrix = vectors(corpus)
    console.print(f"retrieval corpus: {matrix.shape[0]:,} set vectors, {queries.shape[0]} query vectors")


if __name__ == "__main__":
    main()
