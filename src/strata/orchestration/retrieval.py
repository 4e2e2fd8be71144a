"""Retrieval: queries embedded with each store's model, the nearest chunks from the vector index, and
the context message and citations a chat answer is built with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strata.data.vector_filters import Filter
from strata.data.vector_index import Hit, VectorIndex
from strata.orchestration.embedding import embed
from strata.serving.route import RequestContext
from strata.serving.server import ModelServer
from strata.spec.retrieval import RetrievalSpec


@dataclass(frozen=True, slots=True)
class StoreRef:
    id: str
    embedding_model: str


async def retrieve(
    server: ModelServer,
    index: VectorIndex,
    stores: Sequence[StoreRef],
    queries: Sequence[str],
    k: int,
    *,
    condition: Filter | None = None,
    min_score: float = 0.0,
    context: RequestContext,
) -> list[Hit]:
    """The ``k`` best chunks over every store and query (a chunk found by several queries counts once,
    with its best score), at least ``min_score``, best first."""
    by_model: dict[str, list[str]] = {}
    for store in stores:
        by_model.setdefault(store.embedding_model, []).append(store.id)
    best: dict[tuple[str, str, int], Hit] = {}
    for model, store_ids in by_model.items():
        embedded = await embed(server, model, list(queries), context)
        for vector in embedded.vectors:
            for hit in await index.search(store_ids, vector, k, condition):
                key = (hit.store_id, hit.file_id, hit.position)
                if hit.score >= min_score and (key not in best or best[key].score < hit.score):
                    best[key] = hit
    return sorted(best.values(), key=lambda hit: hit.score, reverse=True)[:k]


def numbered_sources(hits: Sequence[Hit], filenames: Mapping[str, str], max_chars: int) -> list[dict[str, Any]]:
    """The sources as a prompt shows them, numbered from 1 as the citations are, with at most
    ``max_chars`` of source text in all (the last source that does not fit is cut)."""
    sources, room = [], max_chars
    for number, hit in enumerate(hits, start=1):
        if room <= 0:
            break
        text = " ".join(hit.text.split())[:room]
        room -= len(text)
        filename = filenames.get(hit.file_id, hit.file_id)
        sources.append({"number": number, "filename": filename, "file_id": hit.file_id, "text": text,
                        "score": round(hit.score, 6), "vector_store_id": hit.store_id})  # fmt: skip
    return sources


def sources_text(sources: Sequence[Mapping[str, Any]]) -> str:
    """One line per source: '[n] (filename) text'."""
    return "\n".join(f"[{s['number']}] ({s['filename']}) {s['text']}" for s in sources)


def context_message(hits: Sequence[Hit], filenames: Mapping[str, str], settings: RetrievalSpec) -> str:
    """The system message that carries the sources: the template with ``{sources}`` filled."""
    sources = numbered_sources(hits, filenames, settings.max_context_chars)
    return settings.template.replace("{sources}", sources_text(sources))


def citations(hits: Sequence[Hit], filenames: Mapping[str, str]) -> list[dict[str, Any]]:
    """One annotation per source, numbered as in the context message (``[n]``)."""
    return [
        {
            "type": "file_citation",
            "file_citation": {
                "file_id": hit.file_id,
                "filename": filenames.get(hit.file_id, hit.file_id),
                "vector_store_id": hit.store_id,
                "chunk_index": hit.position,
                "score": round(hit.score, 6),
                "source": number,
            },
        }
        for number, hit in enumerate(hits, start=1)
    ]
