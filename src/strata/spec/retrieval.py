"""Retrieval settings: the embedding route vector stores use, chunking defaults and the context template."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_TEMPLATE = (
    "Answer the question using the numbered sources below. Cite a source by its number, like [1].\n{sources}"
)


class RetrievalSpec(BaseModel):
    """Vector stores and retrieval-augmented chat: unknown keys are errors, like every spec object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedding_model: str | None = Field(
        default=None,
        description="The embedding route vector stores embed with (chunks at ingestion, queries at search). "
        "None picks the app's first embedding route; an app without one has no vector stores.",
    )
    chunk_size_tokens: int = Field(
        default=200,
        ge=20,
        le=4096,
        description="Default chunk size, in words (whitespace-separated tokens). Smaller than OpenAI's 800: "
        "the shipped MiniLM reads at most 256 word pieces of a chunk.",
    )
    chunk_overlap_tokens: int = Field(
        default=40, ge=0, description="Default overlap of consecutive chunks, in words; at most half the size."
    )
    embed_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Chunks embedded and written per ingestion batch."
    )
    max_context_chars: int = Field(
        default=700,
        ge=100,
        description="At most this much retrieved text goes into a chat prompt (sources past it are cut). The "
        "default fits the shipped chat model, which reads 512 tokens (about 2 characters each on prose); raise "
        "it for a model with a longer context.",
    )
    template: str = Field(
        default=DEFAULT_TEMPLATE,
        description="The system message that carries retrieved chunks into a chat request; '{sources}' is "
        "replaced by the numbered sources, one per line: '[n] (filename) text'.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalSpec:
        if self.chunk_overlap_tokens * 2 > self.chunk_size_tokens:
            raise ValueError("chunk_overlap_tokens: at most half of chunk_size_tokens")
        if "{sources}" not in self.template:
            raise ValueError("template: must contain '{sources}'")
        return self
