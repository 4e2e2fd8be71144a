"""Texts into vectors through a served embedding route: the same router, admission control and
dynamic batcher as ``POST /v1/embeddings``, so ingestion and queries share the model's batches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from strata.errors import InvalidRequest, ModelFailed
from strata.models.base import Embedding
from strata.serving.deployment import Deployment
from strata.serving.route import RequestContext
from strata.serving.server import ModelServer


@dataclass(frozen=True, slots=True)
class Embedded:
    vectors: np.ndarray  # (len(texts), dimensions), float32, L2-normalised
    tokens: int


async def embed(server: ModelServer, model: str, texts: list[str], context: RequestContext) -> Embedded:
    route = server.resolve(model)
    if route.task != "embed":
        raise InvalidRequest(f"The model '{model}' does not embed text (it serves {route.task}).", param="model")

    async def work(deployment: Deployment) -> list[object]:
        return list(await asyncio.gather(*(deployment.infer(text, context.deadline) for text in texts)))

    results, _, _ = await route.serve(context, work)
    embeddings = [result for result in results if isinstance(result, Embedding)]
    if len(embeddings) != len(texts):
        raise ModelFailed(f"The model '{model}' did not return one embedding per text.")
    vectors = np.stack([np.asarray(e.vector, dtype=np.float32) for e in embeddings])
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return Embedded(vectors / np.maximum(norms, 1e-12), sum(e.tokens for e in embeddings))
