"""Response cache knobs of the app spec: per route (``routes[].cache``) and app-wide (``cache``).

Off by default: a route answers every request from its model unless its spec turns the cache on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CacheMode = Literal["off", "exact", "semantic"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteCacheSpec(_Spec):
    """How one route's answers are kept and reused (chat and text completions)."""

    mode: CacheMode = Field(
        default="off",
        description="off; exact (the same normalised request, tenant, key allow-list, version and template); "
        "semantic (exact first, then a last user message whose embedding is similar enough, all else equal).",
    )
    ttl_s: float = Field(default=300.0, gt=0, le=30 * 86400, description="How long an answer is reused.")
    max_entries: int = Field(default=10_000, ge=1, description="Answers kept in memory for this route (LRU).")
    max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Bytes of answers kept in memory for this route (LRU)."
    )
    semantic_threshold: float = Field(
        default=0.95, gt=0, le=1, description="semantic: the cosine similarity at or above which an answer is reused."
    )
    embedding_route: str | None = Field(
        default=None, description="semantic: the embedding route that embeds the last user message."
    )
    max_semantic_entries: int = Field(
        default=1000, ge=1, description="semantic: vectors kept per partition (oldest dropped first)."
    )
    nondeterministic: bool = Field(
        default=False,
        description="Also cache requests that sample (temperature > 0 with no seed): every caller then gets the "
        "first sampled answer until it expires.",
    )

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @model_validator(mode="after")
    def _semantic_needs_a_route(self) -> RouteCacheSpec:
        if self.mode == "semantic" and self.embedding_route is None:
            raise ValueError("cache.embedding_route: semantic mode needs the embedding route that embeds the prompt")
        return self


class CacheSpec(_Spec):
    """What every cached route shares: where answers live when several gateways share them."""

    namespace: str = Field(
        default="strata-cache",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Prefix of the cache's keys in Redis (store.redis_url); gateways sharing answers share it.",
    )
    redis_timeout_ms: float = Field(
        default=50.0, gt=0, le=5000, description="A Redis read or write slower than this counts as a miss."
    )
