"""The pipeline step ``kind: retrieve``: the value (a string, or a mapping with ``query`` and optionally
``vector_store_ids``) searches the job's tenant's vector stores. Its output holds the chunks found and
``context``, the sources numbered as in chat retrieval, for a following template or generate step
(``{{ steps.<name>.context }}``)."""

from __future__ import annotations

from typing import Any

from strata.errors import StrataError
from strata.orchestration import retrieval
from strata.workflows.generation import INLINE_CONTEXT, JOB_CONTEXT
from strata.workflows.steps import StepContext, StepError
from strata.workflows.vector_catalog import VectorCatalog


async def retrieve(value: Any, context: StepContext) -> Any:
    services, spec = context.services, context.step
    if services.server is None or services.vectors is None:
        raise StepError("this worker has no models loaded (start it with --models)", retryable=False)
    query = value.get("query") if isinstance(value, dict) else value
    if not isinstance(query, str) or not query.strip():
        raise StepError("a retrieve step needs text: a string value or a mapping with 'query'", retryable=False)
    store_ids = value.get("vector_store_ids") if isinstance(value, dict) else None
    store_ids = store_ids or spec.vector_store_ids
    if not isinstance(store_ids, list) or not all(isinstance(s, str) for s in store_ids) or not store_ids:
        raise StepError("a retrieve step needs vector_store_ids (in the step or the value)", retryable=False)
    catalog = VectorCatalog(services.store)
    stores = await catalog.stores(context.tenant, store_ids)
    missing = sorted(set(store_ids) - {s.id for s in stores})
    if missing:  # another tenant's store does not exist for this job
        raise StepError(f"no vector store '{missing[0]}'", retryable=False, param="vector_store_ids")
    try:
        hits = await retrieval.retrieve(
            services.server, services.vectors, [retrieval.StoreRef(s.id, s.embedding_model) for s in stores], [query],
            spec.top_k, min_score=spec.min_score, context=JOB_CONTEXT if context.durable else INLINE_CONTEXT,
        )  # fmt: skip
    except StrataError as error:
        raise StepError(error.message, retryable=error.status >= 500 or error.status == 429) from None
    names = await catalog.filenames(context.tenant, [s.id for s in stores])
    sources = retrieval.context_message(hits, names, services.retrieval.model_copy(update={"template": "{sources}"}))
    return {
        "query": query,
        "context": sources,
        "results": [
            {"file_id": h.file_id, "filename": names.get(h.file_id, h.file_id), "vector_store_id": h.store_id,
             "chunk_index": h.position, "score": h.score, "text": h.text}
            for h in hits
        ],
    }  # fmt: skip
