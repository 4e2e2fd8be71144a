"""Retrieval in chat completions (the ``retrieval`` field): the last user message searches the caller's
vector stores, the chunks found go into a system message built from ``retrieval.template``, and the
answer cites them as ``file_citation`` annotations. Only requests that ask for it pay for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from strata.errors import InvalidRequest, NotFound
from strata.gateway.call import Call
from strata.gateway.request_context import request_context
from strata.orchestration.retrieval import StoreRef, citations, context_message, retrieve
from strata.protocol.requests import ChatCompletionRequest, ChatMessage, RetrievalOptions
from strata.workflows.service import Workflows
from strata.workflows.vector_catalog import VectorCatalog


@dataclass(frozen=True, slots=True)
class Grounded:
    body: ChatCompletionRequest  # the request with the sources' system message
    annotations: list[dict[str, Any]]
    retrieval_ms: float


class ChatRetrieval:
    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows
        self.catalog = VectorCatalog(workflows.store)
        self.settings = workflows.spec.retrieval

    async def ground(self, call: Call, body: ChatCompletionRequest, options: RetrievalOptions) -> Grounded:
        started = time.perf_counter()
        tenant = call.caller.tenant
        stores = {s.id: s for s in await self.catalog.stores(tenant, options.vector_store_ids)}
        for index, store_id in enumerate(options.vector_store_ids):
            if store_id not in stores:  # another tenant's store does not exist for this caller
                raise NotFound(f"No vector store found with id '{store_id}'.",
                               param=f"retrieval.vector_store_ids[{index}]", code="vector_store_not_found")  # fmt: skip
        question = next((m.text() for m in reversed(body.messages) if m.role == "user"), "")
        if not question.strip():
            raise InvalidRequest("retrieval needs a user message with text to search with.", param="messages")
        server = self.workflows.server
        assert server is not None  # the gateway always has its models
        refs = [StoreRef(s.id, s.embedding_model) for s in stores.values()]
        hits = await retrieve(server, self.workflows.vectors, refs, [question], options.top_k,
                              condition=options.filters, min_score=options.min_score,
                              context=request_context(call, body.user))  # fmt: skip
        names = await self.catalog.filenames(tenant, list(stores)) if hits else {}
        messages = _with_sources(body.messages, context_message(hits, names, self.settings)) if hits else body.messages
        grounded = body.model_copy(update={"messages": messages})
        return Grounded(grounded, citations(hits, names), (time.perf_counter() - started) * 1000)


def _with_sources(messages: list[ChatMessage], sources: str) -> list[ChatMessage]:
    """The sources as the first system message; a system message the client sent follows them in it
    (chat templates take one system message)."""
    first = messages[0]
    if first.role in ("system", "developer"):
        return [ChatMessage(role="system", content=f"{sources}\n\n{first.text()}"), *messages[1:]]
    return [ChatMessage(role="system", content=sources), *messages]
