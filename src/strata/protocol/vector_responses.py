"""Response bodies of the Files listing and the OpenAI Vector Stores API (documentation models, like
``protocol.responses``: handlers build the JSON directly)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from strata.protocol.responses import FileObject

FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


class FileList(BaseModel):
    object: Literal["list"]
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"]
    deleted: Literal[True]


class FileCounts(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStoreObject(BaseModel):
    id: str
    object: Literal["vector_store"]
    created_at: int
    name: str | None
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["in_progress", "completed"]
    expires_after: None
    expires_at: None
    last_active_at: int | None
    metadata: dict[str, str] | None


class VectorStoreList(BaseModel):
    object: Literal["list"]
    data: list[VectorStoreObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VectorStoreDeleted(BaseModel):
    id: str
    object: Literal["vector_store.deleted"]
    deleted: Literal[True]


class StaticChunking(BaseModel):
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int


class ChunkingStrategyOut(BaseModel):
    type: Literal["static"]
    static: StaticChunking


class FileError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFileObject(BaseModel):
    id: str
    object: Literal["vector_store.file"]
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: FileStatus
    last_error: FileError | None
    chunking_strategy: ChunkingStrategyOut
    attributes: dict[str, str | float | bool] | None


class VectorStoreFileList(BaseModel):
    object: Literal["list"]
    data: list[VectorStoreFileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VectorStoreFileDeleted(BaseModel):
    id: str
    object: Literal["vector_store.file.deleted"]
    deleted: Literal[True]


class SearchContent(BaseModel):
    type: Literal["text"]
    text: str


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any] | None
    content: list[SearchContent]
    vector_store_id: str
    chunk_index: int


class SearchPage(BaseModel):
    object: Literal["vector_store.search_results.page"]
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool
    next_page: None
