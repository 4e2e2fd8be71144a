"""Request bodies and query strings of the Vector Stores API and the Files listing, validated strictly
like every OpenAI body (an unknown field is an error naming it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator

from strata.data.vector_filters import Filter
from strata.protocol.requests import WHOLE, RequestModel

Metadata = Annotated[dict[str, Annotated[str, Field(max_length=512)]], Field(max_length=16)]
Attributes = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)] | float | bool],
    Field(max_length=16),
]
Identifier = Annotated[str, Field(min_length=1, max_length=64)]


class StaticSizes(RequestModel):
    max_chunk_size_tokens: Annotated[int, Field(ge=20, le=4096), WHOLE]
    chunk_overlap_tokens: Annotated[int, Field(ge=0), WHOLE]

    @field_validator("chunk_overlap_tokens")
    @classmethod
    def _overlap_at_most_half(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("max_chunk_size_tokens")
        if size is not None and value * 2 > size:
            raise ValueError("must be at most half of max_chunk_size_tokens")
        return value


class StaticChunking(RequestModel):
    """Chunks of these sizes, in words."""

    type: Literal["static"]
    static: StaticSizes


class AutoChunking(RequestModel):
    """The store's sizes (``retrieval.chunk_size_tokens`` for a new store)."""

    type: Literal["auto"]


def _chunking_branch(value: Any) -> str:
    # Only the branch its type names is validated, so an error names that branch's own field.
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "static-chunking" if kind == "static" else "auto-chunking"


ChunkingStrategy = Annotated[
    Annotated[AutoChunking, Tag("auto-chunking")] | Annotated[StaticChunking, Tag("static-chunking")],
    Discriminator(_chunking_branch),
]


class CreateVectorStore(RequestModel):
    name: Annotated[str, Field(max_length=255)] | None = None
    file_ids: Annotated[list[Identifier], Field(max_length=100)] | None = None
    metadata: Metadata | None = None
    chunking_strategy: ChunkingStrategy | None = None


class AttachFile(RequestModel):
    file_id: Identifier
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None


class RankingOptions(RequestModel):
    ranker: Literal["auto", "default-2024-11-15", "none"] = "auto"
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class SearchVectorStore(RequestModel):
    query: (
        Annotated[str, Field(min_length=1, max_length=4096)]
        | Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(min_length=1, max_length=8)]
    )
    filters: Filter | None = None
    max_num_results: Annotated[int, Field(ge=1, le=50), WHOLE] = 10
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = Field(
        default=False,
        json_schema_extra={"enum": [False], "description": "Query rewriting is not supported: only false."},
    )

    @field_validator("rewrite_query")
    @classmethod
    def _no_rewriting(cls, value: bool) -> bool:
        if value:
            raise ValueError("query rewriting is not supported; send false or leave it out")
        return value

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


class PageQuery(BaseModel):
    """Cursor pagination, as OpenAI lists: newest first unless ``order=asc``; ``after`` an id of the last page."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None


class FileListQuery(PageQuery):
    limit: int = Field(default=100, ge=1, le=10_000)
    purpose: str | None = None


class VectorStoreFileQuery(PageQuery):
    filter: Literal["in_progress", "completed", "failed", "cancelled"] | None = None
