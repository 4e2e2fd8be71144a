"""Attaching a file to a vector store, as a durable job of the engine: one ``ingest`` step reads the
file, chunks it, embeds the chunks in batches through the served embedding route and writes each
batch to the vector index as it is embedded.

A chunk's id is derived from its store, file and position, so an attempt that runs again after a
crash (or a lost lease) rewrites the chunks the last one wrote instead of adding copies. Chunks a
previous attempt already wrote are skipped without embedding them again.
"""

from __future__ import annotations

from typing import Any

from strata.data.vector_index import Chunk
from strata.errors import StrataError
from strata.orchestration.chunking import UnsupportedFile, chunk_text, file_text
from strata.orchestration.embedding import embed
from strata.spec.pipelines import PipelineSpec, StepSpec
from strata.workflows.generation import JOB_CONTEXT
from strata.workflows.steps import StepContext, StepError

INGEST_PIPELINE = PipelineSpec(
    name="vector-store-file",
    description="Ingest a file into a vector store: chunk, embed, index.",
    steps=[StepSpec(name="ingest", kind="python", entrypoint="strata.workflows.ingestion:ingest", max_attempts=5)],
)


async def ingest(value: Any, context: StepContext) -> Any:
    services = context.services
    if services.server is None or services.vectors is None:
        raise StepError("this worker has no models loaded (start it with --models)", retryable=False)
    store_id, file_id = value["store_id"], value["file_id"]
    file = await services.files.file(context.tenant, file_id)
    if file is None:
        raise StepError(f"the file '{file_id}' was deleted before it was read", retryable=False)
    try:
        text = file_text(file.filename, await services.artifacts.get(context.tenant, file.sha256))
    except UnsupportedFile as error:
        raise StepError(str(error), retryable=False) from None
    pieces = chunk_text(text, value["chunk_size_tokens"], value["chunk_overlap_tokens"])
    if not pieces:
        raise StepError(f"the file '{file.filename}' has no text", retryable=False)
    attributes = value.get("attributes") or {}
    done = await services.vectors.count(store_id, file_id)  # a resumed attempt: these chunks are written
    batch_size = services.retrieval.embed_batch_size
    for start in range(_batch_start(done, batch_size), len(pieces), batch_size):
        if context.cancel_requested():
            break
        await _index_batch(context, value, pieces, start, batch_size, attributes)
    return {"chunks": len(pieces), "resumed_from": done}


def _batch_start(done: int, batch_size: int) -> int:
    # Batches are written whole and in order: the first batch not wholly there starts again.
    return (done // batch_size) * batch_size


async def _index_batch(
    context: StepContext, value: dict[str, Any], pieces: list[str], start: int, batch_size: int,
    attributes: dict[str, Any],
) -> None:  # fmt: skip
    services = context.services
    assert services.server is not None
    assert services.vectors is not None
    batch = pieces[start : start + batch_size]
    try:
        embedded = await embed(services.server, value["embedding_model"], batch, JOB_CONTEXT)
    except StrataError as error:  # overload and failures may pass; a bad model will not
        raise StepError(error.message, retryable=error.status >= 500 or error.status == 429) from None
    chunks = [
        Chunk(value["store_id"], value["file_id"], start + offset, text, embedded.vectors[offset], attributes)
        for offset, text in enumerate(batch)
    ]
    await services.vectors.upsert(chunks)
