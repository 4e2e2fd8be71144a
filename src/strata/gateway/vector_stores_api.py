"""The OpenAI Vector Stores API (``client.vector_stores.*``), tenant-scoped like files and batches:
another tenant's store answers 404, and cannot be searched nor used for retrieval.

Attaching a file starts its ingestion job (workflows/ingestion.py); the file's status is the job's.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.responses import Response

from strata.errors import InvalidRequest, NotFound
from strata.gateway.call import Call
from strata.gateway.paging import list_page, parse_query
from strata.gateway.request_context import request_context
from strata.gateway.responses import json_response
from strata.orchestration.chunking import UnsupportedFile, file_kind
from strata.orchestration.retrieval import StoreRef, retrieve
from strata.protocol.vector_requests import (
    AttachFile,
    ChunkingStrategy,
    CreateVectorStore,
    PageQuery,
    SearchVectorStore,
    StaticChunking,
    VectorStoreFileQuery,
)
from strata.spec.models import embedding_routes
from strata.workflows.ingestion import INGEST_PIPELINE
from strata.workflows.records import NewJob
from strata.workflows.service import Workflows
from strata.workflows.tables import TERMINAL
from strata.workflows.vector_catalog import AttachedFile, VectorCatalog
from strata.workflows.vector_tables import VectorStore, VectorStoreFile

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


def _chunking_json(size: int, overlap: int) -> dict[str, Any]:
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def store_json(store: VectorStore, counts: tuple[dict[str, int], int]) -> dict[str, Any]:
    by_status, usage_bytes = counts
    file_counts = {status: by_status.get(status, 0) for status in FILE_STATUSES}
    return {
        "id": store.id,
        "object": "vector_store",
        "created_at": int(store.created_at),
        "name": store.name,
        "usage_bytes": usage_bytes,
        "file_counts": {**file_counts, "total": sum(file_counts.values())},
        "status": "in_progress" if file_counts["in_progress"] else "completed",
        "expires_after": None,
        "expires_at": None,
        "last_active_at": int(store.created_at),
        "metadata": store.attributes,
    }


def file_json(attached: AttachedFile) -> dict[str, Any]:
    row = attached.row
    error = None
    if attached.status == "failed":
        code = "unsupported_file" if attached.error and "file type" in attached.error else "server_error"
        error = {"code": code, "message": attached.error or "ingestion failed"}
    return {
        "id": row.file_id,
        "object": "vector_store.file",
        "usage_bytes": row.bytes,
        "created_at": int(row.created_at),
        "vector_store_id": row.store_id,
        "status": attached.status,
        "last_error": error,
        "chunking_strategy": _chunking_json(row.chunk_size_tokens, row.chunk_overlap_tokens),
        "attributes": row.attributes,
    }


class VectorStoresAPI:
    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows
        self.catalog = VectorCatalog(workflows.store)
        self.settings = workflows.spec.retrieval
        routes = embedding_routes(workflows.spec)
        self.embedding_model = self.settings.embedding_model or (routes[0] if routes else None)

    def _sizes(self, strategy: ChunkingStrategy | None, default: tuple[int, int]) -> tuple[int, int]:
        if isinstance(strategy, StaticChunking):
            return strategy.static.max_chunk_size_tokens, strategy.static.chunk_overlap_tokens
        return default

    async def _store(self, call: Call) -> VectorStore:
        store_id = call.params["vector_store_id"]
        store = await self.catalog.store(call.caller.tenant, store_id)
        if store is None:
            raise NotFound(f"No vector store found with id '{store_id}'.", param="vector_store_id",
                           code="vector_store_not_found")  # fmt: skip
        return store

    async def _store_json(self, store: VectorStore) -> dict[str, Any]:
        counts = await self.catalog.file_counts([store.id])
        return store_json(store, counts.get(store.id, ({}, 0)))  # type: ignore[arg-type]

    async def create_store(self, call: Call) -> Response:
        body = call.parse(CreateVectorStore)
        if self.embedding_model is None:
            raise InvalidRequest("This app has no embedding model, so it has no vector stores.", param="model")
        tenant = call.caller.tenant
        for index, file_id in enumerate(body.file_ids or ()):
            await self._readable_file(tenant, file_id, f"file_ids[{index}]")
        defaults = (self.settings.chunk_size_tokens, self.settings.chunk_overlap_tokens)
        size, overlap = self._sizes(body.chunking_strategy, defaults)
        store = VectorStore(
            id=f"vs_{secrets.token_hex(12)}", tenant=tenant, name=body.name, attributes=body.metadata,
            embedding_model=self.embedding_model, chunk_size_tokens=size, chunk_overlap_tokens=overlap,
            created_at=time.time(),
        )  # fmt: skip
        await self.catalog.add_store(store)
        for file_id in body.file_ids or ():
            await self._attach(call, store, file_id, None, (size, overlap))
        return json_response(await self._store_json(store))

    async def list_stores(self, call: Call) -> Response:
        query = parse_query(call, PageQuery)
        stores = await self.catalog.list_stores(call.caller.tenant, limit=query.limit, order=query.order,
                                                after=query.after)  # fmt: skip
        counts = await self.catalog.file_counts([s.id for s in stores])
        rows = [store_json(s, counts.get(s.id, ({}, 0))) for s in stores]  # type: ignore[arg-type]
        return json_response(list_page(rows, query.limit))

    async def get_store(self, call: Call) -> Response:
        return json_response(await self._store_json(await self._store(call)))

    async def delete_store(self, call: Call) -> Response:
        store = await self._store(call)
        for attached in await self.catalog.list_files(store.tenant, store.id, limit=10_000, order="asc",
                                                      after=None, status="in_progress"):  # fmt: skip
            await self._cancel(store.tenant, attached.row.job_id)
        await self.catalog.delete_store(store.tenant, store.id)
        await self.workflows.vectors.delete(store.id)
        return json_response({"id": store.id, "object": "vector_store.deleted", "deleted": True})

    async def _readable_file(self, tenant: str, file_id: str, param: str) -> Any:
        file = await self.workflows.files.file(tenant, file_id)
        if file is None:
            raise NotFound(f"No such File object: {file_id}", param=param, code="file_not_found")
        try:
            file_kind(file.filename)
        except UnsupportedFile as error:
            raise InvalidRequest(str(error), param=param, code="unsupported_file") from None
        return file

    async def attach_file(self, call: Call) -> Response:
        store = await self._store(call)
        body = call.parse(AttachFile)
        await self._readable_file(store.tenant, body.file_id, "file_id")
        sizes = self._sizes(body.chunking_strategy, (store.chunk_size_tokens, store.chunk_overlap_tokens))
        attached = await self._attach(call, store, body.file_id, body.attributes, sizes)
        return json_response(file_json(attached))

    async def _attach(
        self, call: Call, store: VectorStore, file_id: str, attributes: dict[str, Any] | None, sizes: tuple[int, int]
    ) -> AttachedFile:
        caller = call.caller
        self.workflows.budget_check(caller.tenant)  # ingestion embeds: billable work
        file = await self._readable_file(caller.tenant, file_id, "file_id")
        previous = await self.catalog.file(caller.tenant, store.id, file_id)
        if previous is not None:  # attached again: the new attachment replaces the old one and its chunks
            await self._cancel(caller.tenant, previous.row.job_id)
            await self.workflows.vectors.delete(store.id, file_id)
        job_id = f"vsfile_{secrets.token_hex(12)}"
        row = VectorStoreFile(
            store_id=store.id, file_id=file_id, tenant=caller.tenant, job_id=job_id, filename=file.filename,
            bytes=file.bytes, attributes=attributes, chunk_size_tokens=sizes[0], chunk_overlap_tokens=sizes[1],
            created_at=time.time(),
        )  # fmt: skip
        await self.catalog.add_file(row)
        spec = {
            "store_id": store.id, "file_id": file_id, "embedding_model": store.embedding_model,
            "chunk_size_tokens": sizes[0], "chunk_overlap_tokens": sizes[1], "attributes": attributes or {},
        }  # fmt: skip
        await self.workflows.store.submit(
            NewJob(caller.tenant, caller.key_id, INGEST_PIPELINE.name, spec, ["ingest"], job_id=job_id)
        )
        self.workflows.wake()
        return AttachedFile(row, "in_progress", None)

    async def _cancel(self, tenant: str, job_id: str) -> None:
        job = await self.workflows.store.get(tenant, job_id)
        if job is not None and job.status not in TERMINAL:
            await self.workflows.store.request_cancel(tenant, job_id)
            self.workflows.note_cancel(job_id)

    async def _attached(self, call: Call, store: VectorStore) -> AttachedFile:
        file_id = call.params["file_id"]
        attached = await self.catalog.file(store.tenant, store.id, file_id)
        if attached is None:
            raise NotFound(f"No file '{file_id}' in vector store '{store.id}'.", param="file_id",
                           code="file_not_found")  # fmt: skip
        return attached

    async def list_files(self, call: Call) -> Response:
        store = await self._store(call)
        query = parse_query(call, VectorStoreFileQuery)
        files = await self.catalog.list_files(store.tenant, store.id, limit=query.limit, order=query.order,
                                              after=query.after, status=query.filter)  # fmt: skip
        return json_response(list_page([file_json(f) for f in files], query.limit))

    async def get_file(self, call: Call) -> Response:
        store = await self._store(call)
        return json_response(file_json(await self._attached(call, store)))

    async def delete_file(self, call: Call) -> Response:
        store = await self._store(call)
        attached = await self._attached(call, store)
        await self._cancel(store.tenant, attached.row.job_id)
        await self.catalog.delete_file(store.tenant, store.id, attached.row.file_id)
        await self.workflows.vectors.delete(store.id, attached.row.file_id)
        return json_response({"id": attached.row.file_id, "object": "vector_store.file.deleted", "deleted": True})

    async def search(self, call: Call) -> Response:
        store = await self._store(call)
        body = call.parse(SearchVectorStore)
        server = self.workflows.server
        assert server is not None  # the gateway always has its models
        threshold = -1.0 if body.ranking_options is None else body.ranking_options.score_threshold
        hits = await retrieve(
            server, self.workflows.vectors, [StoreRef(store.id, store.embedding_model)], body.queries(),
            body.max_num_results, condition=body.filters, min_score=threshold, context=request_context(call),
        )  # fmt: skip
        names = await self.catalog.filenames(store.tenant, [store.id])
        data = [
            {"file_id": hit.file_id, "filename": names.get(hit.file_id, hit.file_id), "score": hit.score,
             "attributes": hit.attributes or None, "content": [{"type": "text", "text": hit.text}],
             "vector_store_id": hit.store_id, "chunk_index": hit.position}
            for hit in hits
        ]  # fmt: skip
        return json_response({"object": "vector_store.search_results.page", "search_query": body.queries(),
                              "data": data, "has_more": False, "next_page": None})  # fmt: skip
