"""Retrieval in chat completions (the ``retrieval`` field): a question searches the caller's vector
stores, and the sources found come back numbered, ready for the prompt and as ``file_citation``
annotations. Where they go in the prompt is chat_messages.py's business. Only requests that ask for
it pay for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from strata.errors import InvalidRequest, NotFound
from strata.gateway.call import Call
from strata.gateway.request_context import request_context
from strata.orchestration.retrieval import StoreRef, citations, numbered_sources, retrieve, sources_text
from strata.protocol.requests import RetrievalOptions
from strata.workflows.service import Workflows
from strata.workflows.vector_catalog import VectorCatalog


@dataclass(frozen=True, slots=True)
class Sources:
    chunks: list[dict[str, Any]]  # numbered as the annotations: {number, filename, file_id, text, score, ...}
    annotations: list[dict[str, Any]]
    default_message: str | None  # the app's retrieval.template filled with the sources; None: none found
    retrieval_ms: float

    @property
    def text(self) -> str:
        return sources_text(self.chunks)


class ChatRetrieval:
    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows
        self.catalog = VectorCatalog(workflows.store)
        self.settings = workflows.spec.retrieval

    async def search(self, call: Call, question: str, options: RetrievalOptions, user: str | None) -> Sources:
        started = time.perf_counter()
        tenant = call.caller.tenant
        stores = {s.id: s for s in await self.catalog.stores(tenant, options.vector_store_ids)}
        for index, store_id in enumerate(options.vector_store_ids):
            if store_id not in stores:  # another tenant's store does not exist for this caller
                raise NotFound(f"No vector store found with id '{store_id}'.",
                               param=f"retrieval.vector_store_ids[{index}]", code="vector_store_not_found")  # fmt: skip
        if not question.strip():
            raise InvalidRequest("retrieval needs a user message with text to search with.", param="messages")
        server = self.workflows.server
        assert server is not None  # the gateway always has its models
        refs = [StoreRef(s.id, s.embedding_model) for s in stores.values()]
        hits = await retrieve(server, self.workflows.vectors, refs, [question], options.top_k,
                              condition=options.filters, min_score=options.min_score,
                              context=request_context(call, user))  # fmt: skip
        names = await self.catalog.filenames(tenant, list(stores)) if hits else {}
        chunks = numbered_sources(hits, names, self.settings.max_context_chars)
        default = self.settings.template.replace("{sources}", sources_text(chunks)) if hits else None
        return Sources(chunks, citations(hits, names), default, (time.perf_counter() - started) * 1000)
